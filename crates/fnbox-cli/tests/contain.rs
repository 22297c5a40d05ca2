//! Issue 20: containment as the platforms do it, and nothing outliving fnbox. Run as root (as
//! CI does): containment needs it, and these tests fail saying so otherwise.

// Synchronous tests around the real binary: std time and sleeps.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use fnbox_testkit::serve::{processes_in, Serve};
use fnbox_testkit::{process_alive, FixturePackage};
use nix::sys::signal::Signal;

const FNBOX: &str = env!("CARGO_BIN_EXE_fnbox");

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "containment tests need root (uid changes, mount namespaces, cgroups): run them as root, as CI does"
    );
}

fn run(pkg: &Path, env: &[(&str, &str)]) -> Output {
    let data = tempfile::tempdir().unwrap();
    Command::new(FNBOX)
        .args(["run", pkg.to_str().unwrap(), "--data-dir"])
        .arg(data.path())
        .envs(env.iter().copied())
        .output()
        .expect("run fnbox")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The checks a contained function makes, answered as one JSON object of strings.
const CHECKS: &str = r#"
j() { printf '"%s":"%s",' "$1" "$2"; }
while next; do
  out=""
  out+=$(j uid "$(id -u)")
  out+=$(j gid "$(id -g)")
  out+=$(j groups "$(id -G)")
  out+=$(j shadow "$(cat /etc/shadow >/dev/null 2>&1 && echo readable || echo denied)")
  out+=$(j code_root "$RUNTIME_CODE_ROOT")
  out+=$(j code_listing "$(ls "$RUNTIME_CODE_ROOT" | tr '\n' ' ')")
  out+=$(j code_write "$(touch "$RUNTIME_CODE_ROOT/new" 2>/dev/null && echo written || echo refused)")
  out+=$(j host_code_write "$(touch "$PWD/new" 2>/dev/null && echo written || echo refused)")
  out+=$(j tmp_write "$(echo hi > "/tmp/$MARKER" && echo ok || echo failed)")
  head -c 600M /dev/zero > /tmp/big 2>/dev/null
  out+=$(j tmp_size "$(stat -c %s /tmp/big)")
  rm -f /tmp/big
  out+=$(j nofile "$(ulimit -n)/$(ulimit -Hn)")
  out+=$(j cap_eff "$(awk '/^CapEff/{print $2}' /proc/self/status)")
  out+=$(j cap_bnd "$(awk '/^CapBnd/{print $2}' /proc/self/status)")
  out+=$(j no_new_privs "$(awk '/^NoNewPrivs/{print $2}' /proc/self/status)")
  moved=refused
  for f in /sys/fs/cgroup/cgroup.procs /sys/fs/cgroup/*/cgroup.procs; do
    [ -f "$f" ] && (echo $$ > "$f") 2>/dev/null && moved="moved to $f"
  done
  out+=$(j escape "$moved")
  out+=$(j forks "$(/opt/function/runtime/python3.10/rtsp/python/bin/python3 -c '
import os, signal
pids = []
err = 0
try:
    while len(pids) < 3000:
        pids.append(os.posix_spawn("/bin/sleep", ["sleep", "30"], {}))
except OSError as e:
    err = e.errno
for p in pids:
    os.kill(p, signal.SIGKILL)
print(len(pids), err)
')")
  respond "$REQUEST_ID" "{${out%,}}"
done
"#;

/// FunctionGraph: uid 1003, no capabilities, read-only code (also at /opt/function/code), a
/// private /tmp of 512 MB, 1024 processes, 1024 files, no way out of its groups, the platform's
/// interpreter paths.
#[test]
fn a_contained_functiongraph_function_has_the_platforms_limits() {
    require_root();
    let marker = format!("fnbox-contain-{}", uuid_like());
    let pkg = FixturePackage::bash(
        &format!("func_name: contained\nmemory_size: 1024\ntimeout: 60\nuser_data:\n  MARKER: {marker}\n"),
        CHECKS,
    );
    let out = run(pkg.path(), &[]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("containment: on (uid/gid 1003 FunctionGraph, 993 Lambda"),
        "{stderr}"
    );
    let v: serde_json::Value = serde_json::from_str(text(&out.stdout).trim())
        .unwrap_or_else(|e| panic!("{e}: {} / {stderr}", text(&out.stdout)));
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    assert_eq!(s("uid"), "1003", "{v}");
    assert_eq!(s("gid"), "1003", "{v}");
    assert_eq!(s("groups"), "1003", "{v}");
    assert_eq!(s("shadow"), "denied", "{v}");
    assert_eq!(s("code_root"), "/opt/function/code", "{v}");
    assert!(s("code_listing").contains("bootstrap"), "{v}");
    assert_eq!(s("code_write"), "refused", "{v}");
    assert_eq!(s("host_code_write"), "refused", "{v}");
    assert_eq!(s("tmp_write"), "ok", "{v}");
    // 512 MB in all, the marker file's page included.
    let written: u64 = s("tmp_size").parse().unwrap_or_else(|_| panic!("{v}"));
    assert!(
        ((512u64 << 20) - 64 * 1024..=512 << 20).contains(&written),
        "{v}"
    );
    assert_eq!(s("nofile"), "1024/1024", "{v}");
    assert_eq!(s("cap_eff"), "0000000000000000", "{v}");
    assert_eq!(s("cap_bnd"), "0000000000000000", "{v}");
    assert_eq!(s("no_new_privs"), "1", "{v}");
    assert_eq!(s("escape"), "refused", "{v}");
    let forks = s("forks");
    let (n, errno) = forks.split_once(' ').unwrap_or(("", ""));
    let n: u32 = n.parse().unwrap_or_else(|_| panic!("{v}"));
    assert_eq!(errno, "11", "spawning stopped with EAGAIN at pids.max: {v}");
    assert!(
        (1000..1024).contains(&n),
        "about 1024 processes minus the instance's own: {v}"
    );
    // The function's /tmp was its own.
    assert!(!Path::new("/tmp").join(&marker).exists());
    assert!(!pkg.path().join("new").exists());
}

/// A package under a directory others cannot search (like a checkout in /root) still runs: the
/// instance sees a small tmpfs there holding only the way to its code.
#[test]
fn a_package_under_a_closed_directory_runs() {
    require_root();
    use std::os::unix::fs::PermissionsExt;
    let closed = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    std::fs::set_permissions(closed.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let pkg = closed.path().join("hello");
    std::fs::create_dir(&pkg).unwrap();
    std::fs::set_permissions(&pkg, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(pkg.join("function.yaml"), "func_name: closed\n").unwrap();
    let bootstrap = pkg.join("bootstrap");
    std::fs::write(
        &bootstrap,
        format!(
            "{}\nwhile next; do respond \"$REQUEST_ID\" \"\\\"$(id -u) $(ls {})\\\"\"; done\n",
            fnbox_testkit::BASH_HTTP,
            closed.path().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&bootstrap, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = run(&pkg, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "\"1003 hello\"");
}

/// `ephemeral_storage` sizes the private /tmp, in the platforms' range.
#[test]
fn ephemeral_storage_sizes_tmp_and_is_validated() {
    require_root();
    let pkg = FixturePackage::bash(
        "func_name: bigtmp\nmemory_size: 1024\nephemeral_storage: 600\n",
        r#"while next; do respond "$REQUEST_ID" "\"$(df -k --output=size /tmp | tail -1 | tr -d ' ')\""; done"#,
    );
    let out = run(pkg.path(), &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), format!("\"{}\"", 600 * 1024));

    let bad = FixturePackage::bash("func_name: badtmp\nephemeral_storage: 20000\n", "");
    let out = run(bad.path(), &[]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("'ephemeral_storage': 20000 is out of range; allowed: 512 to 10240 MB"),
        "{stderr}"
    );
}

/// `FNBOX_CONTAINMENT=off`: the function runs as fnbox's user, and start-up says so.
#[test]
fn containment_can_be_turned_off() {
    require_root();
    let pkg = FixturePackage::bash(
        "func_name: uncontained\n",
        r#"while next; do respond "$REQUEST_ID" "\"$(id -u) $RUNTIME_CODE_ROOT\""; done"#,
    );
    let out = run(pkg.path(), &[("FNBOX_CONTAINMENT", "off")]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("containment: off (FNBOX_CONTAINMENT=off)"),
        "{stderr}"
    );
    assert_eq!(
        text(&out.stdout).trim(),
        format!("\"0 {}\"", pkg.path().canonicalize().unwrap().display())
    );
}

/// A published-style FunctionGraph HTTP function: its bootstrap starts the platform's
/// interpreter path with `$RUNTIME_CODE_ROOT/index.py`.
#[test]
fn an_http_function_starts_with_the_platforms_interpreter_path() {
    require_root();
    let pkg = FixturePackage::empty("func_name: webpy\nruntime: http\n");
    pkg.write_exec(
        "bootstrap",
        "#!/bin/bash\n/opt/function/runtime/python3.10/rtsp/python/bin/python3 $RUNTIME_CODE_ROOT/index.py\n",
    );
    pkg.write(
        "index.py",
        r#"import http.server, json, os, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.dumps({"exe": sys.executable, "file": __file__, "uid": os.getuid()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", 8000), H).serve_forever()
"#,
    );
    let out = run(pkg.path(), &[]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    let body: serde_json::Value = serde_json::from_str(v["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        body["exe"], "/opt/function/runtime/python3.10/rtsp/python/bin/python3",
        "{body}"
    );
    assert_eq!(body["file"], "/opt/function/code/index.py", "{body}");
    assert_eq!(body["uid"], 1003, "{body}");
}

/// A SIGKILLed `fnbox serve` with a busy instance (runtime, extension, and a grandchild that
/// escapes PDEATHSIG) leaves no process alive a second later, and the next start removes its
/// groups and the zip's extraction directory.
#[test]
fn a_sigkilled_server_leaves_nothing_and_the_next_start_sweeps() {
    require_root();
    let src = FixturePackage::bash(
        "func_name: busy\ntimeout: 60\n",
        r#"sleep 300 &
while next; do sleep 30; respond "$REQUEST_ID" '"late"'; done"#,
    );
    src.write_exec(
        "extension/extensionIdle.sh",
        &format!(
            "{}\nregister extensionIdle.sh 127.0.0.1:8081\nwhile :; do sleep 0.2; done\n",
            fnbox_testkit::BASH_HTTP
        ),
    );
    let work = tempfile::tempdir().unwrap();
    let zip = work.path().join("busy.zip");
    let zipped = Command::new("python3")
        .current_dir(src.path())
        .args(["-m", "zipfile", "-c"])
        .arg(&zip)
        .args(["bootstrap", "function.yaml", "extension"])
        .status()
        .expect("python3 (apt-get install python3)");
    assert!(zipped.success());
    let data = work.path().join("data");
    let data_s = data.to_str().unwrap().to_string();

    let s = Serve::start(FNBOX, &[zip.to_str().unwrap(), "--data-dir", &data_s]);
    let runs: Vec<PathBuf> = std::fs::read_dir(data.join("packages"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(runs.len(), 1, "one extraction run directory: {runs:?}");
    let extracted: PathBuf = std::fs::read_dir(&runs[0])
        .unwrap()
        .flatten()
        .next()
        .expect("the zip is extracted under the data dir")
        .path();
    let url = s.url();
    let caller = std::thread::spawn(move || {
        let _ = Command::new(FNBOX)
            .args(["invoke", "busy", "--server", &url])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    });
    // The runtime is busy once its `sleep 30` runs; find each process by what it runs.
    let cmdline = |pid: i32| -> String {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default()
    };
    let ppid = |pid: i32| -> i32 {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .and_then(|(_, r)| r.split_whitespace().nth(1).map(str::to_string))
            })
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    };
    let end = Instant::now() + Duration::from_secs(30);
    let (runtime, extension, grandchild) = loop {
        let procs = processes_in(&extracted);
        let find = |want: &str| {
            procs
                .iter()
                .copied()
                .find(|p| cmdline(*p).trim_end() == want)
        };
        let ext = procs
            .iter()
            .copied()
            .find(|p| cmdline(*p).contains("extensionIdle.sh"));
        if let (Some(busy), Some(grandchild), Some(ext)) =
            (find("sleep 30"), find("sleep 300"), ext)
        {
            break (ppid(busy), ext, grandchild);
        }
        assert!(
            Instant::now() < end,
            "the invocation never reached the runtime: {procs:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    for pid in [runtime, extension, grandchild] {
        assert!(process_alive(pid), "{pid} runs");
    }
    s.signal(Signal::SIGKILL);
    let _ = s.wait(Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(1));
    for (what, pid) in [
        ("runtime", runtime),
        ("extension", extension),
        ("grandchild", grandchild),
    ] {
        assert!(!process_alive(pid), "{what} {pid} outlived fnbox");
    }
    assert_eq!(processes_in(&extracted), Vec::<i32>::new());
    caller.join().unwrap();
    assert!(
        extracted.exists(),
        "a killed fnbox cannot remove its extraction"
    );

    // The next start removes what the killed one left.
    let s = Serve::start(FNBOX, &[zip.to_str().unwrap(), "--data-dir", &data_s]);
    assert!(
        !runs[0].exists(),
        "the dead run's extraction directory is gone"
    );
    let groups: Vec<PathBuf> = ["memory", "pids"]
        .iter()
        .filter_map(|c| std::fs::read_dir(format!("/sys/fs/cgroup/{c}/fnbox")).ok())
        .flat_map(|d| d.flatten().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{}-", run_pid(&runs[0]))))
        })
        .collect();
    assert_eq!(
        groups,
        Vec::<PathBuf>::new(),
        "the dead run's groups are gone"
    );
    s.stop();
}

/// The pid part of a run directory name (`<pid>-<start>`).
fn run_pid(run: &Path) -> String {
    let name = run.file_name().unwrap().to_string_lossy().into_owned();
    name.split('-').next().unwrap().to_string()
}

fn uuid_like() -> String {
    format!(
        "{:x}{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}
