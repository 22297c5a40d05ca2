//! Issues 19 and 20: a contained Lambda instance runs as its own uid, resolves
//! `sandbox.localdomain` / `sandbox` to its loopback through its own `/etc/hosts`, and sees the
//! package's merged layers read-only at `/opt` (a hand-made `opt_dir` here; the `layers:`
//! parsing is the package side's). Without a mount namespace, layers are refused. Needs root
//! and curl (as CI has).

use std::sync::Arc;

use fnbox_engine::contain::Containment;
use fnbox_engine::{Engine, EngineConfig, Function, InvokeRequest, InvokeResult, NetworkMode};
use fnbox_limits::MemoryController;
use fnbox_testkit::FixturePackage;
use serde_json::Value;

/// A Lambda runtime in bash + curl answering every event with what it sees.
const RUNTIME: &str = r#"#!/bin/bash
API="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
h=$(mktemp)
j() { printf '"%s":"%s",' "$1" "$2"; }
while true; do
  curl -sS -D "$h" "$API/invocation/next" >/dev/null
  id=$(grep -i '^lambda-runtime-aws-request-id:' "$h" | cut -d' ' -f2 | tr -d '\r')
  out=""
  out+=$(j uid "$(id -u)")
  out+=$(j gid "$(id -g)")
  out+=$(j sandbox_localdomain "$(getent hosts sandbox.localdomain | awk '{print $1}')")
  out+=$(j sandbox "$(getent hosts sandbox | awk '{print $1}')")
  out+=$(j hosts_write "$( (echo x >> /etc/hosts) 2>/dev/null && echo written || echo refused)")
  out+=$(j layer "$(cat /opt/layer.txt 2>&1)")
  out+=$(j layer_ext "$(ls /opt/extensions 2>&1 | tr '\n' ' ')")
  out+=$(j opt_write "$(touch /opt/new 2>/dev/null && echo written || echo refused)")
  out+=$(j task_root_write "$(touch "$LAMBDA_TASK_ROOT/new" 2>/dev/null && echo written || echo refused)")
  curl -sS -X POST "$API/invocation/$id/response" -d "{${out%,}}" >/dev/null
done
"#;

fn require_root_and_curl() {
    assert!(
        std::fs::read_to_string("/proc/self/status").is_ok_and(|s| s
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))),
        "these tests need root (uid changes, mount namespaces): run them as root, as CI does"
    );
    let curl = std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(curl, "curl not found on PATH (apt-get install curl)");
}

/// A package with the runtime above and a hand-made layer directory as its `opt_dir`.
fn package() -> (FixturePackage, tempfile::TempDir, fnbox_package::Package) {
    let pkg = FixturePackage::empty("func_name: lamc\ndialect: lambda\ntimeout: 10\n");
    pkg.write_exec("bootstrap", RUNTIME);
    let opt = tempfile::tempdir().unwrap();
    std::fs::write(opt.path().join("layer.txt"), "from the layer").unwrap();
    std::fs::create_dir(opt.path().join("extensions")).unwrap();
    std::fs::write(opt.path().join("extensions/placeholder"), "").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(opt.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut package = fnbox_package::load(pkg.path()).expect("package loads");
    package.opt_dir = Some(opt.path().to_path_buf());
    (pkg, opt, package)
}

async fn answer(network: NetworkMode) -> Value {
    let (_pkg, _opt, package) = package();
    let memory = MemoryController::detect();
    let (containment, line) = Containment::detect(None, &memory);
    assert!(line.starts_with("containment: on"), "{line}");
    let mut config = EngineConfig::new(memory);
    config.host_path = std::env::var("PATH")
        .ok()
        .map(|p| fnbox_engine::contain::reachable_path(&p));
    config.containment = containment;
    config.network = network;
    let f = Function::new(
        Engine::new(config),
        Arc::new(package),
        Arc::new(fnbox_lambda::Lambda),
    )
    .expect("function");
    let inst = f.start_instance(None).await.expect("init");
    let out = inst.invoke(InvokeRequest::sync("{}")).await.unwrap();
    inst.shutdown().await;
    match &out.result {
        InvokeResult::Ok(b) => serde_json::from_slice(b).unwrap(),
        other => panic!("{other:?}"),
    }
}

fn check(v: &Value) {
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    assert_eq!(s("uid"), "993", "{v}");
    assert_eq!(s("gid"), "993", "{v}");
    assert_eq!(s("sandbox_localdomain"), "127.0.0.1", "{v}");
    assert_eq!(s("sandbox"), "127.0.0.1", "{v}");
    assert_eq!(s("hosts_write"), "refused", "{v}");
    assert_eq!(s("layer"), "from the layer", "{v}");
    assert_eq!(s("layer_ext"), "placeholder ", "{v}");
    assert_eq!(s("opt_write"), "refused", "{v}");
    assert_eq!(s("task_root_write"), "refused", "{v}");
}

#[tokio::test]
async fn a_contained_lambda_instance_on_the_host_network() {
    require_root_and_curl();
    check(&answer(NetworkMode::Host).await);
}

#[tokio::test]
async fn a_contained_lambda_instance_on_its_own_network() {
    require_root_and_curl();
    let (mode, line) = NetworkMode::detect(None);
    assert_eq!(mode, NetworkMode::Isolated, "{line}");
    check(&answer(mode).await);
}

/// Without a mount namespace there is no `/opt` to show the layers at: refused, saying why.
#[tokio::test]
async fn layers_are_refused_without_a_mount_namespace() {
    let (_pkg, _opt, package) = package();
    let mut config = EngineConfig::new(MemoryController::rss_sampling("test"));
    config.host_path = std::env::var("PATH").ok();
    config.containment = Containment::off("FNBOX_CONTAINMENT=off");
    let f = Function::new(
        Engine::new(config),
        Arc::new(package),
        Arc::new(fnbox_lambda::Lambda),
    )
    .expect("function");
    let err = match f.start_instance(None).await {
        Ok(_) => panic!("a package with layers started without a mount namespace"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("the package has layers, which are presented at /opt in the instance's own mount namespace, and fnbox cannot make one here (FNBOX_CONTAINMENT=off)"),
        "{err}"
    );
}
