//! Durable asynchronous invocations through the real `fnbox serve` (issue 7): accept then
//! complete (`fnbox invoke --async --wait`), retries with backoff until success and until giving
//! up, destination delivery, SIGKILL with 100+ invocations queued and running then a restart on
//! the same data dir (every accepted invocation succeeds, nothing of the killed run is left),
//! and an unwritable data dir.

// These tests drive real processes from plain threads (no tokio runtime where std time
// is used): waiting on them with std time and sleeps is synchronous on purpose.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fnbox_testkit::serve::{invoke, processes_in, Serve};
use fnbox_testkit::{http, process_alive, FixturePackage};
use nix::sys::signal::Signal;
use serde_json::Value;

const FNBOX: &str = env!("CARGO_BIN_EXE_fnbox");

fn fnbox() -> Command {
    Command::new(FNBOX)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(http::get(addr, path))
        .expect("GET")
        .status_text()
}

fn status_of(addr: SocketAddr, function: &str, id: &str) -> Value {
    let (code, body) = get(
        addr,
        &format!("/v2/p/fgs/functions/{function}/async-invocations/{id}"),
    );
    assert_eq!(code, 200, "{body}");
    json(&body)
}

/// Polls the status route until the invocation is done.
fn wait_done(addr: SocketAddr, function: &str, id: &str, within: Duration) -> Value {
    let end = Instant::now() + within;
    loop {
        let v = status_of(addr, function, id);
        if v["state"] == "succeeded" || v["state"] == "failed" {
            return v;
        }
        assert!(Instant::now() < end, "not done in {within:?}: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Echoes the event; `boom` fails.
const ECHO: &str = r#"
while next; do
  case "$BODY" in
    *boom*) fail "$REQUEST_ID" '{"errorType":"ValueError","errorMessage":"boom"}' ;;
    *) respond "$REQUEST_ID" "{\"echo\":$BODY,\"type\":\"$INVOKE_TYPE\"}" ;;
  esac
done
"#;

#[test]
fn accept_then_complete_with_invoke_async_wait() {
    let pkg = FixturePackage::bash("func_name: echo\ntimeout: 5\n", ECHO);
    let data = tempfile::tempdir().unwrap();
    let s = Serve::start(
        FNBOX,
        &[
            pkg.path().to_str().unwrap(),
            "--data-dir",
            data.path().to_str().unwrap(),
        ],
    );
    let startup = s.startup.join("\n");
    assert!(
        startup.contains(&format!(
            "async invocations: {}",
            data.path().join("async.sqlite3").display()
        )) && startup.contains("0 queued"),
        "{startup}"
    );
    let url = s.url();

    // --async --wait: the result on stdout, exit 0; the runtime saw an async invocation.
    let out = invoke(
        FNBOX,
        &url,
        &["echo", "--async", "--wait", "--event", r#"{"a":1}"#],
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let v = json(text(&out.stdout).trim());
    assert_eq!(
        (v["echo"]["a"].clone(), v["type"].clone()),
        (1.into(), "async".into())
    );

    // --async alone prints the request id; the status route knows it.
    let out = invoke(FNBOX, &url, &["echo", "--async", "--event", r#"{"b":2}"#]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_string();
    assert_eq!(id.len(), 36, "a uuid: {id}");
    let v = wait_done(s.addr, "echo", &id, Duration::from_secs(20));
    assert_eq!(v["state"], "succeeded", "{v}");
    assert_eq!(v["status"], "SUCCESS");
    assert_eq!(v["attempts"], 1);
    assert_eq!(json(v["result"].as_str().unwrap())["echo"]["b"], 2);
    // Another function's status route does not show it; an unknown id is FSS.0404.
    let (code, body) = get(
        s.addr,
        "/v2/p/fgs/functions/echo/async-invocations/no-such-id",
    );
    assert_eq!(
        (code, json(&body)["error_code"].clone()),
        (404, "FSS.0404".into())
    );

    // A handler error: FunctionGraph does not retry by default; exit 1 with the error.
    let out = invoke(
        FNBOX,
        &url,
        &["echo", "--async", "--wait", "--event", r#"{"boom":1}"#],
    );
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("ValueError"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("failed after 1 attempt(s)"),
        "{}",
        text(&out.stderr)
    );

    // Lambda's Event invocation, through the CLI.
    let out = invoke(
        FNBOX,
        &url,
        &[
            "echo",
            "--lambda",
            "--async",
            "--wait",
            "--event",
            r#"{"l":3}"#,
        ],
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert_eq!(json(text(&out.stdout).trim())["echo"]["l"], 3);

    // The listing (FunctionGraph's ListAsyncInvocations) has all four.
    let (code, body) = get(
        s.addr,
        "/v2/p/fgs/functions/echo/async-invocations?limit=10",
    );
    assert_eq!(code, 200, "{body}");
    let v = json(&body);
    assert_eq!(v["count"], 4, "{v}");
    let (code, body) = get(
        s.addr,
        "/v2/p/fgs/functions/echo/async-invocations?status=FAIL",
    );
    assert_eq!(
        (code, json(&body)["count"].clone()),
        (200, 1.into()),
        "{body}"
    );
    s.stop();

    // --wait without --async is refused.
    let out = invoke(FNBOX, &url, &["echo", "--wait"]);
    assert_eq!(out.status.code(), Some(2));
}

/// A minimal HTTP listener recording the bodies POSTed to it (destinations).
fn destination() -> (SocketAddr, mpsc::Receiver<(String, Value)>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { break };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if tx.send((path, v)).is_err() {
                break;
            }
        }
    });
    (addr, rx)
}

fn ms(v: &Value) -> i64 {
    chrono_ms(v.as_str().unwrap())
}

/// `2026-01-02T03:04:05.678Z` → ms of the day (enough for the gaps measured here).
fn chrono_ms(s: &str) -> i64 {
    let t = s.split('T').nth(1).unwrap().trim_end_matches('Z');
    let mut parts = t.split(':');
    let h: i64 = parts.next().unwrap().parse().unwrap();
    let m: i64 = parts.next().unwrap().parse().unwrap();
    let sec: f64 = parts.next().unwrap().parse().unwrap();
    ((h * 60 + m) * 60) * 1000 + (sec * 1000.0).round() as i64
}

#[test]
fn retries_with_backoff_until_success_and_until_giving_up_with_destinations() {
    let counters = tempfile::tempdir().unwrap();
    let (dest, notes) = destination();
    // Fails the first two attempts of each request, then succeeds.
    let flaky_body = format!(
        r#"
while next; do
  f="{dir}/$REQUEST_ID"
  n=$(( $(cat "$f" 2>/dev/null || echo 0) + 1 )); echo $n > "$f"
  if [ $n -lt 3 ]; then fail "$REQUEST_ID" '{{"errorType":"Flaky","errorMessage":"attempt '$n'"}}'
  else respond "$REQUEST_ID" '{{"attempt":'$n'}}'; fi
done
"#,
        dir = counters.path().display()
    );
    let flaky = FixturePackage::bash(
        &format!(
            "func_name: flaky\ntimeout: 5\nasync_invoke_config:\n  max_async_retry_attempts: 2\n  destination_config:\n    on_success: {{destination: HTTP, param: {{url: \"http://{dest}/ok\"}}}}\n"
        ),
        &flaky_body,
    );
    let hopeless = FixturePackage::bash(
        &format!(
            "func_name: hopeless\ntimeout: 5\nasync_invoke_config:\n  max_async_retry_attempts: 1\n  destination_config:\n    on_failure: {{destination: HTTP, param: '{{\"url\":\"http://{dest}/ko\"}}'}}\n"
        ),
        r#"while next; do fail "$REQUEST_ID" '{"errorType":"Nope","errorMessage":"never"}'; done"#,
    );
    let data = tempfile::tempdir().unwrap();
    // State shared across instances and restarts lives in a host directory the function writes
    // (as a platform function would use external storage): outside containment, which gives
    // each instance a private /tmp and no writable host path.
    let s = Serve::start_with_env(
        FNBOX,
        &[
            flaky.path().to_str().unwrap(),
            hopeless.path().to_str().unwrap(),
            "--data-dir",
            data.path().to_str().unwrap(),
            "--async-retry-delay",
            "300ms",
        ],
        &[("FNBOX_CONTAINMENT", "off")],
    );
    let url = s.url();
    let started = Instant::now();
    let out = invoke(
        FNBOX,
        &url,
        &["flaky", "--async", "--wait", "--event", r#"{"k":"v"}"#],
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert_eq!(json(text(&out.stdout).trim())["attempt"], 3);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "300 ms then 600 ms of backoff: {:?}",
        started.elapsed()
    );
    let id = text(&out.stderr)
        .split('\'')
        .nth(1)
        .expect("request id on stderr")
        .to_string();
    let v = status_of(s.addr, "flaky", &id);
    assert_eq!(v["attempts"], 3, "{v}");
    let h = v["history"].as_array().unwrap();
    let outcomes: Vec<&str> = h.iter().map(|a| a["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes.len(), 3, "{v}");
    assert_eq!(outcomes[2], "success", "{v}");
    let gap1 = ms(&h[1]["started_at"]) - ms(&h[0]["ended_at"]);
    let gap2 = ms(&h[2]["started_at"]) - ms(&h[1]["ended_at"]);
    assert!(
        gap1 >= 290 && gap2 >= 590,
        "backoff doubles: {gap1} ms, {gap2} ms: {v}"
    );

    let out = invoke(FNBOX, &url, &["hopeless", "--async", "--wait"]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("failed after 2 attempt(s)"),
        "{}",
        text(&out.stderr)
    );

    // Destinations: FunctionGraph's notification shape, once each.
    let mut got = HashMap::new();
    while got.len() < 2 {
        let (path, note) = notes
            .recv_timeout(Duration::from_secs(20))
            .expect("a notification");
        got.insert(path, note);
    }
    let ok = &got["/ok"];
    assert_eq!(ok["request_context"]["request_id"], id.as_str(), "{ok}");
    assert_eq!(
        ok["request_context"]["function_urn"],
        "urn:fss:local:local:function:default:flaky:latest"
    );
    assert_eq!(ok["request_payload"], r#"{"k":"v"}"#);
    let ko = &got["/ko"];
    assert!(
        ko["response_payload"]
            .as_str()
            .unwrap_or("")
            .contains("never"),
        "{ko}"
    );
    s.stop();
}

#[test]
fn sigkill_with_queued_and_running_invocations_then_restart_runs_every_one() {
    let runs = tempfile::tempdir().unwrap();
    let log = runs.path().join("runs.log");
    let body = format!(
        r#"
while next; do
  echo "$REQUEST_ID" >> "{log}"
  sleep 0.3
  respond "$REQUEST_ID" '{{"ok":true}}'
done
"#,
        log = log.display()
    );
    let pkg = FixturePackage::bash("func_name: sleepy\ntimeout: 10\nmax_instances: 4\n", &body);
    let data = tempfile::tempdir().unwrap();
    let args = [
        pkg.path().to_str().unwrap(),
        "--data-dir",
        data.path().to_str().unwrap(),
        "--async-retry-delay",
        "200ms",
    ];
    // State shared across instances and restarts lives in a host directory the function writes
    // (as a platform function would use external storage): outside containment, which gives
    // each instance a private /tmp and no writable host path.
    let s = Serve::start_with_env(FNBOX, &args, &[("FNBOX_CONTAINMENT", "off")]);
    let cgroup = s
        .startup
        .iter()
        .any(|l| l.contains("memory limits: cgroup"));
    let addr = s.addr;
    const N: usize = 120;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ids: Vec<String> = rt.block_on(async move {
        let mut ids = Vec::new();
        for i in 0..N {
            let (code, body) = http::post(
                addr,
                "/v2/p/fgs/functions/sleepy/invocations-async",
                format!(r#"{{"i":{i}}}"#),
            )
            .await
            .unwrap()
            .status_text();
            assert_eq!(code, 202, "{body}");
            ids.push(json(&body)["request_id"].as_str().unwrap().to_string());
        }
        ids
    });
    // Let some finish and four run.
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = get(
            addr,
            "/v2/p/fgs/functions/sleepy/async-invocations?status=SUCCESS",
        );
        let done = json(&body)["count"].as_u64().unwrap();
        if done >= 10 {
            break;
        }
        assert!(Instant::now() < end, "nothing ran: {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, body) = get(
        addr,
        "/v2/p/fgs/functions/sleepy/async-invocations?status=RUNNING",
    );
    let running = json(&body)["count"].as_u64().unwrap();
    let before = processes_in(pkg.path());
    assert!(!before.is_empty(), "runtimes are up");
    s.signal(Signal::SIGKILL);
    let (code, _) = s.wait(Duration::from_secs(10));
    assert_eq!(code, None, "killed by a signal");

    // Outside containment, as above: the run log is a host file.
    let s = Serve::start_with_env(FNBOX, &args, &[("FNBOX_CONTAINMENT", "off")]);
    let startup = s.startup.join("\n");
    assert!(startup.contains(" queued"), "{startup}");
    if cgroup {
        // cleanup_stale ran before serving: nothing of the killed run is left.
        for pid in &before {
            assert!(
                !process_alive(*pid),
                "process {pid} of the killed run is still alive"
            );
        }
    } else {
        eprintln!("RSS mode: processes of the killed run are not reaped by fnbox (no cgroup)");
    }
    let mut interrupted = 0;
    for id in &ids {
        let v = wait_done(s.addr, "sleepy", id, Duration::from_secs(90));
        assert_eq!(v["state"], "succeeded", "{v}");
        interrupted += v["interrupted_attempts"].as_u64().unwrap();
    }
    eprintln!(
        "crash test: {N} accepted, {running} running at the kill, {interrupted} interrupted attempt(s) re-run; restart: {}",
        s.startup.iter().find(|l| l.starts_with("async invocations:")).unwrap()
    );
    assert!(
        interrupted <= 4 && interrupted >= running.min(1),
        "only the attempts in flight at the kill ran again: {interrupted} (running then: {running})"
    );
    // Each invocation ran at most once per recorded attempt, and never after it was done.
    let text = std::fs::read_to_string(&log).unwrap();
    let mut count: HashMap<&str, u64> = HashMap::new();
    for line in text.lines() {
        *count.entry(line.trim()).or_default() += 1;
    }
    for id in &ids {
        let v = status_of(s.addr, "sleepy", id);
        let n = count.get(id.as_str()).copied().unwrap_or(0);
        let attempts = v["attempts"].as_u64().unwrap();
        assert!(
            n >= 1 && n <= attempts,
            "{id} ran {n} times for {attempts} attempts: {v}"
        );
    }
    s.stop();
    assert!(
        processes_in(pkg.path()).is_empty(),
        "nothing left after the stop"
    );
}

#[test]
fn unwritable_data_dir_exits_2_naming_the_path() {
    let pkg = FixturePackage::bash("func_name: echo\n", ECHO);
    let dir = tempfile::tempdir().unwrap();
    let file: PathBuf = dir.path().join("regular-file");
    std::fs::write(&file, "not a directory").unwrap();
    let bad = file.join("sub");
    let out = fnbox()
        .arg("serve")
        .arg(pkg.path())
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&bad)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "stdout: {} stderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let err = text(&out.stderr);
    assert!(
        err.starts_with("error: ") && err.contains(&bad.display().to_string()),
        "{err}"
    );
    assert!(processes_in(pkg.path()).is_empty());

    // A corrupt database: exit 2 naming the file, which is left untouched.
    let corrupt = dir.path().join("corrupt");
    std::fs::create_dir(&corrupt).unwrap();
    let db = corrupt.join("async.sqlite3");
    std::fs::write(&db, vec![0x5a; 8192]).unwrap();
    let out = fnbox()
        .arg("serve")
        .arg(pkg.path())
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&corrupt)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains(&db.display().to_string()) && err.contains("corrupt"),
        "{err}"
    );
    assert_eq!(std::fs::read(&db).unwrap(), vec![0x5a; 8192]);

    // A data dir in use by another fnbox serve.
    let shared = dir.path().join("shared");
    let first = Serve::start(
        FNBOX,
        &[
            pkg.path().to_str().unwrap(),
            "--data-dir",
            shared.to_str().unwrap(),
        ],
    );
    let out = fnbox()
        .arg("serve")
        .arg(pkg.path())
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&shared)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("in use by another fnbox process"),
        "{}",
        text(&out.stderr)
    );
    first.stop();
}
