//! Lambda's Logs API encoding (`PUT /2020-08-15/logs`, lambda-facts §3.6, AWS's
//! runtimes-logs-api page): one `{"time","type","record"}` object per record, from the same
//! engine events as the Telemetry API ([`crate::encode`]), with the Logs API's own types:
//!
//! | engine event | Logs API records |
//! |---|---|
//! | invoke start | `platform.start` `{requestId, version}` |
//! | invoke runtime done | `platform.runtimeDone` `{requestId, status}` (schema 2021-03-18 only) |
//! | invoke report | `platform.fault` (a string, when the invocation failed or timed out), then `platform.end` `{requestId}` and `platform.report` `{requestId, metrics}` (`initDurationMs` after a cold start) |
//! | extension state | `platform.extension` `{name, state, events}` |
//! | subscription | `platform.logsSubscription` `{name, state, types}` |
//! | drop notice | `platform.logsDropped` `{reason, droppedRecords, droppedBytes}` |
//! | function / extension line | `function` / `extension`, the line as a string |
//!
//! Init and restore events have no Logs API type and are skipped. Integer fields are JSON
//! integers (`billedDurationMs`, `memorySizeMB`, `maxMemoryUsedMB`, `droppedRecords`,
//! `droppedBytes`), as lambda-extension's `LambdaLogRecord` parses them.

use std::sync::Mutex;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use fnbox_engine::telemetry::{rfc3339, Event, Phase, ReportMetrics, Status};
use fnbox_telemetry::DroppedRecords;
use fnbox_wire::lambda::FUNCTION_VERSION;
use serde::Serialize;

/// A Logs API schema version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogsSchema {
    /// `2020-08-15` (the default).
    V2020_08_15,
    /// `2021-03-18`: adds `platform.runtimeDone`.
    V2021_03_18,
}

/// Versions a Logs API subscription may name.
pub const LOGS_SCHEMA_VERSIONS: &[&str] = &["2020-08-15", "2021-03-18"];

impl LogsSchema {
    /// Parses the wire spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "2020-08-15" => Some(Self::V2020_08_15),
            "2021-03-18" => Some(Self::V2021_03_18),
            _ => None,
        }
    }
}

#[derive(Serialize)]
struct Envelope<'a, R: Serialize> {
    time: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    record: R,
}

#[derive(Serialize)]
struct RequestRecord<'a> {
    #[serde(rename = "requestId")]
    request_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'a str>,
}

#[derive(Serialize)]
struct RuntimeDone<'a> {
    #[serde(rename = "requestId")]
    request_id: &'a str,
    status: &'a str,
}

#[derive(Serialize)]
struct Metrics {
    #[serde(rename = "durationMs")]
    duration_ms: f64,
    #[serde(rename = "billedDurationMs")]
    billed_duration_ms: u64,
    #[serde(rename = "memorySizeMB")]
    memory_size_mb: u32,
    #[serde(rename = "maxMemoryUsedMB")]
    max_memory_used_mb: u64,
    #[serde(rename = "initDurationMs", skip_serializing_if = "Option::is_none")]
    init_duration_ms: Option<f64>,
}

#[derive(Serialize)]
struct Report<'a> {
    #[serde(rename = "requestId")]
    request_id: &'a str,
    metrics: Metrics,
}

#[derive(Serialize)]
struct ExtensionRecord<'a> {
    name: &'a str,
    state: &'a str,
    events: &'a [String],
}

#[derive(Serialize)]
struct Subscription<'a> {
    name: &'a str,
    state: &'a str,
    types: &'a [String],
}

#[derive(Serialize)]
struct Dropped<'a> {
    reason: &'a str,
    #[serde(rename = "droppedRecords")]
    dropped_records: u64,
    #[serde(rename = "droppedBytes")]
    dropped_bytes: u64,
}

fn wrap<R: Serialize>(time: DateTime<Utc>, kind: &'static str, record: R) -> Option<Bytes> {
    let time = rfc3339(time);
    serde_json::to_vec(&Envelope {
        time: &time,
        kind,
        record,
    })
    .ok()
    .map(Bytes::from)
}

/// Milliseconds rounded to microseconds, as Lambda reports durations.
fn ms3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// One Logs API subscriber's encoder.
pub struct LogsEncoder {
    schema: LogsSchema,
    /// The function's timeout, seconds (for the timeout fault's text).
    timeout_secs: u32,
    /// The init duration, for the first report after it.
    init_duration_ms: Mutex<Option<f64>>,
}

impl LogsEncoder {
    /// An encoder for one subscriber.
    pub fn new(schema: LogsSchema, timeout_secs: u32) -> Self {
        Self {
            schema,
            timeout_secs,
            init_duration_ms: Mutex::new(None),
        }
    }

    /// Encodes one event into zero or more records, handed to `out` in order.
    pub fn encode(&self, event: &Event, out: &mut dyn FnMut(Bytes)) {
        let mut emit = |b: Option<Bytes>| {
            if let Some(b) = b {
                out(b);
            }
        };
        match event {
            Event::Start {
                phase: Phase::Invoke,
                time,
                trace_id,
                ..
            } => emit(wrap(
                *time,
                "platform.start",
                RequestRecord {
                    request_id: trace_id,
                    version: Some(FUNCTION_VERSION),
                },
            )),
            Event::RuntimeDone {
                phase: Phase::Invoke,
                time,
                trace_id,
                status,
                ..
            } if self.schema >= LogsSchema::V2021_03_18 => emit(wrap(
                *time,
                "platform.runtimeDone",
                RuntimeDone {
                    request_id: trace_id,
                    status: status.as_str(),
                },
            )),
            Event::Report {
                phase: Phase::Init,
                metrics,
                ..
            } => {
                *self
                    .init_duration_ms
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(ms3(metrics.duration_ms));
            }
            Event::Report {
                phase: Phase::Invoke,
                end,
                trace_id,
                status,
                error_type,
                metrics,
                ..
            } => {
                if let Some(fault) = self.fault_text(trace_id, *status, error_type.as_deref()) {
                    emit(wrap(*end, "platform.fault", fault));
                }
                emit(wrap(
                    *end,
                    "platform.end",
                    RequestRecord {
                        request_id: trace_id,
                        version: None,
                    },
                ));
                emit(self.report(*end, trace_id, metrics));
            }
            Event::ExtensionState {
                time,
                name,
                state,
                events,
                ..
            } => emit(wrap(
                *time,
                "platform.extension",
                ExtensionRecord {
                    name,
                    state,
                    events,
                },
            )),
            Event::Subscription {
                time,
                name,
                state,
                types,
            } => emit(wrap(
                *time,
                "platform.logsSubscription",
                Subscription { name, state, types },
            )),
            Event::Function { time, line } => emit(wrap(*time, "function", line.as_str())),
            Event::Extension { time, line, .. } => emit(wrap(*time, "extension", line.as_str())),
            // Init and restore phases, and runtimeDone for 2020-08-15: no Logs API type.
            _ => {}
        }
    }

    fn report(&self, end: DateTime<Utc>, request_id: &str, m: &ReportMetrics) -> Option<Bytes> {
        let init = self
            .init_duration_ms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        wrap(
            end,
            "platform.report",
            Report {
                request_id,
                metrics: Metrics {
                    duration_ms: ms3(m.duration_ms),
                    billed_duration_ms: m.billed_duration_ms,
                    memory_size_mb: m.memory_size_mb,
                    max_memory_used_mb: (m.memory_used_mb.ceil() as u64).max(1),
                    init_duration_ms: init,
                },
            },
        )
    }

    /// Lambda's `platform.fault` text for an invocation that failed or timed out (a handler
    /// error is the function's own result, not a fault).
    fn fault_text(
        &self,
        request_id: &str,
        status: Status,
        error_type: Option<&str>,
    ) -> Option<String> {
        match status {
            Status::Timeout => Some(format!(
                "RequestId: {request_id} Error: Task timed out after {}.00 seconds",
                self.timeout_secs
            )),
            Status::Failure => Some(match error_type {
                Some("Runtime.ExitError") | None => {
                    format!("RequestId: {request_id} Process exited before completing request")
                }
                Some(t) => format!("RequestId: {request_id} Error: {t}"),
            }),
            _ => None,
        }
    }
}

/// Encodes `platform.logsDropped`.
pub fn dropped(d: DroppedRecords) -> Bytes {
    wrap(
        Utc::now(),
        "platform.logsDropped",
        Dropped {
            reason: &d.reason,
            dropped_records: d.records,
            dropped_bytes: d.bytes,
        },
    )
    .expect("logsDropped serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::time::Duration;

    fn t(ms: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2020-08-20T12:31:32Z")
            .unwrap()
            .with_timezone(&Utc)
            + chrono::Duration::milliseconds(ms)
    }

    const RID: &str = "6f7f0961f83442118a7af6fe80b88d56";

    fn run(e: &LogsEncoder, events: &[Event]) -> Vec<Value> {
        let mut out = Vec::new();
        for ev in events {
            e.encode(ev, &mut |b| out.push(serde_json::from_slice(&b).unwrap()));
        }
        out
    }

    fn invocation(status: Status, error_type: Option<&str>) -> Vec<Event> {
        vec![
            Event::Start {
                phase: Phase::Init,
                time: t(0),
                trace_id: RID.into(),
                trace: None,
            },
            Event::Report {
                phase: Phase::Init,
                start: t(0),
                end: t(116),
                trace_id: RID.into(),
                status: Status::Success,
                error_type: None,
                metrics: ReportMetrics::new(Duration::from_micros(116_670), 0, 512),
                pod_name: "p".into(),
            },
            Event::ExtensionState {
                time: t(117),
                name: "Foo.bar".into(),
                state: "Ready".into(),
                events: vec!["INVOKE".into(), "SHUTDOWN".into()],
                error_type: None,
            },
            Event::Start {
                phase: Phase::Invoke,
                time: t(123),
                trace_id: RID.into(),
                trace: None,
            },
            Event::Function {
                time: t(124),
                line: "Hello World".into(),
            },
            Event::RuntimeDone {
                phase: Phase::Invoke,
                time: t(200),
                trace_id: RID.into(),
                status,
                error_type: error_type.map(str::to_owned),
                spans: Vec::new(),
                produced_bytes: None,
            },
            Event::Report {
                phase: Phase::Invoke,
                start: t(123),
                end: t(225),
                trace_id: RID.into(),
                status,
                error_type: error_type.map(str::to_owned),
                metrics: ReportMetrics::new(Duration::from_micros(101_510), 33 * 1024 * 1024, 512),
                pod_name: "p".into(),
            },
        ]
    }

    #[test]
    fn records_have_the_logs_api_shapes() {
        let e = LogsEncoder::new(LogsSchema::V2020_08_15, 3);
        let got = run(&e, &invocation(Status::Success, None));
        assert_eq!(
            got,
            vec![
                json!({"time":"2020-08-20T12:31:32.117Z","type":"platform.extension","record":{"name":"Foo.bar","state":"Ready","events":["INVOKE","SHUTDOWN"]}}),
                json!({"time":"2020-08-20T12:31:32.123Z","type":"platform.start","record":{"requestId":RID,"version":"$LATEST"}}),
                json!({"time":"2020-08-20T12:31:32.124Z","type":"function","record":"Hello World"}),
                json!({"time":"2020-08-20T12:31:32.225Z","type":"platform.end","record":{"requestId":RID}}),
                json!({"time":"2020-08-20T12:31:32.225Z","type":"platform.report","record":{"requestId":RID,"metrics":{"durationMs":101.51,"billedDurationMs":102,"memorySizeMB":512,"maxMemoryUsedMB":33,"initDurationMs":116.67}}}),
            ]
        );
        // A warm invocation's report has no initDurationMs.
        let again = run(&e, &invocation(Status::Success, None)[3..]);
        assert!(again[3]["record"]["metrics"]
            .get("initDurationMs")
            .is_none());
    }

    #[test]
    fn schema_2021_03_18_adds_runtime_done_and_faults_precede_the_end() {
        let e = LogsEncoder::new(LogsSchema::V2021_03_18, 3);
        let got = run(&e, &invocation(Status::Timeout, Some("Sandbox.Timedout")));
        let types: Vec<&str> = got.iter().map(|v| v["type"].as_str().unwrap()).collect();
        assert_eq!(
            types,
            [
                "platform.extension",
                "platform.start",
                "function",
                "platform.runtimeDone",
                "platform.fault",
                "platform.end",
                "platform.report"
            ]
        );
        assert_eq!(
            got[3]["record"],
            json!({"requestId":RID,"status":"timeout"})
        );
        assert_eq!(
            got[4]["record"],
            json!(format!(
                "RequestId: {RID} Error: Task timed out after 3.00 seconds"
            ))
        );
        let crash = run(&e, &invocation(Status::Failure, Some("Runtime.ExitError")));
        assert_eq!(
            crash[4]["record"],
            json!(format!(
                "RequestId: {RID} Process exited before completing request"
            ))
        );
    }

    #[test]
    fn logs_dropped_and_subscription() {
        let v: Value = serde_json::from_slice(&dropped(DroppedRecords {
            records: 123,
            bytes: 12345,
            reason: "queue full".into(),
        }))
        .unwrap();
        assert_eq!(v["type"], "platform.logsDropped");
        assert_eq!(
            v["record"],
            json!({"reason":"queue full","droppedRecords":123,"droppedBytes":12345})
        );
        let e = LogsEncoder::new(LogsSchema::V2020_08_15, 3);
        let got = run(
            &e,
            &[Event::Subscription {
                time: t(0),
                name: "Foo.bar".into(),
                state: "Subscribed".into(),
                types: vec!["function".into(), "platform".into()],
            }],
        );
        assert_eq!(
            got,
            vec![
                json!({"time":"2020-08-20T12:31:32.000Z","type":"platform.logsSubscription","record":{"name":"Foo.bar","state":"Subscribed","types":["function","platform"]}})
            ]
        );
    }
}
