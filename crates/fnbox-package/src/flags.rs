//! A function's configuration given on the command line, for a package without a config file:
//! what the samples' own packaging scripts produce for FunctionGraph's console is a bare code
//! zip, the runtime, handler, memory, timeout, initializer and environment being set in the
//! console. `fnbox run` / `fnbox serve` take them as `--runtime`, `--handler`, `--memory`,
//! `--timeout`, `--initializer` and `--env KEY=VALUE`; they are checked by exactly the rules of
//! `function.yaml` (their fields `runtime`, `handler`, `memory_size`, `timeout`,
//! `initializer_handler`, `user_data`).

use std::path::Path;

use serde_yaml_ng::{Mapping, Value};

use crate::config::{from_document, FunctionConfig};
use crate::PackageError;

/// The flags' names, for messages.
pub const FLAG_NAMES: &str = "--runtime, --handler, --memory, --timeout, --initializer, --env";

/// Configuration flags; all `None` / empty when none was given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigFlags {
    /// `--runtime` (`runtime`).
    pub runtime: Option<String>,
    /// `--handler` (`handler`).
    pub handler: Option<String>,
    /// `--memory` in MB (`memory_size`).
    pub memory: Option<u32>,
    /// `--timeout` in seconds (`timeout`).
    pub timeout: Option<u32>,
    /// `--initializer` (`initializer_handler`).
    pub initializer: Option<String>,
    /// `--env KEY=VALUE`, in order (`user_data`; a later key wins).
    pub env: Vec<(String, String)>,
}

impl ConfigFlags {
    /// Whether no flag was given.
    pub fn is_empty(&self) -> bool {
        *self == ConfigFlags::default()
    }

    /// Parses one `--env` value, `KEY=VALUE`.
    pub fn parse_env(text: &str) -> Result<(String, String), String> {
        match text.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!("--env {text:?}: expected KEY=VALUE")),
        }
    }

    /// The flags as the `function.yaml` document they stand for.
    fn document(&self) -> Value {
        let mut m = Mapping::new();
        let mut put = |k: &str, v: Value| {
            m.insert(Value::String(k.into()), v);
        };
        if let Some(v) = &self.runtime {
            put("runtime", Value::String(v.clone()));
        }
        if let Some(v) = &self.handler {
            put("handler", Value::String(v.clone()));
        }
        if let Some(v) = self.memory {
            put("memory_size", Value::Number(v.into()));
        }
        if let Some(v) = self.timeout {
            put("timeout", Value::Number(v.into()));
        }
        if let Some(v) = &self.initializer {
            put("initializer_handler", Value::String(v.clone()));
        }
        if !self.env.is_empty() {
            let mut env = Mapping::new();
            for (k, v) in &self.env {
                env.insert(Value::String(k.clone()), Value::String(v.clone()));
            }
            put("user_data", Value::Mapping(env));
        }
        Value::Mapping(m)
    }

    /// The config these flags give a package without config file; errors name the flags
    /// (`command-line flags: field 'memory_size': …`).
    pub(crate) fn config(&self, default_name: &str) -> Result<FunctionConfig, PackageError> {
        from_document(
            &self.document(),
            Path::new("command-line flags"),
            default_name,
            true,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_become_the_fields_and_are_checked_like_them() {
        let flags = ConfigFlags {
            runtime: Some("Python3.9".into()),
            handler: Some("index.handler".into()),
            memory: Some(256),
            timeout: Some(10),
            initializer: Some("index.init".into()),
            env: vec![("A".into(), "1".into()), ("B".into(), "x=y".into())],
        };
        let c = flags.config("fn").unwrap();
        assert_eq!(c.func_name, "fn");
        assert_eq!(c.runtime_name, "Python3.9");
        assert_eq!(c.memory_size, 256);
        assert_eq!(c.user_data.get("B").map(String::as_str), Some("x=y"));
        let bad = ConfigFlags {
            memory: Some(100),
            ..Default::default()
        };
        let e = bad.config("fn").unwrap_err().to_string();
        assert!(
            e.starts_with("command-line flags: field 'memory_size'"),
            "{e}"
        );
        assert_eq!(
            ConfigFlags::parse_env("K=v=w").unwrap(),
            ("K".into(), "v=w".into())
        );
        assert!(ConfigFlags::parse_env("=v").is_err());
        assert!(ConfigFlags::default().is_empty() && !flags.is_empty());
    }
}
