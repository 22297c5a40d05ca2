//! FunctionGraph's in-instance APIs (functiongraph-facts §1–3, CONTRACT §4–5).

use serde::{Deserialize, Serialize};

/// Paths of the runtime API (`$RUNTIME_API_ADDR`).
pub mod paths {
    /// Long-poll for the next invocation.
    pub const NEXT: &str = "/v1/runtime/invocation/request";
    /// Prefix of `POST …/response/{id}`.
    pub const RESPONSE_PREFIX: &str = "/v1/runtime/invocation/response/";
    /// Prefix of `POST …/error/{id}`.
    pub const ERROR_PREFIX: &str = "/v1/runtime/invocation/error/";
    /// `POST` init failure (fnbox addition mirroring Lambda).
    pub const INIT_ERROR: &str = "/v1/runtime/init/error";
    /// Extension registration.
    pub const REGISTER: &str = "/extension/register";
    /// Telemetry subscription.
    pub const TELEMETRY: &str = "/telemetry";
    /// Path on the extension's own server that receives invocation pushes.
    pub const EXTENSION_INVOKE: &str = "/extension/invoke";
}

/// Header names.
pub mod headers {
    /// Request id of an invocation.
    pub const REQUEST_ID: &str = "X-Cff-Request-Id";
    /// `sync`, `async`, or `initializer` (fnbox's built-in runtimes only).
    pub const INVOKE_TYPE: &str = "X-CFF-Invoke-Type";
    /// Epoch milliseconds at which fnbox kills the invocation (fnbox addition).
    pub const DEADLINE_MS: &str = "X-Cff-Deadline-Ms";
    /// The W3C `traceparent` the invocation runs under (fnbox addition; FunctionGraph
    /// documents no trace header for custom runtimes).
    pub const TRACE_ID: &str = "X-Cff-Trace-Id";
    /// Credential headers, empty unless configured.
    pub const ACCESS_KEY: &str = "X-CFF-Access-Key";
    /// See [`ACCESS_KEY`].
    pub const SECRET_KEY: &str = "X-CFF-Secret-Key";
    /// See [`ACCESS_KEY`].
    pub const AUTH_TOKEN: &str = "X-CFF-Auth-Token";
    /// See [`ACCESS_KEY`].
    pub const SECURITY_TOKEN: &str = "X-CFF-Security-Token";
    /// File name of the launched `extension*.sh` registering.
    pub const EXTENSION_NAME: &str = "FunctionGraph-Extension-Name";
    /// `127.0.0.1:<port>` of the extension's invoke listener.
    pub const EXTENSION_ADDRESS: &str = "FunctionGraph-Extension-Address";
}

/// Value of [`headers::INVOKE_TYPE`] for the initializer call of the built-in runtimes.
pub const INVOKE_TYPE_INITIALIZER: &str = "initializer";

/// Error body a runtime posts to `…/error/{id}` or `init/error`; also every 4xx body fnbox sends.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Error class, e.g. `Runtime.ImportModuleError`.
    #[serde(rename = "errorType", default)]
    pub error_type: String,
    /// Human message.
    #[serde(rename = "errorMessage", default)]
    pub error_message: String,
    /// Stack trace lines (a string or an array in the wild; kept as sent).
    #[serde(
        rename = "stackTrace",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub stack_trace: Option<serde_json::Value>,
}

impl ErrorBody {
    /// An error body without a stack trace.
    pub fn new(error_type: impl Into<String>, error_message: impl Into<String>) -> Self {
        Self {
            error_type: error_type.into(),
            error_message: error_message.into(),
            stack_trace: None,
        }
    }
}

/// `errorInfo` of the register response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// Empty on success.
    #[serde(rename = "errorType")]
    pub error_type: String,
    /// Empty on success.
    #[serde(rename = "errorMessage")]
    pub error_message: String,
}

/// Body of the register response (200 and 400 alike; `errorInfo` filled on 400).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RegisterResponse {
    /// Function name.
    #[serde(rename = "functionName")]
    pub function_name: String,
    /// Always `latest` locally.
    #[serde(rename = "functionVersion")]
    pub function_version: String,
    /// Configured handler (absent from the documented example, hence the default).
    #[serde(default)]
    pub handler: String,
    /// Empty on success.
    #[serde(rename = "errorInfo", default)]
    pub error_info: ErrorInfo,
}

/// Body of the push `POST /extension/invoke` to an extension.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InvokePush {
    /// Request id of the invocation.
    #[serde(rename = "traceId")]
    pub trace_id: String,
    /// URN that was invoked.
    #[serde(rename = "invokedFunctionUrn")]
    pub invoked_function_urn: String,
}

/// `subscriber` of a telemetry subscription.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Subscriber {
    /// Must be `POST`.
    pub protocol: String,
    /// `http://127.0.0.1:<8081..8090>[/path]`.
    pub uri: String,
}

/// Optional `buffering` of a subscription (Lambda's names and ranges).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BufferingRequest {
    /// 1000..=10000.
    #[serde(rename = "maxItems", default, skip_serializing_if = "Option::is_none")]
    pub max_items: Option<u64>,
    /// 262144..=1048576.
    #[serde(rename = "maxBytes", default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// 25..=30000.
    #[serde(rename = "timeoutMs", default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// Body of `POST /telemetry`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscribeRequest {
    /// Where to deliver.
    pub subscriber: Subscriber,
    /// Non-empty subset of `platform`, `function`, `extension`.
    pub types: Vec<String>,
    /// Batching limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffering: Option<BufferingRequest>,
    /// `"doc"` asks for the seed document's literal spellings (CONTRACT §5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compat: Option<String>,
}

/// Telemetry stream names a subscription may list.
pub const TELEMETRY_TYPES: [&str; 3] = ["platform", "function", "extension"];

/// Lowest and highest port an extension or telemetry listener may use.
pub const EXTENSION_PORTS: std::ops::RangeInclusive<u16> = 8081..=8090;

/// Most extensions one function may have.
pub const MAX_EXTENSIONS: usize = 10;

/// The timestamp FunctionGraph's platform and runtime log lines start with: UTC, second
/// precision, `Z` (`2026-03-17T10:13:22Z`), from seconds since the Unix epoch.
pub fn log_time(unix_secs: i64) -> String {
    // Civil-from-days (Howard Hinnant's algorithm), so this crate needs no date library.
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Seconds since the Unix epoch now, for [`log_time`].
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The log line FunctionGraph writes before an invocation's output (no newline), as its invoke
/// API guide shows it: `2026-03-17T10:13:22Z Start invoke request '<id>', version: latest`.
pub fn start_invoke_line(unix_secs: i64, request_id: &str, version: &str) -> String {
    format!(
        "{} Start invoke request '{request_id}', version: {version}",
        log_time(unix_secs)
    )
}

/// The figures of FunctionGraph's `Finish invoke request` line.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FinishFigures {
    /// Duration in ms (printed with 3 decimals).
    pub duration_ms: f64,
    /// Billed whole ms.
    pub billing_duration_ms: u64,
    /// Memory used, MB (3 decimals).
    pub memory_used_mb: f64,
    /// Configured memory, MB.
    pub memory_size_mb: u32,
    /// CPU used, in cores ("U", 3 decimals): CPU time over duration.
    pub cpu_used: f64,
    /// Storage used, MB (3 decimals).
    pub storage_used_mb: f64,
}

/// The report line FunctionGraph writes after an invocation's output (no newline), as its
/// invoke API guide shows it: `2026-03-17T10:13:22Z Finish invoke request '<id>', duration:
/// 2.049ms, billing duration: 3ms, memory used: 36.535MB, billing memory: 128MB, cpu used:
/// 0.300U, storage used: 0.039MB`. `fnbox run` prints it and `fnbox serve` ends the log tail
/// with it.
pub fn finish_invoke_line(unix_secs: i64, request_id: &str, f: &FinishFigures) -> String {
    format!(
        "{} Finish invoke request '{request_id}', duration: {:.3}ms, billing duration: {}ms, memory used: {:.3}MB, billing memory: {}MB, cpu used: {:.3}U, storage used: {:.3}MB",
        log_time(unix_secs),
        f.duration_ms,
        f.billing_duration_ms,
        f.memory_used_mb,
        f.memory_size_mb,
        f.cpu_used,
        f.storage_used_mb
    )
}

/// Removes trailing commas before `}` or `]` outside strings, so the documented subscription
/// example (which has one) parses. Anything else is left as is for serde to judge.
pub fn strip_trailing_commas(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut in_string = false;
    let mut escaped = false;
    let chars: Vec<char> = input.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            ',' => {
                let next = chars[i + 1..].iter().find(|c| !c.is_whitespace());
                if !matches!(next, Some('}') | Some(']')) {
                    out.push(c);
                }
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_subscription_with_trailing_comma_parses() {
        let doc = r#"{"subscriber": {"protocol": "POST", "uri": "http://127.0.0.1:8082"},
            "types": ["platform", "function", "extension"],}"#;
        let req: SubscribeRequest = serde_json::from_str(&strip_trailing_commas(doc)).unwrap();
        assert_eq!(req.types.len(), 3);
        assert_eq!(req.subscriber.uri, "http://127.0.0.1:8082");
    }

    #[test]
    fn commas_inside_strings_are_kept() {
        let s = r#"{"a": "x,}", "b": [1,2,],}"#;
        assert_eq!(strip_trailing_commas(s), r#"{"a": "x,}", "b": [1,2]}"#);
    }

    #[test]
    fn invoke_log_lines_have_the_platform_text() {
        // 2026-03-17T10:13:22Z, the invoke API guide's example.
        let t = 1_773_742_402;
        assert_eq!(log_time(t), "2026-03-17T10:13:22Z");
        assert_eq!(log_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(log_time(951_825_600), "2000-02-29T12:00:00Z");
        assert_eq!(
            start_invoke_line(t, "960d089c", "latest"),
            "2026-03-17T10:13:22Z Start invoke request '960d089c', version: latest"
        );
        let f = FinishFigures {
            duration_ms: 2.0494,
            billing_duration_ms: 3,
            memory_used_mb: 36.535,
            memory_size_mb: 128,
            cpu_used: 0.3,
            storage_used_mb: 0.039,
        };
        assert_eq!(
            finish_invoke_line(t, "960d089c", &f),
            "2026-03-17T10:13:22Z Finish invoke request '960d089c', duration: 2.049ms, billing duration: 3ms, memory used: 36.535MB, billing memory: 128MB, cpu used: 0.300U, storage used: 0.039MB"
        );
    }

    #[test]
    fn register_response_has_documented_field_names() {
        let v = serde_json::to_value(RegisterResponse {
            function_name: "f".into(),
            function_version: "latest".into(),
            handler: "index.handler".into(),
            error_info: ErrorInfo::default(),
        })
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"functionName":"f","functionVersion":"latest","handler":"index.handler",
                "errorInfo":{"errorType":"","errorMessage":""}})
        );
    }
}
