//! FunctionGraph's telemetry encoding (CONTRACT §5): flat objects keyed by `name`, RFC 3339
//! UTC times with milliseconds. With `compat: doc` the seed document's literal spellings
//! (`platform.RuntimeDone`, `reportMetrics`) are used instead.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use fnbox_engine::telemetry::{rfc3339, Event, Phase, ReportMetrics};
use fnbox_telemetry::DroppedRecords;
use serde::Serialize;

/// Which spellings a subscriber receives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Spelling {
    /// `platform.runtimeDone`, `metrics` (the schema's names).
    #[default]
    Schema,
    /// `platform.RuntimeDone`, `reportMetrics` (the seed document's example).
    Doc,
}

#[derive(Serialize)]
struct Start<'a> {
    name: &'a str,
    #[serde(rename = "startTime")]
    start_time: String,
    #[serde(rename = "traceId")]
    trace_id: &'a str,
}

#[derive(Serialize)]
struct Done<'a> {
    name: &'a str,
    #[serde(rename = "startTime")]
    start_time: String,
    #[serde(rename = "traceId")]
    trace_id: &'a str,
    status: &'a str,
    #[serde(rename = "errorType", skip_serializing_if = "Option::is_none")]
    error_type: Option<&'a str>,
}

#[derive(Serialize)]
struct Metrics<'a> {
    #[serde(rename = "durationMs")]
    duration_ms: f64,
    #[serde(rename = "billingDurationMS")]
    billing_duration_ms: u64,
    #[serde(rename = "memoryUsed")]
    memory_used: f64,
    #[serde(rename = "memorySize")]
    memory_size: u32,
    #[serde(rename = "podName")]
    pod_name: &'a str,
}

#[derive(Serialize)]
struct Report<'a> {
    name: &'a str,
    #[serde(rename = "startTime")]
    start_time: String,
    #[serde(rename = "endTime")]
    end_time: String,
    #[serde(rename = "traceId")]
    trace_id: &'a str,
    status: &'a str,
    #[serde(rename = "errorType", skip_serializing_if = "Option::is_none")]
    error_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics: Option<Metrics<'a>>,
    #[serde(rename = "reportMetrics", skip_serializing_if = "Option::is_none")]
    report_metrics: Option<Metrics<'a>>,
}

/// A `function` / `extension` record, written by hand: it is the per-line hot path (a
/// function printing a million lines encodes a million of these), so it is built in one
/// buffer of exactly its size (which `Bytes` then takes without a second allocation), with the
/// timestamp text reused while the millisecond is the same.
fn log_record(name: &str, t: &DateTime<Utc>, line: &str) -> Option<Bytes> {
    const OPEN: &[u8] = b"{\"name\":\"";
    const TIME: &[u8] = b"\",\"startTime\":\"";
    const LOGS: &[u8] = b"\",\"logs\":";
    let plain = plain_json(line.as_bytes());
    with_time_text(t, |time| {
        // Nothing to escape (most lines): the text in quotes; else room for a few escapes.
        let logs = if plain {
            line.len() + 2
        } else {
            line.len() + line.len() / 8 + 8
        };
        let size = OPEN.len() + name.len() + TIME.len() + time.len() + LOGS.len() + logs + 1;
        let mut out = Vec::with_capacity(size);
        out.extend_from_slice(OPEN);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(TIME);
        out.extend_from_slice(time.as_bytes());
        out.extend_from_slice(LOGS);
        if plain {
            out.push(b'"');
            out.extend_from_slice(line.as_bytes());
            out.push(b'"');
        } else {
            serde_json::to_writer(&mut out, line).ok()?;
        }
        out.push(b'}');
        Some(Bytes::from(out))
    })
}

/// Whether `s` goes into a JSON string as it is: no control byte, quote or backslash. Eight
/// bytes at a time (a line is checked once per subscriber on the per-line hot path).
fn plain_json(s: &[u8]) -> bool {
    const fn splat(b: u8) -> u64 {
        0x0101_0101_0101_0101 * b as u64
    }
    const HIGH: u64 = splat(0x80);
    // Any byte of `x` below `n` (n ≤ 128; the classic "hasless" test, exact for "any").
    let has_less = |x: u64, n: u8| x.wrapping_sub(splat(n)) & !x & HIGH != 0;
    let mut words = s.chunks_exact(8);
    for w in &mut words {
        let x = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        if has_less(x, 0x20) || has_less(x ^ splat(b'"'), 1) || has_less(x ^ splat(b'\\'), 1) {
            return false;
        }
    }
    words
        .remainder()
        .iter()
        .all(|&b| b >= 0x20 && b != b'"' && b != b'\\')
}

/// Calls `f` with `t` as RFC 3339 text, formatting it only when its millisecond differs
/// from the previous call's on this thread (lines of a burst share their millisecond).
fn with_time_text<R>(t: &DateTime<Utc>, f: impl FnOnce(&str) -> R) -> R {
    use std::cell::RefCell;
    thread_local! {
        static LAST: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
    }
    let ms = t.timestamp_millis();
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.0 != ms {
            *last = (ms, rfc3339(*t));
        }
        f(&last.1)
    })
}

#[derive(Serialize)]
struct Dropped<'a> {
    name: &'a str,
    #[serde(rename = "startTime")]
    start_time: String,
    #[serde(rename = "droppedRecords")]
    dropped_records: u64,
    #[serde(rename = "droppedBytes")]
    dropped_bytes: u64,
    reason: &'a str,
}

/// Rounds to three decimals, as FunctionGraph's reports print figures.
fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn metrics<'a>(m: &ReportMetrics, pod_name: &'a str) -> Metrics<'a> {
    Metrics {
        duration_ms: round3(m.duration_ms),
        billing_duration_ms: m.billed_duration_ms,
        memory_used: round3(m.memory_used_mb),
        memory_size: m.memory_size_mb,
        pod_name,
    }
}

fn time(t: &DateTime<Utc>) -> String {
    rfc3339(*t)
}

/// Encodes one event as a FunctionGraph telemetry record.
pub fn encode(event: &Event, spelling: Spelling) -> Option<Bytes> {
    let json = match event {
        Event::Start {
            phase,
            time: t,
            trace_id,
            ..
        } => serde_json::to_vec(&Start {
            name: match phase {
                Phase::Init => "platform.initStart",
                Phase::Invoke => "platform.start",
                Phase::Restore => "platform.restoreStart",
            },
            start_time: time(t),
            trace_id,
        }),
        Event::RuntimeDone {
            phase,
            time: t,
            trace_id,
            status,
            error_type,
            ..
        } => serde_json::to_vec(&Done {
            name: match (phase, spelling) {
                (Phase::Init, _) => "platform.initRuntimeDone",
                (Phase::Invoke, Spelling::Schema) => "platform.runtimeDone",
                (Phase::Invoke, Spelling::Doc) => "platform.RuntimeDone",
                (Phase::Restore, _) => "platform.restoreRuntimeDone",
            },
            start_time: time(t),
            trace_id,
            status: status.as_str(),
            error_type: error_type.as_deref(),
        }),
        Event::Report {
            phase,
            start,
            end,
            trace_id,
            status,
            error_type,
            metrics: m,
            pod_name,
        } => {
            let m = metrics(m, pod_name);
            let (metrics, report_metrics) = match spelling {
                Spelling::Schema => (Some(m), None),
                Spelling::Doc => (None, Some(m)),
            };
            serde_json::to_vec(&Report {
                name: match phase {
                    Phase::Init => "platform.initReport",
                    Phase::Invoke => "platform.report",
                    Phase::Restore => "platform.restoreReport",
                },
                start_time: time(start),
                end_time: time(end),
                trace_id,
                status: status.as_str(),
                error_type: error_type.as_deref(),
                metrics,
                report_metrics,
            })
        }
        Event::Function { time: t, line } => return log_record("function", t, line),
        Event::Extension { time: t, line, .. } => return log_record("extension", t, line),
        // Lambda-only events: FunctionGraph has no such records.
        Event::ExtensionState { .. } | Event::Subscription { .. } => return None,
    };
    json.ok().map(Bytes::from)
}

/// Encodes the `platform.logsDropped` notice (an fnbox addition).
pub fn dropped(d: DroppedRecords) -> Bytes {
    Bytes::from(
        serde_json::to_vec(&Dropped {
            name: "platform.logsDropped",
            start_time: rfc3339(Utc::now()),
            dropped_records: d.records,
            dropped_bytes: d.bytes,
            reason: &d.reason,
        })
        .expect("logsDropped serializes"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use fnbox_engine::telemetry::Status;
    use std::time::Duration;

    fn t() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2023-02-01T00:03:50Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn json(e: &Event, s: Spelling) -> serde_json::Value {
        serde_json::from_slice(&encode(e, s).unwrap()).unwrap()
    }

    #[test]
    fn start_events_match_the_document() {
        let e = Event::Start {
            phase: Phase::Init,
            time: t(),
            trace_id: "69be64a7-0233-11e8-82e4-e5d37911193e".into(),
            trace: None,
        };
        assert_eq!(
            json(&e, Spelling::Schema),
            serde_json::json!({"name":"platform.initStart","startTime":"2023-02-01T00:03:50.000Z","traceId":"69be64a7-0233-11e8-82e4-e5d37911193e"})
        );
    }

    #[test]
    fn runtime_done_spellings() {
        let e = Event::RuntimeDone {
            phase: Phase::Invoke,
            time: t(),
            trace_id: "r".into(),
            status: Status::Timeout,
            error_type: Some("Sandbox.Timedout".into()),
            spans: Vec::new(),
            produced_bytes: None,
        };
        assert_eq!(
            json(&e, Spelling::Schema),
            serde_json::json!({"name":"platform.runtimeDone","startTime":"2023-02-01T00:03:50.000Z","traceId":"r","status":"timeout","errorType":"Sandbox.Timedout"})
        );
        assert_eq!(json(&e, Spelling::Doc)["name"], "platform.RuntimeDone");
        let ok = Event::RuntimeDone {
            phase: Phase::Init,
            time: t(),
            trace_id: "r".into(),
            status: Status::Success,
            error_type: None,
            spans: Vec::new(),
            produced_bytes: None,
        };
        assert!(json(&ok, Spelling::Schema).get("errorType").is_none());
    }

    #[test]
    fn report_metrics_have_the_documented_fields_and_types() {
        let e = Event::Report {
            phase: Phase::Invoke,
            start: t(),
            end: t() + chrono::Duration::milliseconds(11),
            trace_id: "r".into(),
            status: Status::Success,
            error_type: None,
            metrics: ReportMetrics::new(
                Duration::from_micros(10_600),
                23 * 1024 * 1024 + 419_430,
                128,
            ),
            pod_name: "hello-128-1a2b3c4d".into(),
        };
        let v = json(&e, Spelling::Schema);
        assert_eq!(v["name"], "platform.report");
        assert_eq!(v["endTime"], "2023-02-01T00:03:50.011Z");
        assert_eq!(v["status"], "success");
        let m = &v["metrics"];
        assert_eq!(m["durationMs"], 10.6);
        assert_eq!(m["billingDurationMS"], 11);
        assert!(m["billingDurationMS"].is_u64());
        assert_eq!(m["memoryUsed"], 23.4);
        assert_eq!(m["memorySize"], 128);
        assert_eq!(m["podName"], "hello-128-1a2b3c4d");
        let doc = json(&e, Spelling::Doc);
        assert!(doc.get("metrics").is_none());
        assert_eq!(doc["reportMetrics"]["memorySize"], 128);
    }

    #[test]
    fn log_records_are_exact_and_the_time_cache_follows_the_millisecond() {
        let line = |ms: i64, text: &str| {
            let e = Event::Function {
                time: t() + chrono::Duration::milliseconds(ms),
                line: text.into(),
            };
            String::from_utf8(encode(&e, Spelling::Schema).unwrap().to_vec()).unwrap()
        };
        assert_eq!(
            line(0, "[Function] a \"q\" \\ \u{1}"),
            r#"{"name":"function","startTime":"2023-02-01T00:03:50.000Z","logs":"[Function] a \"q\" \\ \u0001"}"#
        );
        assert!(line(1, "x").contains(r#""startTime":"2023-02-01T00:03:50.001Z""#));
        assert!(line(1, "y").contains(r#""startTime":"2023-02-01T00:03:50.001Z""#));
        assert!(line(0, "z").contains(r#""startTime":"2023-02-01T00:03:50.000Z""#));
    }

    #[test]
    fn plain_json_agrees_with_the_byte_by_byte_check() {
        let naive = |s: &[u8]| s.iter().all(|&b| b >= 0x20 && b != b'"' && b != b'\\');
        // Every byte value at every position of strings of 0..20 bytes, among plain and
        // non-ASCII neighbours (a borrow across bytes is what a word-wise test gets wrong).
        for len in 0..20 {
            for fill in [b'a', 0xC3, 0x7F, 0x20, 0xFF] {
                for pos in 0..len {
                    for b in 0..=255u8 {
                        let mut s = vec![fill; len];
                        s[pos] = b;
                        assert_eq!(plain_json(&s), naive(&s), "{s:?}");
                    }
                }
                assert_eq!(plain_json(&vec![fill; len]), naive(&vec![fill; len]));
            }
        }
    }

    #[test]
    fn log_records_decode_to_their_line() {
        for text in ["[Function] plain", "[Function] \"quoted\"", ""] {
            let e = Event::Function {
                time: t(),
                line: text.into(),
            };
            let b = encode(&e, Spelling::Schema).unwrap();
            let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
            assert_eq!(v["logs"], text);
        }
    }

    #[test]
    fn log_events_keep_the_marker() {
        let e = Event::Function {
            time: t(),
            line: "[Function]this is a simple log.".into(),
        };
        assert_eq!(
            json(&e, Spelling::Schema),
            serde_json::json!({"name":"function","startTime":"2023-02-01T00:03:50.000Z","logs":"[Function]this is a simple log."})
        );
        let e = Event::Extension {
            time: t(),
            name: "extensionA.sh".into(),
            line: "[Extension]x".into(),
        };
        assert_eq!(json(&e, Spelling::Schema)["name"], "extension");
    }

    #[test]
    fn logs_dropped_notice() {
        let v: serde_json::Value = serde_json::from_slice(&dropped(DroppedRecords {
            records: 5,
            bytes: 100,
            reason: "queue full".into(),
        }))
        .unwrap();
        assert_eq!(v["name"], "platform.logsDropped");
        assert_eq!(v["droppedRecords"], 5);
        assert_eq!(v["droppedBytes"], 100);
        assert_eq!(v["reason"], "queue full");
    }
}
