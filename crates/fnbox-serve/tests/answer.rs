//! The caller's answer does not wait for the extensions (CONTRACT §3 "Invoke" step 3), and it
//! carries what the engine measured. The extension's invoke listener is served by this test
//! and holds every push until the test lets it go, so "answered before the extension was done"
//! is checked by order of events, not by a clock. The log tail is asked for in two of the
//! three rounds: it too must come with the answer, not after the extensions.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::post;
use fnbox_engine::{Engine, EngineConfig};
use fnbox_limits::MemoryController;
use fnbox_serve::{FunctionSpec, Registry, Server};
use fnbox_testkit::{http, FixturePackage};
use serde_json::Value;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

/// The extension's invoke listener on 127.0.0.1:8081: reports each push as it arrives, then
/// answers it only when `release` is notified.
struct HeldPushes {
    arrived: mpsc::UnboundedReceiver<Instant>,
    release: Arc<Notify>,
    answered: Arc<Mutex<Vec<Instant>>>,
}

async fn hold_pushes() -> HeldPushes {
    let (tx, arrived) = mpsc::unbounded_channel();
    let release = Arc::new(Notify::new());
    let answered = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new().route(
        "/extension/invoke",
        post({
            let (release, answered) = (release.clone(), answered.clone());
            move || {
                let (tx, release, answered) = (tx.clone(), release.clone(), answered.clone());
                async move {
                    let _ = tx.send(Instant::now());
                    release.notified().await;
                    answered.lock().unwrap().push(Instant::now());
                    "ok"
                }
            }
        }),
    );
    // The extension registers 127.0.0.1:8081 (host network: fnbox's push reaches this test).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8081")
        .await
        .expect("port 8081 is free for the extension's listener (is another fnbox running?)");
    tokio::spawn(async move { axum::serve(listener, app).await });
    HeldPushes {
        arrived,
        release,
        answered,
    }
}

const EXTENSION: &str = r#"
register extensionSlow.sh 127.0.0.1:8081
while :; do sleep 0.2; done
"#;

const RUNTIME: &str = r#"
while next; do
  echo "[Function] answering $REQUEST_ID"
  respond "$REQUEST_ID" '{"ok":true}'
done"#;

async fn serve(pkg: &FixturePackage) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let mut config = EngineConfig::new(MemoryController::detect());
    config.host_path = std::env::var("PATH").ok();
    let engine = Engine::new(config);
    let registry = Registry::load(&engine, &[FunctionSpec::from_arg(pkg.path())]).unwrap();
    let server = Server::new(engine, registry, None);
    server.start().await.expect("pools start");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(listener, async move {
        let _ = stopped.await;
    }));
    (addr, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_caller_is_answered_while_the_extension_still_holds_its_push() {
    let mut pushes = hold_pushes().await;
    let pkg = FixturePackage::bash("func_name: slowext\n", RUNTIME);
    pkg.write(
        "extension/extensionSlow.sh",
        &format!("{}{EXTENSION}", fnbox_testkit::BASH_HTTP),
    );
    let (addr, stop) = serve(&pkg).await;
    let path = "/v2/local/fgs/functions/default:slowext/invocations";

    for round in 0..3 {
        let tail = round != 1;
        let headers: &[(&str, &str)] = if tail {
            &[("X-Cff-Log-Type", "tail")]
        } else {
            &[]
        };
        let sent = Instant::now();
        let resp = http::request(addr, "POST", path, headers, "{}")
            .await
            .expect("front door answers while the push is held");
        let answered_at = Instant::now();
        assert_eq!(resp.code(), 200, "{}", resp.text());
        assert_eq!(resp.json(), serde_json::json!({"ok": true}));
        // The engine does not wait for the extension, so on a loaded machine the bash
        // extension may forward its push after the caller was answered: wait for it here.
        let pushed_at = tokio::time::timeout(Duration::from_secs(30), pushes.arrived.recv())
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("round {round}: the push never reached the extension"));
        assert!(
            pushes.answered.lock().unwrap().len() == round,
            "round {round}: answered while the extension still held its push"
        );

        // The summary is the engine's own measurement at the runtime's answer.
        let summary: Value =
            serde_json::from_str(resp.header("X-Cff-Invoke-Summary").expect("summary header"))
                .expect("summary is JSON");
        let duration = summary["duration"].as_f64().unwrap();
        assert!(duration > 0.0, "{summary}");
        assert!(
            Duration::from_secs_f64(duration / 1000.0) <= answered_at - sent,
            "the engine's duration ({duration} ms) lies within the call: {summary}"
        );
        assert!(summary["memoryUsed"].as_f64().unwrap() > 0.0, "{summary}");
        assert_eq!(summary["memorySize"], 128);
        assert_eq!(
            resp.header("X-Cff-Billing-Duration"),
            Some(summary["billingDuration"].to_string().as_str())
        );
        if tail {
            let log = resp.header("X-Cff-Function-Log").expect("log tail");
            let log = String::from_utf8(
                base64::Engine::decode(&base64::engine::general_purpose::STANDARD, log).unwrap(),
            )
            .unwrap();
            assert!(log.contains("[Function] answering"), "{log}");
            assert!(log.contains("Finish invoke request"), "{log}");
        }
        eprintln!(
            "round {round}: answered {:?} after the push reached the extension",
            answered_at.saturating_duration_since(pushed_at)
        );

        // Now the extension answers; the instance takes the next invocation only after that.
        pushes.release.notify_one();
        for _ in 0..200 {
            if pushes.answered.lock().unwrap().len() == round + 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(pushes.answered.lock().unwrap().len(), round + 1);
    }
    let _ = stop.send(());
}
