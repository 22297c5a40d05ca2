//! Lambda's shutdown order through the real `fnbox run` (issue 19 item 3): the runtime gets
//! SIGTERM, the platform's final telemetry reaches the extension, and only then the extension
//! gets SHUTDOWN. The extension here behaves like AWS's published telemetry samples: it keeps
//! what its listener receives and forwards it when SHUTDOWN comes, then exits (it "forwards"
//! by printing it, which `fnbox run` echoes). Every event of `fnbox run --times 3` must be in
//! what it forwarded, including the runtime's last line, printed on SIGTERM.

// Drives a real process from a plain thread: waiting on it with std time is synchronous.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use fnbox_testkit::FixturePackage;
use serde_json::Value;

const FNBOX: &str = env!("CARGO_BIN_EXE_fnbox");

/// A Lambda runtime in bash (curl): echoes events; on SIGTERM it says so and exits.
const RUNTIME: &str = r#"#!/bin/bash
trap 'echo "runtime: SIGTERM received"; exit 0' TERM
API="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
h=$(mktemp)
while true; do
  body=$(curl -sS -D "$h" "$API/invocation/next")
  id=$(grep -i '^lambda-runtime-aws-request-id:' "$h" | cut -d' ' -f2 | tr -d '\r')
  echo "handling $id"
  curl -sS -X POST "$API/invocation/$id/response" -d "$body" >/dev/null
done
"#;

/// The extension: registers for INVOKE and SHUTDOWN, subscribes to `platform` and `function`
/// telemetry with Lambda's default buffering, keeps every record, and at SHUTDOWN prints
/// `FORWARDED <records as JSON>` and exits.
const EXTENSION: &str = r#"#!/usr/bin/env python3
import http.server, json, os, sys, threading, urllib.request
API = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"]
records = []
lock = threading.Lock()
class Listener(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        batch = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        with lock:
            records.extend(batch)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Listener)
threading.Thread(target=server.serve_forever, daemon=True).start()
def call(method, path, body=None, headers=None):
    req = urllib.request.Request(API + path, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(req) as r:
        return r.headers, r.read()
h, _ = call("POST", "/2020-01-01/extension/register", json.dumps({"events": ["INVOKE", "SHUTDOWN"]}).encode(),
            {"Lambda-Extension-Name": os.path.basename(sys.argv[0])})
ext = {"Lambda-Extension-Identifier": h["Lambda-Extension-Identifier"]}
sub = {"schemaVersion": "2022-12-13", "types": ["platform", "function"],
       "destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain:%d/" % server.server_address[1]}}
call("PUT", "/2022-07-01/telemetry", json.dumps(sub).encode(), dict(ext, **{"Content-Type": "application/json"}))
while True:
    _, body = call("GET", "/2020-01-01/extension/event/next", headers=ext)
    if json.loads(body)["eventType"] == "SHUTDOWN":
        with lock:
            print("FORWARDED " + json.dumps(records), flush=True)
        sys.exit(0)
"#;

fn require_tools() {
    for tool in ["curl", "python3"] {
        let ok = Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            ok,
            "{tool} not found on PATH: this test's fixture programs need it (apt-get install {tool})"
        );
    }
}

/// `fnbox run <package> --times 3`; the test fails if it takes over a minute.
fn run_three_times(pkg: &FixturePackage) -> (bool, String) {
    let child = Command::new(FNBOX)
        .args(["run", pkg.path().to_str().unwrap(), "--times", "3"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start fnbox");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(out) => out.expect("fnbox run"),
        Err(_) => {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            panic!("fnbox run did not finish within 60 s");
        }
    };
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn forwarded(stderr: &str) -> Vec<Value> {
    let line = stderr
        .lines()
        .find_map(|l| l.split_once("FORWARDED ").map(|(_, json)| json))
        .unwrap_or_else(|| {
            panic!("the extension forwarded nothing at SHUTDOWN; stderr:\n{stderr}")
        });
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

fn check(freeze: &str) {
    require_tools();
    let pkg = FixturePackage::empty(&format!(
        "func_name: order\ndialect: lambda\nhandler: app.main\ntimeout: 5\n{freeze}"
    ));
    pkg.write_exec("bootstrap", RUNTIME);
    pkg.write_exec("extensions/forwarder", EXTENSION);
    let (ok, stderr) = run_three_times(&pkg);
    assert!(ok, "fnbox run failed:\n{stderr}");
    let records = forwarded(&stderr);
    let mut types = BTreeMap::<String, usize>::new();
    for r in &records {
        *types
            .entry(r["type"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    for (kind, want) in [
        ("platform.initStart", 1),
        ("platform.initRuntimeDone", 1),
        ("platform.initReport", 1),
        ("platform.start", 3),
        ("platform.runtimeDone", 3),
        ("platform.report", 3),
    ] {
        assert_eq!(
            types.get(kind).copied().unwrap_or(0),
            want,
            "{kind} forwarded; all: {types:?}\nstderr:\n{stderr}"
        );
    }
    let function: Vec<&str> = records
        .iter()
        .filter(|r| r["type"] == "function")
        .filter_map(|r| r["record"].as_str())
        .collect();
    assert_eq!(
        function
            .iter()
            .filter(|l| l.starts_with("handling "))
            .count(),
        3,
        "every invocation's function line: {function:?}"
    );
    assert!(
        function
            .iter()
            .any(|l| l.contains("runtime: SIGTERM received")),
        "the runtime's SIGTERM line reached the extension before its SHUTDOWN: {function:?}"
    );
    for bad in ["given up", "dropped", "SIGKILL"] {
        assert!(!stderr.contains(bad), "fnbox reported '{bad}':\n{stderr}");
    }
}

#[test]
fn the_extension_gets_every_event_before_shutdown() {
    check("");
}

#[test]
fn the_extension_gets_every_event_before_shutdown_without_freeze() {
    check("freeze: false\n");
}
