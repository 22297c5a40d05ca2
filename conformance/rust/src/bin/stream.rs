//! A `lambda_runtime` streaming function: chunks through `Lambda-Runtime-Function-Response-Mode:
//! streaming` (HTTP-integration prelude + 8 NULs); with `{"fail":true}` the stream ends in an
//! error, which `lambda_runtime` reports as trailer text inside the body.
use lambda_runtime::{service_fn, Error, LambdaEvent, StreamResponse};
use serde_json::Value;

type Chunks = futures::stream::Iter<std::vec::IntoIter<Result<String, String>>>;

async fn handler(event: LambdaEvent<Value>) -> Result<StreamResponse<Chunks>, Error> {
    let mut chunks: Vec<Result<String, String>> = vec![
        Ok("hello ".into()),
        Ok("streamed ".into()),
        Ok("world".into()),
    ];
    if event.payload.get("fail").and_then(Value::as_bool) == Some(true) {
        chunks.push(Err("stream broke".into()));
    }
    Ok(StreamResponse::from(futures::stream::iter(chunks)))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await
}
