//! `fnbox invoke`: a client of `fnbox serve`'s front door. Prints the result to stdout and,
//! with `--log-type tail`, the invocation's log to stderr.
//!
//! `--async` queues the invocation (FunctionGraph's `…/invocations-async`, or with `--lambda`
//! `X-Amz-Invocation-Type: Event`) and prints its request id; `--wait` then polls its status
//! every 200 ms until it is done and prints the result (exit 0) or the last error (exit 1).
//!
//! Exit codes: 0 success; 1 the function failed (handler error, fault, timeout); 2 bad usage or
//! a request the server refused (unknown function, bad token, body too large); 3 the function
//! could not be initialised; 4 the server could not be reached, was saturated (429) or failed.

use std::io::{Read, Write};
use std::path::PathBuf;

use base64::Engine as _;
use bytes::Bytes;
use clap::ValueEnum;
use fnbox_wire::front::{
    headers, lambda_headers, lambda_values, paths, values, FssError, LambdaApiError,
};
use http_body_util::{BodyExt, Full};

use crate::MainError;

/// `--log-type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogType {
    /// The last 4 KiB of the invocation's log, printed to stderr.
    Tail,
}

#[derive(clap::Args, Debug)]
pub struct InvokeArgs {
    /// Function name or URN (any FunctionGraph short form); with --lambda a name or ARN.
    pub function: String,
    /// Event JSON (default `{}`).
    #[arg(long, conflicts_with = "event_file")]
    pub event: Option<String>,
    /// File holding the event (`-` for stdin).
    #[arg(long)]
    pub event_file: Option<PathBuf>,
    /// `tail`: also print the invocation's log to stderr.
    #[arg(long, value_enum, ignore_case = true)]
    pub log_type: Option<LogType>,
    /// The fnbox serve to talk to.
    #[arg(long, env = "FNBOX_SERVER", default_value = "http://127.0.0.1:8000")]
    pub server: String,
    /// Token for a server started with --token (sent as X-Auth-Token).
    #[arg(long, env = "FNBOX_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Use Lambda's invoke API instead of FunctionGraph's.
    #[arg(long)]
    pub lambda: bool,
    /// Invoke asynchronously: queue the invocation and print its request id.
    #[arg(long = "async", conflicts_with = "log_type")]
    pub asynchronous: bool,
    /// With --async: wait until the invocation is done, then print its result (exit 0) or its
    /// last error (exit 1).
    #[arg(long, requires = "asynchronous")]
    pub wait: bool,
}

/// Interval of `--wait`'s status polls.
const POLL: std::time::Duration = std::time::Duration::from_millis(200);

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

/// The function name in a Lambda ARN (`arn:aws:lambda:…:function:NAME[:qualifier]`), else the
/// argument as is (the status route takes FunctionGraph references).
fn status_ref(args: &InvokeArgs) -> String {
    if args.lambda && args.function.starts_with("arn:") {
        if let Some(name) = args.function.split(':').nth(6) {
            return name.to_string();
        }
    }
    args.function.clone()
}

/// Polls the status route until the invocation is done.
async fn wait_for(
    client: &Client,
    server: &str,
    args: &InvokeArgs,
    request_id: &str,
) -> Result<(), MainError> {
    let path = paths::fg_async_status(
        values::PROJECT_ID,
        &encode_segment(&status_ref(args)),
        &encode_segment(request_id),
    );
    loop {
        let mut req = http::Request::get(format!("{server}{path}"));
        if let Some(t) = &args.token {
            req = req.header(headers::AUTH_TOKEN, t.as_str());
        }
        let req = req.body(Full::new(Bytes::new()))?;
        let resp = client
            .request(req)
            .await
            .map_err(|e| MainError::Unreachable {
                server: server.to_string(),
                hint: format!("request '{request_id}' stays queued"),
                source: e.into(),
            })?;
        let status = resp.status();
        let body = collect(resp.into_body(), server).await?;
        if !status.is_success() {
            let message = serde_json::from_slice::<FssError>(&body)
                .map(|e| format!("{}: {}", e.error_code, e.error_msg))
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
            return Err(MainError::StatusRefused {
                request_id: request_id.to_string(),
                status,
                message,
            });
        }
        let v: serde_json::Value =
            serde_json::from_slice(&body).map_err(|source| MainError::StatusNotJson {
                request_id: request_id.to_string(),
                source,
            })?;
        let text = |k: &str| v[k].as_str().map(str::to_string);
        match v["state"].as_str() {
            Some("succeeded") => {
                let result = text("result").unwrap_or_default();
                return Ok(crate::result::show(request_id, result.as_bytes(), false)?);
            }
            Some("failed") => {
                if let Some(err) = text("error") {
                    println!("{err}");
                }
                return Err(MainError::AsyncFailed {
                    request_id: request_id.to_string(),
                    attempts: v["attempts"].to_string(),
                    last_error: text("last_error").unwrap_or_else(|| "unknown error".into()),
                });
            }
            _ => tokio::time::sleep(POLL).await,
        }
    }
}

/// Reads a whole response body.
async fn collect(body: hyper::body::Incoming, server: &str) -> Result<Bytes, MainError> {
    match body.collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) => Err(MainError::BrokenAnswer {
            server: server.to_string(),
            source: e.into(),
        }),
    }
}

/// Percent-encodes everything but the characters names, URNs and ARNs use.
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~:!$".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn read_event(args: &InvokeArgs) -> Result<Bytes, MainError> {
    match (&args.event, &args.event_file) {
        (Some(e), _) => Ok(Bytes::from(e.clone())),
        (None, Some(path)) if path.as_os_str() == "-" => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(MainError::EventStdin)?;
            Ok(Bytes::from(buf))
        }
        (None, Some(path)) => {
            std::fs::read(path)
                .map(Bytes::from)
                .map_err(|source| MainError::EventFile {
                    path: path.clone(),
                    source,
                })
        }
        (None, None) => Ok(Bytes::from_static(b"{}")),
    }
}

pub async fn invoke(args: InvokeArgs) -> Result<(), MainError> {
    let event = read_event(&args)?;
    let server = args.server.trim_end_matches('/');
    match server.parse::<http::Uri>() {
        Ok(u) if u.scheme_str() == Some("http") && u.host().is_some() => {}
        Ok(u) if u.scheme_str() == Some("https") => {
            return Err(MainError::Https(server.to_string()))
        }
        _ => return Err(MainError::ServerUrl(server.to_string())),
    }
    let function = encode_segment(&args.function);
    let path = if args.lambda {
        paths::lambda_invoke(&function)
    } else if args.asynchronous {
        paths::fg_invoke_async(values::PROJECT_ID, &function)
    } else {
        paths::fg_invoke(values::PROJECT_ID, &function)
    };
    let tail = args.log_type == Some(LogType::Tail);
    let mut req = http::Request::post(format!("{server}{path}"))
        .header(http::header::CONTENT_TYPE, "application/json");
    if args.lambda && args.asynchronous {
        req = req.header(lambda_headers::INVOCATION_TYPE, lambda_values::EVENT);
    } else if args.lambda {
        if tail {
            req = req.header(lambda_headers::LOG_TYPE, "Tail");
        }
    } else {
        req = req.header(headers::REQUEST_VERSION, values::VERSION_V0);
        if tail {
            req = req.header(headers::LOG_TYPE, values::LOG_TYPE_TAIL);
        }
    }
    if let Some(t) = &args.token {
        req = req.header(headers::AUTH_TOKEN, t.as_str());
    }
    let req = req.body(Full::new(event))?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let resp = client
        .request(req)
        .await
        .map_err(|e| MainError::Unreachable {
            server: server.to_string(),
            hint: "is `fnbox serve` running there?".to_string(),
            source: e.into(),
        })?;
    let (parts, body) = resp.into_parts();
    let body = collect(body, server).await?;
    let h = &parts.headers;
    let log_header = if args.lambda {
        lambda_headers::LOG_RESULT
    } else {
        headers::FUNCTION_LOG
    };
    if let Some(v) = h.get(log_header) {
        match base64::engine::general_purpose::STANDARD.decode(v.as_bytes()) {
            Ok(log) => {
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(&log);
                if !log.ends_with(b"\n") {
                    let _ = err.write_all(b"\n");
                }
            }
            // Not an error of the invocation: the result is still shown and decides the exit.
            Err(e) => eprintln!("warning: the log tail is not valid base64: {e}"),
        }
    }
    let request_id = h
        .get(if args.lambda {
            lambda_headers::REQUEST_ID
        } else {
            headers::REQUEST_ID
        })
        .and_then(|v| v.to_str().ok())
        .unwrap_or("?")
        .to_string();
    let status = parts.status;
    if args.asynchronous && status == http::StatusCode::ACCEPTED {
        let id = if args.lambda {
            Some(request_id.clone())
        } else {
            serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["request_id"].as_str().map(str::to_string))
        };
        let id = id.filter(|i| i != "?").ok_or(MainError::NoRequestId)?;
        if !args.wait {
            println!("{id}");
            return Ok(());
        }
        eprintln!("accepted: request '{id}'; waiting for it");
        return wait_for(&client, server, &args, &id).await;
    }
    if status.is_success() {
        let func_err = h
            .get(headers::IS_FUNC_ERR)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"))
            || h.contains_key(lambda_headers::FUNCTION_ERROR);
        return Ok(crate::result::show(&request_id, &body, func_err)?);
    }
    // An error of the front door.
    let (code, message) = if let Ok(e) = serde_json::from_slice::<FssError>(&body) {
        (e.error_code, e.error_msg)
    } else if let Ok(e) = serde_json::from_slice::<LambdaApiError>(&body) {
        let kind = h
            .get(lambda_headers::ERROR_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(&e.kind)
            .to_string();
        (kind, e.message)
    } else {
        (String::new(), String::from_utf8_lossy(&body).into_owned())
    };
    Err(MainError::Refused {
        status,
        code,
        message,
    })
}
