//! Lambda's environment (lambda-facts §1.9): the reserved variables real runtime clients read
//! (`lambda_runtime` panics without name, version and an integer memory size), on top of the
//! engine's neutral set, and the subset an extension gets.

use fnbox_package::{FunctionConfig, Package, Runtime};

/// Region of Lambda functions that do not set `AWS_REGION` in `user_data`.
pub const DEFAULT_REGION: &str = fnbox_wire::lambda::DEFAULT_REGION;

/// Lambda variables an extension does not get (Lambda developer guide, "Extensions API").
const EXTENSION_EXCLUDED: &[&str] = &[
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_XRAY_CONTEXT_MISSING",
    "AWS_XRAY_DAEMON_ADDRESS",
    "LAMBDA_RUNTIME_DIR",
    "LAMBDA_TASK_ROOT",
    "_AWS_XRAY_DAEMON_ADDRESS",
    "_AWS_XRAY_DAEMON_PORT",
    "_HANDLER",
];

/// The region of a Lambda function: `user_data.AWS_REGION`, else [`DEFAULT_REGION`].
pub fn lambda_region(c: &FunctionConfig) -> &str {
    c.user_data
        .get("AWS_REGION")
        .map(String::as_str)
        .filter(|r| !r.is_empty())
        .unwrap_or(DEFAULT_REGION)
}

/// The environment of an extension, given the runtime's.
///
/// FunctionGraph's own variables (`RUNTIME_*`, `EXTENSION_API_ADDR`) are not Lambda's: a Lambda
/// extension sees Lambda's environment only (it reaches the Extensions API through
/// `AWS_LAMBDA_RUNTIME_API`).
pub(crate) fn extension_env(runtime_env: &[(String, String)]) -> Vec<(String, String)> {
    runtime_env
        .iter()
        .filter(|(k, _)| {
            !EXTENSION_EXCLUDED.contains(&k.as_str())
                && !k.starts_with("RUNTIME_")
                && k != "EXTENSION_API_ADDR"
        })
        .cloned()
        .collect()
}

/// Lambda's JSON log format comes with an application log level, INFO unless configured.
pub(crate) fn log_level_default(package: &Package, env: &mut Vec<(String, String)>) {
    let c = &package.config;
    let json_logs = c
        .user_data
        .get("AWS_LAMBDA_LOG_FORMAT")
        .is_some_and(|f| f.eq_ignore_ascii_case("json"));
    if json_logs && !c.user_data.contains_key("AWS_LAMBDA_LOG_LEVEL") {
        env.push(("AWS_LAMBDA_LOG_LEVEL".into(), "INFO".into()));
    }
}

/// Lambda's reserved variables (lambda-facts §1.9), replacing `TZ` and `LANG` by Lambda's values.
pub(crate) fn lambda_vars(package: &Package, addr: &str, env: &mut Vec<(String, String)>) {
    let c = &package.config;
    let region = lambda_region(c).to_string();
    let set = |env: &mut Vec<(String, String)>, k: &str, v: String| {
        env.retain(|(existing, _)| existing != k);
        env.push((k.to_string(), v));
    };
    set(env, "AWS_LAMBDA_RUNTIME_API", addr.to_string());
    set(env, "AWS_LAMBDA_FUNCTION_NAME", c.func_name.clone());
    set(env, "AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into());
    set(
        env,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        c.memory_size.to_string(),
    );
    let init_type = match c.snapshot.enabled {
        true => "snap-start",
        false => "on-demand",
    };
    set(env, "AWS_LAMBDA_INITIALIZATION_TYPE", init_type.into());
    set(
        env,
        "AWS_LAMBDA_LOG_GROUP_NAME",
        format!("/aws/lambda/{}", c.func_name),
    );
    set(
        env,
        "AWS_LAMBDA_LOG_STREAM_NAME",
        format!(
            "{}/[$LATEST]{}",
            chrono::Utc::now().format("%Y/%m/%d"),
            uuid::Uuid::new_v4().simple()
        ),
    );
    set(env, "_HANDLER", c.handler.clone());
    set(env, "LAMBDA_TASK_ROOT", package.root.display().to_string());
    set(env, "AWS_REGION", region.clone());
    set(env, "AWS_DEFAULT_REGION", region);
    set(env, "AWS_XRAY_CONTEXT_MISSING", "LOG_ERROR".into());
    set(env, "TZ", ":UTC".into());
    set(env, "LANG", "en_US.UTF-8".into());
    // Managed runtimes name themselves; `provided*` runtimes get no AWS_EXECUTION_ENV.
    if !matches!(c.runtime, Runtime::Custom | Runtime::Http) {
        set(
            env,
            "AWS_EXECUTION_ENV",
            format!("AWS_Lambda_{}", c.runtime_name),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fnbox_engine::instance::env::instance_env;

    fn package(yaml: &str) -> (tempfile::TempDir, Package) {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("function.yaml"), yaml).unwrap();
        let boot = dir.path().join("bootstrap");
        std::fs::write(&boot, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&boot, std::fs::Permissions::from_mode(0o755)).unwrap();
        let pkg = fnbox_package::load(dir.path()).unwrap();
        (dir, pkg)
    }

    fn get<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
        env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn lambda_runtimes_get_the_reserved_variables() {
        let (_d, pkg) = package(
            "func_name: fn1\ndialect: lambda\nmemory_size: 256\nhandler: app.main\nuser_data:\n  AWS_LAMBDA_FUNCTION_NAME: spoof\n  AWS_LAMBDA_LOG_FORMAT: JSON\n",
        );
        let env = instance_env(
            &crate::Lambda,
            &pkg,
            "127.0.0.1:9001".parse().unwrap(),
            None,
        );
        assert_eq!(get(&env, "AWS_LAMBDA_RUNTIME_API"), Some("127.0.0.1:9001"));
        assert_eq!(get(&env, "AWS_LAMBDA_FUNCTION_NAME"), Some("fn1"));
        assert_eq!(get(&env, "AWS_LAMBDA_FUNCTION_VERSION"), Some("$LATEST"));
        assert_eq!(get(&env, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"), Some("256"));
        assert_eq!(get(&env, "_HANDLER"), Some("app.main"));
        assert_eq!(get(&env, "AWS_REGION"), Some("us-east-1"));
        assert_eq!(get(&env, "AWS_DEFAULT_REGION"), Some("us-east-1"));
        assert_eq!(
            get(&env, "AWS_LAMBDA_LOG_GROUP_NAME"),
            Some("/aws/lambda/fn1")
        );
        assert!(get(&env, "AWS_LAMBDA_LOG_STREAM_NAME")
            .unwrap()
            .contains("/[$LATEST]"));
        assert_eq!(
            get(&env, "AWS_LAMBDA_INITIALIZATION_TYPE"),
            Some("on-demand")
        );
        assert_eq!(get(&env, "TZ"), Some(":UTC"));
        assert_eq!(get(&env, "LANG"), Some("en_US.UTF-8"));
        assert_eq!(get(&env, "AWS_LAMBDA_LOG_FORMAT"), Some("JSON"));
        assert_eq!(get(&env, "AWS_LAMBDA_LOG_LEVEL"), Some("INFO"));
        assert_eq!(
            get(&env, "LAMBDA_TASK_ROOT"),
            Some(pkg.root.display().to_string().as_str())
        );
        assert_eq!(get(&env, "AWS_EXECUTION_ENV"), None, "provided runtimes");
        assert_eq!(env.iter().filter(|(k, _)| k == "TZ").count(), 1);

        let ext = extension_env(&env);
        assert_eq!(get(&ext, "_HANDLER"), None);
        assert_eq!(get(&ext, "LAMBDA_TASK_ROOT"), None);
        assert_eq!(get(&ext, "AWS_LAMBDA_LOG_STREAM_NAME"), None);
        assert_eq!(get(&ext, "AWS_LAMBDA_RUNTIME_API"), Some("127.0.0.1:9001"));
        assert_eq!(get(&ext, "AWS_LAMBDA_FUNCTION_NAME"), Some("fn1"));
        assert!(
            ext.iter()
                .all(|(k, _)| !k.starts_with("RUNTIME_") && k != "EXTENSION_API_ADDR"),
            "FunctionGraph's variables stay out of a Lambda extension: {ext:?}"
        );
        assert_eq!(
            get(&env, "RUNTIME_FUNC_NAME"),
            Some("fn1"),
            "the runtime keeps them"
        );
    }

    #[test]
    fn region_comes_from_user_data() {
        let (_d, pkg) =
            package("func_name: r\ndialect: lambda\nuser_data:\n  AWS_REGION: eu-west-1\n");
        assert_eq!(lambda_region(&pkg.config), "eu-west-1");
        let env = instance_env(&crate::Lambda, &pkg, "127.0.0.1:1".parse().unwrap(), None);
        assert_eq!(get(&env, "AWS_DEFAULT_REGION"), Some("eu-west-1"));
    }
}
