//! The restore-phase fields of `function.yaml` (issue 18): `snapshot` (FunctionGraph; fnbox's
//! own field, the platform switches snapshots on in its console), `snap_start` (Lambda, named
//! after `SnapStart.ApplyOn`), `restore_hook_handler` and `restore_hook_timeout` (FunctionGraph's
//! UpdateFunctionConfig fields).

use serde::Serialize;
use serde_yaml_ng::Value;

use super::{describe, Dialect, Fields, Runtime};
use crate::PackageError;

/// `restore_hook_timeout` when absent, seconds (fnbox's choice; the platform documents only the
/// range 1–300).
pub const DEFAULT_RESTORE_HOOK_TIMEOUT: u32 = 10;

/// Longest `restore_hook_handler` FunctionGraph accepts.
pub const RESTORE_HOOK_MAX_CHARS: usize = 128;

/// How instances after the first start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotConfig {
    /// `snapshot: true` (FunctionGraph) or `snap_start: PublishedVersions` (Lambda): the
    /// function is initialized once and later instances restore that state.
    pub enabled: bool,
    /// FunctionGraph: `module.function` run in each restored instance before it serves.
    pub restore_hook_handler: Option<String>,
    /// FunctionGraph: seconds the restore (and its hook) may take, 1..=300.
    pub restore_hook_timeout: u32,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            restore_hook_handler: None,
            restore_hook_timeout: DEFAULT_RESTORE_HOOK_TIMEOUT,
        }
    }
}

impl Fields<'_> {
    /// Reads and checks the restore-phase fields against the dialect and runtime.
    pub(super) fn snapshot_config(
        &self,
        dialect: Dialect,
        runtime: &Runtime,
    ) -> Result<SnapshotConfig, PackageError> {
        let snapshot = match self.values.get("snapshot") {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => {
                return Err(self.error(
                    "snapshot",
                    format!("expected true or false, found {}", describe(other)),
                ))
            }
        };
        let snap_start = match self.string("snap_start")? {
            None => None,
            Some("PublishedVersions") => Some(true),
            Some("None") => Some(false),
            Some(other) => {
                return Err(self.error(
                    "snap_start",
                    format!("'{other}' is not allowed; allowed values: PublishedVersions, None (Lambda's SnapStart.ApplyOn)"),
                ))
            }
        };
        let enabled = match dialect {
            Dialect::FunctionGraph => {
                if snap_start.is_some() {
                    return Err(self.error(
                        "snap_start",
                        "is a Lambda field (dialect: lambda); a FunctionGraph function uses snapshot: true",
                    ));
                }
                snapshot.unwrap_or(false)
            }
            Dialect::Lambda => {
                if snapshot.is_some() {
                    return Err(self.error(
                        "snapshot",
                        "is a FunctionGraph field; a Lambda function uses snap_start: PublishedVersions",
                    ));
                }
                snap_start.unwrap_or(false)
            }
        };
        if enabled && dialect == Dialect::FunctionGraph {
            match runtime {
                Runtime::Python { .. } => {}
                Runtime::Custom | Runtime::Http => {
                    return Err(self.error(
                        "snapshot",
                        "FunctionGraph custom runtimes have no restore protocol (the platform offers snapshots for Java only), \
                         so fnbox cannot restore one; use a built-in Python runtime (fnbox forks restored instances from an \
                         initialized template), or dialect: lambda with snap_start: PublishedVersions, or remove snapshot",
                    ))
                }
                Runtime::Node { .. } => {
                    return Err(self.error(
                        "snapshot",
                        "is not supported for the built-in Node.js runtime: fnbox has no V8 startup-snapshot \
                         (node --build-snapshot) restore yet and will not present a re-run init as a restore; \
                         use a built-in Python runtime, or remove snapshot",
                    ))
                }
            }
        }
        let restore_hook_handler = match self.string("restore_hook_handler")? {
            None => None,
            Some(_) if dialect == Dialect::Lambda => return Err(self.error(
                "restore_hook_handler",
                "is a FunctionGraph field; Lambda runtimes register after-restore hooks in code \
                     (e.g. awslambdaric's @register_after_restore)",
            )),
            Some(_) if !enabled => {
                return Err(self.error(
                    "restore_hook_handler",
                    "has no effect without snapshot: true",
                ))
            }
            Some(h) if h.chars().count() > RESTORE_HOOK_MAX_CHARS => {
                return Err(self.error(
                    "restore_hook_handler",
                    format!(
                        "is {} characters long; at most {RESTORE_HOOK_MAX_CHARS} are allowed",
                        h.chars().count()
                    ),
                ))
            }
            Some(h) => {
                self.check_handler("restore_hook_handler", h, runtime)?;
                Some(h.to_owned())
            }
        };
        if self.values.contains_key("restore_hook_timeout") && dialect == Dialect::Lambda {
            return Err(self.error(
                "restore_hook_timeout",
                "is a FunctionGraph field; Lambda's limit for after-restore hooks is fixed (10 s)",
            ));
        }
        let restore_hook_timeout = self
            .ranged("restore_hook_timeout", 1, 300, "seconds")?
            .unwrap_or(DEFAULT_RESTORE_HOOK_TIMEOUT);
        Ok(SnapshotConfig {
            enabled,
            restore_hook_handler,
            restore_hook_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::parse_config;
    use std::path::Path;

    fn parse(yaml: &str) -> Result<crate::FunctionConfig, String> {
        parse_config(yaml, Path::new("function.yaml"), "f").map_err(|e| e.to_string())
    }

    #[test]
    fn functiongraph_python_snapshot_with_hook() {
        let c = parse("runtime: Python3.9\nsnapshot: true\nrestore_hook_handler: index.restore\nrestore_hook_timeout: 5\n").unwrap();
        assert!(c.snapshot.enabled);
        assert_eq!(
            c.snapshot.restore_hook_handler.as_deref(),
            Some("index.restore")
        );
        assert_eq!(c.snapshot.restore_hook_timeout, 5);
        assert!(!parse("runtime: Python3.9\n").unwrap().snapshot.enabled);
    }

    #[test]
    fn lambda_snap_start() {
        let c = parse("dialect: lambda\nsnap_start: PublishedVersions\n").unwrap();
        assert!(c.snapshot.enabled);
        let e = parse("dialect: lambda\nsnap_start: Always\n").unwrap_err();
        assert!(
            e.contains("snap_start") && e.contains("PublishedVersions"),
            "{e}"
        );
        let e = parse("dialect: lambda\nsnapshot: true\n").unwrap_err();
        assert!(e.contains("snap_start: PublishedVersions"), "{e}");
    }

    #[test]
    fn refusals_name_the_reason() {
        let e = parse("runtime: Custom\nsnapshot: true\n").unwrap_err();
        assert!(
            e.contains("no restore protocol") && e.contains("Python"),
            "{e}"
        );
        let e = parse("runtime: Node.js18.15\nsnapshot: true\n").unwrap_err();
        assert!(e.contains("V8 startup-snapshot"), "{e}");
        let e = parse("runtime: Python3.9\nsnapshot: yes please\n").unwrap_err();
        assert!(e.contains("snapshot") && e.contains("true or false"), "{e}");
        let e = parse("runtime: Python3.9\nrestore_hook_handler: index.r\n").unwrap_err();
        assert!(e.contains("without snapshot: true"), "{e}");
        let e =
            parse("runtime: Python3.9\nsnapshot: true\nrestore_hook_timeout: 301\n").unwrap_err();
        assert!(
            e.contains("restore_hook_timeout") && e.contains("1 to 300"),
            "{e}"
        );
        let long = format!(
            "runtime: Python3.9\nsnapshot: true\nrestore_hook_handler: index.{}\n",
            "r".repeat(130)
        );
        assert!(parse(&long).unwrap_err().contains("at most 128"));
    }
}
