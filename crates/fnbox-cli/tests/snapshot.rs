//! `examples/python-snapshot` under `fnbox serve` (issue 18): concurrent requests grow the pool
//! by restores (forks of the initialized template, which are not fnbox's own children), and
//! nothing outlives a SIGKILLed fnbox: the template dies with fnbox (PR_SET_PDEATHSIG), its
//! forks with the template. Needs python3 (`.ci/run` installs it).

use std::path::Path;
use std::time::Duration;

use fnbox_testkit::serve::{processes_in, Serve};
use nix::sys::signal::Signal;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restored_instances_die_with_a_killed_fnbox() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/python-snapshot");
    let dir = tempfile::tempdir().unwrap();
    for f in ["function.yaml", "index.py"] {
        std::fs::copy(example.join(f), dir.path().join(f)).unwrap();
    }
    let pkg = dir.path().to_str().unwrap();
    let serve = Serve::start(env!("CARGO_BIN_EXE_fnbox"), &[pkg]);
    assert!(
        serve.startup.iter().any(|l| l
            .trim_start()
            .starts_with("restore: fork from an initialized template")),
        "{:?}",
        serve.startup
    );
    let path = "/v2/local/fgs/functions/python-snapshot/invocations";
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let addr = serve.addr;
            tokio::spawn(
                async move { fnbox_testkit::http::post(addr, path, r#"{"sleep": 1}"#).await },
            )
        })
        .collect();
    let mut answers = Vec::new();
    for c in calls {
        let r = c.await.unwrap().expect("invocation answered");
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON answer");
        answers.push(v);
    }
    let restored = answers.iter().filter(|v| v["restored"] == true).count();
    assert_eq!(restored, 2, "one init, two restores: {answers:?}");
    assert!(answers
        .iter()
        .filter(|v| v["restored"] == true)
        .all(|v| v["connectionIsOurs"] == true));
    let running = processes_in(dir.path());
    assert!(running.len() >= 4, "template + 3 runtimes: {running:?}");
    serve.signal(Signal::SIGKILL);
    let gone = fnbox_testkit::wait_until(Duration::from_secs(5), || {
        processes_in(dir.path()).is_empty()
    })
    .await;
    assert!(
        gone,
        "left running after fnbox was killed: {:?}",
        processes_in(dir.path())
    );
}
