//! The explicit environment of every runtime and extension process (CONTRACT §2). Nothing is
//! inherited from fnbox's own environment except `PATH`.
//!
//! The engine builds the platform-neutral set (`RUNTIME_*`, `PATH`, `HOME`, `TZ`, `LANG`); the
//! dialect adds its own variables ([`Dialect::runtime_env`], e.g. Lambda's `AWS_LAMBDA_*`) and
//! says what its extensions get ([`Dialect::extension_env`]).

use std::net::SocketAddr;

use fnbox_package::{FunctionConfig, Package};

use crate::dialect::Dialect;

/// `PATH` when fnbox itself has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Builds the environment of an instance's runtime.
pub fn instance_env(
    dialect: &dyn Dialect,
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
        ("EXTENSION_API_ADDR".into(), addr.clone()),
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
    dialect.runtime_env(package, api_addr, &mut env);
    // Platform variables win over user_data entries of the same name, so a function cannot
    // point its own runtime at another API address by accident.
    for (k, v) in &c.user_data {
        if !env.iter().any(|(existing, _)| existing == k) {
            env.push((k.clone(), v.clone()));
        }
    }
    dialect.finish_env(package, &mut env);
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dialect that adds nothing, to see the neutral set alone.
    struct Neutral;
    impl Dialect for Neutral {
        fn name(&self) -> &'static str {
            "neutral"
        }
        fn extension_command(&self, e: &fnbox_package::Extension) -> crate::dialect::Command {
            crate::dialect::Command {
                program: e.path.clone(),
                args: Vec::new(),
            }
        }
        fn log_lines(&self) -> crate::dialect::LogLines {
            crate::dialect::LogLines::Marked
        }
        fn notify_invoke(
            &self,
            _: &std::sync::Arc<crate::InstanceApi>,
            _: &str,
            _: u64,
        ) -> Option<futures::future::BoxFuture<'static, ()>> {
            None
        }
        fn error_info(&self, _: &[u8]) -> crate::dialect::ErrorInfo {
            Default::default()
        }
        fn instance_router(&self, _: std::sync::Arc<crate::InstanceApi>) -> axum::Router {
            axum::Router::new()
        }
    }

    #[test]
    fn the_neutral_set_and_user_data_without_overrides() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("function.yaml"),
            "func_name: fg\nmemory_size: 256\nuser_data:\n  RUNTIME_API_ADDR: spoof\n  MINE: yes\n",
        )
        .unwrap();
        let boot = dir.path().join("bootstrap");
        std::fs::write(&boot, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&boot, std::fs::Permissions::from_mode(0o755)).unwrap();
        let pkg = fnbox_package::load(dir.path()).unwrap();
        let env = instance_env(&Neutral, &pkg, "127.0.0.1:1".parse().unwrap(), Some("/x"));
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(
            get("RUNTIME_API_ADDR"),
            Some("127.0.0.1:1"),
            "platform wins"
        );
        assert_eq!(get("EXTENSION_API_ADDR"), Some("127.0.0.1:1"));
        assert_eq!(get("RUNTIME_MEMORY"), Some("256"));
        assert_eq!(get("MINE"), Some("yes"));
        assert_eq!(get("PATH"), Some("/x"));
        assert_eq!(get("TZ"), Some("UTC"));
        assert_eq!(get("AWS_LAMBDA_RUNTIME_API"), None);
        assert_eq!(
            env.iter().filter(|(k, _)| k == "RUNTIME_API_ADDR").count(),
            1
        );
    }
}
