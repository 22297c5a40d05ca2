//! `examples/telemetry` and `examples/telemetry-python` run by the real `fnbox` binary: the
//! extension registers, gets every invocation push, subscribes, and the events file holds the
//! full stream of a cold start and two warm invokes, in order, with nothing unmarked in it.
//!
//! Each test runs a copy of the example in a temporary directory, with `user_data` added to its
//! `function.yaml` (extensions get the platform's environment plus `user_data`, not the test's):
//! `FNBOX_TELEMETRY_OUT` points at a file of the test's own, and for the Rust example
//! `FNBOX_EXTENSION_BIN` at the recorder, which cargo does not build for this package's tests
//! (it belongs to `fnbox-extension`), so `fnbox_testkit::recorder::recorder_bin` builds it.
//!
//! Both extensions listen on the fixed ports 127.0.0.1:8081 and :8082, so the tests hold
//! [`PORTS`] while they run, wait for the ports to be free (another test binary may be using
//! them) and retry a run whose extension could not bind them.

// These tests drive real processes from plain threads (no tokio runtime where std time
// is used): waiting on them with std time and sleeps is synchronous on purpose.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fnbox_testkit::recorder::{example_copy, recorder_bin, wait_for_free_ports};
use serde_json::Value;

const FNBOX: &str = env!("CARGO_BIN_EXE_fnbox");

/// Held by every test of this file: both examples bind 127.0.0.1:8081 and :8082.
static PORTS: Mutex<()> = Mutex::new(());

/// Longest a single `fnbox run` may take before the test kills it and fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
    took: Duration,
}

/// `fnbox run <package> --times <times>`, killed (and the test failed) after [`RUN_TIMEOUT`].
fn fnbox_run(package: &Path, times: u32) -> Run {
    let started = Instant::now();
    let mut child = Command::new(FNBOX)
        .args([
            "run",
            package.to_str().unwrap(),
            "--times",
            &times.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start fnbox");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "fnbox run did not finish within {RUN_TIMEOUT:?}; stderr so far:\n{}",
                err.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        ok: status.success(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
        took: started.elapsed(),
    }
}

/// Runs the package `times` times over, once the ports are free; a run whose extension lost
/// the race for a port to some other process is retried (a few times).
fn run_example(package: &Path, events_file: &Path, times: u32) -> Run {
    for attempt in 1..=5 {
        wait_for_free_ports();
        let _ = std::fs::remove_file(events_file);
        let run = fnbox_run(package, times);
        if !run.ok && run.stderr.contains("in use") && attempt < 5 {
            eprintln!(
                "attempt {attempt}: a port was taken, retrying:\n{}",
                run.stderr
            );
            continue;
        }
        eprintln!("fnbox run took {:?}", run.took);
        return run;
    }
    unreachable!()
}

/// The request ids of the results `fnbox run` printed, in order.
fn request_ids(run: &Run, func_message: &str) -> Vec<String> {
    run.stdout
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("result {line:?} is not JSON: {e}"));
            assert_eq!(v["message"], func_message, "{line}");
            v["requestId"].as_str().unwrap().to_string()
        })
        .collect()
}

fn read_events(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("events file {}: {e}", path.display()));
    text.lines()
        .map(|line| {
            serde_json::from_str::<Value>(line)
                .unwrap_or_else(|e| panic!("events file line {line:?} is not JSON: {e}"))
        })
        .collect()
}

fn name(e: &Value) -> &str {
    e["name"].as_str().unwrap_or("")
}

fn is_pod_name(s: &str, func_name: &str) -> bool {
    s.strip_prefix(&format!("{func_name}-128-"))
        .is_some_and(|hex| {
            hex.len() == 8 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        })
}

fn assert_metrics(e: &Value, func_name: &str) {
    let m = &e["metrics"];
    assert!(m["durationMs"].is_f64(), "durationMs is a float: {e}");
    assert!(m["durationMs"].as_f64().unwrap() > 0.0, "{e}");
    assert!(
        m["billingDurationMS"].is_u64(),
        "billingDurationMS is an integer: {e}"
    );
    assert!(
        m["billingDurationMS"].as_u64().unwrap() as f64 >= m["durationMs"].as_f64().unwrap(),
        "billing is the duration rounded up: {e}"
    );
    assert!(m["memoryUsed"].is_number(), "{e}");
    assert_eq!(m["memorySize"], 128, "{e}");
    let pod = m["podName"].as_str().unwrap_or_default();
    assert!(
        is_pod_name(pod, func_name),
        "podName {pod:?} is {func_name}-128-<8 hex>: {e}"
    );
}

/// The events file of a run with one cold start and `ids.len()` invocations: per trace id,
/// the platform events in lifecycle order, a `function` event per invocation, one invocation
/// push per invocation, the extension's `registered` line, and no unmarked line.
fn assert_full_stream(events: &[Value], ids: &[String], func_name: &str, extension: &str) {
    let all = events
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!ids.is_empty());
    for e in events {
        assert!(
            e.is_object() && !name(e).is_empty(),
            "every line is an event: {e}"
        );
        assert!(
            !e.to_string().contains("got an event"),
            "an unmarked line became telemetry: {e}"
        );
        if let Some(logs) = e["logs"].as_str() {
            let marker = if name(e) == "function" {
                "[Function]"
            } else {
                "[Extension]"
            };
            assert!(logs.contains(marker), "{e}");
        }
    }

    // Platform events: exactly the lifecycle, in order.
    let platform: Vec<&Value> = events
        .iter()
        .filter(|e| name(e).starts_with("platform."))
        .collect();
    let mut expected = vec![
        ("platform.initStart", &ids[0]),
        ("platform.initRuntimeDone", &ids[0]),
        ("platform.initReport", &ids[0]),
    ];
    for id in ids {
        expected.extend([
            ("platform.start", id),
            ("platform.runtimeDone", id),
            ("platform.report", id),
        ]);
    }
    let got: Vec<(&str, &str)> = platform
        .iter()
        .map(|e| (name(e), e["traceId"].as_str().unwrap_or("")))
        .collect();
    let want: Vec<(&str, &str)> = expected.iter().map(|(n, id)| (*n, id.as_str())).collect();
    assert_eq!(got, want, "platform events:\n{all}");
    for e in &platform {
        assert!(
            e["startTime"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{e}"
        );
        match name(e) {
            "platform.initRuntimeDone" | "platform.runtimeDone" => {
                assert_eq!(e["status"], "success", "{e}");
                assert!(e.get("errorType").is_none(), "{e}");
            }
            "platform.initReport" | "platform.report" => {
                assert_eq!(e["status"], "success", "{e}");
                assert!(e["endTime"].is_string(), "{e}");
                assert_metrics(e, func_name);
            }
            _ => {}
        }
    }
    let pods: Vec<&Value> = platform
        .iter()
        .filter(|e| name(e).ends_with("eport"))
        .map(|e| &e["metrics"]["podName"])
        .collect();
    assert!(
        pods.windows(2).all(|w| w[0] == w[1]),
        "one instance: {pods:?}"
    );

    // One `function` event per invocation, between its platform.start and platform.runtimeDone:
    // the bootstrap prints the line before it posts the response, so the line is in the pipe
    // before the platform learns the invocation is done.
    let position = |n: &str, id: &str| {
        events
            .iter()
            .position(|e| name(e) == n && e["traceId"] == id)
            .unwrap()
    };
    let functions: Vec<(usize, &Value)> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| name(e) == "function")
        .collect();
    assert_eq!(functions.len(), ids.len(), "function events:\n{all}");
    for (i, id) in ids.iter().enumerate() {
        let (at, e) = functions[i];
        assert_eq!(e["logs"], format!("[Function] handling {id}"), "{e}");
        assert!(e["startTime"].is_string(), "{e}");
        assert!(
            at > position("platform.start", id),
            "{e} before its platform.start:\n{all}"
        );
        assert!(
            at < position("platform.runtimeDone", id),
            "{e} after its platform.runtimeDone (the line was written before the response was \
             posted, but published after it):\n{all}"
        );
    }

    // One push per invocation, with its trace id and the function's URN.
    let pushes: Vec<&Value> = events
        .iter()
        .filter(|e| name(e) == "extension.invoke")
        .collect();
    let pushed: Vec<&str> = pushes
        .iter()
        .map(|e| e["traceId"].as_str().unwrap())
        .collect();
    assert_eq!(pushed, ids, "invocation pushes:\n{all}");
    let urn = format!("urn:fss:local:local:function:default:{func_name}:latest");
    for p in pushes {
        assert_eq!(p["invokedFunctionUrn"], urn.as_str(), "{p}");
    }

    // The extension's own marked line came back as an `extension` event.
    let registered = format!("[Extension] registered as {extension}");
    assert!(
        events
            .iter()
            .any(|e| name(e) == "extension" && e["logs"] == registered.as_str()),
        "no extension event {registered:?}:\n{all}"
    );
}

#[test]
fn telemetry_example_records_a_cold_start_and_two_warm_invokes_and_prints_a_summary() {
    let _ports = PORTS.lock().unwrap_or_else(|p| p.into_inner());
    let recorder = recorder_bin(FNBOX);
    let out_dir = tempfile::tempdir().unwrap();
    let events_file = out_dir.path().join("events.jsonl");
    let package = example_copy(
        "telemetry",
        &[
            ("FNBOX_EXTENSION_BIN", &recorder),
            ("FNBOX_TELEMETRY_OUT", &events_file),
        ],
    );

    let run = run_example(package.path(), &events_file, 3);
    assert!(run.ok, "fnbox run failed:\n{}", run.stderr);
    let ids = request_ids(&run, "hello from telemetry-demo");
    assert_eq!(ids.len(), 3, "stdout: {}", run.stdout);
    let events = read_events(&events_file);
    assert_full_stream(&events, &ids, "telemetry-demo", "extensionTelemetry.sh");

    // The summary the recorder prints on shutdown, echoed by fnbox with the extension's name.
    let stderr = &run.stderr;
    let telemetry = events
        .iter()
        .filter(|e| name(e) != "extension.invoke")
        .count();
    let header = format!(
        "[extensionTelemetry.sh] telemetry received by extensionTelemetry.sh: {telemetry} events (1 platform.initStart, "
    );
    let at = stderr
        .find(&header)
        .unwrap_or_else(|| panic!("no summary header {header:?} in:\n{stderr}"));
    // The header, then its indented lines (the extension's stdout, echoed from another pipe,
    // may land in between).
    let summary: Vec<&str> = stderr[at..]
        .lines()
        .filter_map(|l| l.strip_prefix("[extensionTelemetry.sh] "))
        .enumerate()
        .filter(|(i, l)| *i == 0 || l.starts_with("  "))
        .map(|(_, l)| l)
        .collect();
    assert!(
        summary[0].ends_with(", and 3 invocation pushes"),
        "{}",
        summary[0]
    );
    assert_eq!(
        summary[1],
        format!(
            "  every event, one JSON object per line, in {}",
            events_file.display()
        )
    );
    assert_eq!(
        summary.len(),
        2 + events.len(),
        "summary:\n{}",
        summary.join("\n")
    );
    for (line, e) in summary[2..].iter().zip(&events) {
        assert!(
            line.starts_with(&format!("  {:<27} ", name(e))),
            "summary line {line:?} for {e}"
        );
        assert!(!line.contains("[Extension]"), "{line}");
    }
    for id in &ids {
        let short = &id[..8];
        assert!(
            summary.iter().any(|l| l.starts_with("  platform.report ")
                && l.contains(&format!("trace={short}… status=success duration="))
                && l.contains("MB pod=telemetry-demo-128-")),
            "no report line for {id}:\n{}",
            summary.join("\n")
        );
        assert!(
            summary
                .iter()
                .any(|l| l.starts_with("  function ") && l.ends_with(&format!("\"handling {id}\""))),
            "no function line for {id}:\n{}",
            summary.join("\n")
        );
    }
}

#[test]
fn python_extension_from_the_seed_document_works_unchanged() {
    let _ports = PORTS.lock().unwrap_or_else(|p| p.into_inner());
    let python = Command::new("python3").arg("--version").output();
    assert!(
        python.is_ok_and(|o| o.status.success()),
        "python3 is needed to run examples/telemetry-python"
    );
    let out_dir = tempfile::tempdir().unwrap();
    let events_file = out_dir.path().join("events.jsonl");
    let package = example_copy("telemetry-python", &[("FNBOX_TELEMETRY_OUT", &events_file)]);

    let run = run_example(package.path(), &events_file, 3);
    assert!(run.ok, "fnbox run failed:\n{}", run.stderr);
    let ids = request_ids(&run, "hello from telemetry-demo");
    assert_eq!(ids.len(), 3, "stdout: {}", run.stdout);
    assert!(
        run.stderr
            .contains("[extensionPy.sh] [Extension] registered as extensionPy.sh"),
        "{}",
        run.stderr
    );
    let events = read_events(&events_file);
    assert_full_stream(&events, &ids, "telemetry-python-demo", "extensionPy.sh");
}
