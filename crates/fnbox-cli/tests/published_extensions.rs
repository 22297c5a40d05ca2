//! Published Lambda extensions (aws-samples/aws-lambda-extensions, vendored unmodified under
//! `conformance/published/`), shipped as layers and run from `layers:` by the real binary:
//! - Python Telemetry API extension (`fnbox run`): registers, subscribes, forwards every
//!   invocation's telemetry to `DISPATCH_POST_URI` (a receiver in this test), exits on SHUTDOWN;
//! - Python Logs API extension, a `.zip` layer (`fnbox serve`): subscribes to the Logs API and
//!   prints every batch it received during the next invocation (`BATCH RECEIVED: …`);
//! - Node.js and Go Extensions API extensions together (`fnbox run`): register, get every
//!   INVOKE and the SHUTDOWN, exit cleanly.
//!
//! The layers are built by `conformance/published/build-layers.sh` (pip, npm, go), which
//! `conformance/run.sh` runs before these tests with `FNBOX_PUBLISHED_LAYERS` set. The
//! packages use `network: host` so the extensions can reach this test's receiver; their
//! launchers `exec /opt/<name>/…` and their listeners bind `sandbox.localdomain` / `sandbox`,
//! so the instance needs its `/opt` mount and `/etc/hosts` (mount namespace, root).

// Real processes driven from plain threads: std time and sleeps are synchronous on purpose.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use fnbox_testkit::serve::Serve;
use fnbox_testkit::{http, Behaviour, FixturePackage, Listener};

const FNBOX: &str = env!("CARGO_BIN_EXE_fnbox");

/// A Lambda runtime in bash + curl: answers every event with `"ok"`.
const RUNTIME: &str = r#"#!/bin/bash
API="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
h=$(mktemp)
while true; do
  curl -sS -D "$h" "$API/invocation/next" >/dev/null
  id=$(grep -i '^lambda-runtime-aws-request-id:' "$h" | cut -d' ' -f2 | tr -d '\r')
  echo "handling $id"
  curl -sS -X POST "$API/invocation/$id/response" -d '"ok"' >/dev/null
done
"#;

/// The layers `build-layers.sh` made.
fn layers() -> PathBuf {
    let dir = std::env::var_os("FNBOX_PUBLISHED_LAYERS").unwrap_or_else(|| {
        panic!(
            "FNBOX_PUBLISHED_LAYERS is not set: run conformance/run.sh, or \
             conformance/published/build-layers.sh DIR and set FNBOX_PUBLISHED_LAYERS=DIR \
             (needs python3 + pip, npm, Debian golang-go, zip, curl)"
        )
    });
    PathBuf::from(dir)
}

fn package(name: &str, layers: &[&str], user_data: &str) -> FixturePackage {
    let dir = self::layers();
    let list: Vec<String> = layers
        .iter()
        .map(|l| dir.join(l).display().to_string())
        .collect();
    let pkg = FixturePackage::empty(&format!(
        "func_name: {name}\ndialect: lambda\nnetwork: host\ntimeout: 10\nlayers: [{}]\n{user_data}",
        list.join(", ")
    ));
    pkg.write_exec("bootstrap", RUNTIME);
    pkg
}

fn run(pkg: &FixturePackage, times: u32) -> String {
    let out = Command::new(FNBOX)
        .args([
            "run",
            pkg.path().to_str().unwrap(),
            "--times",
            &times.to_string(),
        ])
        .output()
        .expect("run fnbox");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "stderr: {stderr}");
    assert!(
        !stderr.contains("Extension.Crash") && !stderr.contains("init failed"),
        "{stderr}"
    );
    stderr
}

/// Request ids of the `START RequestId: <id> Version: $LATEST` lines.
fn started(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("START RequestId: "))
        .filter_map(|l| l.strip_suffix(" Version: $LATEST"))
        .map(str::to_owned)
        .collect()
}

#[test]
#[ignore = "run by conformance/run.sh, which builds the layers (FNBOX_PUBLISHED_LAYERS)"]
fn python_telemetry_api_extension_forwards_every_invocations_report() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let receiver = rt.block_on(Listener::start(0, Behaviour::Ok)).unwrap();
    let pkg = package(
        "pytelemetry",
        &["python-telemetry"],
        &format!(
            "user_data:\n  DISPATCH_POST_URI: \"http://127.0.0.1:{}/\"\n  DISPATCH_MIN_BATCH_SIZE: \"1\"\n",
            receiver.addr.port()
        ),
    );
    let stderr = run(&pkg, 3);
    assert!(
        stderr.contains(
            "EXTENSION\tName: python_example_telemetry_api_extension\tState: Ready\tEvents: [INVOKE, SHUTDOWN]"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("Handle Shutdown Event"), "{stderr}");
    let ids = started(&stderr);
    assert_eq!(ids.len(), 3, "{stderr}");
    let reported: BTreeSet<String> = receiver
        .events()
        .iter()
        .filter(|e| e["type"] == "platform.report")
        .map(|e| e["record"]["requestId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        reported,
        ids.into_iter().collect::<BTreeSet<_>>(),
        "every invocation's platform.report forwarded: {:?}",
        receiver.events()
    );
}

#[test]
#[ignore = "run by conformance/run.sh, which builds the layers (FNBOX_PUBLISHED_LAYERS)"]
fn python_logs_api_extension_from_a_zip_layer_receives_every_invocations_logs() {
    let pkg = package("pylogs", &["python-logs.zip"], "");
    let s = Serve::start(FNBOX, &[pkg.path().to_str().unwrap()]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut ids = Vec::new();
    // The extension prints what arrived since its last event when the next one comes; with
    // Lambda's default 1 s buffering, each invocation's logs arrive before the next one.
    for _ in 0..4 {
        let r = rt
            .block_on(http::post(
                s.addr,
                "/2015-03-31/functions/pylogs/invocations",
                "{}",
            ))
            .unwrap();
        assert_eq!(r.code(), 200, "{}", r.text());
        ids.push(r.header("x-amzn-requestid").unwrap().to_owned());
        std::thread::sleep(Duration::from_millis(1500));
    }
    let (code, stderr) = s.terminate(Duration::from_secs(30));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("Successfully subscribed to Logs API: b'\"OK\"'"),
        "{stderr}"
    );
    let batches: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("BATCH RECEIVED: "))
        .collect();
    for id in &ids[..3] {
        for kind in ["platform.start", "platform.end", "platform.report"] {
            assert!(
                batches.iter().any(|b| b.contains(&format!(
                    "'type': '{kind}', 'record': {{'requestId': '{id}'"
                ))),
                "{kind} of {id} in a batch: {batches:#?}"
            );
        }
        assert!(
            batches
                .iter()
                .any(|b| b.contains(&format!("'type': 'function', 'record': 'handling {id}'"))),
            "function log of {id}: {batches:#?}"
        );
    }
}

#[test]
#[ignore = "run by conformance/run.sh, which builds the layers (FNBOX_PUBLISHED_LAYERS)"]
fn nodejs_and_go_extensions_get_every_invoke_and_shut_down_cleanly() {
    let pkg = package("nodego", &["go", "nodejs"], "");
    let started_at = Instant::now();
    let stderr = run(&pkg, 3);
    for name in ["go-example-extension", "nodejs-example-extension"] {
        assert!(
            stderr.contains(&format!(
                "EXTENSION\tName: {name}\tState: Ready\tEvents: [INVOKE, SHUTDOWN]"
            )),
            "{stderr}"
        );
    }
    let ids = started(&stderr);
    assert_eq!(ids.len(), 3, "{stderr}");
    for id in &ids {
        assert!(
            stderr.contains(&format!("\"requestId\": \"{id}\"")),
            "the Go extension printed INVOKE {id}: {stderr}"
        );
    }
    let node_invokes = stderr
        .lines()
        .filter(|l| *l == "[nodejs-example-extension] invoke")
        .count();
    assert_eq!(node_invokes, 3, "{stderr}");
    assert!(
        stderr.contains("[go-example-extension] Received SHUTDOWN event"),
        "{stderr}"
    );
    assert!(stderr.contains("eventType: 'SHUTDOWN'"), "{stderr}");
    // Both exit on SHUTDOWN themselves: no 2 s SIGKILL grace is spent.
    assert!(started_at.elapsed() < Duration::from_secs(20), "{stderr}");
}
