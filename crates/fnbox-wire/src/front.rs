//! The invoke API of `fnbox serve` (CONTRACT §6): FunctionGraph's and Lambda's invoke paths,
//! their headers and bodies, and fnbox's own admin listings.

use serde::{Deserialize, Serialize};

/// Request and response headers of FunctionGraph's invoke API.
pub mod headers {
    /// `tail` asks for the log tail.
    pub const LOG_TYPE: &str = "X-Cff-Log-Type";
    /// Base64 of the last 4 KiB of the invocation's log.
    pub const FUNCTION_LOG: &str = "X-Cff-Function-Log";
    /// `v0` (raw result) or `v1` (wrapped).
    pub const REQUEST_VERSION: &str = "X-CFF-Request-Version";
    /// Echoes the version used.
    pub const RESPONSE_VERSION: &str = "X-Cff-Response-Version";
    /// Request id.
    pub const REQUEST_ID: &str = "X-Cff-Request-Id";
    /// JSON summary of duration and memory.
    pub const INVOKE_SUMMARY: &str = "X-Cff-Invoke-Summary";
    /// Billed milliseconds.
    pub const BILLING_DURATION: &str = "X-Cff-Billing-Duration";
    /// Whether the error came from user code.
    pub const IS_FUNC_ERR: &str = "X-Is-Func-Err";
    /// `"0"` on success.
    pub const FUNC_ERR_CODE: &str = "X-Func-Err-Code";
    /// Auth token when `--token` is set (both front doors and the admin routes).
    pub const AUTH_TOKEN: &str = "X-Auth-Token";
    /// W3C trace context of the caller (both front doors): the invocation's span becomes its
    /// child; an invalid value is ignored (a new trace starts), as W3C asks.
    pub const TRACEPARENT: &str = "traceparent";
}

/// Header values of FunctionGraph's invoke API.
pub mod values {
    /// `X-Cff-Log-Type` asking for the log tail (compared case-insensitively).
    pub const LOG_TYPE_TAIL: &str = "tail";
    /// Raw result.
    pub const VERSION_V0: &str = "v0";
    /// `{"request_id","result","log","status"}`.
    pub const VERSION_V1: &str = "v1";
    /// The only function version fnbox serves.
    pub const LATEST: &str = "latest";
    /// The project id fnbox uses in URNs and paths.
    pub const PROJECT_ID: &str = "local";
    /// `X-Func-Err-Code` on success.
    pub const FUNC_ERR_CODE_OK: &str = "0";
}

/// Request and response headers of Lambda's `Invoke` API.
pub mod lambda_headers {
    /// `RequestResponse` (default), `Event` or `DryRun`.
    pub const INVOCATION_TYPE: &str = "X-Amz-Invocation-Type";
    /// `None` (default) or `Tail`.
    pub const LOG_TYPE: &str = "X-Amz-Log-Type";
    /// Base64 of the last 4 KB of the invocation's log, with `Tail`.
    pub const LOG_RESULT: &str = "X-Amz-Log-Result";
    /// `Unhandled` when the function failed.
    pub const FUNCTION_ERROR: &str = "X-Amz-Function-Error";
    /// The version that ran: `$LATEST`.
    pub const EXECUTED_VERSION: &str = "X-Amz-Executed-Version";
    /// Error class of an API error, e.g. `ResourceNotFoundException`.
    pub const ERROR_TYPE: &str = "x-amzn-ErrorType";
    /// Request id of every answer.
    pub const REQUEST_ID: &str = "x-amzn-RequestId";
    /// Base64 client context (accepted, not passed on yet).
    pub const CLIENT_CONTEXT: &str = "X-Amz-Client-Context";
}

/// Header values of Lambda's `Invoke` API.
pub mod lambda_values {
    /// Synchronous invocation (the default).
    pub const REQUEST_RESPONSE: &str = "RequestResponse";
    /// Asynchronous invocation.
    pub const EVENT: &str = "Event";
    /// Validate parameters and permissions only: 204.
    pub const DRY_RUN: &str = "DryRun";
    /// `X-Amz-Log-Type` asking for the log tail.
    pub const LOG_TAIL: &str = "Tail";
    /// `X-Amz-Log-Type` default.
    pub const LOG_NONE: &str = "None";
    /// `X-Amz-Function-Error` value.
    pub const UNHANDLED: &str = "Unhandled";
    /// The only version fnbox serves.
    pub const LATEST: &str = "$LATEST";
    /// Region in the ARNs fnbox reports.
    pub const REGION: &str = "us-east-1";
    /// Account in the ARNs fnbox reports (the one Lambda's emulator uses).
    pub const ACCOUNT: &str = "012345678912";
    /// The function name tools written for Lambda's emulator use when it runs one function.
    pub const EMULATOR_NAME: &str = "function";
}

/// Paths of the front door.
pub mod paths {
    /// FunctionGraph sync invoke (axum route syntax).
    pub const FG_INVOKE: &str = "/v2/{project_id}/fgs/functions/{function_urn}/invocations";
    /// FunctionGraph async invoke (axum route syntax).
    pub const FG_INVOKE_ASYNC: &str =
        "/v2/{project_id}/fgs/functions/{function_urn}/invocations-async";
    /// Status of one asynchronous invocation (fnbox addition; axum route syntax).
    pub const FG_ASYNC_STATUS: &str =
        "/v2/{project_id}/fgs/functions/{function_urn}/async-invocations/{request_id}";
    /// FunctionGraph's `ListAsyncInvocations` (axum route syntax).
    pub const FG_ASYNC_LIST: &str =
        "/v2/{project_id}/fgs/functions/{function_urn}/async-invocations";
    /// Lambda invoke (axum route syntax).
    pub const LAMBDA_INVOKE: &str = "/2015-03-31/functions/{function_name}/invocations";
    /// Health check.
    pub const HEALTH: &str = "/health";
    /// Function listing.
    pub const FUNCTIONS: &str = "/functions";
    /// Instances of one function (axum route syntax).
    pub const FUNCTION_INSTANCES: &str = "/functions/{name}/instances";
    /// Instances of every function.
    pub const INSTANCES: &str = "/instances";
    /// Prometheus exposition of fnbox's metrics.
    pub const METRICS: &str = "/metrics";

    /// The FunctionGraph sync invoke path for a project and a URN (or short form), which must
    /// already be percent-encoded where needed.
    pub fn fg_invoke(project_id: &str, urn: &str) -> String {
        format!("/v2/{project_id}/fgs/functions/{urn}/invocations")
    }

    /// The FunctionGraph async invoke path (`urn` already percent-encoded where needed).
    pub fn fg_invoke_async(project_id: &str, urn: &str) -> String {
        format!("/v2/{project_id}/fgs/functions/{urn}/invocations-async")
    }

    /// The status path of one asynchronous invocation (fnbox addition).
    pub fn fg_async_status(project_id: &str, urn: &str, request_id: &str) -> String {
        format!("/v2/{project_id}/fgs/functions/{urn}/async-invocations/{request_id}")
    }

    /// The Lambda invoke path for a function name or ARN, already percent-encoded.
    pub fn lambda_invoke(name: &str) -> String {
        format!("/2015-03-31/functions/{name}/invocations")
    }
}

/// Bytes of log the tail headers carry (`X-Cff-Function-Log`, `X-Amz-Log-Result`).
pub const LOG_TAIL_BYTES: usize = 4 * 1024;

/// `X-Cff-Invoke-Summary` value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InvokeSummary {
    /// Milliseconds.
    pub duration: f64,
    /// Milliseconds, rounded up.
    #[serde(rename = "billingDuration")]
    pub billing_duration: u64,
    /// MB.
    #[serde(rename = "memorySize")]
    pub memory_size: u32,
    /// MB, measured peak.
    #[serde(rename = "memoryUsed")]
    pub memory_used: f64,
}

/// FunctionGraph error body of the front door.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FssError {
    /// e.g. `FSS.1051`.
    pub error_code: String,
    /// Human message.
    pub error_msg: String,
}

/// The body of a FunctionGraph invocation with `X-CFF-Request-Version: v1`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct V1Response {
    /// Request id.
    pub request_id: String,
    /// The function's output, as a string.
    pub result: String,
    /// The log tail when `X-Cff-Log-Type: tail` was sent, else empty.
    pub log: String,
    /// The HTTP status of the answer.
    pub status: u16,
}

/// The body of a Lambda API error (the class is in `x-amzn-ErrorType`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LambdaApiError {
    /// `User` (the caller's fault) or `Service`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// Human message.
    pub message: String,
    /// Why a request was throttled (`TooManyRequestsException` only).
    #[serde(rename = "Reason", default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One function in `GET /functions`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FunctionListing {
    /// `func_name`.
    pub name: String,
    /// `package`.
    pub package: String,
    /// The function URN.
    pub urn: String,
    /// Runtime as configured, e.g. `Python3.9`.
    pub runtime: String,
    /// In-sandbox API dialect.
    pub dialect: String,
    /// Handler.
    pub handler: String,
    /// MB.
    pub memory_size: u32,
    /// Seconds.
    pub timeout: u32,
    /// Requests one instance serves at once.
    pub concurrent_num: u32,
    /// Most instances at once, as enforced (1 for exclusive functions).
    pub max_instances: u32,
    /// Instances kept warm.
    pub reserved_instances: u32,
    /// Seconds before an idle on-demand instance is reclaimed.
    pub idle_timeout: u32,
    /// Needs fixed ports (extensions or an HTTP runtime), so limited to one instance.
    pub exclusive: bool,
    /// Instances now.
    pub instances: usize,
}
