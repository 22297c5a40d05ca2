//! `fnbox test-extension` end to end, on the real binary: the bundled examples' extensions pass
//! every scenario, and each variant of `examples/broken-extension` fails exactly the scenarios
//! it should, with a reason that names the problem. Counts are reduced (`--warm-invocations`,
//! `--burst-lines`, shorter slow-platform delays) to keep CI short; the defaults are the real
//! sizes (`docs/test-extension.md`).
//!
//! The extensions listen on the fixed ports 127.0.0.1:8081/8082 of the host network, so the
//! runs here are serialized.

// Synchronous test helpers (std process and time, no tokio runtime).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use fnbox_testkit::recorder::{example_copy, recorder_bin, repo, wait_for_free_ports};
use serde_json::Value;

const FNBOX: &str = env!("CARGO_BIN_EXE_fnbox");
static PORTS: Mutex<()> = Mutex::new(());

/// Runs `fnbox test-extension <target> [args]` with the reduced sizes; returns the exit code,
/// the stdout scorecard and the JSON scorecard.
fn test_extension(target: &Path, args: &[&str]) -> (i32, String, Value) {
    let python = Command::new("python3").arg("--version").output();
    assert!(
        python.is_ok_and(|o| o.status.success()),
        "python3 is needed to run these extensions: install python3"
    );
    let _ports = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    wait_for_free_ports();
    let json = tempfile::NamedTempFile::new().unwrap();
    let out = Command::new(FNBOX)
        .args(["--log", "error", "test-extension"])
        .arg(target)
        .args([
            "--warm-invocations",
            "20",
            "--burst-lines",
            "20000",
            "--push-delay",
            "300ms",
            "--batch-delay",
            "500ms",
            "--json",
        ])
        .arg(json.path())
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let card: Value =
        serde_json::from_slice(&std::fs::read(json.path()).unwrap()).unwrap_or_else(|e| {
            panic!(
                "no JSON scorecard ({e}); stdout:\n{stdout}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    (out.status.code().unwrap_or(-1), stdout, card)
}

/// scenario → (verdict, reason).
fn verdicts(card: &Value) -> Vec<(String, String, String)> {
    card["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["scenario"].as_str().unwrap().to_string(),
                s["verdict"].as_str().unwrap().to_string(),
                s["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn assert_all_pass(target: &Path) {
    let (code, stdout, card) = test_extension(target, &[]);
    let v = verdicts(&card);
    assert_eq!(v.len(), 9, "every scenario ran:\n{stdout}");
    for (scenario, verdict, reason) in &v {
        assert_ne!(verdict, "fail", "{scenario}: {reason}\n{stdout}");
    }
    assert_eq!(code, 0, "{stdout}");
    // Figures a person acts on are there.
    let warm = &card["scenarios"][1]["figures"];
    let names: Vec<&str> = warm
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    for want in [
        "notice_p50_ms",
        "batch_p99_ms",
        "ext_cpu_ms",
        "ext_peak_rss_kib",
    ] {
        assert!(names.contains(&want), "warm figures lack {want}: {names:?}");
    }
    assert!(stdout.contains("PASS  warm"), "{stdout}");
}

#[test]
fn the_python_example_extension_passes_every_scenario() {
    let out = tempfile::tempdir().unwrap();
    let pkg = example_copy(
        "telemetry-python",
        &[("FNBOX_TELEMETRY_OUT", &out.path().join("events.jsonl"))],
    );
    assert_all_pass(pkg.path());
}

#[test]
fn the_rust_example_extension_passes_every_scenario() {
    let recorder = recorder_bin(FNBOX);
    let out = tempfile::tempdir().unwrap();
    let pkg = example_copy(
        "telemetry",
        &[
            ("FNBOX_EXTENSION_BIN", &recorder),
            ("FNBOX_TELEMETRY_OUT", &out.path().join("events.jsonl")),
        ],
    );
    assert_all_pass(pkg.path());
}

fn broken(variant: &str, scenarios: &[&str]) -> (i32, Vec<(String, String, String)>, String) {
    let mut args = vec!["--scenario"];
    args.extend_from_slice(scenarios);
    let (code, stdout, card) = test_extension(
        &repo().join("examples/broken-extension").join(variant),
        &args,
    );
    (code, verdicts(&card), stdout)
}

fn verdict_of<'a>(v: &'a [(String, String, String)], scenario: &str) -> (&'a str, &'a str) {
    v.iter()
        .find(|(s, _, _)| s == scenario)
        .map(|(_, verdict, reason)| (verdict.as_str(), reason.as_str()))
        .unwrap_or_else(|| panic!("{scenario} did not run: {v:?}"))
}

#[test]
fn an_extension_that_never_answers_pushes_fails_the_invocation_scenarios() {
    let (code, v, stdout) = broken("no-push-answer", &["cold-start", "warm", "crash"]);
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(verdict_of(&v, "cold-start").0, "pass", "{stdout}");
    let (verdict, reason) = verdict_of(&v, "warm");
    assert_eq!(verdict, "fail", "{stdout}");
    assert!(
        reason.contains("never answered its invoke push"),
        "{reason}"
    );
    // A crash ends the invocation whatever the push: nothing to blame the extension for.
    assert_eq!(verdict_of(&v, "crash").0, "pass", "{stdout}");
    assert!(stdout.contains("FAIL  warm"), "{stdout}");
}

#[test]
fn an_extension_that_refuses_every_batch_fails_the_telemetry_scenarios() {
    let (code, v, stdout) = broken(
        "batch-500",
        &["cold-start", "warm", "timeout", "bad-answers"],
    );
    assert_eq!(code, 1, "{stdout}");
    for scenario in ["cold-start", "warm", "timeout"] {
        let (verdict, reason) = verdict_of(&v, scenario);
        assert_eq!(verdict, "fail", "{scenario}: {stdout}");
        assert!(reason.contains("HTTP 500"), "{scenario}: {reason}");
    }
    // Diagnostic: it warns, never fails.
    assert_eq!(verdict_of(&v, "bad-answers").0, "warn", "{stdout}");
}

#[test]
fn an_extension_that_ignores_sigterm_fails_only_shutdown() {
    let (code, v, stdout) = broken("ignore-sigterm", &["warm", "shutdown"]);
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(verdict_of(&v, "warm").0, "pass", "{stdout}");
    let (verdict, reason) = verdict_of(&v, "shutdown");
    assert_eq!(verdict, "fail", "{stdout}");
    assert!(reason.contains("killed by SIGKILL"), "{reason}");
}

#[test]
fn a_directory_without_extensions_is_refused_with_the_layout() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(FNBOX)
        .arg("test-extension")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no extensions found"), "{err}");
    assert!(err.contains("extension/extension*.sh"), "{err}");
    let out = Command::new(FNBOX)
        .args(["test-extension", "x", "--scenario", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown scenario 'nope'"));
}
