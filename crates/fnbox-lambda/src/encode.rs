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
use fnbox_wire::lambda::{Tracing, FUNCTION_VERSION};
use serde_json::{json, Map, Value};

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
}

#[derive(Default)]
struct State {
    init_duration_ms: Option<f64>,
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

fn spans(spans: &[Span]) -> Value {
    Value::Array(
        spans
            .iter()
            .map(|s| json!({"name": s.name, "start": rfc3339(s.start), "durationMs": ms3(s.duration_ms)}))
            .collect(),
    )
}

fn tracing_for(request_id: &str, start: DateTime<Utc>) -> Value {
    serde_json::to_value(Tracing::amzn(trace_header(
        request_id,
        start.timestamp().max(0) as u64,
    )))
    .expect("tracing serializes")
}

fn status_fields(record: &mut Map<String, Value>, status: Status, error_type: &Option<String>) {
    record.insert("status".into(), status.as_str().into());
    if status != Status::Success {
        if let Some(t) = error_type {
            record.insert("errorType".into(), t.clone().into());
        }
    }
}

fn wrap(time: DateTime<Utc>, kind: &str, record: Value) -> Option<Bytes> {
    serde_json::to_vec(&json!({"time": rfc3339(time), "type": kind, "record": record}))
        .ok()
        .map(Bytes::from)
}

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
                let mut r = Map::new();
                r.insert("initializationType".into(), "on-demand".into());
                r.insert("phase".into(), "init".into());
                if newer {
                    r.insert("functionName".into(), self.ctx.function_name.clone().into());
                    r.insert("functionVersion".into(), FUNCTION_VERSION.into());
                    r.insert("instanceId".into(), self.ctx.instance_id.clone().into());
                    r.insert("instanceMaxMemory".into(), self.ctx.memory_size_mb.into());
                }
                wrap(*time, "platform.initStart", Value::Object(r))
            }
            Event::Start {
                phase: Phase::Invoke,
                time,
                trace_id,
            } => {
                self.state().starts.insert(trace_id.clone(), *time);
                wrap(
                    *time,
                    "platform.start",
                    json!({"requestId": trace_id, "version": FUNCTION_VERSION, "tracing": tracing_for(trace_id, *time)}),
                )
            }
            Event::Start {
                phase: Phase::Restore,
                time,
                ..
            } => newer.then(|| {
                wrap(
                    *time,
                    "platform.restoreStart",
                    json!({"functionName": self.ctx.function_name, "functionVersion": FUNCTION_VERSION,
                        "instanceId": self.ctx.instance_id, "instanceMaxMemory": self.ctx.memory_size_mb}),
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
                let mut r = Map::new();
                let kind = match phase {
                    Phase::Init => {
                        r.insert("initializationType".into(), "on-demand".into());
                        r.insert("phase".into(), "init".into());
                        "platform.initRuntimeDone"
                    }
                    Phase::Invoke => {
                        r.insert("requestId".into(), trace_id.clone().into());
                        "platform.runtimeDone"
                    }
                    Phase::Restore if newer => "platform.restoreRuntimeDone",
                    Phase::Restore => return None,
                };
                status_fields(&mut r, *status, error_type);
                if *phase == Phase::Invoke {
                    let start = self.state().starts.get(trace_id).copied();
                    if let Some(start) = start {
                        let mut m = Map::new();
                        let d = (*time - start).num_microseconds().unwrap_or(0).max(0) as f64 / 1000.0;
                        m.insert("durationMs".into(), ms3(d).into());
                        if let Some(b) = produced_bytes {
                            m.insert("producedBytes".into(), (*b).into());
                        }
                        r.insert("metrics".into(), Value::Object(m));
                    }
                    if !s.is_empty() {
                        r.insert("spans".into(), spans(s));
                    }
                    if let Some(start) = start {
                        r.insert("tracing".into(), tracing_for(trace_id, start));
                    }
                }
                wrap(*time, kind, Value::Object(r))
            }
            Event::Report {
                phase,
                end,
                trace_id,
                status,
                error_type,
                metrics,
                ..
            } => self.report(*phase, *end, trace_id, *status, error_type, metrics),
            Event::Function { time, line } => wrap(*time, "function", self.log_record(line)),
            Event::Extension { time, line, .. } => wrap(*time, "extension", self.log_record(line)),
            Event::ExtensionState {
                time,
                name,
                state,
                events,
                error_type,
            } => {
                let mut r = json!({"name": name, "state": state, "events": events});
                if let Some(t) = error_type {
                    r["errorType"] = t.clone().into();
                }
                wrap(*time, "platform.extension", r)
            }
            Event::Subscription {
                time,
                name,
                state,
                types,
            } => wrap(
                *time,
                "platform.telemetrySubscription",
                json!({"name": name, "state": state, "types": types}),
            ),
        }
    }

    fn report(
        &self,
        phase: Phase,
        end: DateTime<Utc>,
        request_id: &str,
        status: Status,
        error_type: &Option<String>,
        m: &ReportMetrics,
    ) -> Option<Bytes> {
        let newer = self.schema >= Schema::V2022_12_13;
        let mut r = Map::new();
        match phase {
            Phase::Init => {
                self.state().init_duration_ms = Some(ms3(m.duration_ms));
                r.insert("initializationType".into(), "on-demand".into());
                r.insert("phase".into(), "init".into());
                r.insert("metrics".into(), json!({"durationMs": ms3(m.duration_ms)}));
                if newer {
                    status_fields(&mut r, status, error_type);
                }
                wrap(end, "platform.initReport", Value::Object(r))
            }
            Phase::Invoke => {
                let (init, start) = {
                    let mut st = self.state();
                    (st.init_duration_ms.take(), st.starts.remove(request_id))
                };
                r.insert("requestId".into(), request_id.into());
                status_fields(&mut r, status, error_type);
                let mut metrics = json!({
                    "durationMs": ms3(m.duration_ms),
                    "billedDurationMs": m.billed_duration_ms,
                    "memorySizeMB": m.memory_size_mb,
                    "maxMemoryUsedMB": (m.memory_used_mb.ceil() as u64).max(1),
                });
                if let Some(init) = init {
                    metrics["initDurationMs"] = init.into();
                }
                r.insert("metrics".into(), metrics);
                if let Some(start) = start {
                    r.insert("tracing".into(), tracing_for(request_id, start));
                }
                wrap(end, "platform.report", Value::Object(r))
            }
            Phase::Restore if newer => {
                status_fields(&mut r, status, error_type);
                r.insert("metrics".into(), json!({"durationMs": ms3(m.duration_ms)}));
                wrap(end, "platform.restoreReport", Value::Object(r))
            }
            Phase::Restore => None,
        }
    }

    fn log_record(&self, line: &str) -> Value {
        if self.ctx.json_logs && self.schema >= Schema::V2022_12_13 {
            if let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(line) {
                return v;
            }
        }
        Value::String(line.to_string())
    }
}

/// Encodes `platform.logsDropped`.
pub fn dropped(d: DroppedRecords) -> Bytes {
    wrap(
        Utc::now(),
        "platform.logsDropped",
        json!({"reason": d.reason, "droppedRecords": d.records, "droppedBytes": d.bytes}),
    )
    .expect("logsDropped serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
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

    const RID: &str = "8476a536-e9f4-11e8-9739-2dfe598c3fcd";

    fn cold_start() -> Vec<Event> {
        let metrics = ReportMetrics::new(Duration::from_micros(10_600), 23 * 1024 * 1024 + 1, 128);
        vec![
            Event::Start {
                phase: Phase::Init,
                time: t(0),
                trace_id: RID.into(),
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
