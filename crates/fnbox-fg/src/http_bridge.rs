//! HTTP functions (`runtime: http`): fnbox plays the runtime-API client. It waits until the
//! function's server accepts on 127.0.0.1:8000, then takes each invocation from the runtime
//! channel, turns the APIG-style event into a real HTTP request, and posts the answer back as
//! `{"statusCode","headers","body","isBase64Encoded"}`.
//!
//! # Request translation (functiongraph-facts §4.1)
//! An event is *APIG-shaped* when it is a JSON object with an `httpMethod` or a `path` key.
//! - `httpMethod`: kept as sent (upper-cased); **POST when absent** (what openYuanrong's host
//!   always sends), so an event of just `{"path": "/x"}` is a POST.
//! - `path`: default `/`; a missing leading `/` is added; characters not allowed in a URI path
//!   are percent-encoded (an existing `%xx` is kept). A `?query` inside `path` is kept and the
//!   `queryStringParameters` are appended to it.
//! - `queryStringParameters`: `{name: value}`; a value may be a string, a number or boolean
//!   (written as JSON text), an array of those (repeated `name=`), or null (skipped). Names and
//!   values are percent-encoded (RFC 3986 unreserved characters kept).
//! - `headers`: `{name: value}` with the same value types (an array gives repeated headers).
//!   Hop-by-hop headers (`Connection`, `Transfer-Encoding`, `Keep-Alive`, `Proxy-Connection`,
//!   `TE`, `Trailer`, `Upgrade`) and `Content-Length` (fnbox sets it from the decoded body) are
//!   dropped; `Host` is kept when sent.
//! - `body`: a string, Base64-decoded when `isBase64Encoded` is true (standard or URL-safe
//!   alphabet, padding optional); any other JSON value is sent as its JSON text; null or absent
//!   is an empty body.
//! - `requestContext` `{apiId, requestId, stage, sourceIp}` → `X-APIG-Api-Id`,
//!   `X-APIG-Request-Id`, `X-APIG-Source-Stage`, `X-APIG-Source-Ip` (always sent, empty when
//!   absent, as openYuanrong does). `pathParameters` are informational only (the real path is in
//!   `path`) and are not forwarded.
//! - fnbox adds `X-CFF-Request-Id`, `X-CFF-Memory`, `X-CFF-Timeout`, `X-CFF-Func-Version`
//!   (`latest`), `X-CFF-Func-Name`, `X-CFF-Project-Id` (`local`), `X-CFF-Package`,
//!   `X-CFF-Region` (`local`) and the agency headers `X-CFF-Auth-Token`,
//!   `X-CFF-Security-Access-Key`, `X-CFF-Security-Secret-Key`, `X-CFF-Security-Token` (empty:
//!   fnbox has no agency). They replace headers of the same name in the event.
//!
//! Any other event (not JSON, or JSON that is not an APIG-shaped object) is POSTed unchanged to
//! `/invoke` (what openYuanrong does with `DISABLE_APIG_FORMAT=true`, and the path container
//! event functions serve), with the same `X-CFF-*` headers and `Content-Type:
//! application/json` when it is JSON.
//!
//! A malformed APIG event (e.g. `headers` not an object, `body` not valid Base64) is answered
//! with the error `Runtime.InvalidHttpEvent` naming the field; nothing is sent to the server.
//!
//! # Response translation
//! `statusCode` is the server's status, whatever it is (a 404 or 500 is a normal result, not
//! an error). `headers` maps each lower-cased name to its value, or to an array of values when
//! the server sent it more than once; hop-by-hop headers are dropped. `body` is the body as
//! UTF-8 text with `isBase64Encoded: false` when it is valid UTF-8 and its `Content-Type` is
//! textual or absent (`text/*`, JSON, XML, JavaScript, form data, YAML); otherwise it is Base64
//! with `isBase64Encoded: true`. (The real platform Base64-encodes every body; text is easier to
//! read locally and every APIG client honours the flag.)
//!
//! Errors: a body over 6 MiB → `FunctionResponseTooLarge`, `response body size N exceeds the
//! limit of 6291456`; the server cannot be reached or drops the connection →
//! `Runtime.HttpConnectionError`. The invocation deadline is the instance's business; the bridge
//! gives up on a request only when the instance is cancelled.
//!
//! # Initializer
//! HTTP functions have no initializer call in fnbox yet: the init is done when port 8000
//! accepts. A [`WorkKind::Initializer`] item (which the instance never sends for `http`) is
//! answered with an empty response.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use fnbox_engine::instance::channel::{RuntimeReply, Work, WorkKind};
use fnbox_engine::launch::HTTP_PORT;
use fnbox_engine::InstanceApi;
use fnbox_telemetry::Connector;
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{Map, Value};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How often the port is probed until it accepts.
const PROBE_INTERVAL: Duration = Duration::from_millis(10);
/// Connect timeout of a probe and of a request's connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a connection failure is held back, so that a server that died is reported by the
/// instance as a runtime exit (a fault) rather than as a handler error.
const CONNECT_FAILURE_GRACE: Duration = Duration::from_millis(250);
/// How many bytes of an oversized body are read (to report its size) before giving up.
const OVERSIZE_DRAIN_MAX: usize = 64 * 1024 * 1024;
/// Largest response body passed through.
const BODY_MAX: usize = fnbox_wire::limits::SYNC_PAYLOAD_MAX;

/// errorType of a malformed APIG event.
pub const ERR_INVALID_EVENT: &str = "Runtime.InvalidHttpEvent";
/// errorType of a failed connection to the function's server.
pub const ERR_CONNECTION: &str = "Runtime.HttpConnectionError";
/// errorType of a response body over 6 MiB (openYuanrong's name).
pub const ERR_TOO_LARGE: &str = "FunctionResponseTooLarge";

/// Headers never forwarded, in either direction.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "transfer-encoding",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

type HttpClient = Client<Connector, Full<Bytes>>;

/// Runs the bridge until the instance stops. The instance's connector reaches its port 8000
/// (inside its network namespace when isolated).
pub async fn run(api: Arc<InstanceApi>) {
    let cancel = api.cancel.clone();
    let connector = api.connector.clone().connect_timeout(Some(CONNECT_TIMEOUT));
    if !wait_for_port(&connector, &cancel).await {
        return;
    }
    let bridge = Arc::new(Bridge::new(&api.package.config, connector));
    let permits = Arc::new(Semaphore::new(
        api.package.config.concurrent_num.max(1) as usize
    ));
    let tasks = TaskTracker::new();
    loop {
        let permit = tokio::select! {
            _ = cancel.cancelled() => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        // The first `next` marks the init as done: only reached once the port accepts.
        let work = tokio::select! {
            _ = cancel.cancelled() => break,
            w = api.runtime.next() => w,
        };
        let (api, bridge, cancel) = (api.clone(), bridge.clone(), cancel.clone());
        tasks.spawn(async move {
            let _permit = permit;
            tokio::select! {
                _ = cancel.cancelled() => {}
                reply = bridge.handle(&work) => {
                    if let Err(e) = api.runtime.complete(&work.request_id, reply) {
                        tracing::debug!(request_id = %work.request_id, error = %e, "http bridge: reply not delivered");
                    }
                }
            }
        });
    }
    tasks.close();
    tasks.wait().await;
}

/// Probes 127.0.0.1:8000 every 10 ms until it accepts; false when cancelled first.
async fn wait_for_port(connector: &Connector, cancel: &CancellationToken) -> bool {
    let port = std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, HTTP_PORT));
    loop {
        let probe = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect_addr(port));
        tokio::select! {
            _ = cancel.cancelled() => return false,
            r = probe => if let Ok(Ok(_stream)) = r {
                return true;
            },
        }
        tokio::select! {
            _ = cancel.cancelled() => return false,
            _ = tokio::time::sleep(PROBE_INTERVAL) => {}
        }
    }
}

/// Per-instance translation state.
struct Bridge {
    client: HttpClient,
    /// The `X-CFF-*` headers that are the same for every request.
    fixed: Vec<(HeaderName, HeaderValue)>,
}

impl Bridge {
    fn new(config: &fnbox_package::FunctionConfig, connector: Connector) -> Self {
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Self {
            client,
            fixed: fixed_headers(config),
        }
    }

    async fn handle(&self, work: &Work) -> RuntimeReply {
        if work.kind == WorkKind::Initializer {
            return RuntimeReply::Response(Bytes::new());
        }
        let request = match build_request(&work.body, &work.request_id, &self.fixed) {
            Ok(r) => r,
            Err(message) => return error_reply(ERR_INVALID_EVENT, &message),
        };
        let response = match self.client.request(request).await {
            Ok(r) => r,
            Err(e) => {
                tokio::time::sleep(CONNECT_FAILURE_GRACE).await;
                return error_reply(
                    ERR_CONNECTION,
                    &format!(
                        "request to the function's HTTP server on 127.0.0.1:{HTTP_PORT} failed: {}",
                        error_chain(&e)
                    ),
                );
            }
        };
        match translate_response(response).await {
            Ok(json) => RuntimeReply::Response(json),
            Err((error_type, message)) => error_reply(error_type, &message),
        }
    }
}

fn error_reply(error_type: &str, message: &str) -> RuntimeReply {
    let body = fnbox_wire::fg::ErrorBody::new(error_type, message);
    RuntimeReply::Error(Bytes::from(serde_json::to_vec(&body).unwrap_or_default()))
}

/// `e` and its sources, joined by `: `.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

fn fixed_headers(config: &fnbox_package::FunctionConfig) -> Vec<(HeaderName, HeaderValue)> {
    let value = |s: &str| {
        HeaderValue::from_bytes(s.as_bytes()).unwrap_or_else(|_| HeaderValue::from_static(""))
    };
    let pairs: [(&'static str, String); 11] = [
        ("x-cff-memory", config.memory_size.to_string()),
        ("x-cff-timeout", config.timeout.to_string()),
        ("x-cff-func-version", "latest".into()),
        ("x-cff-func-name", config.func_name.clone()),
        ("x-cff-project-id", "local".into()),
        ("x-cff-package", config.package.clone()),
        ("x-cff-region", "local".into()),
        ("x-cff-auth-token", String::new()),
        ("x-cff-security-access-key", String::new()),
        ("x-cff-security-secret-key", String::new()),
        ("x-cff-security-token", String::new()),
    ];
    pairs
        .into_iter()
        .map(|(name, v)| (HeaderName::from_static(name), value(&v)))
        .collect()
}

/// Turns an invocation's event into the request sent to the function's server (see the module
/// docs); `fixed` are the `X-CFF-*` headers. Public for the fuzz targets (`fuzz/`).
pub fn build_request(
    event: &[u8],
    request_id: &str,
    fixed: &[(HeaderName, HeaderValue)],
) -> Result<http::Request<Full<Bytes>>, String> {
    let parsed: Option<Map<String, Value>> = match serde_json::from_slice::<Value>(event) {
        Ok(Value::Object(map)) if map.contains_key("httpMethod") || map.contains_key("path") => {
            Some(map)
        }
        _ => None,
    };
    let mut builder = http::Request::builder();
    let headers = builder.headers_mut().expect("fresh builder");
    let (method, uri, body) = match parsed {
        None => {
            if serde_json::from_slice::<serde::de::IgnoredAny>(event).is_ok() {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
            (
                http::Method::POST,
                format!("http://127.0.0.1:{HTTP_PORT}/invoke"),
                Bytes::copy_from_slice(event),
            )
        }
        Some(ev) => {
            let method = match ev.get("httpMethod") {
                None | Some(Value::Null) => http::Method::POST,
                Some(Value::String(m)) if !m.trim().is_empty() => {
                    http::Method::from_bytes(m.trim().to_ascii_uppercase().as_bytes()).map_err(
                        |_| format!("event field 'httpMethod' is not a valid HTTP method: {m:?}"),
                    )?
                }
                Some(other) => {
                    return Err(format!(
                        "event field 'httpMethod' must be a non-empty string, got {}",
                        kind(other)
                    ))
                }
            };
            let path = match ev.get("path") {
                None | Some(Value::Null) => "/".to_string(),
                Some(Value::String(p)) => p.clone(),
                Some(other) => {
                    return Err(format!(
                        "event field 'path' must be a string, got {}",
                        kind(other)
                    ))
                }
            };
            let (path, inline_query) = match path.split_once('?') {
                Some((p, q)) => (p.to_string(), Some(q.to_string())),
                None => (path, None),
            };
            let mut query = inline_query
                .map(|q| encode_component(&q, QUERY_KEEP, true))
                .unwrap_or_default();
            match ev.get("queryStringParameters") {
                None | Some(Value::Null) => {}
                Some(Value::Object(params)) => {
                    for (name, value) in params {
                        for v in scalar_values(value).map_err(|got| format!("event field 'queryStringParameters.{name}' must be a string or an array of strings, got {got}"))? {
                            if !query.is_empty() {
                                query.push('&');
                            }
                            query.push_str(&encode_component(name, UNRESERVED, false));
                            query.push('=');
                            query.push_str(&encode_component(&v, UNRESERVED, false));
                        }
                    }
                }
                Some(other) => {
                    return Err(format!(
                        "event field 'queryStringParameters' must be an object, got {}",
                        kind(other)
                    ))
                }
            }
            let mut uri = format!("http://127.0.0.1:{HTTP_PORT}");
            if !path.starts_with('/') {
                uri.push('/');
            }
            uri.push_str(&encode_component(&path, PATH_KEEP, true));
            if !query.is_empty() {
                uri.push('?');
                uri.push_str(&query);
            }

            match ev.get("headers") {
                None | Some(Value::Null) => {}
                Some(Value::Object(map)) => {
                    for (name, value) in map {
                        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                            format!("event field 'headers' has an invalid header name: {name:?}")
                        })?;
                        if HOP_BY_HOP.contains(&header.as_str()) || header == CONTENT_LENGTH {
                            continue;
                        }
                        let values = scalar_values(value).map_err(|got| format!("event field 'headers.{name}' must be a string or an array of strings, got {got}"))?;
                        for v in values {
                            let v = HeaderValue::from_bytes(v.as_bytes()).map_err(|_| format!("event field 'headers.{name}' has a value that is not a valid header value: {v:?}"))?;
                            headers.append(header.clone(), v);
                        }
                    }
                }
                Some(other) => {
                    return Err(format!(
                        "event field 'headers' must be an object, got {}",
                        kind(other)
                    ))
                }
            }

            let base64 = match ev.get("isBase64Encoded") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(Value::String(s))
                    if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") =>
                {
                    s.eq_ignore_ascii_case("true")
                }
                Some(other) => {
                    return Err(format!(
                        "event field 'isBase64Encoded' must be a boolean, got {}",
                        kind(other)
                    ))
                }
            };
            let body = match ev.get("body") {
                None | Some(Value::Null) => Bytes::new(),
                Some(Value::String(s)) if base64 => Bytes::from(decode_base64(s).map_err(|e| format!("event field 'body' is not valid Base64 although 'isBase64Encoded' is true: {e}"))?),
                Some(Value::String(s)) => Bytes::from(s.clone()),
                Some(other) if base64 => return Err(format!("event field 'body' must be a Base64 string when 'isBase64Encoded' is true, got {}", kind(other))),
                Some(other) => {
                    if !headers.contains_key(CONTENT_TYPE) {
                        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                    }
                    Bytes::from(serde_json::to_vec(other).unwrap_or_default())
                }
            };

            let context = ev.get("requestContext").and_then(Value::as_object);
            let ctx = |key: &str| {
                context
                    .and_then(|c| c.get(key))
                    .map(json_text)
                    .unwrap_or_default()
            };
            for (name, key) in [
                ("x-apig-api-id", "apiId"),
                ("x-apig-request-id", "requestId"),
                ("x-apig-source-ip", "sourceIp"),
                ("x-apig-source-stage", "stage"),
            ] {
                let value = HeaderValue::from_bytes(ctx(key).as_bytes())
                    .unwrap_or_else(|_| HeaderValue::from_static(""));
                headers.insert(HeaderName::from_static(name), value);
            }
            (method, uri, body)
        }
    };
    for (name, value) in fixed {
        headers.insert(name.clone(), value.clone());
    }
    let id = HeaderValue::from_str(request_id)
        .map_err(|_| format!("request id {request_id:?} is not a valid header value"))?;
    headers.insert(HeaderName::from_static("x-cff-request-id"), id);
    builder
        .method(method)
        .uri(&uri)
        .body(Full::new(body))
        .map_err(|e| {
            format!(
                "event fields 'path'/'queryStringParameters' do not make a valid URI ({uri}): {e}"
            )
        })
}

/// The values of a header or query parameter: a scalar, or an array of scalars. `Err` holds
/// the JSON kind that was found instead.
fn scalar_values(value: &Value) -> Result<Vec<String>, &'static str> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .filter(|v| !v.is_null())
            .map(|v| {
                if v.is_array() || v.is_object() {
                    Err(kind(v))
                } else {
                    Ok(json_text(v))
                }
            })
            .collect(),
        Value::Object(_) => Err("an object"),
        v => Ok(vec![json_text(v)]),
    }
}

/// A string as itself, anything else as its JSON text.
fn json_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Characters percent-encoded in a query name or value: all but RFC 3986's unreserved.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// Characters percent-encoded in a path: sub-delims, `:`, `@` and `/` are kept.
const PATH_KEEP: &AsciiSet = &UNRESERVED
    .remove(b'!')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+')
    .remove(b',')
    .remove(b';')
    .remove(b'=')
    .remove(b':')
    .remove(b'@')
    .remove(b'/');
/// Characters percent-encoded in a query written inside `path`: as a path, and `?` is kept.
const QUERY_KEEP: &AsciiSet = &PATH_KEEP.remove(b'?');

/// Percent-encodes `s` with `set`. With `keep_escapes`, a valid `%xx` escape already in `s` is
/// kept as it is (paths arrive partly encoded); any other `%` is encoded.
fn encode_component(s: &str, set: &'static AsciiSet, keep_escapes: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('%') {
        out.extend(utf8_percent_encode(&rest[..i], set));
        let after = &rest.as_bytes()[i..];
        if keep_escapes
            && after.len() >= 3
            && after[1].is_ascii_hexdigit()
            && after[2].is_ascii_hexdigit()
        {
            out.push_str(&rest[i..i + 3]);
            rest = &rest[i + 3..];
        } else {
            out.push_str("%25");
            rest = &rest[i + 1..];
        }
    }
    out.extend(utf8_percent_encode(rest, set));
    out
}

fn decode_base64(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    let config =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let cleaned: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    GeneralPurpose::new(&base64::alphabet::STANDARD, config)
        .decode(&cleaned)
        .or_else(|e| {
            GeneralPurpose::new(&base64::alphabet::URL_SAFE, config)
                .decode(&cleaned)
                .map_err(|_| e)
        })
}

/// Whether a body of this `Content-Type` is passed as text (when it is valid UTF-8).
fn is_textual(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return true };
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime.is_empty()
        || mime.starts_with("text/")
        || mime.ends_with("+json")
        || mime.ends_with("+xml")
        || matches!(
            mime.as_str(),
            "application/json"
                | "application/xml"
                | "application/javascript"
                | "application/ecmascript"
                | "application/x-www-form-urlencoded"
                | "application/yaml"
                | "application/x-yaml"
                | "application/graphql"
                | "application/x-ndjson"
        )
}

/// Reads the server's answer into the APIG response JSON, or `(errorType, message)`.
async fn translate_response(
    response: http::Response<hyper::body::Incoming>,
) -> Result<Bytes, (&'static str, String)> {
    let (parts, mut incoming) = response.into_parts();
    if let Some(len) = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        if len > BODY_MAX as u64 {
            return Err(too_large(len, false));
        }
    }
    let mut body: Vec<u8> = Vec::new();
    let mut total: usize = 0;
    while let Some(frame) = incoming.frame().await {
        let frame = frame.map_err(|e| {
            (
                ERR_CONNECTION,
                format!(
                    "reading the response of the function's HTTP server failed: {}",
                    error_chain(&e)
                ),
            )
        })?;
        if let Ok(data) = frame.into_data() {
            total += data.len();
            if total > BODY_MAX {
                if total > OVERSIZE_DRAIN_MAX {
                    return Err(too_large(total as u64, true));
                }
                body.clear();
            } else {
                body.extend_from_slice(&data);
            }
        }
    }
    if total > BODY_MAX {
        return Err(too_large(total as u64, false));
    }

    let mut headers = Map::new();
    for name in parts.headers.keys() {
        if HOP_BY_HOP.contains(&name.as_str()) {
            continue;
        }
        let values: Vec<Value> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let value = if values.len() == 1 {
            values.into_iter().next().unwrap_or_default()
        } else {
            Value::Array(values)
        };
        headers.insert(name.as_str().to_string(), value);
    }
    let content_type = parts
        .headers
        .get(CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let (body, is_base64) = match String::from_utf8(body) {
        Ok(text) if is_textual(content_type.as_deref()) => (text, false),
        Ok(text) => (
            base64::engine::general_purpose::STANDARD.encode(text.as_bytes()),
            true,
        ),
        Err(e) => (
            base64::engine::general_purpose::STANDARD.encode(e.as_bytes()),
            true,
        ),
    };
    let reply = ApigResponse {
        status_code: parts.status.as_u16(),
        headers,
        body,
        is_base64_encoded: is_base64,
    };
    Ok(Bytes::from(serde_json::to_vec(&reply).unwrap_or_default()))
}

/// The result of an HTTP-function invocation, fields in the documented order.
#[derive(serde::Serialize)]
struct ApigResponse {
    #[serde(rename = "statusCode")]
    status_code: u16,
    headers: Map<String, Value>,
    body: String,
    #[serde(rename = "isBase64Encoded")]
    is_base64_encoded: bool,
}

fn too_large(size: u64, at_least: bool) -> (&'static str, String) {
    let size = if at_least {
        format!("over {size}")
    } else {
        size.to_string()
    };
    (
        ERR_TOO_LARGE,
        format!("response body size {size} exceeds the limit of {BODY_MAX}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed() -> Vec<(HeaderName, HeaderValue)> {
        let config: fnbox_package::FunctionConfig = fnbox_package::parse_config(
            "func_name: web\nruntime: http\nmemory_size: 256\ntimeout: 7\n",
            std::path::Path::new("function.yaml"),
            "web",
        )
        .expect("config");
        fixed_headers(&config)
    }

    fn build(event: &str) -> http::Request<Full<Bytes>> {
        build_request(event.as_bytes(), "req-1", &fixed()).expect("valid event")
    }

    async fn body_of(req: http::Request<Full<Bytes>>) -> Bytes {
        req.into_body().collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn apig_get_with_query_and_headers() {
        let req = build(
            r#"{"httpMethod":"get","path":"/a b/c","queryStringParameters":{"q":"x y&z","multi":["1","2"],"n":3},
               "headers":{"Accept":"text/plain","Connection":"close","Transfer-Encoding":"chunked","Content-Length":"99","X-Many":["a","b"],
                          "X-CFF-Request-Id":"forged"},
               "requestContext":{"apiId":"api","requestId":"apig-req","stage":"RELEASE","sourceIp":"10.0.0.1"}}"#,
        );
        assert_eq!(req.method(), http::Method::GET);
        assert_eq!(
            req.uri().to_string(),
            "http://127.0.0.1:8000/a%20b/c?multi=1&multi=2&n=3&q=x%20y%26z"
        );
        let h = req.headers();
        assert_eq!(h["accept"], "text/plain");
        assert!(
            h.get("connection").is_none()
                && h.get("transfer-encoding").is_none()
                && h.get("content-length").is_none()
        );
        assert_eq!(h.get_all("x-many").iter().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(h["x-cff-request-id"], "req-1");
        assert_eq!(h["x-cff-memory"], "256");
        assert_eq!(h["x-cff-timeout"], "7");
        assert_eq!(h["x-cff-func-name"], "web");
        assert_eq!(h["x-cff-func-version"], "latest");
        assert_eq!(h["x-cff-project-id"], "local");
        assert_eq!(h["x-cff-package"], "default");
        assert_eq!(h["x-cff-region"], "local");
        for empty in [
            "x-cff-auth-token",
            "x-cff-security-access-key",
            "x-cff-security-secret-key",
            "x-cff-security-token",
        ] {
            assert_eq!(h[empty], "", "{empty}");
        }
        assert_eq!(h["x-apig-api-id"], "api");
        assert_eq!(h["x-apig-request-id"], "apig-req");
        assert_eq!(h["x-apig-source-stage"], "RELEASE");
        assert_eq!(h["x-apig-source-ip"], "10.0.0.1");
        assert!(body_of(req).await.is_empty());
    }

    #[tokio::test]
    async fn defaults_method_post_and_path_root() {
        let req = build(r#"{"path":"hello?x=1","body":"plain"}"#);
        assert_eq!(req.method(), http::Method::POST);
        assert_eq!(req.uri().to_string(), "http://127.0.0.1:8000/hello?x=1");
        assert_eq!(req.headers()["x-apig-api-id"], "");
        assert_eq!(&body_of(req).await[..], b"plain");
        let req = build(r#"{"httpMethod":"DELETE"}"#);
        assert_eq!(req.method(), http::Method::DELETE);
        assert_eq!(req.uri().path(), "/");
    }

    #[tokio::test]
    async fn base64_bodies_are_decoded() {
        let req =
            build(r#"{"httpMethod":"PUT","path":"/bin","isBase64Encoded":true,"body":"AAEC/w=="}"#);
        assert_eq!(&body_of(req).await[..], &[0u8, 1, 2, 255]);
        let req = build(r#"{"path":"/bin","isBase64Encoded":true,"body":"AAEC_w"}"#);
        assert_eq!(&body_of(req).await[..], &[0u8, 1, 2, 255]);
        let req = build(r#"{"path":"/j","body":{"a":1}}"#);
        assert_eq!(req.headers()["content-type"], "application/json");
        assert_eq!(&body_of(req).await[..], br#"{"a":1}"#);
    }

    #[tokio::test]
    async fn other_events_go_raw_to_invoke() {
        for event in [r#"{"hello":1}"#, "[1,2]", "not json"] {
            let req = build(event);
            assert_eq!(req.method(), http::Method::POST);
            assert_eq!(req.uri().path(), "/invoke");
            assert_eq!(req.headers()["x-cff-request-id"], "req-1");
            assert_eq!(
                req.headers().get("content-type").is_some(),
                event != "not json"
            );
            assert_eq!(&body_of(req).await[..], event.as_bytes());
        }
    }

    #[test]
    fn malformed_events_name_the_field() {
        let err =
            |e: &str| build_request(e.as_bytes(), "r", &fixed()).expect_err("must be refused");
        assert!(err(r#"{"path":5}"#).contains("'path'"));
        assert!(err(r#"{"path":"/","httpMethod":"G T"}"#).contains("'httpMethod'"));
        assert!(err(r#"{"path":"/","headers":[1]}"#).contains("'headers'"));
        assert!(err(r#"{"path":"/","headers":{"bad name":"x"}}"#).contains("bad name"));
        assert!(err(r#"{"path":"/","headers":{"x":{"a":1}}}"#).contains("headers.x"));
        assert!(err(r#"{"path":"/","queryStringParameters":"a=b"}"#)
            .contains("'queryStringParameters'"));
        assert!(err(r#"{"path":"/","isBase64Encoded":true,"body":"!!!"}"#).contains("Base64"));
        assert!(err(r#"{"path":"/","isBase64Encoded":1}"#).contains("'isBase64Encoded'"));
    }

    #[test]
    fn percent_encoding_keeps_valid_escapes() {
        assert_eq!(
            encode_component("/a%20b/%zz/ü", PATH_KEEP, true),
            "/a%20b/%25zz/%C3%BC"
        );
        assert_eq!(encode_component("a+b=c", UNRESERVED, false), "a%2Bb%3Dc");
        assert_eq!(encode_component("50%", UNRESERVED, false), "50%25");
        assert_eq!(encode_component("%41", UNRESERVED, false), "%2541");
        assert_eq!(encode_component("a b?c", QUERY_KEEP, true), "a%20b?c");
    }

    #[test]
    fn textual_content_types() {
        assert!(is_textual(None));
        assert!(is_textual(Some("text/html; charset=utf-8")));
        assert!(is_textual(Some("application/problem+json")));
        assert!(!is_textual(Some("application/octet-stream")));
        assert!(!is_textual(Some("image/png")));
    }
}
