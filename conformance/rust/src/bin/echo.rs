//! A `lambda_runtime` function that answers every event with the event and what the runtime
//! client saw (request id, ARN, deadline, trace id, the function config it read).
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let ctx = &event.context;
    println!("echo handling {}", ctx.request_id);
    Ok(json!({
        "echo": event.payload,
        "requestId": ctx.request_id,
        "invokedFunctionArn": ctx.invoked_function_arn,
        "deadlineMs": ctx.deadline,
        "xrayTraceId": ctx.xray_trace_id,
        "functionName": ctx.env_config.function_name,
        "memory": ctx.env_config.memory,
        "version": ctx.env_config.version,
        "logGroup": ctx.env_config.log_group,
    }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await
}
