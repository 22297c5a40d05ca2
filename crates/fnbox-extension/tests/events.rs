//! Typed telemetry events against fixtures: the seed document's examples (stray spaces trimmed,
//! trailing comma removed, `podName` quoted) and a batch in fnbox's canonical encoding.

use fnbox_extension::{ReportMetrics, TelemetryEvent};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A check of a parsed event.
type Expect = fn(&TelemetryEvent) -> bool;

fn parse(v: &Value) -> TelemetryEvent {
    serde_json::from_value(v.clone()).expect("TelemetryEvent accepts any JSON")
}

/// What fnbox would emit for a seed example: the document's spellings replaced by the canonical ones.
fn canonical(mut v: Value) -> Value {
    let obj = v.as_object_mut().unwrap();
    if obj["name"] == "platform.RuntimeDone" {
        obj.insert("name".into(), "platform.runtimeDone".into());
    }
    if let Some(m) = obj.remove("reportMetrics") {
        obj.insert("metrics".into(), m);
    }
    v
}

#[test]
fn seed_examples_parse_into_typed_events_and_round_trip() {
    let cases: [(&str, Expect); 6] = [
        ("seed_init_start.json", |e| {
            matches!(e, TelemetryEvent::InitStart(_))
        }),
        (
            "seed_init_runtime_done.json",
            |e| matches!(e, TelemetryEvent::InitRuntimeDone(d) if d.status == "success"),
        ),
        ("seed_runtime_done_doc_spelling.json", |e| {
            matches!(e, TelemetryEvent::RuntimeDone(_))
        }),
        ("seed_init_report.json", |e| {
            matches!(e, TelemetryEvent::InitReport(_))
        }),
        (
            "seed_function.json",
            |e| matches!(e, TelemetryEvent::Function(l) if l.logs == "[Function]this is a simple log."),
        ),
        (
            "seed_extension.json",
            |e| matches!(e, TelemetryEvent::Extension(l) if l.logs == "[Extension]this is a simple log."),
        ),
    ];
    for (file, is_expected) in cases {
        let v = fixture(file);
        let e = parse(&v);
        assert!(is_expected(&e), "{file}: parsed as {e:?}");
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            canonical(v.clone()),
            "{file}: serialization"
        );
        // And the canonical form parses back to the same event.
        assert_eq!(parse(&e.to_value()), e, "{file}: reparse");
    }
}

#[test]
fn seed_report_metrics_have_documented_values() {
    let TelemetryEvent::InitReport(r) = parse(&fixture("seed_init_report.json")) else {
        panic!("not a report")
    };
    assert_eq!(r.trace_id, "69be64a7-0233-11e8-82e4-e5d37911193e");
    assert_eq!(r.end_time, "2023-02-02T00:03:50.000Z");
    assert_eq!(
        r.metrics,
        ReportMetrics {
            duration_ms: 10.6,
            billing_duration_ms: 11,
            memory_used: 23.4,
            memory_size: 128,
            pod_name: "pool22-300-128-fusion-64774779-4g77v".into(),
        }
    );
}

#[test]
fn seed_example_with_stray_spaces_is_kept_not_rejected() {
    let v = fixture("seed_verbatim_init_start.json");
    let e = parse(&v);
    assert_eq!(e, TelemetryEvent::Other(v.clone()));
    assert_eq!(e.name(), "platform.initStart ");
    assert_eq!(serde_json::to_value(&e).unwrap(), v);
}

#[test]
fn fnbox_batch_round_trips_exactly() {
    let v = fixture("fnbox_batch.json");
    let events: Vec<TelemetryEvent> = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(events.len(), 15);
    let others: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, TelemetryEvent::Other(_)))
        .collect();
    assert!(others.is_empty(), "unrecognised: {others:?}");
    let names: Vec<&str> = events.iter().map(TelemetryEvent::name).collect();
    let expected: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, expected);
    assert_eq!(serde_json::to_value(&events).unwrap(), v);

    match &events[9] {
        TelemetryEvent::RuntimeDone(d) => {
            assert_eq!(d.status, "timeout");
            assert_eq!(d.error_type.as_deref(), Some("Sandbox.Timedout"));
        }
        other => panic!("{other:?}"),
    }
    match &events[11] {
        TelemetryEvent::LogsDropped(d) => {
            assert_eq!((d.dropped_records, d.dropped_bytes), (12, 3456))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        events[0].trace_id(),
        Some("7c1f0d52-8a2e-4c0e-9a53-2f4d1b6e9a01")
    );
    assert_eq!(events[5].start_time(), Some("2026-05-01T10:00:00.050Z"));
}

#[test]
fn canonical_text_puts_name_first() {
    let v = fixture("fnbox_batch.json");
    let first = parse(&v[3]);
    let text = serde_json::to_string(&first).unwrap();
    assert!(
        text.starts_with(r#"{"name":"platform.initReport","#),
        "{text}"
    );
}

#[test]
fn one_odd_event_does_not_fail_the_batch() {
    let v = fixture("mixed_batch.json");
    let events: Vec<TelemetryEvent> = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(events.len(), 6);
    assert!(matches!(events[0], TelemetryEvent::Start(_)));
    assert_eq!(events[1], TelemetryEvent::Other(v[1].clone()));
    assert_eq!(events[1].name(), "platform.somethingNew");
    // A report without metrics is not a report.
    assert_eq!(events[2], TelemetryEvent::Other(v[2].clone()));
    assert_eq!(events[2].trace_id(), Some("r1"));
    assert_eq!(events[3].name(), "");
    assert_eq!(
        events[4],
        TelemetryEvent::Other(Value::String("not even an object".into()))
    );
    assert!(matches!(events[5], TelemetryEvent::Function(_)));
    // Others are written back untouched.
    assert_eq!(serde_json::to_value(&events).unwrap(), v);
}
