//! The `fnbox-telemetry-recorder` binary end to end against a mock platform: it must register
//! under the launcher's file name, record events byte-for-byte as received, print its status
//! lines, and exit 0 on SIGTERM.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{eventually, post, MockPlatform, Script};
use serde_json::Value;

/// Two ports in FunctionGraph's 8081–8090 range that are free right now (the recorder, like the
/// platform, refuses others). Other tests on this machine use the range too, so while fewer
/// than two are free it waits for them (bounded), and fails saying so only if they stay taken.
async fn two_free_extension_ports() -> (u16, u16) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let free: Vec<u16> = (8081..=8090)
            .rev()
            .filter(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
            .take(2)
            .collect();
        if let [a, b] = free[..] {
            return (a, b);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "fewer than two of 127.0.0.1:8081..=8090 came free within 2 minutes; stop what \
             holds them (`ss -ltnp 'sport >= 8081 and sport <= 8090'`)"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn recorder_records_everything_and_stops_on_sigterm() {
    let (invoke_port, telemetry_port) = two_free_extension_ports().await;
    let platform = MockPlatform::start(Script::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_fnbox-telemetry-recorder"))
        .arg("/opt/function/code/extension/extensionTelemetry.sh")
        .env("EXTENSION_API_ADDR", platform.addr.to_string())
        .env("FNBOX_RECORDER_INVOKE_PORT", invoke_port.to_string())
        .env("FNBOX_RECORDER_TELEMETRY_PORT", telemetry_port.to_string())
        .env("FNBOX_TELEMETRY_OUT", &out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    eventually("subscription", || platform.seen().len() == 2).await;
    let seen = platform.seen();
    assert_eq!(
        seen[0].headers["FunctionGraph-Extension-Name"],
        "extensionTelemetry.sh"
    );
    assert_eq!(
        seen[0].headers["FunctionGraph-Extension-Address"],
        format!("127.0.0.1:{invoke_port}").as_str()
    );
    let sub: Value = serde_json::from_str(&seen[1].body).unwrap();
    assert_eq!(
        sub["types"],
        serde_json::json!(["platform", "function", "extension"])
    );
    assert_eq!(
        sub["subscriber"]["uri"],
        format!("http://127.0.0.1:{telemetry_port}")
    );

    let push = r#"{"traceId":"r1","invokedFunctionUrn":"urn:fss:local:local:function:default:telemetry-demo:latest"}"#;
    assert_eq!(
        post(
            &format!("http://127.0.0.1:{invoke_port}/extension/invoke"),
            push,
            &[]
        )
        .await
        .0,
        200
    );
    let batch = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/fnbox_batch.json"
    ))
    .unwrap();
    assert_eq!(
        post(&format!("http://127.0.0.1:{telemetry_port}/"), &batch, &[])
            .await
            .0,
        200
    );
    // Odd events are recorded as received, not normalised.
    let odd =
        r#"[{"name":"platform.RuntimeDone","startTime":"t ","traceId":"r1","status":" success "}]"#;
    assert_eq!(
        post(&format!("http://127.0.0.1:{telemetry_port}/"), odd, &[])
            .await
            .0,
        200
    );
    // Our own echo line coming back must not trigger another echo.
    let echo = r#"[{"name":"extension","startTime":"t","logs":"[Extension] received 15 events"}]"#;
    assert_eq!(
        post(&format!("http://127.0.0.1:{telemetry_port}/"), echo, &[])
            .await
            .0,
        200
    );

    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "recorder did not stop after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        exit.success(),
        "exit {exit:?}; stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "[Extension] registered as extensionTelemetry.sh",
            "[Extension] received 15 events",
            "[Extension] received 1 events"
        ]
    );

    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let batch: Vec<Value> = serde_json::from_str(&batch).unwrap();
    assert_eq!(lines.len(), 1 + batch.len() + 2);
    assert_eq!(
        lines[0],
        r#"{"name":"extension.invoke","traceId":"r1","invokedFunctionUrn":"urn:fss:local:local:function:default:telemetry-demo:latest"}"#
    );
    // Byte for byte as sent (the fixture's events are compact, `name` first): no re-ordering of
    // keys, no re-spelling of numbers such as `11.0`.
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/fnbox_batch.json"
    ))
    .unwrap();
    let sent: Vec<&str> = fixture
        .lines()
        .filter(|l| l.starts_with("  {"))
        .map(|l| l.trim().trim_end_matches(','))
        .collect();
    assert_eq!(sent.len(), batch.len());
    assert_eq!(&lines[1..=batch.len()], &sent[..]);
    assert_eq!(lines[batch.len() + 1], &odd[1..odd.len() - 1]);
    assert_eq!(
        serde_json::from_str::<Value>(lines[batch.len() + 2]).unwrap()["logs"],
        "[Extension] received 15 events"
    );
}

#[test]
fn recorder_without_launcher_argument_explains_itself() {
    let output = Command::new(env!("CARGO_BIN_EXE_fnbox-telemetry-recorder"))
        .env("EXTENSION_API_ADDR", "127.0.0.1:1")
        .env("FNBOX_TELEMETRY_OUT", "/dev/null")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.starts_with("[Extension] error: no launcher path"),
        "{stdout}"
    );
}
