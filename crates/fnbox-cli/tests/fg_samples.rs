//! Published FunctionGraph samples (Open Telekom Cloud's sample repositories and documentation,
//! not written by this team; `fg-samples/README.md` names each source) run unmodified under
//! `fnbox run` and `fnbox serve`, configured from flags as their own deploy zips are (no
//! function.yaml; the values of each sample's `terraform/function.tf`). The documented log lines
//! are checked byte for byte apart from ids, times and figures (`fnbox_testkit::fglog`).
//!
//! Needs python3, node, npm (and the npm registry, for the Koa sample's modules) and curl
//! (`.ci/run` installs them).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fnbox_testkit::fglog::{doc_logger_line, shape, DOC_FINISH, DOC_REQUEST_ID, DOC_START};
use fnbox_testkit::serve::Serve;

const FNBOX: &str = env!("CARGO_BIN_EXE_fnbox");

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fg-samples")
}

fn fnbox(args: &[&str]) -> Output {
    Command::new(FNBOX).args(args).output().expect("run fnbox")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The request id of a `… Start invoke request '<id>', …` line.
fn id_in(line: &str) -> String {
    line.split('\'').nth(1).unwrap_or_default().to_string()
}

/// Checks that `log` (fnbox run's stderr or a log tail) has, for each invocation, the documented
/// Start line, the given logger lines and the Finish line, in that order; returns the ids.
fn check_documented_lines(log: &str, logger: &[(&str, &str)]) -> Vec<String> {
    let lines: Vec<&str> = log.lines().collect();
    let mut ids = Vec::new();
    for (i, start) in lines.iter().enumerate() {
        if !start.contains(" Start invoke request '") {
            continue;
        }
        let id = id_in(start);
        assert_eq!(shape(start, &id), shape(DOC_START, DOC_REQUEST_ID), "{log}");
        let rest = &lines[i + 1..];
        let mut at = 0;
        for (level, message) in logger {
            let doc = shape(&doc_logger_line(level, message), DOC_REQUEST_ID);
            let found = rest[at..]
                .iter()
                .position(|l| shape(l, &id) == doc)
                .unwrap_or_else(|| panic!("no line shaped {doc:?} after {start:?} in:\n{log}"));
            at += found + 1;
        }
        let finish = rest[at..]
            .iter()
            .find(|l| l.contains(" Finish invoke request '"))
            .unwrap_or_else(|| panic!("no Finish line for {id}:\n{log}"));
        assert_eq!(
            shape(finish, &id),
            shape(DOC_FINISH, DOC_REQUEST_ID),
            "{log}"
        );
        assert_eq!(id_in(finish), id);
        ids.push(id);
    }
    ids
}

/// opentelekomcloud-community/otc-functiongraph-python-runtime `scratch-event-apig`: a Python
/// event function returning the event library's `APIGResponse` object.
#[test]
fn python_apig_event_sample_returns_its_apig_response() {
    let dir = samples().join("otc-python/scratch-event-apig");
    let event = samples().join("otc-python/events/apig_event_json.json");
    let out = fnbox(&[
        "run",
        dir.to_str().unwrap(),
        "--runtime",
        "Python3.10",
        "--handler",
        "src/index.handler",
        "--memory",
        "128",
        "--timeout",
        "30",
        "--event-file",
        event.to_str().unwrap(),
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON result");
    assert_eq!(
        v,
        serde_json::json!({"statusCode": 200, "body": "{\"name\": \"T Cloud Public\"}",
            "headers": {"Content-Type": "application/json"}, "isBase64Encoded": false})
    );
    let ids = check_documented_lines(
        &stderr,
        &[
            ("INFO", "Function Name: scratch-event-apig"),
            ("INFO", "APIG Event body: {\"name\": \"T Cloud Public\"}"),
        ],
    );
    assert_eq!(ids.len(), 1, "{stderr}");
}

/// opentelekomcloud-community/otc-functiongraph-nodejs-runtime `scratch-event-sync`: a Node.js
/// event function with an initializer, on the platform's runtime `Node.js6.10` (a stand-in node
/// is named at start-up), under `fnbox run` and `fnbox serve` with the log tail.
#[test]
fn node_event_sample_with_initializer_runs_and_logs_as_documented() {
    let dir = samples().join("otc-nodejs/scratch-event-sync");
    let event_file = samples().join("otc-nodejs/events/test_event.json");
    let config = [
        "--runtime",
        "Node.js6.10",
        "--handler",
        "src/index.handler",
        "--initializer",
        "src/index.initializer",
        "--memory",
        "512",
        "--timeout",
        "30",
    ];
    let mut args = vec!["run", dir.to_str().unwrap()];
    args.extend(config);
    args.extend(["--event-file", event_file.to_str().unwrap(), "--times", "2"]);
    let out = fnbox(&args);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    let event = std::fs::read_to_string(&event_file).unwrap();
    let event: serde_json::Value = serde_json::from_str(&event).unwrap();
    for line in stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["statusCode"], 200);
        let body: serde_json::Value = serde_json::from_str(v["body"].as_str().unwrap()).unwrap();
        assert_eq!(body, event);
    }
    assert!(
        stderr.contains("note: runtime Node.js6.10: no working node 6 on PATH")
            && stderr.contains("stands in"),
        "{stderr}"
    );
    assert_eq!(
        stderr
            .matches("INFO initializing : scratch-event-sync")
            .count(),
        1,
        "the initializer runs once: {stderr}"
    );
    let logger = [
        ("INFO", "Function name: scratch-event-sync"),
        (
            "INFO",
            "Key value from event: Hello World of FunctionGraph NodeJs Runtime!",
        ),
    ];
    assert_eq!(check_documented_lines(&stderr, &logger).len(), 2);

    // fnbox serve: the same lines in the X-Cff-Function-Log tail.
    let mut serve_args = vec![dir.to_str().unwrap()];
    serve_args.extend(config);
    let s = Serve::start(FNBOX, &serve_args);
    let out = fnbox_testkit::serve::invoke(
        FNBOX,
        &s.url(),
        &[
            "scratch-event-sync",
            "--event-file",
            event_file.to_str().unwrap(),
            "--log-type",
            "tail",
        ],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("statusCode"), "{stdout}");
    assert_eq!(
        check_documented_lines(&stderr, &logger).len(),
        1,
        "{stderr}"
    );
    s.stop();
}

/// The documented bash custom runtime (opentelekomcloud-docs/function-graph, custom_runtime.rst),
/// as published: `#!/bin/sh` with `set -o pipefail` (bash runs it, as on the platform), deployed
/// without the executable bit.
#[test]
fn documented_bash_custom_runtime_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = tmp.path().join("bash-sample");
    std::fs::create_dir(&pkg).unwrap();
    let bootstrap = pkg.join("bootstrap");
    std::fs::copy(
        samples().join("otc-docs/custom-runtime-bash/bootstrap"),
        &bootstrap,
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bootstrap, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = fnbox(&["run", pkg.to_str().unwrap(), "--times", "2"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["Echoing request: hello world!"; 2],
        "{stderr}"
    );
    assert_eq!(check_documented_lines(&stderr, &[]).len(), 2, "{stderr}");
}

/// opentelekomcloud-community/otc-functiongraph-python-runtime `scratch-http`: an HTTP function
/// on Python's standard library, started by its one-line bootstrap (mode 0644, no shebang) with
/// the platform's interpreter path.
#[test]
fn python_stdlib_http_sample_serves_through_its_bootstrap() {
    let dir = samples().join("otc-python/scratch-http");
    let event = samples().join("otc-python/events/http_test_get.json");
    let out = fnbox(&[
        "run",
        dir.to_str().unwrap(),
        "--runtime",
        "http",
        "--memory",
        "128",
        "--timeout",
        "30",
        "--event-file",
        event.to_str().unwrap(),
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    check_http_answer(&stdout);
    assert_eq!(check_documented_lines(&stderr, &[]).len(), 1, "{stderr}");
}

/// opentelekomcloud-community/otc-functiongraph-python-runtime `scratch-http-flask`: an HTTP
/// function on Flask, started by its published two-line bootstrap with the platform's
/// interpreter path.
#[test]
fn python_flask_http_sample_serves_through_its_bootstrap() {
    let dir = samples().join("otc-python/scratch-http-flask");
    let event = samples().join("otc-python/events/flask_apig_get_index.json");
    let out = fnbox(&[
        "run",
        dir.to_str().unwrap(),
        "--runtime",
        "http",
        "--event-file",
        event.to_str().unwrap(),
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON answer");
    assert_eq!(v["statusCode"], 200, "{v}");
    assert!(
        decoded_body(&v).contains("Hello from scratch-http sample!"),
        "{v}"
    );
    assert!(
        stderr.contains("***/index***"),
        "the sample's own print: {stderr}"
    );
    assert_eq!(check_documented_lines(&stderr, &[]).len(), 1, "{stderr}");
}

/// The same sample's server with a one-line bootstrap of the same form (mode 0644, no shebang)
/// naming the machine's `python3` instead of the platform's path: what the sample needs besides
/// `/opt/function` works today.
#[test]
fn python_stdlib_http_sample_with_a_host_path_bootstrap() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = tmp.path().join("scratch-http");
    std::fs::create_dir_all(pkg.join("src")).unwrap();
    std::fs::copy(
        samples().join("otc-python/scratch-http/src/index.py"),
        pkg.join("src/index.py"),
    )
    .unwrap();
    std::fs::write(
        pkg.join("bootstrap"),
        "python3 $RUNTIME_CODE_ROOT/src/index.py",
    )
    .unwrap();
    let event = samples().join("otc-python/events/http_test_get.json");
    let out = fnbox(&[
        "run",
        pkg.to_str().unwrap(),
        "--runtime",
        "http",
        "--event-file",
        event.to_str().unwrap(),
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    check_http_answer(&stdout);
    assert_eq!(check_documented_lines(&stderr, &[]).len(), 1, "{stderr}");
}

/// The body of an APIG answer, Base64-decoded when flagged.
fn decoded_body(v: &serde_json::Value) -> String {
    use base64::Engine as _;
    let body = v["body"].as_str().unwrap_or_default();
    if v["isBase64Encoded"] == true {
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .unwrap(),
        )
        .unwrap()
    } else {
        body.to_string()
    }
}

fn check_http_answer(stdout: &str) {
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON answer");
    assert_eq!(v["statusCode"], 200, "{v}");
    assert_eq!(decoded_body(&v), r#"{"message": "Hello, John!"}"#, "{v}");
}

/// A deploy zip's configuration must come from somewhere: without function.yaml and flags the
/// error says exactly that.
#[test]
fn a_deploy_zip_without_config_or_flags_says_what_to_give() {
    let dir = samples().join("otc-python/scratch-event-apig");
    let out = fnbox(&["run", dir.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("has no function.yaml (or function.json) and no configuration flags")
            && stderr.contains("--runtime, --handler, --memory, --timeout, --initializer, --env"),
        "{stderr}"
    );
}

/// Copies the vendored `otc-nodejs/scratch-http` into `tmp/scratch-http` and installs its npm
/// dependencies there as the sample's own Makefile builds it (`npm install --install-links`):
/// inside the package directory, readable by the function's uid, as in its deploy zip.
fn node_http_sample_with_modules(tmp: &Path) -> PathBuf {
    let from = samples().join("otc-nodejs/scratch-http");
    let pkg = tmp.join("scratch-http");
    std::fs::create_dir_all(pkg.join("src")).unwrap();
    for f in ["bootstrap", "package.json", "src/index.js"] {
        std::fs::copy(from.join(f), pkg.join(f)).unwrap();
    }
    let out = Command::new("npm")
        .args([
            "install",
            "--install-links",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ])
        .current_dir(&pkg)
        .output()
        .unwrap_or_else(|e| {
            panic!("npm is needed to install the Koa sample's modules (apt-get install npm): {e}")
        });
    assert!(
        out.status.success(),
        "npm install (the sample's koa, @koa/router, koa-bodyparser from the npm registry) \
         failed:\n{}",
        text(&out.stderr)
    );
    assert!(pkg.join("node_modules/koa/package.json").is_file());
    pkg
}

/// The sample's own logger lines for request `id`: `<ISO time> [INFO] [<id>] <request> -
/// Request received`, then `… - Response: 200`, in that order (the id is the X-Cff-Request-Id
/// header the platform sends).
fn check_koa_logger_lines(log: &str, id: &str, request: &str) {
    let received = format!("Z [INFO] [{id}] {request} - Request received");
    let answered = format!("Z [INFO] [{id}] {request} - Response: 200");
    let at = log
        .find(&received)
        .unwrap_or_else(|| panic!("no {received:?} in:\n{log}"));
    assert!(
        log[at..].contains(&answered),
        "no {answered:?} after {received:?} in:\n{log}"
    );
}

/// opentelekomcloud-community/otc-functiongraph-nodejs-runtime `scratch-http`: an HTTP function
/// on Koa (`@koa/router`, `koa-bodyparser`), started by its published one-line bootstrap
/// (mode 0644, no shebang) with the platform's `/opt/function/runtime/nodejs20.15/…/node`, with
/// its terraform's configuration (runtime http, 512 MB, 30 s, its user_data) and its two test
/// events (GET and POST `/index`), under `fnbox run` and `fnbox serve`; it answers
/// "Hello World, user!" with its own request logging.
#[test]
fn node_koa_http_sample_serves_through_its_bootstrap() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = node_http_sample_with_modules(tmp.path());
    let get = samples().join("otc-nodejs/events/http_apig_get_index.json");
    let post = samples().join("otc-nodejs/events/http_apig_post_index.json");
    let config = [
        "--runtime",
        "http",
        "--memory",
        "512",
        "--timeout",
        "30",
        "--env",
        "RUNTIME_LOG_LEVEL=DEBUG",
        "--env",
        "REGION=eu-de",
    ];
    let get_request = "GET /index?name=John&responseType=application%2Fjson";
    let post_request = "POST /index?responseType=application%2Fjson";
    let check_answer = |stdout: &str| {
        let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON answer");
        assert_eq!(v["statusCode"], 200, "{v}");
        assert_eq!(decoded_body(&v), "Hello World, user!", "{v}");
        assert!(
            v["headers"]["content-type"]
                .as_str()
                .is_some_and(|t| t.starts_with("application/json")),
            "{v}"
        );
    };

    for (event, request) in [(&get, get_request), (&post, post_request)] {
        let mut args = vec!["run", pkg.to_str().unwrap()];
        args.extend(config);
        args.extend(["--event-file", event.to_str().unwrap()]);
        let out = fnbox(&args);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{stderr}");
        check_answer(&stdout);
        let ids = check_documented_lines(&stderr, &[]);
        assert_eq!(ids.len(), 1, "{stderr}");
        check_koa_logger_lines(&stderr, &ids[0], request);
    }

    // fnbox serve: the same answer, and the sample's lines in the X-Cff-Function-Log tail.
    let mut serve_args = vec![pkg.to_str().unwrap()];
    serve_args.extend(config);
    let s = Serve::start(FNBOX, &serve_args);
    for (event, request) in [(&get, get_request), (&post, post_request)] {
        let out = fnbox_testkit::serve::invoke(
            FNBOX,
            &s.url(),
            &[
                "scratch-http",
                "--event-file",
                event.to_str().unwrap(),
                "--log-type",
                "tail",
            ],
        );
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{stderr}");
        check_answer(&stdout);
        let ids = check_documented_lines(&stderr, &[]);
        assert_eq!(ids.len(), 1, "{stderr}");
        check_koa_logger_lines(&stderr, &ids[0], request);
    }
    s.stop();
}
