//! The benchmark's smoke mode runs end to end in debug (CI runs this so the benchmark cannot
//! rot). It asserts that every row is printed, never a timing. It uses the binaries cargo has
//! already built (no nested `cargo build`): the bench itself, and `fnbox` and `rust-hello`
//! next to it in the profile directory.

use std::path::PathBuf;
use std::process::Command;

/// The profile directory (`target/debug` or `target/release`) of this build: the bench binary
/// cargo built for this test lives there, and so do `fnbox` and `rust-hello` once built.
fn bin_dir() -> PathBuf {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_fnbox-bench"));
    bench
        .parent()
        .expect("the bench binary is in a directory")
        .to_path_buf()
}

#[test]
fn smoke_run_prints_every_row() {
    let dir = bin_dir();
    for bin in ["fnbox", "rust-hello"] {
        assert!(
            dir.join(bin).is_file(),
            "{} is missing: this test uses the workspace's binaries as cargo built them; run \
             `cargo build --workspace` (with --release for a --release test run) first: \
             `cargo test` alone builds only the binaries of the packages it tests, not \
             examples/rust-hello's",
            dir.join(bin).display()
        );
    }
    let json = tempfile::NamedTempFile::new().expect("temp file");
    let out = Command::new(env!("CARGO_BIN_EXE_fnbox-bench"))
        .args(["--smoke", "--no-build", "--bin-dir"])
        .arg(&dir)
        // Only labels the JSON: the binaries are those of this build's profile.
        .args(cfg!(debug_assertions).then_some("--debug"))
        .arg("--json")
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
        "| restore vs cold start, Python",
        "| cold start to first response",
        "| telemetry: ",
        "| hot path, subscribed no-op listener",
        "| hot path, slow listener",
        "| hot path, extension registered (invoke pushes only)",
        "| hot path, timeline on, no page connected",
        "| hot path, one page connected (/api/events)",
        "| hot path, OTLP to a dead endpoint",
        "| hot path, OTLP to a live receiver",
        "| Lambda echo, freeze on: warm p50 ÷ freeze off (interleaved A/B",
        "| memory: fnbox RSS idle",
        "| memory: fnbox RSS with ",
        // Measured when the conformance echo and cargo-lambda are already there, else a row
        // saying why not (smoke never builds or installs).
        "| peer: lambda_runtime echo",
    ] {
        assert!(stdout.contains(row), "row {row:?} missing from:\n{stdout}");
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(json.path()).expect("json written"))
            .expect("valid json");
    assert_eq!(json["rows"].as_array().map(Vec::len), Some(17), "{json}");
    // The telemetry row really delivered (a listener that cannot write its counts reads 0).
    let telemetry = json["rows"]
        .as_array()
        .and_then(|rows| {
            rows.iter().find(|r| {
                r["scenario"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("telemetry:"))
            })
        })
        .expect("telemetry row");
    assert!(
        telemetry["data"]["delivered"].as_u64().unwrap_or(0) > 0,
        "no telemetry delivered: {telemetry}"
    );
}
