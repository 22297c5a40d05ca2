//! AWS Lambda's in-sandbox APIs (lambda-facts §1–3): Runtime API 2018-06-01, Extensions API
//! 2020-01-01, Telemetry API 2022-07-01. Paths, header names, limits and the JSON bodies
//! fnbox reads or writes, spelled once.

use serde::{Deserialize, Serialize};

/// Paths, all served on `AWS_LAMBDA_RUNTIME_API`.
pub mod paths {
    /// Long-poll for the next invocation.
    pub const NEXT: &str = "/2018-06-01/runtime/invocation/next";
    /// `POST …/{AwsRequestId}/response` (axum route syntax).
    pub const RESPONSE: &str = "/2018-06-01/runtime/invocation/{id}/response";
    /// `POST …/{AwsRequestId}/error` (axum route syntax).
    pub const ERROR: &str = "/2018-06-01/runtime/invocation/{id}/error";
    /// `POST` init failure.
    pub const INIT_ERROR: &str = "/2018-06-01/runtime/init/error";
    /// `GET`: SnapStart, the runtime finished init; answers 200 (empty) after the restore.
    pub const RESTORE_NEXT: &str = "/2018-06-01/runtime/restore/next";
    /// `POST`: SnapStart, the runtime's after-restore hooks failed.
    pub const RESTORE_ERROR: &str = "/2018-06-01/runtime/restore/error";
    /// Liveness probe RIE keeps "for Hyrum's law".
    pub const PING: &str = "/2018-06-01/ping";
    /// Extension registration.
    pub const REGISTER: &str = "/2020-01-01/extension/register";
    /// Extension long-poll for INVOKE / SHUTDOWN.
    pub const EVENT_NEXT: &str = "/2020-01-01/extension/event/next";
    /// Extension init failure.
    pub const EXTENSION_INIT_ERROR: &str = "/2020-01-01/extension/init/error";
    /// Extension exit failure.
    pub const EXTENSION_EXIT_ERROR: &str = "/2020-01-01/extension/exit/error";
    /// Telemetry subscription (`PUT`).
    pub const TELEMETRY: &str = "/2022-07-01/telemetry";
    /// Legacy Logs API subscription (`PUT`), answered as not supported.
    pub const LOGS: &str = "/2020-08-15/logs";
}

/// Header names.
pub mod headers {
    /// Request id of an invocation.
    pub const REQUEST_ID: &str = "Lambda-Runtime-Aws-Request-Id";
    /// Absolute deadline, epoch milliseconds.
    pub const DEADLINE_MS: &str = "Lambda-Runtime-Deadline-Ms";
    /// ARN of the invoked function.
    pub const INVOKED_FUNCTION_ARN: &str = "Lambda-Runtime-Invoked-Function-Arn";
    /// X-Ray trace header.
    pub const TRACE_ID: &str = "Lambda-Runtime-Trace-Id";
    /// Mobile SDK client context (JSON).
    pub const CLIENT_CONTEXT: &str = "Lambda-Runtime-Client-Context";
    /// Cognito identity (JSON).
    pub const COGNITO_IDENTITY: &str = "Lambda-Runtime-Cognito-Identity";
    /// Error class sent with `…/error` and `init/error`.
    pub const FUNCTION_ERROR_TYPE: &str = "Lambda-Runtime-Function-Error-Type";
    /// Base64 error document, as a streaming trailer.
    pub const FUNCTION_ERROR_BODY: &str = "Lambda-Runtime-Function-Error-Body";
    /// `streaming` for a streamed response.
    pub const RESPONSE_MODE: &str = "Lambda-Runtime-Function-Response-Mode";
    /// X-Ray error cause (JSON), accepted and ignored.
    pub const XRAY_ERROR_CAUSE: &str = "Lambda-Runtime-Function-XRay-Error-Cause";
    /// Executable file name of a registering extension.
    pub const EXTENSION_NAME: &str = "Lambda-Extension-Name";
    /// Identifier handed out at registration.
    pub const EXTENSION_IDENTIFIER: &str = "Lambda-Extension-Identifier";
    /// Comma-separated optional features (`accountId`).
    pub const EXTENSION_ACCEPT_FEATURE: &str = "Lambda-Extension-Accept-Feature";
    /// Fresh id of every event handed to an extension.
    pub const EXTENSION_EVENT_IDENTIFIER: &str = "Lambda-Extension-Event-Identifier";
    /// Error class sent with extension `init/error` and `exit/error`.
    pub const EXTENSION_ERROR_TYPE: &str = "Lambda-Extension-Function-Error-Type";
}

/// The only defined value of [`headers::RESPONSE_MODE`].
pub const RESPONSE_MODE_STREAMING: &str = "streaming";
/// Content type of a streamed response that starts with a JSON prelude and eight NUL bytes.
pub const HTTP_INTEGRATION_CONTENT_TYPE: &str =
    "application/vnd.awslambda.http-integration-response";
/// Largest buffered response fnbox reads: 6 MiB plus the 100 bytes RIE tolerates.
pub const RESPONSE_MAX: usize = 6 * 1024 * 1024 + 100;
/// Largest streamed response fnbox collects (Lambda's long-standing 20 MB soft limit).
pub const STREAMED_RESPONSE_MAX: usize = 20 * 1024 * 1024;
/// Account id of every local ARN.
pub const ACCOUNT_ID: &str = "000000000000";
/// Function version every local function has.
pub const FUNCTION_VERSION: &str = "$LATEST";
/// Region when none is configured.
pub const DEFAULT_REGION: &str = "us-east-1";

/// The Telemetry API schema versions fnbox accepts, oldest first.
pub const SCHEMA_VERSIONS: &[&str] = &["2022-07-01", "2022-12-13", "2025-01-29"];

/// Error body of every 4xx/5xx, and of function errors fnbox builds itself.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Human message.
    #[serde(rename = "errorMessage", default)]
    pub error_message: String,
    /// Error class, e.g. `InvalidRequestID`.
    #[serde(rename = "errorType", default)]
    pub error_type: String,
}

impl ErrorBody {
    /// An error body.
    pub fn new(error_type: impl Into<String>, error_message: impl Into<String>) -> Self {
        Self {
            error_message: error_message.into(),
            error_type: error_type.into(),
        }
    }
}

/// `{"status":"OK"}`, the 202 body of every accepted post.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusResponse {
    /// Always `OK`.
    pub status: String,
}

impl StatusResponse {
    /// `{"status":"OK"}`.
    pub fn ok() -> Self {
        Self {
            status: "OK".into(),
        }
    }
}

/// Body of `POST /extension/register`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct RegisterRequest {
    /// `INVOKE` and/or `SHUTDOWN`; absent or empty means none.
    #[serde(default)]
    pub events: Option<Vec<String>>,
    /// Deprecated; rejected when non-empty.
    #[serde(rename = "configurationKeys", default)]
    pub configuration_keys: Option<Vec<String>>,
}

/// Body of a successful registration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterResponse {
    /// Function name.
    #[serde(rename = "functionName")]
    pub function_name: String,
    /// Function version (`$LATEST`).
    #[serde(rename = "functionVersion")]
    pub function_version: String,
    /// Handler as configured.
    pub handler: String,
    /// Only when the `accountId` feature was asked for.
    #[serde(rename = "accountId", skip_serializing_if = "Option::is_none", default)]
    pub account_id: Option<String>,
}

/// `tracing` of an INVOKE event and of telemetry records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tracing {
    /// Always `X-Amzn-Trace-Id`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The trace header value.
    pub value: String,
}

impl Tracing {
    /// An `X-Amzn-Trace-Id` context.
    pub fn amzn(value: impl Into<String>) -> Self {
        Self {
            kind: "X-Amzn-Trace-Id".into(),
            value: value.into(),
        }
    }
}

/// One event handed to an extension by `event/next`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "eventType")]
pub enum ExtensionEvent {
    /// An invocation started.
    #[serde(rename = "INVOKE")]
    Invoke {
        /// Absolute deadline, epoch milliseconds (a JSON integer).
        #[serde(rename = "deadlineMs")]
        deadline_ms: u64,
        /// Request id.
        #[serde(rename = "requestId")]
        request_id: String,
        /// ARN of the function.
        #[serde(rename = "invokedFunctionArn")]
        invoked_function_arn: String,
        /// Trace context, when there is one.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        tracing: Option<Tracing>,
    },
    /// The environment is going away.
    #[serde(rename = "SHUTDOWN")]
    Shutdown {
        /// `spindown`, `timeout` or `failure`.
        #[serde(rename = "shutdownReason")]
        shutdown_reason: String,
        /// When fnbox kills what is left, epoch milliseconds.
        #[serde(rename = "deadlineMs")]
        deadline_ms: u64,
    },
}

/// Body of `PUT /2022-07-01/telemetry`. Unknown fields (e.g. OTel's `destination.method`) are
/// ignored, as Lambda does.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct SubscribeRequest {
    /// One of [`SCHEMA_VERSIONS`].
    #[serde(rename = "schemaVersion", default)]
    pub schema_version: Option<String>,
    /// `platform`, `function`, `extension`.
    #[serde(default)]
    pub types: Option<Vec<String>>,
    /// Batching limits.
    #[serde(default)]
    pub buffering: Option<BufferingRequest>,
    /// Where to deliver.
    #[serde(default)]
    pub destination: Option<Destination>,
}

/// `buffering` of a subscription.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct BufferingRequest {
    /// 1 000..=10 000, default 10 000.
    #[serde(rename = "maxItems", default)]
    pub max_items: Option<u64>,
    /// 262 144..=1 048 576, default 262 144.
    #[serde(rename = "maxBytes", default)]
    pub max_bytes: Option<u64>,
    /// 25..=30 000, default 1 000.
    #[serde(rename = "timeoutMs", default)]
    pub timeout_ms: Option<u64>,
}

/// `destination` of a subscription.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Destination {
    /// `HTTP` (or `TCP`, refused by fnbox).
    #[serde(default)]
    pub protocol: Option<String>,
    /// `http://sandbox.localdomain:<port>[/<path>]`.
    #[serde(rename = "URI", default)]
    pub uri: Option<String>,
    /// TCP port (LMI schema).
    #[serde(default)]
    pub port: Option<u64>,
    /// `POST` (default) or `PUT`: the Logs API lets a subscriber choose.
    #[serde(default)]
    pub method: Option<String>,
    /// `JSON` (the only encoding).
    #[serde(default)]
    pub encoding: Option<String>,
}

/// Telemetry API records (lambda-facts §3.3–3.4): the `{"time","type","record"}` events
/// fnbox delivers to Lambda subscribers, one type per record.
///
/// # Design
/// - **Borrowed, not built.** Records borrow their strings from the engine's event and the
///   encoder's context, and serialize straight into the output buffer: no intermediate
///   `serde_json::Value` tree, no key strings allocated per record.
/// - **Same bytes as before.** Fields are declared (and the envelope written) in alphabetical
///   order, which is the order the encoder wrote when it built `serde_json::Map`s (sorted
///   maps, as the workspace does not enable `preserve_order`). Subscribers that compare raw
///   bytes, or log them, see no change; JSON clients do not care.
/// - **Optional means absent.** An `Option` field that is `None` is left out, never `null`:
///   lambda-extension's model has no `null` for them.
/// - **Integers stay integers** (`billedDurationMs`, `memorySizeMB`, `maxMemoryUsedMB`,
///   `producedBytes`, `droppedRecords`, `droppedBytes`, `instanceMaxMemory`): `u64`/`u32`
///   fields, because lambda-extension rejects `694.0` where it expects `u64`.
pub mod telemetry {
    use serde::ser::SerializeStruct;
    use serde::{Serialize, Serializer};

    use super::Tracing;

    /// One delivered event: `{"record", "time", "type"}`, `type` taken from the record.
    #[derive(Clone, Debug, PartialEq)]
    pub struct Event<'a> {
        /// RFC 3339 UTC with milliseconds, e.g. `2023-02-01T00:03:50.000Z`.
        pub time: &'a str,
        /// The record; its variant names the event `type`.
        pub record: Record<'a>,
    }

    impl Serialize for Event<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut s = serializer.serialize_struct("Event", 3)?;
            s.serialize_field("record", &self.record)?;
            s.serialize_field("time", self.time)?;
            s.serialize_field("type", self.record.kind())?;
            s.end()
        }
    }

    /// The record of an event, one variant per Telemetry API `type`.
    #[derive(Clone, Debug, PartialEq, Serialize)]
    #[serde(untagged)]
    pub enum Record<'a> {
        /// `platform.initStart`.
        InitStart(InitStart<'a>),
        /// `platform.initRuntimeDone`.
        InitRuntimeDone(InitRuntimeDone<'a>),
        /// `platform.initReport`.
        InitReport(InitReport<'a>),
        /// `platform.start`.
        Start(Start<'a>),
        /// `platform.runtimeDone`.
        RuntimeDone(RuntimeDone<'a>),
        /// `platform.report`.
        Report(Report<'a>),
        /// `platform.restoreStart` (schema ≥ 2022-12-13).
        RestoreStart(RestoreStart<'a>),
        /// `platform.restoreRuntimeDone` (schema ≥ 2022-12-13).
        RestoreRuntimeDone(Outcome<'a>),
        /// `platform.restoreReport` (schema ≥ 2022-12-13).
        RestoreReport(RestoreReport<'a>),
        /// `platform.extension`.
        Extension(ExtensionState<'a>),
        /// `platform.telemetrySubscription`.
        TelemetrySubscription(Subscription<'a>),
        /// `platform.logsDropped`.
        LogsDropped(LogsDropped<'a>),
        /// `function`: a line of the function's output.
        Function(LogLine<'a>),
        /// `extension`: a line of an extension's output.
        ExtensionLog(LogLine<'a>),
    }

    impl Record<'_> {
        /// The event `type` of this record.
        pub fn kind(&self) -> &'static str {
            match self {
                Record::InitStart(_) => "platform.initStart",
                Record::InitRuntimeDone(_) => "platform.initRuntimeDone",
                Record::InitReport(_) => "platform.initReport",
                Record::Start(_) => "platform.start",
                Record::RuntimeDone(_) => "platform.runtimeDone",
                Record::Report(_) => "platform.report",
                Record::RestoreStart(_) => "platform.restoreStart",
                Record::RestoreRuntimeDone(_) => "platform.restoreRuntimeDone",
                Record::RestoreReport(_) => "platform.restoreReport",
                Record::Extension(_) => "platform.extension",
                Record::TelemetrySubscription(_) => "platform.telemetrySubscription",
                Record::LogsDropped(_) => "platform.logsDropped",
                Record::Function(_) => "function",
                Record::ExtensionLog(_) => "extension",
            }
        }
    }

    /// `initializationType`. fnbox initializes on demand only; the other values Lambda has
    /// (`provisioned-concurrency`, `snap-start`) join when fnbox has those init paths.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
    pub enum InitType {
        /// `on-demand`.
        #[serde(rename = "on-demand")]
        OnDemand,
    }

    /// `phase` of the init records. Lambda's other value, `invoke`, is a suppressed init
    /// re-run during an invocation, which fnbox does not do.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
    pub enum InitPhase {
        /// `init`.
        #[serde(rename = "init")]
        Init,
    }

    /// Who the function is, as `platform.initStart` (schema ≥ 2022-12-13) and
    /// `platform.restoreStart` carry it.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Identity<'a> {
        /// `functionName`.
        pub function_name: &'a str,
        /// `functionVersion` (`$LATEST`).
        pub function_version: &'a str,
        /// `instanceId`.
        pub instance_id: &'a str,
        /// `instanceMaxMemory`, MB.
        pub instance_max_memory: u32,
    }

    /// `platform.initStart`. The identity fields exist from schema 2022-12-13 on.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize)]
    pub struct InitStart<'a> {
        /// `functionName` (schema ≥ 2022-12-13).
        #[serde(rename = "functionName", skip_serializing_if = "Option::is_none")]
        pub function_name: Option<&'a str>,
        /// `functionVersion` (schema ≥ 2022-12-13).
        #[serde(rename = "functionVersion", skip_serializing_if = "Option::is_none")]
        pub function_version: Option<&'a str>,
        /// `initializationType`.
        #[serde(rename = "initializationType")]
        pub initialization_type: InitType,
        /// `instanceId` (schema ≥ 2022-12-13).
        #[serde(rename = "instanceId", skip_serializing_if = "Option::is_none")]
        pub instance_id: Option<&'a str>,
        /// `instanceMaxMemory`, MB (schema ≥ 2022-12-13).
        #[serde(rename = "instanceMaxMemory", skip_serializing_if = "Option::is_none")]
        pub instance_max_memory: Option<u32>,
        /// `phase`.
        pub phase: InitPhase,
    }

    impl<'a> InitStart<'a> {
        /// An on-demand init start; `identity` for schemas that carry it.
        pub fn new(identity: Option<Identity<'a>>) -> Self {
            Self {
                function_name: identity.map(|i| i.function_name),
                function_version: identity.map(|i| i.function_version),
                initialization_type: InitType::OnDemand,
                instance_id: identity.map(|i| i.instance_id),
                instance_max_memory: identity.map(|i| i.instance_max_memory),
                phase: InitPhase::Init,
            }
        }
    }

    /// `platform.restoreStart`.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize)]
    pub struct RestoreStart<'a> {
        /// `functionName`.
        #[serde(rename = "functionName")]
        pub function_name: &'a str,
        /// `functionVersion`.
        #[serde(rename = "functionVersion")]
        pub function_version: &'a str,
        /// `instanceId`.
        #[serde(rename = "instanceId")]
        pub instance_id: &'a str,
        /// `instanceMaxMemory`, MB.
        #[serde(rename = "instanceMaxMemory")]
        pub instance_max_memory: u32,
    }

    impl<'a> From<Identity<'a>> for RestoreStart<'a> {
        fn from(i: Identity<'a>) -> Self {
            Self {
                function_name: i.function_name,
                function_version: i.function_version,
                instance_id: i.instance_id,
                instance_max_memory: i.instance_max_memory,
            }
        }
    }

    /// `errorType` and `status` of a finished phase; also the whole record of
    /// `platform.restoreRuntimeDone`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
    pub struct Outcome<'a> {
        /// Only when `status` is not `success`.
        #[serde(rename = "errorType", skip_serializing_if = "Option::is_none")]
        pub error_type: Option<&'a str>,
        /// `success`, `error`, `timeout` or `failure`.
        pub status: &'a str,
    }

    impl<'a> Outcome<'a> {
        /// An outcome; `error_type` is dropped when `status` is `success`.
        pub fn new(status: &'a str, error_type: Option<&'a str>) -> Self {
            Self {
                error_type: error_type.filter(|_| status != "success"),
                status,
            }
        }
    }

    /// `platform.initRuntimeDone`.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize)]
    pub struct InitRuntimeDone<'a> {
        /// `errorType`, when not a success.
        #[serde(rename = "errorType", skip_serializing_if = "Option::is_none")]
        pub error_type: Option<&'a str>,
        /// `initializationType`.
        #[serde(rename = "initializationType")]
        pub initialization_type: InitType,
        /// `phase`.
        pub phase: InitPhase,
        /// `status`.
        pub status: &'a str,
    }

    impl<'a> InitRuntimeDone<'a> {
        /// An on-demand init's runtime outcome.
        pub fn new(outcome: Outcome<'a>) -> Self {
            Self {
                error_type: outcome.error_type,
                initialization_type: InitType::OnDemand,
                phase: InitPhase::Init,
                status: outcome.status,
            }
        }
    }

    /// `metrics` of `platform.initReport` and `platform.restoreReport`.
    #[derive(Clone, Copy, Debug, PartialEq, Serialize)]
    pub struct DurationMetrics {
        /// `durationMs`, milliseconds with microsecond resolution.
        #[serde(rename = "durationMs")]
        pub duration_ms: f64,
    }

    /// `platform.initReport`. `status` and `errorType` exist from schema 2022-12-13 on.
    #[derive(Clone, Debug, PartialEq, Serialize)]
    pub struct InitReport<'a> {
        /// `errorType` (schema ≥ 2022-12-13, not a success).
        #[serde(rename = "errorType", skip_serializing_if = "Option::is_none")]
        pub error_type: Option<&'a str>,
        /// `initializationType`.
        #[serde(rename = "initializationType")]
        pub initialization_type: InitType,
        /// `metrics`.
        pub metrics: DurationMetrics,
        /// `phase`.
        pub phase: InitPhase,
        /// `status` (schema ≥ 2022-12-13).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub status: Option<&'a str>,
    }

    impl<'a> InitReport<'a> {
        /// An on-demand init's report; `outcome` for schemas that carry it.
        pub fn new(duration_ms: f64, outcome: Option<Outcome<'a>>) -> Self {
            Self {
                error_type: outcome.and_then(|o| o.error_type),
                initialization_type: InitType::OnDemand,
                metrics: DurationMetrics { duration_ms },
                phase: InitPhase::Init,
                status: outcome.map(|o| o.status),
            }
        }
    }

    /// `platform.start`.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize)]
    pub struct Start<'a> {
        /// `requestId`.
        #[serde(rename = "requestId")]
        pub request_id: &'a str,
        /// `tracing`.
        pub tracing: Tracing,
        /// `version` (`$LATEST`).
        pub version: &'a str,
    }

    /// `metrics` of `platform.runtimeDone`.
    #[derive(Clone, Copy, Debug, PartialEq, Serialize)]
    pub struct RuntimeDoneMetrics {
        /// `durationMs`: from `platform.start` to the runtime's answer.
        #[serde(rename = "durationMs")]
        pub duration_ms: f64,
        /// `producedBytes`, when the runtime posted a response.
        #[serde(rename = "producedBytes", skip_serializing_if = "Option::is_none")]
        pub produced_bytes: Option<u64>,
    }

    /// One entry of `spans`.
    #[derive(Clone, Debug, PartialEq, Serialize)]
    pub struct Span<'a> {
        /// `durationMs`.
        #[serde(rename = "durationMs")]
        pub duration_ms: f64,
        /// e.g. `responseLatency`.
        pub name: &'a str,
        /// RFC 3339 UTC with milliseconds.
        pub start: String,
    }

    /// `platform.runtimeDone`.
    #[derive(Clone, Debug, PartialEq, Serialize)]
    pub struct RuntimeDone<'a> {
        /// `errorType`, when not a success.
        #[serde(rename = "errorType", skip_serializing_if = "Option::is_none")]
        pub error_type: Option<&'a str>,
        /// `metrics`, when the invocation's start is known.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub metrics: Option<RuntimeDoneMetrics>,
        /// `requestId`.
        #[serde(rename = "requestId")]
        pub request_id: &'a str,
        /// `spans`, left out when none were measured.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub spans: Vec<Span<'a>>,
        /// `status`.
        pub status: &'a str,
        /// `tracing`, when the invocation's start is known.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub tracing: Option<Tracing>,
    }

    /// `metrics` of `platform.report`.
    #[derive(Clone, Copy, Debug, PartialEq, Serialize)]
    pub struct ReportMetrics {
        /// `billedDurationMs` (integer).
        #[serde(rename = "billedDurationMs")]
        pub billed_duration_ms: u64,
        /// `durationMs`.
        #[serde(rename = "durationMs")]
        pub duration_ms: f64,
        /// `initDurationMs`: only on the first report after a cold start.
        #[serde(rename = "initDurationMs", skip_serializing_if = "Option::is_none")]
        pub init_duration_ms: Option<f64>,
        /// `restoreDurationMs`: only on the first report after a restore (SnapStart).
        #[serde(rename = "restoreDurationMs", skip_serializing_if = "Option::is_none")]
        pub restore_duration_ms: Option<f64>,
        /// `billedRestoreDurationMs` (integer), with `restoreDurationMs`.
        #[serde(
            rename = "billedRestoreDurationMs",
            skip_serializing_if = "Option::is_none"
        )]
        pub billed_restore_duration_ms: Option<u64>,
        /// `maxMemoryUsedMB` (integer).
        #[serde(rename = "maxMemoryUsedMB")]
        pub max_memory_used_mb: u64,
        /// `memorySizeMB` (integer).
        #[serde(rename = "memorySizeMB")]
        pub memory_size_mb: u32,
    }

    /// `platform.report`.
    #[derive(Clone, Debug, PartialEq, Serialize)]
    pub struct Report<'a> {
        /// `errorType`, when not a success.
        #[serde(rename = "errorType", skip_serializing_if = "Option::is_none")]
        pub error_type: Option<&'a str>,
        /// `metrics`.
        pub metrics: ReportMetrics,
        /// `requestId`.
        #[serde(rename = "requestId")]
        pub request_id: &'a str,
        /// `status`.
        pub status: &'a str,
        /// `tracing`, when the invocation's start is known.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub tracing: Option<Tracing>,
    }

    /// `platform.restoreReport`.
    #[derive(Clone, Debug, PartialEq, Serialize)]
    pub struct RestoreReport<'a> {
        /// `errorType`, when not a success.
        #[serde(rename = "errorType", skip_serializing_if = "Option::is_none")]
        pub error_type: Option<&'a str>,
        /// `metrics`.
        pub metrics: DurationMetrics,
        /// `status`.
        pub status: &'a str,
    }

    /// `platform.extension`.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize)]
    pub struct ExtensionState<'a> {
        /// `errorType`, when the state is an error.
        #[serde(rename = "errorType", skip_serializing_if = "Option::is_none")]
        pub error_type: Option<&'a str>,
        /// Events it registered for, e.g. `INVOKE`, `SHUTDOWN`.
        pub events: &'a [String],
        /// The extension's name.
        pub name: &'a str,
        /// e.g. `Ready`.
        pub state: &'a str,
    }

    /// `platform.telemetrySubscription`.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize)]
    pub struct Subscription<'a> {
        /// The subscribing extension's name.
        pub name: &'a str,
        /// `Subscribed`.
        pub state: &'a str,
        /// Streams subscribed, e.g. `platform`, `function`.
        pub types: &'a [String],
    }

    /// `platform.logsDropped`.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize)]
    pub struct LogsDropped<'a> {
        /// `droppedBytes` (integer).
        #[serde(rename = "droppedBytes")]
        pub dropped_bytes: u64,
        /// `droppedRecords` (integer).
        #[serde(rename = "droppedRecords")]
        pub dropped_records: u64,
        /// Why, e.g. `queue full`.
        pub reason: &'a str,
    }

    /// The record of a `function` / `extension` event.
    #[derive(Clone, Debug, PartialEq, Serialize)]
    #[serde(untagged)]
    pub enum LogLine<'a> {
        /// Text log format: the line as a string.
        Text(&'a str),
        /// JSON log format (schema ≥ 2022-12-13): a line that is a JSON object, as that
        /// object. A map, not the line's own text, so it is written compactly with sorted
        /// keys, as fnbox always has.
        Json(serde_json::Map<String, serde_json::Value>),
    }
}

/// The `arn:aws:lambda:<region>:000000000000:function:<name>` of a local function.
pub fn function_arn(region: &str, function_name: &str) -> String {
    format!("arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{function_name}")
}

/// The platform's own log lines, as Lambda writes them to the function's log stream (and
/// `X-Amz-Log-Result`): `START`, `END`, `REPORT`, `EXTENSION`, fields separated by tabs.
pub mod log_lines {
    use super::FUNCTION_VERSION;

    /// `START RequestId: <id> Version: $LATEST`.
    pub fn start(request_id: &str) -> String {
        format!("START RequestId: {request_id} Version: {FUNCTION_VERSION}")
    }

    /// `END RequestId: <id>`.
    pub fn end(request_id: &str) -> String {
        format!("END RequestId: {request_id}")
    }

    /// `REPORT RequestId: <id>\tDuration: 2.58 ms\tBilled Duration: 3 ms\tMemory Size: 128
    /// MB\tMax Memory Used: 38 MB\t`, plus `Init Duration: 140.55 ms\t` on a cold start.
    pub fn report(
        request_id: &str,
        duration_ms: f64,
        billed_duration_ms: u64,
        memory_size_mb: u32,
        max_memory_used_mb: u64,
        init_duration_ms: Option<f64>,
    ) -> String {
        let mut line = format!(
            "REPORT RequestId: {request_id}\tDuration: {duration_ms:.2} ms\tBilled Duration: {billed_duration_ms} ms\tMemory Size: {memory_size_mb} MB\tMax Memory Used: {max_memory_used_mb} MB\t"
        );
        if let Some(init) = init_duration_ms {
            line.push_str(&format!("Init Duration: {init:.2} ms\t"));
        }
        line
    }

    /// `EXTENSION\tName: <name>\tState: Ready\tEvents: [INVOKE, SHUTDOWN]`.
    pub fn extension(name: &str, state: &str, events: &[String]) -> String {
        format!(
            "EXTENSION\tName: {name}\tState: {state}\tEvents: [{}]",
            events.join(", ")
        )
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn lines_match_lambda() {
            assert_eq!(super::start("r1"), "START RequestId: r1 Version: $LATEST");
            assert_eq!(super::end("r1"), "END RequestId: r1");
            assert_eq!(
                super::report("r1", 2.5812, 3, 128, 38, Some(140.554)),
                "REPORT RequestId: r1\tDuration: 2.58 ms\tBilled Duration: 3 ms\tMemory Size: 128 MB\tMax Memory Used: 38 MB\tInit Duration: 140.55 ms\t"
            );
            assert!(!super::report("r1", 1.0, 1, 128, 1, None).contains("Init"));
            assert_eq!(
                super::extension("ext", "Ready", &["INVOKE".into(), "SHUTDOWN".into()]),
                "EXTENSION\tName: ext\tState: Ready\tEvents: [INVOKE, SHUTDOWN]"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_have_the_wire_shape() {
        let e = ExtensionEvent::Invoke {
            deadline_ms: 1542409706888,
            request_id: "r".into(),
            invoked_function_arn: function_arn("us-east-1", "f"),
            tracing: Some(Tracing::amzn("Root=1-2-3")),
        };
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"eventType":"INVOKE","deadlineMs":1542409706888u64,"requestId":"r",
                "invokedFunctionArn":"arn:aws:lambda:us-east-1:000000000000:function:f",
                "tracing":{"type":"X-Amzn-Trace-Id","value":"Root=1-2-3"}})
        );
        let s = ExtensionEvent::Shutdown {
            shutdown_reason: "spindown".into(),
            deadline_ms: 7,
        };
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"eventType":"SHUTDOWN","shutdownReason":"spindown","deadlineMs":7}"#
        );
    }

    #[test]
    fn error_body_field_order_matches_rie() {
        assert_eq!(
            serde_json::to_string(&ErrorBody::new("InvalidRequestID", "Invalid request ID"))
                .unwrap(),
            r#"{"errorMessage":"Invalid request ID","errorType":"InvalidRequestID"}"#
        );
    }

    #[test]
    fn subscribe_ignores_unknown_fields() {
        let r: SubscribeRequest = serde_json::from_str(
            r#"{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:4243/","method":"POST","encoding":"JSON"},"buffering":{"maxItems":1000}}"#,
        )
        .unwrap();
        assert_eq!(r.schema_version.as_deref(), Some("2022-12-13"));
        assert_eq!(r.buffering.unwrap().max_items, Some(1000));
        assert_eq!(
            r.destination.unwrap().uri.as_deref(),
            Some("http://sandbox.localdomain:4243/")
        );
    }
}
