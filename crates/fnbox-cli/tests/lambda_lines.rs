//! Issue 19 item 6 through the real binary: `fnbox run` prints Lambda's own log lines for a
//! Lambda package (`EXTENSION`, `START`, `END`, `REPORT` with `Init Duration` on the cold
//! start only), and the start-up banners of `fnbox run` / `fnbox serve` say `network: host`
//! for a `network: host` package. The fixture runtime and extension are bash + curl.

use std::process::{Command, Output};
use std::time::Duration;

use fnbox_testkit::serve::Serve;
use fnbox_testkit::FixturePackage;

const FNBOX: &str = env!("CARGO_BIN_EXE_fnbox");

/// A Lambda runtime in bash: answers every event with `"ok"`.
const RUNTIME: &str = r#"#!/bin/bash
API="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
h=$(mktemp)
while true; do
  curl -sS -D "$h" "$API/invocation/next" >/dev/null
  id=$(grep -i '^lambda-runtime-aws-request-id:' "$h" | cut -d' ' -f2 | tr -d '\r')
  echo "handling $id"
  curl -sS -X POST "$API/invocation/$id/response" -d '"ok"' >/dev/null
done
"#;

/// A Lambda extension in bash: registers for INVOKE and SHUTDOWN, loops on `event/next`.
const EXTENSION: &str = r#"#!/bin/bash
API="http://$AWS_LAMBDA_RUNTIME_API/2020-01-01/extension"
h=$(mktemp)
curl -sS -D "$h" -X POST "$API/register" -H "Lambda-Extension-Name: $(basename "$0")" -d '{"events":["INVOKE","SHUTDOWN"]}' >/dev/null
id=$(grep -i '^lambda-extension-identifier:' "$h" | cut -d' ' -f2 | tr -d '\r')
while true; do
  ev=$(curl -sS "$API/event/next" -H "Lambda-Extension-Identifier: $id")
  case "$ev" in *SHUTDOWN*) exit 0 ;; esac
done
"#;

fn require_curl() {
    let ok = Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "curl not found on PATH: the fixture runtime needs it (apt-get install curl)"
    );
}

fn lambda_package(extra: &str) -> FixturePackage {
    let pkg = FixturePackage::empty(&format!("func_name: lam\ndialect: lambda\n{extra}"));
    pkg.write_exec("bootstrap", RUNTIME);
    pkg
}

fn run(pkg: &FixturePackage, times: &str) -> (Output, String) {
    let out = Command::new(FNBOX)
        .args(["run", pkg.path().to_str().unwrap(), "--times", times])
        .output()
        .expect("run fnbox");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "stderr: {stderr}");
    (out, stderr)
}

#[test]
fn fnbox_run_prints_lambdas_extension_start_end_and_report_lines() {
    require_curl();
    let pkg = lambda_package("");
    pkg.write_exec("extensions/ext-bash", EXTENSION);
    let (_, stderr) = run(&pkg, "2");
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        !stderr.contains("Start invoke request") && !stderr.contains("Finish invoke request"),
        "no FunctionGraph lines for a Lambda package: {stderr}"
    );
    let ext = lines
        .iter()
        .position(|l| *l == "EXTENSION\tName: ext-bash\tState: Ready\tEvents: [INVOKE, SHUTDOWN]")
        .unwrap_or_else(|| panic!("EXTENSION line: {stderr}"));
    let starts: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("START RequestId: ") && l.ends_with(" Version: $LATEST"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(starts.len(), 2, "{stderr}");
    assert!(
        ext < starts[0],
        "EXTENSION comes at the end of init: {stderr}"
    );
    let reports: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("REPORT RequestId: "))
        .collect();
    assert_eq!(reports.len(), 2, "{stderr}");
    for (i, start) in starts.iter().enumerate() {
        let id = lines[*start]
            .strip_prefix("START RequestId: ")
            .and_then(|r| r.strip_suffix(" Version: $LATEST"))
            .unwrap();
        assert!(stderr.contains(&format!("handling {id}")), "{stderr}");
        let end = lines
            .iter()
            .position(|l| *l == format!("END RequestId: {id}"))
            .unwrap_or_else(|| panic!("END for {id}: {stderr}"));
        assert!(
            lines[end + 1].starts_with(&format!("REPORT RequestId: {id}\tDuration: ")),
            "{stderr}"
        );
        let report = reports[i];
        assert!(
            report.contains(" ms\tBilled Duration: ")
                && report.contains(" ms\tMemory Size: 128 MB\tMax Memory Used: ")
                && report.ends_with('\t'),
            "{report}"
        );
        assert_eq!(
            report.contains(" MB\tInit Duration: "),
            i == 0,
            "Init Duration on the cold start only: {report}"
        );
    }
}

#[test]
fn banners_say_network_host_for_a_network_host_package() {
    require_curl();
    let pkg = lambda_package("network: host\n");
    let (_, stderr) = run(&pkg, "1");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("network: host (`network: host` in ")),
        "{stderr}"
    );
    assert!(!stderr.contains("network: isolated"), "{stderr}");

    let s = Serve::start(FNBOX, &[pkg.path().to_str().unwrap()]);
    let startup = s.startup.join("\n");
    assert!(
        startup.contains("  network: host (`network: host` in lam's config"),
        "{startup}"
    );
    s.terminate(Duration::from_secs(20));
}
