//! `examples/telemetry` and its recorder extension for the CLI's integration tests: the
//! `fnbox-telemetry-recorder` binary (built on demand), copies of the examples with `user_data`
//! added, and the fixed extension ports 127.0.0.1:8081 and :8082.

// Synchronous helpers (no tokio runtime): std time.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The workspace root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// `target/<profile>/fnbox-telemetry-recorder`, next to the `fnbox` binary under test.
///
/// It is `fnbox-extension`'s binary, which cargo builds for `cargo test --workspace` (that
/// package has integration tests) and for `cargo build --workspace`; a test never runs a nested
/// `cargo build`. When it is missing, the test fails saying how to build it.
pub fn recorder_bin(fnbox: impl AsRef<Path>) -> PathBuf {
    let dir = fnbox
        .as_ref()
        .parent()
        .expect("the fnbox binary has a directory");
    let bin = dir.join("fnbox-telemetry-recorder");
    assert!(
        bin.is_file(),
        "{} is missing: build it first with `cargo build --workspace` (or run the whole suite \
         with `cargo test --workspace`, which builds it)",
        bin.display()
    );
    bin
}

/// Copies `from` into `to`, recursively. `fs::copy` keeps the permission bits, so bootstrap
/// and the launchers stay executable.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Appends `extra` (whole config lines) and `user_data` with `vars` to `function.yaml` in `dir`.
fn add_user_data(dir: &Path, extra: &str, vars: &[(&str, &Path)]) {
    let yaml = dir.join("function.yaml");
    let mut config = std::fs::read_to_string(&yaml).unwrap();
    // The tests read what the extensions write into host directories (`out`), which a
    // contained instance cannot write (its /tmp is its own).
    config.push_str(&format!("\ncontainment: off\n{extra}user_data:\n"));
    for (var, path) in vars {
        // A JSON string is a YAML double-quoted scalar.
        let value = Value::from(path.to_str().unwrap()).to_string();
        config.push_str(&format!("  {var}: {value}\n"));
    }
    std::fs::write(&yaml, config).unwrap();
}

/// Copies `examples/<name>` (modes kept) into a new temporary directory and appends
/// `user_data` with `vars` to its `function.yaml`.
pub fn example_copy(name: &str, vars: &[(&str, &Path)]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&repo().join("examples").join(name), tmp.path());
    add_user_data(tmp.path(), "", vars);
    tmp
}

/// A copy of `examples/telemetry` whose recorders each write `<out>/events-<pid>.jsonl`
/// (through a wrapper named by `FNBOX_EXTENSION_BIN`), with `extra` config lines.
pub fn telemetry_example(fnbox: impl AsRef<Path>, out: &Path, extra: &str) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&repo().join("examples/telemetry"), tmp.path());
    let wrapper = tmp.path().join("recorder.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nFNBOX_TELEMETRY_OUT=\"{}/events-$$.jsonl\" exec \"{}\" \"$@\"\n",
            out.display(),
            recorder_bin(fnbox).display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    add_user_data(tmp.path(), extra, &[("FNBOX_EXTENSION_BIN", &wrapper)]);
    tmp
}

/// Waits (bounded) until 127.0.0.1:8081 and :8082, the example extensions' ports, can be bound.
pub fn wait_for_free_ports() {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let free = [8081u16, 8082]
            .iter()
            .all(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok());
        if free {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "127.0.0.1:8081/8082 stayed busy for 2 minutes"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
