//! `fnbox serve` as the Kubernetes Deployment of deploy/kubernetes runs it: one instance per pod
//! named after the pod (`--pod-name` / `FNBOX_POD_NAME`, CONTRACT §2), the token from the
//! environment (`FNBOX_TOKEN`, a Secret there), `/health` answering the kubelet's probes without
//! it; and the setups that flag refuses.

// These tests drive real processes from plain threads; waiting on them is synchronous.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::process::{Command, Stdio};
use std::time::Duration;

use fnbox_testkit::serve::Serve;
use fnbox_testkit::{http, FixturePackage};

const FNBOX: &str = env!("CARGO_BIN_EXE_fnbox");

const ECHO: &str = r#"
while next; do respond "$REQUEST_ID" "{\"echo\":$BODY}"; done
"#;

fn pkg(name: &str, extra: &str) -> FixturePackage {
    FixturePackage::bash(&format!("func_name: {name}\ntimeout: 5\n{extra}"), ECHO)
}

#[test]
fn the_pod_name_names_the_instance_and_health_needs_no_token() {
    let f = pkg("hello", "max_instances: 1\nreserved_instances: 1\n");
    let s = Serve::start_with_env(
        FNBOX,
        &[f.path().to_str().unwrap()],
        &[
            ("FNBOX_POD_NAME", "fnbox-6d5f8b7c9-x2x7q"),
            ("FNBOX_TOKEN", "s3cret"),
        ],
    );
    let startup = s.startup.join("\n");
    assert!(
        startup.contains("podName: fnbox-6d5f8b7c9-x2x7q (one instance per pod)"),
        "{startup}"
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let auth = [("X-Auth-Token", "s3cret")];
    rt.block_on(async {
        // The kubelet's probes carry no secret.
        let r = http::get(s.addr, "/health").await.unwrap();
        assert_eq!(r.status_text(), (200, r#"{"status":"ok"}"#.to_string()));
        // Everything else does.
        let r = http::get(s.addr, "/instances").await.unwrap();
        assert_eq!(r.code(), 401, "{}", r.text());
        let r = http::request(
            s.addr,
            "POST",
            "/v2/p/fgs/functions/hello/invocations",
            &auth,
            r#"{"k":1}"#,
        )
        .await
        .unwrap();
        assert_eq!(r.code(), 200, "{}", r.text());
        assert_eq!(r.json()["echo"]["k"], 1);
        let r = http::request(s.addr, "GET", "/instances", &auth, "")
            .await
            .unwrap();
        let list = r.json();
        let list = list.as_array().unwrap();
        assert_eq!(list.len(), 1, "{list:?}");
        assert_eq!(list[0]["pod_name"], "fnbox-6d5f8b7c9-x2x7q", "{list:?}");
    });
    let (code, err) = s.terminate(Duration::from_secs(15));
    assert_eq!(code, Some(0), "stderr: {err}");
}

fn serve_fails(args: &[&str]) -> String {
    let out = Command::new(FNBOX)
        .arg("serve")
        .args(args)
        .env_remove("FNBOX_TOKEN")
        .env_remove("FNBOX_POD_NAME")
        .stdin(Stdio::null())
        .output()
        .expect("run fnbox serve");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    err
}

#[test]
fn the_pod_name_needs_one_function_with_one_instance() {
    let data = tempfile::tempdir().unwrap();
    let data = data.path().to_str().unwrap();
    let one = pkg("one", "max_instances: 1\n");
    let many = pkg("many", "");
    let (one, many) = (one.path().to_str().unwrap(), many.path().to_str().unwrap());
    let base = ["--listen", "127.0.0.1:0", "--data-dir", data];

    let err = serve_fails(&[&base[..], &[many, "--pod-name", "pod-a"]].concat());
    assert!(
        err.contains("--pod-name \"pod-a\": the pod is the instance: function 'many' needs max_instances 1 (it has 10)"),
        "{err}"
    );
    let err = serve_fails(&[&base[..], &[one, many, "--pod-name", "pod-a"]].concat());
    assert!(
        err.contains("serve exactly one function (here 2: one, many)"),
        "{err}"
    );
    let err = serve_fails(&[&base[..], &[one, "--pod-name", "pod a"]].concat());
    assert!(
        err.contains("--pod-name") && err.contains("\"pod a\""),
        "{err}"
    );
}

#[test]
fn a_non_loopback_address_needs_a_token() {
    let one = pkg("one", "");
    let err = serve_fails(&[one.path().to_str().unwrap(), "--listen", "10.1.2.3:8000"]);
    assert!(
        err.contains("--listen \"10.1.2.3:8000\": fnbox serve listens on loopback addresses only"),
        "{err}"
    );
    assert!(
        err.contains("unless a token is set (--token, FNBOX_TOKEN"),
        "{err}"
    );
}
