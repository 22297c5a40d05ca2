//! Lambda's telemetry encoding (lambda-facts §3.3–3.4, CONTRACT §5): one `{"time","type",
//! "record"}` object per event, per subscriber schema version.
//!
//! # Design
//! - **Exact per schema.** `2022-07-01` subscribers get the 2022-07-01 record fields;
//!   `2022-12-13` and `2025-01-29` add `functionName`, `functionVersion`, `instanceId`,
//!   `instanceMaxMemory` to `platform.initStart` and `status` to `platform.initReport`. No
//!   subscriber ever gets an event type its schema does not know (`platform.restore*` are
//!   skipped for 2022-07-01).
//! - **Integers where clients parse integers**: `billedDurationMs`, `memorySizeMB`,
//!   `maxMemoryUsedMB`, `producedBytes`, `droppedRecords`, `droppedBytes`.
//! - **Per-subscriber state.** The encoder remembers the init duration (added as
//!   `initDurationMs` to the first `platform.report`) and each invocation's start (for
//!   `runtimeDone.metrics.durationMs` and the trace context).
//! - `function` / `extension` records are the output line as a string; with
//!   `AWS_LAMBDA_LOG_FORMAT=JSON` (in `user_data`) and schema ≥ 2022-12-13, a line that is a
//!   JSON object is sent as that object.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use fnbox_engine::telemetry::{rfc3339, Event, Phase, ReportMetrics, Span, Status};
use fnbox_engine::InstanceApi;
use fnbox_telemetry::DroppedRecords;
use fnbox_wire::lambda::telemetry::{
    self as record, DurationMetrics, Identity, InitReport, InitRuntimeDone, InitStart, LogLine,
    Outcome, Record, RuntimeDoneMetrics,
};
use fnbox_wire::lambda::{Tracing, FUNCTION_VERSION};

use crate::trace::trace_header;

/// A Telemetry API schema version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Schema {
    /// `2022-07-01`.
    V2022_07_01,
    /// `2022-12-13`.
    V2022_12_13,
    /// `2025-01-29`.
    V2025_01_29,
}

impl Schema {
    /// Parses the wire spelling.
    pub fn parse(s: &str) -> Option<Schema> {
        match s {
            "2022-07-01" => Some(Schema::V2022_07_01),
            "2022-12-13" => Some(Schema::V2022_12_13),
            "2025-01-29" => Some(Schema::V2025_01_29),
            _ => None,
        }
    }
}

/// What the encoder needs to know about the function and instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncoderContext {
    /// Function name.
    pub function_name: String,
    /// Configured memory, MB.
    pub memory_size_mb: u32,
    /// The instance (`instanceId`).
    pub instance_id: String,
    /// `AWS_LAMBDA_LOG_FORMAT=JSON`.
    pub json_logs: bool,
}

impl EncoderContext {
    /// The context of an instance.
    pub fn of(api: &InstanceApi) -> Self {
        let c = &api.package.config;
        Self {
            function_name: c.func_name.clone(),
            memory_size_mb: c.memory_size,
            instance_id: api.pod_name.clone(),
            json_logs: c
                .user_data
                .get("AWS_LAMBDA_LOG_FORMAT")
                .is_some_and(|f| f.eq_ignore_ascii_case("json")),
        }
    }

    fn identity(&self) -> Identity<'_> {
        Identity {
            function_name: &self.function_name,
            function_version: FUNCTION_VERSION,
            instance_id: &self.instance_id,
            instance_max_memory: self.memory_size_mb,
        }
    }
}

#[derive(Default)]
struct State {
    init_duration_ms: Option<f64>,
    /// Set by a restore report, taken by the next invocation's report.
    restore_duration_ms: Option<f64>,
    starts: HashMap<String, DateTime<Utc>>,
}

/// One subscriber's encoder.
pub struct Encoder {
    schema: Schema,
    ctx: EncoderContext,
    state: Mutex<State>,
}

/// Milliseconds rounded to microseconds, as Lambda reports durations.
fn ms3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn spans(spans: &[Span]) -> Vec<record::Span<'_>> {
    spans
        .iter()
        .map(|s| record::Span {
            duration_ms: ms3(s.duration_ms),
            name: s.name,
            start: rfc3339(s.start),
        })
        .collect()
}

fn tracing_for(request_id: &str, start: DateTime<Utc>) -> Tracing {
    Tracing::amzn(trace_header(request_id, start.timestamp().max(0) as u64))
}

fn outcome<'a>(status: Status, error_type: &'a Option<String>) -> Outcome<'a> {
    Outcome::new(status.as_str(), error_type.as_deref())
}

/// Serializes one event. The buffer is sized for the record plus the envelope, so a log line
/// (the per-line hot path) is written without regrowing.
fn wrap(time: DateTime<Utc>, record: Record<'_>, hint: usize) -> Option<Bytes> {
    let time = rfc3339(time);
    let mut out = Vec::with_capacity(96 + hint + hint / 8);
    serde_json::to_writer(
        &mut out,
        &record::Event {
            time: &time,
            record,
        },
    )
    .ok()?;
    Some(Bytes::from(out))
}

/// Room for a platform record's fields beyond the envelope.
const PLATFORM_HINT: usize = 256;

impl Encoder {
    /// An encoder for one subscriber.
    pub fn new(schema: Schema, ctx: EncoderContext) -> Self {
        Self {
            schema,
            ctx,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Encodes one event; `None` for events this subscriber's schema has no type for.
    pub fn encode(&self, event: &Event) -> Option<Bytes> {
        let newer = self.schema >= Schema::V2022_12_13;
        match event {
            Event::Start {
                phase: Phase::Init,
                time,
                ..
            } => {
                let identity = newer.then(|| self.ctx.identity());
                wrap(
                    *time,
                    Record::InitStart(InitStart::new(identity)),
                    PLATFORM_HINT,
                )
            }
            Event::Start {
                phase: Phase::Invoke,
                time,
                trace_id,
                ..
            } => {
                self.state().starts.insert(trace_id.clone(), *time);
                let start = record::Start {
                    request_id: trace_id,
                    tracing: tracing_for(trace_id, *time),
                    version: FUNCTION_VERSION,
                };
                wrap(*time, Record::Start(start), PLATFORM_HINT)
            }
            Event::Start {
                phase: Phase::Restore,
                time,
                ..
            } => newer.then(|| {
                wrap(
                    *time,
                    Record::RestoreStart(self.ctx.identity().into()),
                    PLATFORM_HINT,
                )
            })?,
            Event::RuntimeDone {
                phase,
                time,
                trace_id,
                status,
                error_type,
                spans: s,
                produced_bytes,
            } => {
                let outcome = outcome(*status, error_type);
                let record = match phase {
                    Phase::Init => Record::InitRuntimeDone(InitRuntimeDone::new(outcome)),
                    Phase::Invoke => {
                        let start = self.state().starts.get(trace_id).copied();
                        let metrics = start.map(|start| {
                            let d = (*time - start).num_microseconds().unwrap_or(0).max(0) as f64
                                / 1000.0;
                            RuntimeDoneMetrics {
                                duration_ms: ms3(d),
                                produced_bytes: *produced_bytes,
                            }
                        });
                        Record::RuntimeDone(record::RuntimeDone {
                            error_type: outcome.error_type,
                            metrics,
                            request_id: trace_id,
                            spans: spans(s),
                            status: outcome.status,
                            tracing: start.map(|start| tracing_for(trace_id, start)),
                        })
                    }
                    Phase::Restore if newer => Record::RestoreRuntimeDone(outcome),
                    Phase::Restore => return None,
                };
                wrap(*time, record, PLATFORM_HINT)
            }
            Event::Report {
                phase,
                end,
                trace_id,
                status,
                error_type,
                metrics,
                ..
            } => self.report(
                *phase,
                *end,
                trace_id,
                outcome(*status, error_type),
                metrics,
            ),
            Event::Function { time, line } => {
                wrap(*time, Record::Function(self.log_record(line)), line.len())
            }
            Event::Extension { time, line, .. } => wrap(
                *time,
                Record::ExtensionLog(self.log_record(line)),
                line.len(),
            ),
            Event::ExtensionState {
                time,
                name,
                state,
                events,
                error_type,
            } => wrap(
                *time,
                Record::Extension(record::ExtensionState {
                    error_type: error_type.as_deref(),
                    events,
                    name,
                    state,
                }),
                PLATFORM_HINT,
            ),
            Event::Subscription {
                time,
                name,
                state,
                types,
            } => wrap(
                *time,
                Record::TelemetrySubscription(record::Subscription { name, state, types }),
                PLATFORM_HINT,
            ),
        }
    }

    fn report(
        &self,
        phase: Phase,
        end: DateTime<Utc>,
        request_id: &str,
        outcome: Outcome<'_>,
        m: &ReportMetrics,
    ) -> Option<Bytes> {
        let newer = self.schema >= Schema::V2022_12_13;
        let record = match phase {
            Phase::Init => {
                self.state().init_duration_ms = Some(ms3(m.duration_ms));
                Record::InitReport(InitReport::new(
                    ms3(m.duration_ms),
                    newer.then_some(outcome),
                ))
            }
            Phase::Invoke => {
                let (init, restore, start) = {
                    let mut st = self.state();
                    (
                        st.init_duration_ms.take(),
                        st.restore_duration_ms.take(),
                        st.starts.remove(request_id),
                    )
                };
                Record::Report(record::Report {
                    error_type: outcome.error_type,
                    metrics: record::ReportMetrics {
                        billed_duration_ms: m.billed_duration_ms,
                        duration_ms: ms3(m.duration_ms),
                        init_duration_ms: init,
                        restore_duration_ms: restore,
                        billed_restore_duration_ms: restore.map(|d| (d.ceil() as u64).max(1)),
                        max_memory_used_mb: (m.memory_used_mb.ceil() as u64).max(1),
                        memory_size_mb: m.memory_size_mb,
                    },
                    request_id,
                    status: outcome.status,
                    tracing: start.map(|start| tracing_for(request_id, start)),
                })
            }
            Phase::Restore if newer => {
                // The first report after a restore carries the restore's duration, not init's.
                let mut st = self.state();
                st.init_duration_ms = None;
                st.restore_duration_ms = Some(ms3(m.duration_ms));
                drop(st);
                Record::RestoreReport(record::RestoreReport {
                    error_type: outcome.error_type,
                    metrics: DurationMetrics {
                        duration_ms: ms3(m.duration_ms),
                    },
                    status: outcome.status,
                })
            }
            Phase::Restore => return None,
        };
        wrap(end, record, PLATFORM_HINT)
    }

    /// The line as text, or (JSON log format, schema ≥ 2022-12-13) as the object it is. Only a
    /// line that starts like an object is parsed: text lines never pay for a parse attempt.
    fn log_record<'a>(&self, line: &'a str) -> LogLine<'a> {
        if self.ctx.json_logs
            && self.schema >= Schema::V2022_12_13
            && line.trim_start().starts_with('{')
        {
            if let Ok(object) = serde_json::from_str(line) {
                return LogLine::Json(object);
            }
        }
        LogLine::Text(line)
    }
}

/// Encodes `platform.logsDropped`.
pub fn dropped(d: DroppedRecords) -> Bytes {
    let record = Record::LogsDropped(record::LogsDropped {
        dropped_bytes: d.bytes,
        dropped_records: d.records,
        reason: &d.reason,
    });
    wrap(Utc::now(), record, PLATFORM_HINT).expect("logsDropped serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::time::Duration;

    fn t(ms: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2023-02-01T00:03:50Z")
            .unwrap()
            .with_timezone(&Utc)
            + chrono::Duration::milliseconds(ms)
    }

    fn ctx(json_logs: bool) -> EncoderContext {
        EncoderContext {
            function_name: "fn1".into(),
            memory_size_mb: 128,
            instance_id: "fn1-128-abcd1234".into(),
            json_logs,
        }
    }

    fn enc(e: &Encoder, ev: &Event) -> Option<Value> {
        e.encode(ev).map(|b| serde_json::from_slice(&b).unwrap())
    }

    #[test]
    fn the_first_report_after_a_restore_carries_its_duration() {
        let m = ReportMetrics::new(Duration::from_micros(12_345), 0, 128);
        let report = |phase, trace: &str| Event::Report {
            phase,
            start: t(0),
            end: t(1),
            trace_id: trace.into(),
            status: Status::Success,
            error_type: None,
            metrics: m,
            pod_name: "p".into(),
        };
        let e = Encoder::new(Schema::V2025_01_29, ctx(false));
        enc(&e, &report(Phase::Init, "r0"));
        let v = enc(&e, &report(Phase::Restore, "r0")).unwrap();
        assert_eq!(v["type"], "platform.restoreReport");
        assert_eq!(v["record"]["metrics"], json!({"durationMs": 12.345}));
        let first = enc(&e, &report(Phase::Invoke, "r1")).unwrap();
        let metrics = &first["record"]["metrics"];
        assert_eq!(metrics["restoreDurationMs"], 12.345);
        assert_eq!(metrics["billedRestoreDurationMs"], 13);
        assert!(metrics.get("initDurationMs").is_none(), "{metrics}");
        let second = enc(&e, &report(Phase::Invoke, "r2")).unwrap();
        assert!(second["record"]["metrics"]
            .get("restoreDurationMs")
            .is_none());

        let old = Encoder::new(Schema::V2022_07_01, ctx(false));
        assert!(enc(&old, &report(Phase::Restore, "r0")).is_none());
        let first = enc(&old, &report(Phase::Invoke, "r1")).unwrap();
        assert!(first["record"]["metrics"]
            .get("restoreDurationMs")
            .is_none());
    }

    const RID: &str = "8476a536-e9f4-11e8-9739-2dfe598c3fcd";

    fn cold_start() -> Vec<Event> {
        let metrics = ReportMetrics::new(Duration::from_micros(10_600), 23 * 1024 * 1024 + 1, 128);
        vec![
            Event::Start {
                phase: Phase::Init,
                time: t(0),
                trace_id: RID.into(),
                trace: None,
            },
            Event::RuntimeDone {
                phase: Phase::Init,
                time: t(50),
                trace_id: RID.into(),
                status: Status::Success,
                error_type: None,
                spans: Vec::new(),
                produced_bytes: None,
            },
            Event::ExtensionState {
                time: t(51),
                name: "ext".into(),
                state: "Ready".into(),
                events: vec!["INVOKE".into(), "SHUTDOWN".into()],
                error_type: None,
            },
            Event::Report {
                phase: Phase::Init,
                start: t(0),
                end: t(52),
                trace_id: RID.into(),
                status: Status::Success,
                error_type: None,
                metrics: ReportMetrics::new(Duration::from_micros(52_123), 0, 128),
                pod_name: "p".into(),
            },
            Event::Start {
                phase: Phase::Invoke,
                time: t(100),
                trace_id: RID.into(),
                trace: None,
            },
            Event::Function {
                time: t(101),
                line: "hello".into(),
            },
            Event::RuntimeDone {
                phase: Phase::Invoke,
                time: t(111),
                trace_id: RID.into(),
                status: Status::Success,
                error_type: None,
                spans: vec![Span {
                    name: "responseLatency",
                    start: t(100),
                    duration_ms: 10.5,
                }],
                produced_bytes: Some(5),
            },
            Event::Report {
                phase: Phase::Invoke,
                start: t(100),
                end: t(112),
                trace_id: RID.into(),
                status: Status::Success,
                error_type: None,
                metrics,
                pod_name: "p".into(),
            },
        ]
    }

    #[test]
    fn schema_2022_07_01_records_are_exact() {
        let e = Encoder::new(Schema::V2022_07_01, ctx(false));
        let got: Vec<Value> = cold_start().iter().filter_map(|ev| enc(&e, ev)).collect();
        let trace = "Root=1-63d9ac66-8476a536e9f411e897392dfe;Parent=97392dfe598c3fcd;Sampled=0";
        let tracing = json!({"type": "X-Amzn-Trace-Id", "value": trace});
        assert_eq!(
            got[0],
            json!({"time":"2023-02-01T00:03:50.000Z","type":"platform.initStart",
            "record":{"initializationType":"on-demand","phase":"init"}})
        );
        assert_eq!(
            got[1],
            json!({"time":"2023-02-01T00:03:50.050Z","type":"platform.initRuntimeDone",
            "record":{"initializationType":"on-demand","phase":"init","status":"success"}})
        );
        assert_eq!(
            got[2],
            json!({"time":"2023-02-01T00:03:50.051Z","type":"platform.extension",
            "record":{"name":"ext","state":"Ready","events":["INVOKE","SHUTDOWN"]}})
        );
        assert_eq!(
            got[3],
            json!({"time":"2023-02-01T00:03:50.052Z","type":"platform.initReport",
            "record":{"initializationType":"on-demand","phase":"init","metrics":{"durationMs":52.123}}})
        );
        assert_eq!(
            got[4],
            json!({"time":"2023-02-01T00:03:50.100Z","type":"platform.start",
            "record":{"requestId":RID,"version":"$LATEST","tracing":tracing}})
        );
        assert_eq!(
            got[5],
            json!({"time":"2023-02-01T00:03:50.101Z","type":"function","record":"hello"})
        );
        assert_eq!(
            got[6],
            json!({"time":"2023-02-01T00:03:50.111Z","type":"platform.runtimeDone",
            "record":{"requestId":RID,"status":"success","metrics":{"durationMs":11.0,"producedBytes":5},
                "spans":[{"name":"responseLatency","start":"2023-02-01T00:03:50.100Z","durationMs":10.5}],
                "tracing":tracing}})
        );
        assert_eq!(
            got[7],
            json!({"time":"2023-02-01T00:03:50.112Z","type":"platform.report",
            "record":{"requestId":RID,"status":"success","metrics":{"durationMs":10.6,"billedDurationMs":11,
                "memorySizeMB":128,"maxMemoryUsedMB":24,"initDurationMs":52.123},"tracing":tracing}})
        );
        let m = &got[7]["record"]["metrics"];
        for k in ["billedDurationMs", "memorySizeMB", "maxMemoryUsedMB"] {
            assert!(m[k].is_u64(), "{k} is an integer");
        }
        assert!(got[6]["record"]["metrics"]["producedBytes"].is_u64());
        // initDurationMs only on the first report after init.
        let again = enc(&e, &cold_start()[7]).unwrap();
        assert!(again["record"]["metrics"].get("initDurationMs").is_none());
    }

    #[test]
    fn newer_schemas_add_their_fields() {
        for schema in [Schema::V2022_12_13, Schema::V2025_01_29] {
            let e = Encoder::new(schema, ctx(false));
            let evs = cold_start();
            let start = enc(&e, &evs[0]).unwrap();
            assert_eq!(
                start["record"],
                json!({"initializationType":"on-demand","phase":"init",
                "functionName":"fn1","functionVersion":"$LATEST","instanceId":"fn1-128-abcd1234","instanceMaxMemory":128})
            );
            let report = enc(&e, &evs[3]).unwrap();
            assert_eq!(report["record"]["status"], "success");
        }
    }

    /// The exact bytes of a cold start, per schema: the typed records must write what the
    /// `serde_json::Value` encoder they replaced wrote (keys in alphabetical order, integers as
    /// integers), so subscribers that compare or log raw bytes see no change.
    #[test]
    fn cold_start_bytes_are_exact() {
        const TRACING: &str = r#""tracing":{"type":"X-Amzn-Trace-Id","value":"Root=1-63d9ac66-8476a536e9f411e897392dfe;Parent=97392dfe598c3fcd;Sampled=0"}"#;
        let shared = |init_start: &str, init_report_status: &str| {
            [
                format!(r#"{{"record":{init_start},"time":"2023-02-01T00:03:50.000Z","type":"platform.initStart"}}"#),
                r#"{"record":{"initializationType":"on-demand","phase":"init","status":"success"},"time":"2023-02-01T00:03:50.050Z","type":"platform.initRuntimeDone"}"#.to_string(),
                r#"{"record":{"events":["INVOKE","SHUTDOWN"],"name":"ext","state":"Ready"},"time":"2023-02-01T00:03:50.051Z","type":"platform.extension"}"#.to_string(),
                format!(r#"{{"record":{{"initializationType":"on-demand","metrics":{{"durationMs":52.123}},"phase":"init"{init_report_status}}},"time":"2023-02-01T00:03:50.052Z","type":"platform.initReport"}}"#),
                format!(r#"{{"record":{{"requestId":"{RID}",{TRACING},"version":"$LATEST"}},"time":"2023-02-01T00:03:50.100Z","type":"platform.start"}}"#),
                r#"{"record":"hello","time":"2023-02-01T00:03:50.101Z","type":"function"}"#.to_string(),
                format!(r#"{{"record":{{"metrics":{{"durationMs":11.0,"producedBytes":5}},"requestId":"{RID}","spans":[{{"durationMs":10.5,"name":"responseLatency","start":"2023-02-01T00:03:50.100Z"}}],"status":"success",{TRACING}}},"time":"2023-02-01T00:03:50.111Z","type":"platform.runtimeDone"}}"#),
                format!(r#"{{"record":{{"metrics":{{"billedDurationMs":11,"durationMs":10.6,"initDurationMs":52.123,"maxMemoryUsedMB":24,"memorySizeMB":128}},"requestId":"{RID}","status":"success",{TRACING}}},"time":"2023-02-01T00:03:50.112Z","type":"platform.report"}}"#),
            ]
        };
        let old = shared(r#"{"initializationType":"on-demand","phase":"init"}"#, "");
        let newer = shared(
            r#"{"functionName":"fn1","functionVersion":"$LATEST","initializationType":"on-demand","instanceId":"fn1-128-abcd1234","instanceMaxMemory":128,"phase":"init"}"#,
            r#","status":"success""#,
        );
        for (schema, want) in [
            (Schema::V2022_07_01, &old),
            (Schema::V2022_12_13, &newer),
            (Schema::V2025_01_29, &newer),
        ] {
            let e = Encoder::new(schema, ctx(false));
            let got: Vec<String> = cold_start()
                .iter()
                .filter_map(|ev| e.encode(ev))
                .map(|b| String::from_utf8(b.to_vec()).unwrap())
                .collect();
            assert_eq!(&got[..], &want[..], "{schema:?}");
        }
    }

    #[test]
    fn errors_and_restore_events() {
        let e = Encoder::new(Schema::V2022_07_01, ctx(false));
        let done = Event::RuntimeDone {
            phase: Phase::Invoke,
            time: t(5),
            trace_id: "r".into(),
            status: Status::Timeout,
            error_type: Some("Sandbox.Timedout".into()),
            spans: Vec::new(),
            produced_bytes: None,
        };
        let v = enc(&e, &done).unwrap();
        assert_eq!(
            v["record"],
            json!({"requestId":"r","status":"timeout","errorType":"Sandbox.Timedout"})
        );
        let restore = Event::Start {
            phase: Phase::Restore,
            time: t(0),
            trace_id: "r".into(),
            trace: None,
        };
        assert!(
            e.encode(&restore).is_none(),
            "2022-07-01 has no restore events"
        );
        let newer = Encoder::new(Schema::V2022_12_13, ctx(false));
        assert_eq!(
            enc(&newer, &restore).unwrap()["type"],
            "platform.restoreStart"
        );
    }

    #[test]
    fn json_log_lines_become_objects_for_newer_schemas_only() {
        let line = Event::Function {
            time: t(0),
            line: r#"{"level":"INFO","message":"hi"}"#.into(),
        };
        let old = Encoder::new(Schema::V2022_07_01, ctx(true));
        assert!(enc(&old, &line).unwrap()["record"].is_string());
        let new = Encoder::new(Schema::V2022_12_13, ctx(true));
        assert_eq!(enc(&new, &line).unwrap()["record"]["level"], "INFO");
        let text = Event::Extension {
            time: t(0),
            name: "x".into(),
            line: "plain".into(),
        };
        assert_eq!(
            enc(&new, &text).unwrap(),
            json!({"time":"2023-02-01T00:03:50.000Z","type":"extension","record":"plain"})
        );
        let off = Encoder::new(Schema::V2022_12_13, ctx(false));
        assert!(enc(&off, &line).unwrap()["record"].is_string());
    }

    #[test]
    fn subscription_and_drop_records() {
        let e = Encoder::new(Schema::V2022_07_01, ctx(false));
        let s = Event::Subscription {
            time: t(0),
            name: "ext".into(),
            state: "Subscribed".into(),
            types: vec!["platform".into()],
        };
        assert_eq!(
            enc(&e, &s).unwrap(),
            json!({"time":"2023-02-01T00:03:50.000Z","type":"platform.telemetrySubscription",
            "record":{"name":"ext","state":"Subscribed","types":["platform"]}})
        );
        let d: Value = serde_json::from_slice(&dropped(DroppedRecords {
            records: 3,
            bytes: 90,
            reason: "queue full".into(),
        }))
        .unwrap();
        assert_eq!(d["type"], "platform.logsDropped");
        assert_eq!(
            d["record"],
            json!({"reason":"queue full","droppedRecords":3,"droppedBytes":90})
        );
    }
}
