//! A SnapStart `lambda_runtime` function: one `SnapStartResource` records its
//! `before_snapshot` / `after_restore` calls in `$FNBOX_CONFORMANCE_OUT/snapstart.log` (the
//! after-restore hook fails with `SNAP_FAIL=1`); the handler answers with what it recorded.
use std::sync::Arc;

use lambda_runtime::{service_fn, BoxFuture, Error, LambdaEvent, Runtime, SnapStartResource};
use serde_json::{json, Value};

fn log_path() -> std::path::PathBuf {
    std::path::Path::new(&std::env::var("FNBOX_CONFORMANCE_OUT").unwrap_or_else(|_| "/tmp".into()))
        .join("snapstart.log")
}

fn record(what: &str) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(log_path()) {
        let _ = writeln!(f, "{what}");
    }
}

struct Connection;

impl SnapStartResource for Connection {
    fn before_snapshot(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async {
            record("before_snapshot");
            Ok(())
        })
    }

    fn after_restore(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async {
            record("after_restore");
            if std::env::var("SNAP_FAIL").is_ok_and(|v| v == "1") {
                return Err("cannot reconnect after the restore".into());
            }
            Ok(())
        })
    }
}

async fn handler(_event: LambdaEvent<Value>) -> Result<Value, Error> {
    let log = std::fs::read_to_string(log_path()).unwrap_or_default();
    Ok(json!({
        "hooks": log.lines().collect::<Vec<_>>(),
        "initType": std::env::var("AWS_LAMBDA_INITIALIZATION_TYPE").ok(),
    }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    Runtime::new(service_fn(handler))
        .register_snapstart_resource(Arc::new(Connection))
        .run()
        .await
}
