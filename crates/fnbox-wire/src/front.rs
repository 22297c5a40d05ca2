//! The invoke API of `fnbox serve` (CONTRACT §6).

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
    /// Auth token when `--token` is set.
    pub const AUTH_TOKEN: &str = "X-Auth-Token";
}

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
