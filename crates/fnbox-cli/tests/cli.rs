//! The `fnbox` binary as a user runs it: `fnbox run`, `fnbox validate`, exit codes and output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fnbox_testkit::FixturePackage;

fn fnbox(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fnbox"))
        .args(args)
        .output()
        .expect("run fnbox")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn run_hello_three_times_prints_three_results_and_three_reports() {
    let out = fnbox(&[
        "run",
        repo().join("examples/hello").to_str().unwrap(),
        "--times",
        "3",
    ]);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    let results: Vec<&str> = stdout.lines().collect();
    assert_eq!(results.len(), 3, "stdout: {stdout}");
    for r in &results {
        let v: serde_json::Value = serde_json::from_str(r).unwrap();
        assert_eq!(v["body"], "hello from fnbox");
    }
    // The documented lines, byte for byte apart from ids, times and figures.
    use fnbox_testkit::fglog::{shape, DOC_FINISH, DOC_REQUEST_ID, DOC_START};
    let id_of = |l: &str| l.split('\'').nth(1).unwrap_or_default().to_string();
    let starts = stderr
        .lines()
        .filter(|l| l.contains(" Start invoke request '"))
        .inspect(|l| assert_eq!(shape(l, &id_of(l)), shape(DOC_START, DOC_REQUEST_ID)))
        .count();
    assert_eq!(starts, 3, "stderr: {stderr}");
    let finishes: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(" Finish invoke request '"))
        .collect();
    assert_eq!(finishes.len(), 3, "stderr: {stderr}");
    for f in finishes {
        assert_eq!(shape(f, &id_of(f)), shape(DOC_FINISH, DOC_REQUEST_ID));
        assert!(f.contains("billing memory: 128MB"), "{f}");
        let used: f64 = f
            .split("memory used: ")
            .nth(1)
            .unwrap()
            .split("MB")
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(used > 0.0, "memory used is measured: {f}");
    }
    assert!(
        stderr.contains("[Function] hello: handling request"),
        "function output is shown: {stderr}"
    );
}

#[test]
fn run_passes_the_event_and_prints_the_result_verbatim() {
    let pkg = FixturePackage::bash(
        "func_name: echo\n",
        r#"while next; do respond "$REQUEST_ID" "$BODY"; done"#,
    );
    let out = fnbox(&[
        "run",
        pkg.path().to_str().unwrap(),
        "--event",
        r#"{"a": [1, 2]}"#,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "{\"a\": [1, 2]}\n");
    let event_file = pkg.write("event.json", "\"from a file\"");
    let out = fnbox(&[
        "run",
        pkg.path().to_str().unwrap(),
        "--event-file",
        event_file.to_str().unwrap(),
    ]);
    assert_eq!(text(&out.stdout), "\"from a file\"\n");
}

#[test]
fn a_failing_function_exits_1_with_a_clear_message() {
    let pkg = FixturePackage::bash(
        "func_name: failer\n",
        r#"while next; do fail "$REQUEST_ID" '{"errorType":"KeyError","errorMessage":"missing key"}'; done"#,
    );
    let out = fnbox(&["run", pkg.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("KeyError: missing key"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn an_init_failure_exits_3() {
    let pkg = FixturePackage::bash("func_name: badinit\n", "exit 1");
    let out = fnbox(&["run", pkg.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("3 attempt"), "{stderr}");
}

fn assert_rejected(pkg: &Path, expect: &[&str]) {
    for cmd in ["validate", "run"] {
        let out = fnbox(&[cmd, pkg.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {}", text(&out.stderr));
        let stderr = text(&out.stderr);
        for e in expect {
            assert!(stderr.contains(e), "{cmd}: expected {e:?} in: {stderr}");
        }
    }
}

#[test]
fn malformed_packages_are_rejected_with_messages_that_name_the_problem() {
    let bad_yaml = FixturePackage::bash("func_name: x\nmemory_size: [\n", "");
    assert_rejected(bad_yaml.path(), &["function.yaml"]);
    let unknown = FixturePackage::bash("func_name: x\nmemroy_size: 128\n", "");
    assert_rejected(unknown.path(), &["function.yaml", "memroy_size"]);
    let memory = FixturePackage::bash("func_name: x\nmemory_size: 100\n", "");
    assert_rejected(
        memory.path(),
        &["function.yaml", "memory_size", "100", "128"],
    );
    let no_bootstrap = FixturePackage::empty("func_name: x\n");
    assert_rejected(no_bootstrap.path(), &["bootstrap"]);
}

#[test]
fn a_zip_slip_entry_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let zip_path = dir.path().join("evil.zip");
    {
        let file = std::fs::File::create(&zip_path).unwrap();
        let mut w = zip::ZipWriter::new(file);
        let opts = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
        w.start_file("bootstrap", opts).unwrap();
        std::io::Write::write_all(&mut w, b"#!/bin/sh\n").unwrap();
        w.start_file("../evil", opts).unwrap();
        std::io::Write::write_all(&mut w, b"pwned").unwrap();
        w.finish().unwrap();
    }
    assert_rejected(&zip_path, &["evil.zip", "../evil"]);
    assert!(
        !dir.path().join("evil").exists(),
        "nothing was written outside the target"
    );
}

#[test]
fn validate_accepts_the_examples() {
    for ex in ["hello", "shell-loop", "rust-hello"] {
        let out = fnbox(&[
            "validate",
            repo().join("examples").join(ex).to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{ex}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains(": ok: function"), "{ex}");
    }
}

/// CONTRACT §3 step 3, as `fnbox serve` does it: the caller gets the runtime's answer even when an
/// extension never answers its invoke push; the invocation then ends by the deadline, and the
/// instance is replaced. `fnbox run` used to throw the answer away and exit 1.
#[test]
fn run_prints_the_answer_when_an_extension_never_answers_its_push() {
    let pkg = FixturePackage::bash(
        "func_name: hangext\ntimeout: 3\n",
        r#"while next; do respond "$REQUEST_ID" '{"answered":true}'; done"#,
    );
    pkg.write(
        "extension/extensionHang.sh",
        &format!(
            "{}\n{}",
            fnbox_testkit::BASH_HTTP,
            // Accepts every push and never answers it; registers once it listens.
            r#"export MARK="/tmp/listening.$$"
python3 -c '
import os, socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 8081))
s.listen(16)
open(os.environ["MARK"], "w").close()
held = []
while True:
    held.append(s.accept())
' &
while [ ! -e "$MARK" ]; do sleep 0.05; done
register extensionHang.sh 127.0.0.1:8081
wait
"#
        ),
    );
    let out = fnbox(&["run", pkg.path().to_str().unwrap(), "--times", "2"]);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}; stderr: {stderr}",
        out.status
    );
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [r#"{"answered":true}"#, r#"{"answered":true}"#],
        "stderr: {stderr}"
    );
    assert_eq!(
        stderr
            .matches("was answered, then the instance failed")
            .count(),
        2,
        "{stderr}"
    );
}

/// Warnings on a non-terminal stderr carry no colour codes.
#[test]
fn warnings_in_a_pipe_have_no_ansi_codes() {
    let pkg = FixturePackage::bash(
        "func_name: warnpipe\n",
        r#"while next; do respond "$REQUEST_ID" '"ok"'; done"#,
    );
    // An extension that registers a listener nobody serves: every push fails with a warning.
    pkg.write(
        "extension/extensionGone.sh",
        &format!(
            "{}\nregister extensionGone.sh 127.0.0.1:8081\nwhile :; do sleep 1; done\n",
            fnbox_testkit::BASH_HTTP
        ),
    );
    let out = fnbox(&["run", pkg.path().to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("WARN"), "a warning was printed: {stderr}");
    assert!(!stderr.contains('\x1b'), "no escape codes: {stderr:?}");
}

/// A package without a config file, or with an empty one, is valid, and the user is told that
/// every setting is its default.
#[test]
fn missing_or_empty_function_yaml_is_said() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("defaults");
    std::fs::create_dir(&pkg).unwrap();
    let boot = pkg.join("bootstrap");
    std::fs::write(&boot, "#!/bin/sh\n").unwrap();
    let exec = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755);
    std::fs::set_permissions(&boot, exec).unwrap();
    let out = fnbox(&["validate", pkg.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains("note:") && stdout.contains("no function.yaml or function.json"),
        "{stdout}"
    );
    for empty in ["", "null\n", "~\n"] {
        std::fs::write(pkg.join("function.yaml"), empty).unwrap();
        let out = fnbox(&["validate", pkg.to_str().unwrap()]);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            stdout.contains("function.yaml is empty"),
            "{empty:?}: {stdout}"
        );
    }
    std::fs::write(pkg.join("function.yaml"), "timeout: 5\n").unwrap();
    let stdout = text(&fnbox(&["validate", pkg.to_str().unwrap()]).stdout);
    assert!(!stdout.contains("note:"), "{stdout}");
}
