//! A `lambda_runtime` function whose handler fails: the client posts `…/error` with
//! `lambda-runtime-function-error-type: unhandled`.
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    Err(format!("boom: {}", event.payload).into())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await
}
