//! The explicit environment of every runtime and extension process (CONTRACT §2). Nothing is
//! inherited from fnbox's own environment except `PATH`.

use std::net::SocketAddr;

use fnbox_package::{FunctionConfig, Package};

/// `PATH` when fnbox itself has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Builds the environment of an instance's processes.
pub fn instance_env(
    package: &Package,
    api_addr: SocketAddr,
    host_path: Option<&str>,
) -> Vec<(String, String)> {
    let c: &FunctionConfig = &package.config;
    let addr = api_addr.to_string();
    let userdata = serde_json::to_string(&c.user_data).unwrap_or_else(|_| "{}".into());
    let mut env: Vec<(String, String)> = vec![
        ("RUNTIME_PROJECT_ID".into(), "local".into()),
        ("RUNTIME_FUNC_NAME".into(), c.func_name.clone()),
        ("RUNTIME_FUNC_VERSION".into(), "latest".into()),
        ("RUNTIME_PACKAGE".into(), c.package.clone()),
        ("RUNTIME_HANDLER".into(), c.handler.clone()),
        ("RUNTIME_TIMEOUT".into(), c.timeout.to_string()),
        ("RUNTIME_USERDATA".into(), userdata),
        ("RUNTIME_CPU".into(), c.cpu_millicores().to_string()),
        ("RUNTIME_MEMORY".into(), c.memory_size.to_string()),
        (
            "RUNTIME_CODE_ROOT".into(),
            package.root.display().to_string(),
        ),
        (
            "RUNTIME_INITIALIZER_HANDLER".into(),
            c.initializer_handler.clone().unwrap_or_default(),
        ),
        (
            "RUNTIME_INITIALIZER_TIMEOUT".into(),
            c.initializer_timeout.to_string(),
        ),
        ("RUNTIME_CONCURRENCY".into(), c.concurrent_num.to_string()),
        ("RUNTIME_API_ADDR".into(), addr.clone()),
        ("EXTENSION_API_ADDR".into(), addr),
        (
            "PATH".into(),
            host_path
                .filter(|p| !p.is_empty())
                .unwrap_or(DEFAULT_PATH)
                .to_string(),
        ),
        ("HOME".into(), "/tmp".into()),
        ("TZ".into(), "UTC".into()),
        ("LANG".into(), "C.UTF-8".into()),
    ];
    // Platform variables win over user_data entries of the same name, so a function cannot
    // point its own runtime at another API address by accident.
    for (k, v) in &c.user_data {
        if !env.iter().any(|(existing, _)| existing == k) {
            env.push((k.clone(), v.clone()));
        }
    }
    env
}
