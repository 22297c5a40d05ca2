//! OpenTelemetry export through the real `fnbox serve --otlp-endpoint`: a receiver built on
//! `opentelemetry-proto` decodes what fnbox sends and the spans, metrics and log records are
//! checked against the invocations made (a cold start, warm calls, a handler error, a
//! timeout, one under a caller's `traceparent`). Also `GET /metrics`, and bad settings.

use std::collections::HashMap;
use std::time::Duration;

use fnbox_testkit::otlp::proto::metrics::v1::metric::Data;
use fnbox_testkit::otlp::{attr, hex, string_attr, Receiver};
use fnbox_testkit::serve::Serve;
use fnbox_testkit::{http, FixturePackage};

const FNBOX: &str = env!("CARGO_BIN_EXE_fnbox");

/// Prints a `[Function]` line (with the trace context it got) and a plain line; `boom` fails,
/// `hang` overruns the 3 s timeout.
const TRACED: &str = r#"
while next; do
  echo "[Function] handling $REQUEST_ID under $TRACE_ID"
  echo "plain output of $REQUEST_ID"
  case "$BODY" in
    *boom*) fail "$REQUEST_ID" '{"errorType":"ValueError","errorMessage":"boom"}' ;;
    *hang*) sleep 10 ;;
    *) respond "$REQUEST_ID" '{"ok":true}' ;;
  esac
done
"#;

const PARENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN: &str = "00f067aa0ba902b7";

async fn invoke(url: &str, body: &str, headers: &[(&str, &str)]) -> String {
    let r = http::send(
        "POST",
        &format!("{url}/v2/local/fgs/functions/traced/invocations"),
        headers,
        body.to_string(),
        Duration::from_secs(15),
    )
    .await
    .expect("invoke");
    r.header("X-Cff-Request-Id")
        .unwrap_or_else(|| panic!("no request id: {} {}", r.code(), r.text()))
        .to_string()
}

fn int(v: Option<fnbox_testkit::otlp::proto::common::v1::any_value::Value>) -> Option<i64> {
    match v? {
        fnbox_testkit::otlp::proto::common::v1::any_value::Value::IntValue(i) => Some(i),
        _ => None,
    }
}

fn boolean(v: Option<fnbox_testkit::otlp::proto::common::v1::any_value::Value>) -> Option<bool> {
    match v? {
        fnbox_testkit::otlp::proto::common::v1::any_value::Value::BoolValue(b) => Some(b),
        _ => None,
    }
}

fn counter(metrics: &[fnbox_testkit::otlp::proto::metrics::v1::Metric], name: &str) -> i64 {
    let m = metrics
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no metric {name}"));
    match &m.data {
        Some(Data::Sum(s)) => s
            .data_points
            .iter()
            .map(|p| match p.value {
                Some(fnbox_testkit::otlp::proto::metrics::v1::number_data_point::Value::AsInt(
                    i,
                )) => i,
                Some(
                    fnbox_testkit::otlp::proto::metrics::v1::number_data_point::Value::AsDouble(d),
                ) => d as i64,
                None => 0,
            })
            .sum(),
        other => panic!("{name} is not a sum: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_invocations_become_spans_metrics_and_correlated_logs() {
    let receiver = Receiver::start().await.unwrap();
    let pkg = FixturePackage::bash(
        // One instance: a call that arrives while the previous one is finishing waits for it
        // instead of cold-starting a second instance, so exactly the first call is cold.
        "func_name: traced\ntimeout: 3\nmemory_size: 256\nmax_instances: 1\n",
        TRACED,
    );
    let endpoint = receiver.endpoint();
    let path = pkg.path().to_str().unwrap().to_string();
    let s =
        tokio::task::block_in_place(|| Serve::start(FNBOX, &[&path, "--otlp-endpoint", &endpoint]));
    assert!(
        s.startup.iter().any(|l| l.contains("otlp: exporting")),
        "{:?}",
        s.startup
    );
    let url = s.url();
    let traceparent = format!("00-{PARENT_TRACE}-{PARENT_SPAN}-01");
    let mut ids = Vec::new();
    ids.push(invoke(&url, "{}", &[]).await); // cold
    ids.push(invoke(&url, "{}", &[("traceparent", traceparent.as_str())]).await);
    for _ in 0..6 {
        ids.push(invoke(&url, "{}", &[]).await);
    }
    let boom = invoke(&url, r#"{"boom":1}"#, &[]).await;
    ids.push(boom.clone());
    let hang = invoke(&url, r#"{"hang":1}"#, &[]).await;
    ids.push(hang.clone());
    // Prometheus sees the same counts before the stop (the exporters' task runs beside the
    // invocations: the last report may still be on its way when the caller is answered).
    let mut text = String::new();
    for _ in 0..100 {
        let m = http::get(s.addr, "/metrics").await.unwrap();
        assert_eq!(m.code(), 200);
        text = m.text();
        if text.contains(r#"faas_invoke_duration_seconds_count{faas_name="traced"} 10"#) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        text.contains(r#"faas_invocations_total{faas_name="traced"} 8"#),
        "{text}"
    );
    assert!(
        text.contains(r#"faas_errors_total{faas_name="traced"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"faas_timeouts_total{faas_name="traced"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"faas_invoke_duration_seconds_count{faas_name="traced"} 10"#),
        "{text}"
    );
    // The stop flushes every exporter.
    let (code, err) = tokio::task::block_in_place(|| s.terminate(Duration::from_secs(30)));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        receiver.undecodable().is_empty(),
        "{:?}",
        receiver.undecodable()
    );

    // Traces.
    let spans = receiver.spans();
    let invocations: HashMap<String, _> = spans
        .iter()
        .filter(|s| s.span.name == "traced")
        .map(|s| {
            (
                string_attr(&s.span.attributes, "faas.invocation_id").unwrap(),
                s.clone(),
            )
        })
        .collect();
    assert_eq!(invocations.len(), 10, "{spans:#?}");
    for id in &ids {
        let s = &invocations[id];
        assert_eq!(s.service, "traced");
        assert_eq!(
            string_attr(&s.resource, "cloud.provider").as_deref(),
            Some("huawei_cloud")
        );
        assert_eq!(
            int(attr(&s.resource, "faas.max_memory")),
            Some(256 * 1024 * 1024)
        );
        let a = &s.span.attributes;
        assert_eq!(string_attr(a, "faas.trigger").as_deref(), Some("http"));
        assert_eq!(string_attr(a, "faas.name").as_deref(), Some("traced"));
        assert_eq!(string_attr(a, "faas.version").as_deref(), Some("latest"));
        assert!(string_attr(a, "faas.instance")
            .unwrap()
            .starts_with("traced-256-"));
        assert_eq!(
            boolean(attr(a, "faas.coldstart")),
            Some(id == &ids[0]),
            "{id} of {ids:?}: {:?}",
            ids.iter()
                .map(|i| boolean(attr(&invocations[i].span.attributes, "faas.coldstart")))
                .collect::<Vec<_>>()
        );
        assert_eq!(s.span.kind, 2, "SERVER");
    }
    let status = |id: &str| string_attr(&invocations[id].span.attributes, "fnbox.status").unwrap();
    assert_eq!(status(&boom), "error");
    assert_eq!(status(&hang), "timeout");
    assert_eq!(
        invocations[&boom].span.status.as_ref().map(|s| s.code),
        Some(2),
        "ERROR"
    );
    assert_eq!(
        string_attr(&invocations[&boom].span.attributes, "error.type").as_deref(),
        Some("ValueError")
    );
    // The caller's traceparent is the parent.
    let under = &invocations[&ids[1]].span;
    assert_eq!(hex(&under.trace_id), PARENT_TRACE);
    assert_eq!(hex(&under.parent_span_id), PARENT_SPAN);
    assert!(invocations[&ids[0]].span.parent_span_id.is_empty());
    // One init span, child of the cold invocation.
    let inits: Vec<_> = spans
        .iter()
        .filter(|s| s.span.name == "init traced")
        .collect();
    assert_eq!(inits.len(), 1, "{spans:#?}");
    let cold = &invocations[&ids[0]].span;
    assert_eq!(inits[0].span.parent_span_id, cold.span_id);
    assert_eq!(inits[0].span.trace_id, cold.trace_id);
    // The extensions' part after the runtime answered: a child of each invocation.
    for id in &ids {
        let inv = &invocations[id].span;
        assert_eq!(
            spans
                .iter()
                .filter(|s| s.span.name == "extensions" && s.span.parent_span_id == inv.span_id)
                .count(),
            1,
            "{id}"
        );
    }

    // Metrics: counts and sums match the invocations.
    let metrics = receiver.metrics();
    assert_eq!(counter(&metrics, "faas.invocations"), 8);
    assert_eq!(counter(&metrics, "faas.errors"), 1);
    assert_eq!(counter(&metrics, "faas.timeouts"), 1);
    assert_eq!(counter(&metrics, "faas.coldstarts"), 1);
    let duration = metrics
        .iter()
        .find(|m| m.name == "faas.invoke_duration")
        .expect("faas.invoke_duration");
    assert_eq!(duration.unit, "s");
    let Some(Data::Histogram(h)) = &duration.data else {
        panic!("{duration:?}")
    };
    let count: u64 = h.data_points.iter().map(|p| p.count).sum();
    let sum: f64 = h.data_points.iter().filter_map(|p| p.sum).sum();
    assert_eq!(count, 10);
    // The timeout alone lasted its 3 s; the span durations add up to the same sum.
    let span_sum: f64 = invocations
        .values()
        .map(|s| match attr(&s.span.attributes, "fnbox.duration_ms") {
            Some(fnbox_testkit::otlp::proto::common::v1::any_value::Value::DoubleValue(d)) => d,
            _ => panic!("no fnbox.duration_ms"),
        })
        .sum::<f64>()
        / 1000.0;
    assert!(
        sum >= 3.0 && (sum - span_sum).abs() < 1e-6,
        "{sum} vs {span_sum}"
    );
    assert!(metrics.iter().any(|m| m.name == "faas.init_duration"));
    assert!(metrics
        .iter()
        .any(|m| m.name == "faas.mem_usage" && m.unit == "By"));
    assert!(metrics.iter().any(|m| m.name == "fnbox.instances"));
    // The function's async queue depth is a gauge of its own service (nothing queued here).
    let depth = metrics
        .iter()
        .find(|m| m.name == "fnbox.async.invocations")
        .expect("fnbox.async.invocations");
    let Some(Data::Gauge(g)) = &depth.data else {
        panic!("{depth:?}")
    };
    let mut states: Vec<_> = g
        .data_points
        .iter()
        .map(|p| string_attr(&p.attributes, "state").unwrap_or_default())
        .collect();
    states.sort();
    states.dedup();
    assert_eq!(states, ["queued", "running"]);

    // Logs: each invocation's lines carry its trace and span; the function saw that context.
    let logs = receiver.logs();
    for id in &ids {
        let inv = &invocations[id].span;
        let line = logs
            .iter()
            .find(|l| {
                string_attr(&l.attributes, "fnbox.log.source").as_deref() == Some("function")
                    && format!("{:?}", l.body).contains(&format!("handling {id}"))
            })
            .unwrap_or_else(|| panic!("no [Function] record of {id}: {logs:#?}"));
        assert_eq!(line.span_id, inv.span_id, "{id}");
        assert_eq!(line.trace_id, inv.trace_id, "{id}");
        let seen = format!("under 00-{}-{}-01", hex(&inv.trace_id), hex(&inv.span_id));
        assert!(
            format!("{:?}", line.body).contains(&seen),
            "{id}: {:?}",
            line.body
        );
        let plain = logs
            .iter()
            .find(|l| format!("{:?}", l.body).contains(&format!("plain output of {id}")))
            .unwrap_or_else(|| panic!("no plain output record of {id}"));
        assert_eq!(plain.span_id, inv.span_id, "{id}");
    }
}

#[test]
fn bad_otlp_settings_stop_start_up_naming_the_flag_or_key() {
    let pkg = FixturePackage::bash("func_name: f\n", TRACED);
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(FNBOX);
        cmd.args(args).env("FNBOX_DATA_DIR", dir.path());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let p = pkg.path().to_str().unwrap();
    let (code, err) = run(
        &[
            "serve",
            p,
            "--listen",
            "127.0.0.1:0",
            "--otlp-endpoint",
            "localhost",
        ],
        &[],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--otlp-endpoint: \"localhost\""), "{err}");
    let (code, err) = run(
        &["run", p, "--otlp-endpoint", "http://127.0.0.1:4318"],
        &[("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon")],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("OTEL_EXPORTER_OTLP_PROTOCOL: unknown OTLP protocol"),
        "{err}"
    );
    let cfg = dir.path().join("fnbox.yaml");
    std::fs::write(&cfg, format!("functions:\n  - path: {p}\notlp:\n  endpoint: http://127.0.0.1:4318\n  protocol: grpc\n")).unwrap();
    let (code, err) = run(
        &[
            "serve",
            "--config",
            cfg.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("otlp") && err.contains("otlp.protocol"),
        "{err}"
    );
}
