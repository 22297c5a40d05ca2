//! The benchmark's smoke mode runs end to end in debug (CI runs this so the benchmark cannot
//! rot). It asserts that every row is printed, never a timing.

use std::process::Command;

#[test]
fn smoke_run_prints_every_row() {
    let json = tempfile::NamedTempFile::new().expect("temp file");
    let out = Command::new(env!("CARGO_BIN_EXE_fnbox-bench"))
        .args(["--smoke", "--debug", "--json"])
        .arg(json.path())
        .output()
        .expect("run fnbox-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "fnbox-bench --smoke failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    for row in [
        "| warm invoke, sequential",
        "| warm throughput, 32 clients, max_instances 2, concurrent_num 1 |",
        "| warm throughput, 32 clients, max_instances 2, concurrent_num 16 |",
        "| cold start to first response",
        "| telemetry: ",
        "| hot path, subscribed no-op listener",
        "| hot path, slow listener",
        "| hot path, extension registered, no subscription",
        "| memory: fnbox RSS idle",
        "| memory: fnbox RSS with ",
    ] {
        assert!(stdout.contains(row), "row {row:?} missing from:\n{stdout}");
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(json.path()).expect("json written"))
            .expect("valid json");
    assert_eq!(json["rows"].as_array().map(Vec::len), Some(10), "{json}");
}
