//! A `lambda-extension` telemetry processor (schema 2022-07-01, the crate's strict typed
//! records: a batch with any unknown type or missing field is answered 400 and never reaches
//! this handler). Every accepted batch is appended as one JSON line to
//! `$FNBOX_CONFORMANCE_OUT/telemetry.jsonl`. On SHUTDOWN it waits briefly for the final batch,
//! records the event and exits.
use std::io::Write;

use lambda_extension::{
    service_fn, Error, Extension, LambdaEvent, LambdaTelemetry, NextEvent, SharedService,
};

fn append(file: &str, line: &str) {
    let Ok(dir) = std::env::var("FNBOX_CONFORMANCE_OUT") else {
        return;
    };
    let path = std::path::Path::new(&dir).join(file);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open record file");
    writeln!(f, "{line}").expect("write record");
}

async fn on_batch(batch: Vec<LambdaTelemetry>) -> Result<(), Error> {
    append("telemetry.jsonl", &serde_json::to_string(&batch)?);
    Ok(())
}

async fn on_event(event: LambdaEvent) -> Result<(), Error> {
    if let NextEvent::Shutdown(e) = event.next {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        append(
            "telemetry-events.jsonl",
            &serde_json::json!({"event": "SHUTDOWN", "shutdownReason": e.shutdown_reason})
                .to_string(),
        );
        std::process::exit(0);
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    Extension::new()
        .with_events_processor(service_fn(on_event))
        .with_telemetry_types(&["platform", "function", "extension"])
        .with_telemetry_processor(SharedService::new(service_fn(on_batch)))
        .run()
        .await
}
