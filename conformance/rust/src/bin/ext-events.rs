//! A `lambda-extension` extension for INVOKE and SHUTDOWN. It appends one JSON line per event
//! (and one for its registration) to `$FNBOX_CONFORMANCE_OUT/<executable name>.jsonl`, sleeps
//! `$EXT_INVOKE_DELAY_MS` on each INVOKE (so a test can see the invocation wait for it), and
//! exits after SHUTDOWN.
use std::io::Write;

use lambda_extension::{service_fn, Error, Extension, LambdaEvent, NextEvent};
use serde_json::json;

fn record(line: serde_json::Value) {
    let Ok(dir) = std::env::var("FNBOX_CONFORMANCE_OUT") else {
        return;
    };
    let name = std::env::args()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "extension".into());
    let path = std::path::Path::new(&dir).join(format!("{name}.jsonl"));
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open record file");
    writeln!(f, "{line}").expect("write record");
}

async fn on_event(event: LambdaEvent) -> Result<(), Error> {
    match event.next {
        NextEvent::Invoke(e) => {
            let delay: u64 = std::env::var("EXT_INVOKE_DELAY_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
            println!("extension saw invoke {}", e.request_id);
            record(
                json!({"event": "INVOKE", "requestId": e.request_id, "deadlineMs": e.deadline_ms,
                "invokedFunctionArn": e.invoked_function_arn,
                "tracing": {"type": e.tracing.r#type, "value": e.tracing.value},
                "doneAtMs": now_ms()}),
            );
        }
        NextEvent::Shutdown(e) => {
            record(
                json!({"event": "SHUTDOWN", "shutdownReason": e.shutdown_reason, "deadlineMs": e.deadline_ms}),
            );
            std::process::exit(0);
        }
    }
    Ok(())
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let registered = Extension::new()
        .with_events_processor(service_fn(on_event))
        .register()
        .await?;
    record(
        json!({"event": "REGISTERED", "functionName": registered.function_name,
        "functionVersion": registered.function_version, "handler": registered.handler,
        "accountId": registered.account_id}),
    );
    registered.run().await
}
