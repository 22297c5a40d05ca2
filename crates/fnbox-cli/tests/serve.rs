//! `fnbox serve` and `fnbox invoke` as a user runs them: the real binary on an ephemeral port,
//! driven with `fnbox invoke` and raw HTTP, stopped with SIGTERM/SIGINT while invocations are in
//! flight (exit 0, no process left behind), and refusing bad setups with exit code 2.

// These tests drive real processes from plain threads (no tokio runtime where std time
// is used): waiting on them with std time and sleeps is synchronous on purpose.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fnbox_testkit::serve::{invoke, processes_in, Serve};
use fnbox_testkit::{http, process_alive, FixturePackage};
use nix::sys::signal::Signal;

const FNBOX: &str = env!("CARGO_BIN_EXE_fnbox");

fn fnbox() -> Command {
    Command::new(FNBOX)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Echoes the event with its pid; `boom` fails; `slow` takes 1.5 s.
const ECHO: &str = r#"
while next; do
  case "$BODY" in
    *boom*) fail "$REQUEST_ID" '{"errorType":"ValueError","errorMessage":"boom"}' ;;
    *slow*) sleep 1.5; respond "$REQUEST_ID" "{\"slow\":true,\"pid\":$$}" ;;
    *) echo "handling $REQUEST_ID"; sleep 0.1; respond "$REQUEST_ID" "{\"echo\":$BODY,\"pid\":$$}" ;;
  esac
done
"#;

fn echo_pkg(name: &str, extra: &str) -> FixturePackage {
    FixturePackage::bash(&format!("func_name: {name}\ntimeout: 5\n{extra}"), ECHO)
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[test]
fn serve_then_invoke_with_the_cli_and_raw_http() {
    let echo = echo_pkg("echo", "");
    let s = Serve::start(FNBOX, &[echo.path().to_str().unwrap()]);
    let startup = s.startup.join("\n");
    assert!(startup.contains("memory limits: "), "{startup}");
    assert!(
        startup.contains(
            "function echo: urn:fss:local:local:function:default:echo:latest, runtime Custom"
        ),
        "{startup}"
    );
    assert!(
        startup.contains("max_instances 10, concurrent_num 1, reserved 0"),
        "{startup}"
    );
    let url = s.url();

    // fnbox invoke, FunctionGraph path.
    let out = invoke(FNBOX, &url, &["echo", "--event", r#"{"a":1}"#]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert_eq!(json(text(&out.stdout).trim())["echo"]["a"], 1);
    assert!(
        text(&out.stderr).is_empty(),
        "quiet without --log-type: {}",
        text(&out.stderr)
    );

    // --log-type tail: the decoded log on stderr.
    let out = invoke(
        FNBOX,
        &url,
        &[
            "urn:fss:local:local:function:default:echo:latest",
            "--log-type",
            "tail",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let err = text(&out.stderr);
    assert!(
        err.contains("Start invoke request '") && err.contains("handling "),
        "{err}"
    );
    assert!(err.contains("Finish invoke request '"), "{err}");

    // --event-file and the Lambda path with its own tail.
    let event = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(event.path(), r#"{"from":"file"}"#).unwrap();
    let out = invoke(
        FNBOX,
        &url,
        &[
            "echo",
            "--lambda",
            "--log-type",
            "tail",
            "--event-file",
            event.path().to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert_eq!(json(text(&out.stdout).trim())["echo"]["from"], "file");
    assert!(
        text(&out.stderr).contains("REPORT RequestId: "),
        "{}",
        text(&out.stderr)
    );

    // A handler error: exit 1, the error body on stdout, a message on stderr.
    let out = invoke(FNBOX, &url, &["echo", "--event", r#"{"boom":1}"#]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(text(&out.stdout).trim())["errorType"], "ValueError");
    assert!(
        text(&out.stderr).contains("failed: ValueError: boom"),
        "{}",
        text(&out.stderr)
    );
    let out = invoke(
        FNBOX,
        &url,
        &["echo", "--lambda", "--event", r#"{"boom":1}"#],
    );
    assert_eq!(out.status.code(), Some(1));

    // Unknown function: exit 2 with the server's error.
    let out = invoke(FNBOX, &url, &["nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("404 Not Found: FSS.1051"),
        "{}",
        text(&out.stderr)
    );
    let out = invoke(FNBOX, &url, &["nope", "--lambda"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("ResourceNotFoundException"),
        "{}",
        text(&out.stderr)
    );

    // Raw HTTP, as curl would.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (status, body) = rt
        .block_on(http::post(
            s.addr,
            "/v2/p/fgs/functions/default:echo/invocations",
            r#"{"raw":true}"#,
        ))
        .unwrap()
        .status_text();
    assert_eq!(status, 200);
    assert_eq!(json(&body)["echo"]["raw"], true);
    let (status, body) = rt
        .block_on(http::post(
            s.addr,
            "/2015-03-31/functions/echo/invocations",
            "{}",
        ))
        .unwrap()
        .status_text();
    assert_eq!(
        (status, json(&body)["echo"].clone()),
        (200, serde_json::json!({}))
    );
    let (status, body) = rt
        .block_on(http::get(s.addr, "/health"))
        .unwrap()
        .status_text();
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));

    s.signal(Signal::SIGTERM);
    let (code, err) = s.wait(Duration::from_secs(15));
    assert_eq!(code, Some(0), "stderr: {err}");
    assert!(err.contains("SIGTERM: shutting down"), "{err}");
    assert!(
        processes_in(echo.path()).is_empty(),
        "nothing left in the fixture"
    );
}

#[test]
fn sigterm_with_invocations_in_flight_exits_0_and_leaves_no_process() {
    let a = echo_pkg("alpha", "reserved_instances: 1\n");
    let b = echo_pkg("beta", "");
    let s = Serve::start(
        FNBOX,
        &[a.path().to_str().unwrap(), b.path().to_str().unwrap()],
    );
    let addr = s.addr;
    let rt = tokio::runtime::Runtime::new().unwrap();

    let in_flight = rt.block_on(async move {
        // Three slow invocations at once (three instances of alpha), one of beta.
        let mut calls = Vec::new();
        for (name, n) in [("alpha", 3), ("beta", 1)] {
            for _ in 0..n {
                let path = format!("/v2/p/fgs/functions/{name}/invocations");
                calls.push(tokio::spawn(async move {
                    http::post(addr, &path, r#"{"slow":1}"#)
                        .await
                        .map(|r| r.status_text())
                }));
            }
        }
        // Wait until all four are running.
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let body = http::get(addr, "/instances").await.unwrap().text();
            let v = json(&body);
            let busy = v
                .as_array()
                .unwrap()
                .iter()
                .filter(|i| i["state"] == "busy")
                .count();
            if busy >= 4 {
                break;
            }
            assert!(Instant::now() < end, "invocations did not start: {v}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        calls
    });
    let mut before: Vec<i32> = processes_in(a.path());
    before.extend(processes_in(b.path()));
    assert!(
        before.len() >= 4,
        "3 + 1 busy runtimes (and their sleeps): {before:?}"
    );

    s.signal(Signal::SIGTERM);
    let results = rt.block_on(async move {
        let mut out = Vec::new();
        for c in in_flight {
            out.push(c.await.unwrap());
        }
        out
    });
    for r in &results {
        let (status, body) = r.as_ref().expect("in-flight request answered");
        assert_eq!(*status, 200, "{body}");
        assert_eq!(json(body)["slow"], true);
    }
    let (code, err) = s.wait(Duration::from_secs(20));
    assert_eq!(code, Some(0), "stderr: {err}");
    for pid in before {
        assert!(
            !process_alive(pid),
            "runtime {pid} left behind; stderr: {err}"
        );
    }
    assert!(processes_in(a.path()).is_empty() && processes_in(b.path()).is_empty());
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "listener closed"
    );
}

#[test]
fn config_file_token_and_sigint() {
    let echo = echo_pkg("echo", "");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fnbox.yaml");
    std::fs::write(
        &config,
        format!(
            "token: s3cret\nfunctions:\n  - path: {}\n    max_instances: 2\n    concurrent_num: 3\n",
            echo.path().display()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let s = Serve::start(
        FNBOX,
        &[
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
    );
    assert!(data.is_dir(), "--data-dir is created");
    let startup = s.startup.join("\n");
    assert!(
        startup.contains("max_instances 2, concurrent_num 3"),
        "{startup}"
    );
    assert!(startup.contains("X-Auth-Token"), "{startup}");
    let url = s.url();

    let out = invoke(FNBOX, &url, &["echo"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("FSS.0401"),
        "{}",
        text(&out.stderr)
    );
    let out = invoke(FNBOX, &url, &["echo", "--token", "s3cret"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (status, body) = rt
        .block_on(http::request(
            s.addr,
            "GET",
            "/functions",
            &[("X-Auth-Token", "s3cret")],
            http::Body::Empty,
        ))
        .unwrap()
        .status_text();
    assert_eq!(status, 200);
    assert_eq!(json(&body)[0]["max_instances"], 2);

    s.signal(Signal::SIGINT);
    let (code, err) = s.wait(Duration::from_secs(15));
    assert_eq!(code, Some(0), "stderr: {err}");
    assert!(processes_in(echo.path()).is_empty());
}

#[test]
fn invoke_without_a_server_exits_4_naming_the_url() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let out = invoke(FNBOX, &url, &["echo"]);
    assert_eq!(out.status.code(), Some(4));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("cannot reach fnbox serve at {url}")),
        "{err}"
    );
    let out = invoke(FNBOX, "https://127.0.0.1:1", &["echo"]);
    assert_eq!(out.status.code(), Some(2));
    let out = fnbox()
        .args(["invoke", "echo", "--event", "{}", "--event-file", "x"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "--event and --event-file conflict"
    );
}

fn serve_fails(args: &[&str]) -> String {
    let out = fnbox()
        .arg("serve")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run fnbox serve");
    assert_eq!(
        out.status.code(),
        Some(2),
        "stdout: {} stderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stderr)
}

#[test]
fn serve_refuses_bad_setups_with_exit_2() {
    let a = echo_pkg("same", "");
    let b = echo_pkg("same", "");
    let pa = a.path().to_str().unwrap();
    let pb = b.path().to_str().unwrap();

    let err = serve_fails(&[pa, "--listen", "0.0.0.0:8000"]);
    assert!(
        err.contains("--listen \"0.0.0.0:8000\": fnbox serve listens on loopback addresses only"),
        "{err}"
    );

    let err = serve_fails(&[]);
    assert!(err.contains("nothing to serve"), "{err}");

    let err = serve_fails(&[pa, pb, "--listen", "127.0.0.1:0"]);
    assert!(err.contains("function name 'same' is used twice"), "{err}");
    assert!(err.contains(pa) && err.contains(pb), "{err}");

    // Two functions with extensions on the host network would fight over ports 8081-8090
    // (isolated instances have ports of their own: see tests/network.rs).
    let e1 = echo_pkg("ext-one", "network: host\n");
    e1.write("extension/extensionA.sh", "sleep 100\n");
    let e2 = echo_pkg("ext-two", "network: host\n");
    e2.write("extension/extensionB.sh", "sleep 100\n");
    let err = serve_fails(&[
        e1.path().to_str().unwrap(),
        e2.path().to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(
        err.contains("functions 'ext-one' and 'ext-two' both need ports 8081-8090 (extensions)"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let config: PathBuf = dir.path().join("fnbox.yaml");
    std::fs::write(
        &config,
        format!("functions:\n  - path: {pa}\n    max_instancez: 2\n"),
    )
    .unwrap();
    let err = serve_fails(&["--config", config.to_str().unwrap()]);
    assert!(
        err.contains(&format!("{}: ", config.display())) && err.contains("max_instancez"),
        "{err}"
    );
    std::fs::write(
        &config,
        format!("functions:\n  - path: {pa}\n    reserved_instances: 20\n"),
    )
    .unwrap();
    let err = serve_fails(&["--config", config.to_str().unwrap()]);
    assert!(
        err.contains("functions[0]: function 'same': reserved_instances: 20 is out of range"),
        "{err}"
    );
    let err = serve_fails(&[
        "--config",
        dir.path().join("missing.yaml").to_str().unwrap(),
    ]);
    assert!(err.contains("missing.yaml: cannot read"), "{err}");
}
