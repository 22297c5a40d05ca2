//! Typed FunctionGraph telemetry events (seed document's event table, CONTRACT §5).
//!
//! On the wire every event is a flat JSON object whose `name` says what it is; there is no
//! `{time,type,record}` envelope as in Lambda. Parsing is deliberately forgiving, because the
//! only specification is a document with typos and a listener must never reject a whole batch
//! for one odd event:
//! - the document's literal spellings are accepted: `platform.RuntimeDone` for
//!   `platform.runtimeDone`, and `reportMetrics` as the key of a report's `metrics`;
//! - `billingDurationMS` may be an integer or (as the document's table says) a float, which is
//!   rounded up to a whole millisecond;
//! - an unknown `name`, or a known one whose fields do not fit, becomes
//!   [`TelemetryEvent::Other`] with the object kept as received.
//!
//! Serializing always produces the canonical spelling (`platform.runtimeDone`, `metrics`).
//! Times are kept as the strings received (RFC 3339), so they round-trip byte for byte.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// The `name` values FunctionGraph (and fnbox) emit. Candidates for `fnbox_wire::fg`.
pub mod names {
    /// Init phase began.
    pub const INIT_START: &str = "platform.initStart";
    /// Invoke phase began.
    pub const START: &str = "platform.start";
    /// Snapshot restore began.
    pub const RESTORE_START: &str = "platform.restoreStart";
    /// Init phase done.
    pub const INIT_RUNTIME_DONE: &str = "platform.initRuntimeDone";
    /// Invoke phase done (runtime answered).
    pub const RUNTIME_DONE: &str = "platform.runtimeDone";
    /// The seed document's spelling of [`RUNTIME_DONE`]; accepted when parsing.
    pub const RUNTIME_DONE_DOC: &str = "platform.RuntimeDone";
    /// Restore done.
    pub const RESTORE_RUNTIME_DONE: &str = "platform.restoreRuntimeDone";
    /// Init report with metrics.
    pub const INIT_REPORT: &str = "platform.initReport";
    /// Invocation report with metrics.
    pub const REPORT: &str = "platform.report";
    /// Restore report with metrics.
    pub const RESTORE_REPORT: &str = "platform.restoreReport";
    /// Records were dropped before delivery (fnbox addition).
    pub const LOGS_DROPPED: &str = "platform.logsDropped";
    /// A `[Function]` line of the function's code.
    pub const FUNCTION: &str = "function";
    /// An `[Extension]` line of an extension.
    pub const EXTENSION: &str = "extension";
}

/// `platform.initStart` / `platform.start` / `platform.restoreStart`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StartEvent {
    /// RFC 3339 time, as received.
    #[serde(rename = "startTime")]
    pub start_time: String,
    /// Request id of the invocation (for init: the request that caused the cold start).
    #[serde(rename = "traceId")]
    pub trace_id: String,
}

/// `platform.initRuntimeDone` / `platform.runtimeDone` / `platform.restoreRuntimeDone`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuntimeDoneEvent {
    /// RFC 3339 time, as received.
    #[serde(rename = "startTime")]
    pub start_time: String,
    /// Request id.
    #[serde(rename = "traceId")]
    pub trace_id: String,
    /// `success`, `error`, `timeout` or `failure` in fnbox; kept as a string because the
    /// platform's set is undocumented.
    pub status: String,
    /// Set when the status is not `success`.
    #[serde(rename = "errorType", default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
}

/// `platform.initReport` / `platform.report` / `platform.restoreReport`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportEvent {
    /// RFC 3339 start of the phase, as received.
    #[serde(rename = "startTime")]
    pub start_time: String,
    /// RFC 3339 end of the phase, as received.
    #[serde(rename = "endTime")]
    pub end_time: String,
    /// Request id.
    #[serde(rename = "traceId")]
    pub trace_id: String,
    /// Same values as [`RuntimeDoneEvent::status`].
    pub status: String,
    /// Set when the status is not `success`.
    #[serde(rename = "errorType", default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// Measured figures; the seed document's example keys them `reportMetrics`.
    #[serde(alias = "reportMetrics")]
    pub metrics: ReportMetrics,
}

/// `metrics` of a report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportMetrics {
    /// Wall time of the phase, ms.
    #[serde(rename = "durationMs")]
    pub duration_ms: f64,
    /// Billed time, whole ms (the document's table says float64; a float is rounded up).
    #[serde(rename = "billingDurationMS", deserialize_with = "ceil_u64")]
    pub billing_duration_ms: u64,
    /// Peak memory of the instance, MB.
    #[serde(rename = "memoryUsed")]
    pub memory_used: f64,
    /// Configured memory, MB.
    #[serde(rename = "memorySize")]
    pub memory_size: u32,
    /// Instance name; empty when the platform left it out.
    #[serde(rename = "podName", default)]
    pub pod_name: String,
}

/// `platform.logsDropped` (fnbox addition): records a subscriber will never see.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogsDroppedEvent {
    /// RFC 3339 time, as received.
    #[serde(rename = "startTime")]
    pub start_time: String,
    /// Events dropped.
    #[serde(rename = "droppedRecords")]
    pub dropped_records: u64,
    /// Their encoded size.
    #[serde(rename = "droppedBytes")]
    pub dropped_bytes: u64,
    /// Why (queue full, listener unreachable…).
    pub reason: String,
}

/// `function` / `extension`: one output line carrying the `[Function]` / `[Extension]` marker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogEvent {
    /// RFC 3339 time, as received.
    #[serde(rename = "startTime")]
    pub start_time: String,
    /// The line, marker included.
    pub logs: String,
}

/// One telemetry event.
#[derive(Clone, Debug, PartialEq)]
pub enum TelemetryEvent {
    /// `platform.initStart`.
    InitStart(StartEvent),
    /// `platform.start`.
    Start(StartEvent),
    /// `platform.restoreStart`.
    RestoreStart(StartEvent),
    /// `platform.initRuntimeDone`.
    InitRuntimeDone(RuntimeDoneEvent),
    /// `platform.runtimeDone` (also parsed from `platform.RuntimeDone`).
    RuntimeDone(RuntimeDoneEvent),
    /// `platform.restoreRuntimeDone`.
    RestoreRuntimeDone(RuntimeDoneEvent),
    /// `platform.initReport`.
    InitReport(ReportEvent),
    /// `platform.report`.
    Report(ReportEvent),
    /// `platform.restoreReport`.
    RestoreReport(ReportEvent),
    /// `platform.logsDropped`.
    LogsDropped(LogsDroppedEvent),
    /// `function`.
    Function(LogEvent),
    /// `extension`.
    Extension(LogEvent),
    /// Any other value: an unknown `name`, or a known one whose fields did not fit. Kept as
    /// received so nothing is lost.
    Other(Value),
}

impl TelemetryEvent {
    /// Classifies one received JSON value; never fails (see [`TelemetryEvent::Other`]).
    pub fn from_value(value: Value) -> Self {
        Self::try_from_value(&value).unwrap_or(TelemetryEvent::Other(value))
    }

    /// Strict variant of [`from_value`](Self::from_value): `None` when the value is not an
    /// object with a known `name` and the fields that name requires.
    pub fn try_from_value(value: &Value) -> Option<Self> {
        let name = value.get("name")?.as_str()?;
        fn fields<T: serde::de::DeserializeOwned>(v: &Value) -> Option<T> {
            let mut obj = v.as_object()?.clone();
            obj.remove("name");
            serde_json::from_value(Value::Object(obj)).ok()
        }
        use names::*;
        Some(match name {
            INIT_START => Self::InitStart(fields(value)?),
            START => Self::Start(fields(value)?),
            RESTORE_START => Self::RestoreStart(fields(value)?),
            INIT_RUNTIME_DONE => Self::InitRuntimeDone(fields(value)?),
            RUNTIME_DONE | RUNTIME_DONE_DOC => Self::RuntimeDone(fields(value)?),
            RESTORE_RUNTIME_DONE => Self::RestoreRuntimeDone(fields(value)?),
            INIT_REPORT => Self::InitReport(fields(value)?),
            REPORT => Self::Report(fields(value)?),
            RESTORE_REPORT => Self::RestoreReport(fields(value)?),
            LOGS_DROPPED => Self::LogsDropped(fields(value)?),
            FUNCTION => Self::Function(fields(value)?),
            EXTENSION => Self::Extension(fields(value)?),
            _ => return None,
        })
    }

    /// The canonical `name` (for [`Other`](Self::Other): its `name` field, or `""`).
    pub fn name(&self) -> &str {
        use names::*;
        match self {
            Self::InitStart(_) => INIT_START,
            Self::Start(_) => START,
            Self::RestoreStart(_) => RESTORE_START,
            Self::InitRuntimeDone(_) => INIT_RUNTIME_DONE,
            Self::RuntimeDone(_) => RUNTIME_DONE,
            Self::RestoreRuntimeDone(_) => RESTORE_RUNTIME_DONE,
            Self::InitReport(_) => INIT_REPORT,
            Self::Report(_) => REPORT,
            Self::RestoreReport(_) => RESTORE_REPORT,
            Self::LogsDropped(_) => LOGS_DROPPED,
            Self::Function(_) => FUNCTION,
            Self::Extension(_) => EXTENSION,
            Self::Other(v) => v.get("name").and_then(Value::as_str).unwrap_or(""),
        }
    }

    /// The request id, for the platform events that carry one.
    pub fn trace_id(&self) -> Option<&str> {
        match self {
            Self::InitStart(e) | Self::Start(e) | Self::RestoreStart(e) => Some(&e.trace_id),
            Self::InitRuntimeDone(e) | Self::RuntimeDone(e) | Self::RestoreRuntimeDone(e) => {
                Some(&e.trace_id)
            }
            Self::InitReport(e) | Self::Report(e) | Self::RestoreReport(e) => Some(&e.trace_id),
            Self::Other(v) => v.get("traceId").and_then(Value::as_str),
            _ => None,
        }
    }

    /// The `startTime` string, when there is one.
    pub fn start_time(&self) -> Option<&str> {
        match self {
            Self::InitStart(e) | Self::Start(e) | Self::RestoreStart(e) => Some(&e.start_time),
            Self::InitRuntimeDone(e) | Self::RuntimeDone(e) | Self::RestoreRuntimeDone(e) => {
                Some(&e.start_time)
            }
            Self::InitReport(e) | Self::Report(e) | Self::RestoreReport(e) => Some(&e.start_time),
            Self::LogsDropped(e) => Some(&e.start_time),
            Self::Function(e) | Self::Extension(e) => Some(&e.start_time),
            Self::Other(v) => v.get("startTime").and_then(Value::as_str),
        }
    }

    /// The canonical JSON object (what [`Serialize`] writes).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

impl Serialize for TelemetryEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        /// `name` first, then the payload's fields, as the platform writes them.
        #[derive(Serialize)]
        struct Named<'a, T> {
            name: &'a str,
            #[serde(flatten)]
            inner: &'a T,
        }
        fn named<S: Serializer, T: Serialize>(
            s: S,
            name: &str,
            inner: &T,
        ) -> Result<S::Ok, S::Error> {
            Named { name, inner }.serialize(s)
        }
        let name = self.name();
        match self {
            Self::InitStart(e) | Self::Start(e) | Self::RestoreStart(e) => named(s, name, e),
            Self::InitRuntimeDone(e) | Self::RuntimeDone(e) | Self::RestoreRuntimeDone(e) => {
                named(s, name, e)
            }
            Self::InitReport(e) | Self::Report(e) | Self::RestoreReport(e) => named(s, name, e),
            Self::LogsDropped(e) => named(s, name, e),
            Self::Function(e) | Self::Extension(e) => named(s, name, e),
            Self::Other(v) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for TelemetryEvent {
    /// Accepts any JSON value; see [`TelemetryEvent::from_value`].
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Value::deserialize(d).map(Self::from_value)
    }
}

/// An integer, or a non-negative float rounded up (the document types billing as float64).
fn ceil_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    if let Some(u) = n.as_u64() {
        return Ok(u);
    }
    match n.as_f64() {
        Some(f) if f.is_finite() && f >= 0.0 && f <= u64::MAX as f64 => Ok(f.ceil() as u64),
        _ => Err(serde::de::Error::custom(format!(
            "billingDurationMS {n} is not a non-negative number"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn name_comes_first_when_serialized() {
        let e = TelemetryEvent::Start(StartEvent {
            start_time: "t".into(),
            trace_id: "r".into(),
        });
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"name":"platform.start","startTime":"t","traceId":"r"}"#
        );
    }

    #[test]
    fn doc_spelling_of_runtime_done_is_accepted() {
        let e = TelemetryEvent::from_value(
            json!({"name":"platform.RuntimeDone","startTime":"t","traceId":"r","status":"success"}),
        );
        assert!(matches!(e, TelemetryEvent::RuntimeDone(_)));
        assert_eq!(e.name(), "platform.runtimeDone");
    }

    #[test]
    fn float_billing_is_rounded_up() {
        let m: ReportMetrics = serde_json::from_value(json!({
            "durationMs": 10.2, "billingDurationMS": 10.2, "memoryUsed": 1.0, "memorySize": 128, "podName": "p"
        }))
        .unwrap();
        assert_eq!(m.billing_duration_ms, 11);
    }

    #[test]
    fn broken_known_event_is_kept_as_other() {
        let v = json!({"name":"platform.start","startTime":1});
        assert_eq!(
            TelemetryEvent::from_value(v.clone()),
            TelemetryEvent::Other(v)
        );
        let v = json!(["not", "an", "object"]);
        assert_eq!(
            TelemetryEvent::from_value(v.clone()),
            TelemetryEvent::Other(v)
        );
    }
}
