//! Freeze and thaw of idle Lambda instances (issue 19 item 4): an extension's background
//! thread does not advance while the instance is idle, and does during an invocation; with
//! `freeze: false` it runs all the time. Run in the detected mode (the cgroup freezer where
//! there is one) and in the SIGSTOP/SIGCONT fallback.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fnbox_engine::{Engine, EngineConfig, Function, InvokeRequest, InvokeResult};
use fnbox_limits::{FreezeController, MemoryController};
use fnbox_testkit::FixturePackage;

/// A Lambda runtime in bash (curl): echoes events.
const RUNTIME: &str = r#"#!/bin/bash
API="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
h=$(mktemp)
while true; do
  body=$(curl -sS -D "$h" "$API/invocation/next")
  id=$(grep -i '^lambda-runtime-aws-request-id:' "$h" | cut -d' ' -f2 | tr -d '\r')
  curl -sS -X POST "$API/invocation/$id/response" -d "$body" >/dev/null
done
"#;

/// A Lambda extension in Python whose background thread counts every 10 ms. On each INVOKE it
/// reads the counter, works for 300 ms, reads it again and prints `PROBE <before> <after>`
/// before asking for its next event.
const EXTENSION: &str = r#"#!/usr/bin/env python3
import json, os, sys, threading, time, urllib.request
API = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2020-01-01/extension"
count = 0
def tick():
    global count
    while True:
        time.sleep(0.01)
        count += 1
threading.Thread(target=tick, daemon=True).start()
req = urllib.request.Request(API + "/register", method="POST",
    data=json.dumps({"events": ["INVOKE", "SHUTDOWN"]}).encode(),
    headers={"Lambda-Extension-Name": os.path.basename(sys.argv[0])})
with urllib.request.urlopen(req) as r:
    ext_id = r.headers["Lambda-Extension-Identifier"]
while True:
    req = urllib.request.Request(API + "/event/next", headers={"Lambda-Extension-Identifier": ext_id})
    with urllib.request.urlopen(req) as r:
        ev = json.loads(r.read())
    if ev["eventType"] == "SHUTDOWN":
        sys.exit(0)
    before = count
    time.sleep(0.3)
    print(f"PROBE {before} {count}", flush=True)
"#;

fn require_tools() {
    for tool in ["curl", "python3"] {
        let ok = std::process::Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            ok,
            "{tool} not found on PATH: these tests' fixture programs need it (apt-get install {tool})"
        );
    }
}

/// Two invocations 1 s apart; returns the two probes `(before, after)`.
async fn probes(freeze_yaml: &str, controller: Option<FreezeController>) -> Vec<(u64, u64)> {
    require_tools();
    let pkg = FixturePackage::empty(&format!(
        "func_name: frozen\ndialect: lambda\nhandler: app.main\ntimeout: 5\n{freeze_yaml}"
    ));
    pkg.write_exec("bootstrap", RUNTIME);
    pkg.write_exec("extensions/counter", EXTENSION);
    let package = Arc::new(fnbox_package::load(pkg.path()).expect("package loads"));
    let mut config = EngineConfig::new(MemoryController::detect());
    config.host_path = std::env::var("PATH").ok();
    if let Some(c) = controller {
        config.freeze = Arc::new(c);
    }
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = lines.clone();
    config.echo = Some(Arc::new(
        move |_pod: &str, lines: &[fnbox_engine::instance::process::LogLine]| {
            for line in lines {
                if line.text.starts_with("PROBE ") {
                    seen.lock().unwrap().push(line.text.clone());
                }
            }
        },
    ));
    let f = Function::new(Engine::new(config), package, Arc::new(fnbox_lambda::Lambda))
        .expect("function");
    let inst = f.start_instance(None).await.expect("init");
    let freezes = !freeze_yaml.contains("false");
    assert_eq!(inst.is_frozen(), freezes, "frozen after init");
    for i in 0..2 {
        if i > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let out = inst.invoke(InvokeRequest::sync("{}")).await.unwrap();
        assert!(matches!(out.result, InvokeResult::Ok(_)), "{out:?}");
        assert_eq!(inst.is_frozen(), freezes, "frozen after invocation {i}");
    }
    inst.shutdown().await;
    let lines = lines.lock().unwrap().clone();
    assert_eq!(lines.len(), 2, "one probe per invocation: {lines:?}");
    eprintln!(
        "probes (freeze {}): {lines:?}",
        if freezes { "on" } else { "off" }
    );
    lines
        .iter()
        .map(|l| {
            let mut n = l
                .split_whitespace()
                .skip(1)
                .map(|n| n.parse::<u64>().unwrap());
            (n.next().unwrap(), n.next().unwrap())
        })
        .collect()
}

/// 300 ms of work is ~30 ticks; 1 s idle would be ~100.
fn assert_frozen_while_idle(p: &[(u64, u64)]) {
    assert!(
        p[0].1 - p[0].0 >= 10,
        "the thread advances during an invocation: {p:?}"
    );
    assert!(
        p[1].1 - p[1].0 >= 10,
        "the thread advances during an invocation: {p:?}"
    );
    assert!(
        p[1].0 - p[0].1 <= 15,
        "the thread did not advance while idle (1 s = ~100 ticks): {p:?}"
    );
}

#[tokio::test]
async fn an_idle_instance_is_frozen_in_the_detected_mode() {
    let p = probes("", None).await;
    assert_frozen_while_idle(&p);
}

#[tokio::test]
async fn an_idle_instance_is_frozen_with_signals() {
    let p = probes("", Some(FreezeController::signals("test: the fallback"))).await;
    assert_frozen_while_idle(&p);
}

#[tokio::test]
async fn freeze_false_keeps_the_instance_running() {
    let p = probes("freeze: false\n", None).await;
    assert!(
        p[1].0 - p[0].1 >= 50,
        "with freeze: false the thread runs while idle: {p:?}"
    );
}
