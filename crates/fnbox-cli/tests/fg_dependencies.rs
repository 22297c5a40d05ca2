//! Issue 19: a FunctionGraph extension shipped as a *dependency* package (a zip merged with the
//! function's code, FunctionGraph's way of distributing extensions) runs: it registers, gets
//! every invocation pushed, receives the telemetry, and reports at shutdown.

// Synchronous test around the real binary.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::process::Command;

use fnbox_testkit::recorder::{copy_dir, recorder_bin, wait_for_free_ports};

const FNBOX: &str = env!("CARGO_BIN_EXE_fnbox");

#[test]
fn an_extension_shipped_as_a_dependency_zip_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // The dependency: the telemetry example's extension, alone in a zip.
    let dep = tmp.path().join("dep");
    copy_dir(
        &repo.join("examples/telemetry/extension"),
        &dep.join("extension"),
    );
    let pkg = tmp.path().join("fn");
    std::fs::create_dir_all(pkg.join("deps")).unwrap();
    let zipped = Command::new("python3")
        .current_dir(&dep)
        .args(["-m", "zipfile", "-c"])
        .arg(pkg.join("deps/telemetry-extension.zip"))
        .arg("extension")
        .status()
        .expect("python3 (apt-get install python3)");
    assert!(zipped.success());
    // The function: the telemetry example's bootstrap, without an extension of its own.
    std::fs::copy(
        repo.join("examples/telemetry/bootstrap"),
        pkg.join("bootstrap"),
    )
    .unwrap();
    let recorder = recorder_bin(FNBOX);
    std::fs::write(
        pkg.join("function.yaml"),
        format!(
            "func_name: telemetry-demo\nruntime: Custom\ntimeout: 5\n\
             dependencies: [deps/telemetry-extension.zip]\n\
             # The recorder binary lives in this checkout, which a contained uid may not reach.\n\
             containment: off\nuser_data:\n  FNBOX_EXTENSION_BIN: {:?}\n",
            recorder.to_str().unwrap()
        ),
    )
    .unwrap();
    wait_for_free_ports();
    let out = Command::new(FNBOX)
        .args(["run", pkg.to_str().unwrap(), "--times", "3", "--data-dir"])
        .arg(tmp.path().join("data"))
        .output()
        .expect("run fnbox");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        3,
        "{stderr}"
    );
    assert!(
        stderr.contains("telemetry received by extensionTelemetry.sh:")
            && stderr.contains("3 platform.report")
            && stderr.contains("and 3 invocation pushes"),
        "the dependency's extension registered, got every push and the telemetry:\n{stderr}"
    );
    // The user's package is untouched: the merge happens in a staged copy.
    assert!(!pkg.join("extension").exists());
}
