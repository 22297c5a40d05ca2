//! A record's events as an extension of its function receives them: encoded by the function's
//! dialect (FunctionGraph's schema spelling; Lambda's Telemetry API schema 2022-12-13), only
//! when someone asks (the page, `/api/invocations`), never on the engine's path.

use fnbox_engine::telemetry::Event;
use fnbox_lambda::encode::{Encoder as LambdaEncoder, EncoderContext, Schema};

use super::model::Record;

/// How a function's records are encoded.
#[derive(Clone, Debug)]
pub enum RawEncoding {
    /// FunctionGraph's flat records.
    FunctionGraph,
    /// Lambda's `{time,type,record}` records; the function's name, memory and log format
    /// (the instance id is the record's pod).
    Lambda {
        /// Function name.
        function_name: String,
        /// MB.
        memory_size_mb: u32,
        /// `AWS_LAMBDA_LOG_FORMAT=JSON`.
        json_logs: bool,
    },
}

impl RawEncoding {
    /// The encoding of a package's dialect.
    pub fn of(package: &fnbox_package::Package) -> Self {
        let c = &package.config;
        match c.dialect {
            fnbox_package::Dialect::FunctionGraph => RawEncoding::FunctionGraph,
            fnbox_package::Dialect::Lambda => RawEncoding::Lambda {
                function_name: c.func_name.clone(),
                memory_size_mb: c.memory_size,
                json_logs: c
                    .user_data
                    .get("AWS_LAMBDA_LOG_FORMAT")
                    .is_some_and(|f| f.eq_ignore_ascii_case("json")),
            },
        }
    }

    /// The record's events from index `from` on, each one JSON record as text (events the
    /// dialect has no record for are skipped).
    pub fn encode(&self, r: &Record, from: usize) -> Vec<String> {
        let text = |b: bytes::Bytes| String::from_utf8_lossy(&b).into_owned();
        match self {
            RawEncoding::FunctionGraph => r
                .events
                .iter()
                .skip(from)
                .filter_map(|e| fnbox_fg::encode::encode(e, fnbox_fg::encode::Spelling::Schema))
                .map(text)
                .collect(),
            RawEncoding::Lambda {
                function_name,
                memory_size_mb,
                json_logs,
            } => {
                // The encoder keeps state across a phase (start time, init duration): feed it
                // what came before, keep what is asked for.
                let enc = LambdaEncoder::new(
                    Schema::V2022_12_13,
                    EncoderContext {
                        function_name: function_name.clone(),
                        memory_size_mb: *memory_size_mb,
                        instance_id: r.pod.to_string(),
                        json_logs: *json_logs,
                    },
                );
                if let Some(p) = &r.prime {
                    let _ = enc.encode(p);
                }
                let mut out = Vec::new();
                for (i, e) in r.events.iter().enumerate() {
                    if i < from && !is_platform(e) {
                        continue;
                    }
                    let b = enc.encode(e);
                    if i >= from {
                        out.extend(b.map(text));
                    }
                }
                out
            }
        }
    }
}

fn is_platform(e: &Event) -> bool {
    !matches!(e, Event::Function { .. } | Event::Extension { .. })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::{DateTime, Utc};
    use fnbox_engine::telemetry::{Phase, ReportMetrics, Status};

    use super::*;

    fn t(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_700_000_000_000 + ms).unwrap()
    }

    fn record() -> Record {
        let events = vec![
            Event::Start {
                phase: Phase::Invoke,
                time: t(0),
                trace_id: "r1".into(),
                trace: None,
            },
            Event::Function {
                time: t(1),
                line: "[Function] hi".into(),
            },
            Event::RuntimeDone {
                phase: Phase::Invoke,
                time: t(2),
                trace_id: "r1".into(),
                status: Status::Timeout,
                error_type: None,
                spans: vec![],
                produced_bytes: None,
            },
            Event::Report {
                phase: Phase::Invoke,
                start: t(0),
                end: t(3),
                trace_id: "r1".into(),
                status: Status::Timeout,
                error_type: None,
                metrics: ReportMetrics {
                    duration_ms: 3.0,
                    billed_duration_ms: 3,
                    memory_used_mb: 2.0,
                    memory_size_mb: 128,
                    ..Default::default()
                },
                pod_name: "f-128-0000aaaa".into(),
            },
        ];
        Record {
            id: 1,
            function: "f".into(),
            pod: "f-128-0000aaaa".into(),
            phase: Phase::Invoke,
            request_id: "r1".into(),
            start: t(0),
            runtime_done: Some(t(2)),
            end: Some(t(3)),
            status: Some(Status::Timeout),
            error_type: None,
            metrics: None,
            events: events.into_iter().map(Arc::new).collect(),
            events_dropped: 0,
            prime: None,
        }
    }

    fn names(raw: &[String], key: &str) -> Vec<String> {
        raw.iter()
            .map(|r| {
                let v: serde_json::Value = serde_json::from_str(r).unwrap();
                v[key].as_str().unwrap_or_default().to_string()
            })
            .collect()
    }

    #[test]
    fn functiongraph_records_are_flat_and_named() {
        let raw = RawEncoding::FunctionGraph.encode(&record(), 0);
        assert_eq!(
            names(&raw, "name"),
            [
                "platform.start",
                "function",
                "platform.runtimeDone",
                "platform.report"
            ]
        );
        assert_eq!(RawEncoding::FunctionGraph.encode(&record(), 2).len(), 2);
    }

    #[test]
    fn lambda_records_are_typed_and_a_delta_keeps_the_phase_state() {
        let enc = RawEncoding::Lambda {
            function_name: "f".into(),
            memory_size_mb: 128,
            json_logs: false,
        };
        let all = enc.encode(&record(), 0);
        assert_eq!(
            names(&all, "type"),
            [
                "platform.start",
                "function",
                "platform.runtimeDone",
                "platform.report"
            ]
        );
        // Only the last two, encoded after the earlier platform events: the same text.
        let tail = enc.encode(&record(), 2);
        assert_eq!(tail, all[2..]);
    }
}
