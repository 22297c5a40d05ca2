//! A runtime that holds its instance API's sockets: silent connections past the server's
//! connection cap are each closed by the header timeout, and the runtime's own long-poll, which
//! waits longer than every limit, still gets its invocation.

use std::sync::Arc;
use std::time::Duration;

use fnbox_engine::http_serve::InstanceHttpLimits;
use fnbox_engine::{Engine, EngineConfig, Function, InvokeRequest, InvokeResult};
use fnbox_limits::MemoryController;
use fnbox_testkit::FixturePackage;

/// Opens 80 connections and sends nothing on them (the server serves at most
/// 32 + 2 + 20 = 54 at once), counts those the server closed (EOF or reset, not a read
/// timeout), then serves invocations.
const HOSTILE: &str = r#"
fds=()
for i in $(seq 1 80); do exec {fd}<>"/dev/tcp/$HOST/$PORT"; fds+=("$fd"); done
closed=0
for fd in "${fds[@]}"; do
  read -r -t 8 -u "$fd" _; rc=$?
  [ "$rc" -le 128 ] && closed=$((closed + 1))
  exec {fd}<&-
done
echo "$closed" > "$RUNTIME_CODE_ROOT/closed"
while next; do respond "$REQUEST_ID" '"served"'; done
"#;

#[tokio::test]
async fn silent_connections_are_closed_and_the_long_poll_is_not() {
    let pkg = FixturePackage::bash("func_name: hostile\ninitializer_timeout: 30\n", HOSTILE);
    let package = Arc::new(fnbox_package::load(pkg.path()).unwrap());
    let mut config = EngineConfig::new(MemoryController::detect());
    config.host_path = std::env::var("PATH").ok();
    config.instance_http = InstanceHttpLimits {
        header_timeout: Duration::from_millis(500),
        idle_timeout: Duration::from_millis(700),
        ..InstanceHttpLimits::default()
    };
    let f = Function::new(
        Engine::new(config),
        package,
        Arc::new(fnbox_fg::FunctionGraph),
    )
    .unwrap();
    let inst = f.start_instance(None).await.expect("init");
    let closed = std::fs::read_to_string(pkg.path().join("closed")).unwrap();
    assert_eq!(closed.trim(), "80", "connections closed by the server");
    // The runtime's long-poll now waits longer than the header and idle timeouts.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let out = inst.invoke(InvokeRequest::sync("{}")).await.unwrap();
    match &out.result {
        InvokeResult::Ok(b) => assert_eq!(&b[..], b"\"served\""),
        other => panic!("{other:?}"),
    }
    inst.shutdown().await;
}
