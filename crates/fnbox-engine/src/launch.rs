//! How an instance's runtime process is started, per runtime kind.
//!
//! The built-in Python and Node.js runtimes are compiled into the binary (`runtimes/` at the
//! repository root) and written once to a per-user cache directory keyed by their content, so
//! an fnbox binary is self-contained and two versions never share a stale file.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use fnbox_package::{Package, Runtime};

const PYTHON_RUNTIME: &str = include_str!("../../../runtimes/python/fnbox_runtime.py");
const NODE_RUNTIME: &str = include_str!("../../../runtimes/node/fnbox_runtime.js");

#[path = "launch/interpreters.rs"]
mod interpreters;

/// The port an [`RuntimeKind::HttpServer`] runtime serves on (FunctionGraph HTTP functions).
pub const HTTP_PORT: u16 = 8000;

/// What plays the runtime's part in an instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuntimeKind {
    /// A process speaking the runtime API itself (`bootstrap`, built-in runtimes).
    RuntimeApi,
    /// An HTTP server on [`HTTP_PORT`]; the dialect's runtime bridge
    /// ([`crate::Dialect::runtime_bridge`]) forwards invocations to it.
    HttpServer,
}

/// A runtime's program and arguments.
#[derive(Clone, Debug)]
pub struct Launch {
    /// Program.
    pub program: PathBuf,
    /// Arguments.
    pub args: Vec<std::ffi::OsString>,
    /// Whether fnbox hands the initializer to the runtime as a separate first call (built-in
    /// runtimes only; custom runtimes read `RUNTIME_INITIALIZER_HANDLER` themselves).
    pub runs_initializer: bool,
    /// Runtime API client or HTTP server.
    pub kind: RuntimeKind,
    /// What to tell the user at start-up about the interpreter, when it is not the runtime's
    /// own version (e.g. `runtime Node.js6.10: no node 6 on PATH, node 20.20.2 (/usr/bin/node)
    /// stands in`).
    pub note: Option<String>,
}

/// The runtime cannot be started here.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// No interpreter on PATH can run the built-in runtime of this version.
    #[error("runtime {runtime}: {why}")]
    NoInterpreter {
        /// Runtime name as configured.
        runtime: String,
        /// What was looked for and what to install.
        why: String,
    },
    /// An interpreter is missing.
    #[error("runtime {runtime} needs `{program}` on PATH, and none was found (PATH={path}); install it or use runtime: Custom with a bootstrap")]
    InterpreterMissing {
        /// Runtime name as configured.
        runtime: String,
        /// Program looked for.
        program: String,
        /// PATH searched.
        path: String,
    },
    /// The dialect has no built-in runtime of this name (e.g. Lambda's managed runtimes: fnbox
    /// has no built-in Lambda runtime client).
    #[error("runtime {runtime} with dialect: {dialect} is not built in; {instead}")]
    NotBuiltIn {
        /// Runtime name as configured.
        runtime: String,
        /// The dialect's name.
        dialect: &'static str,
        /// What to use instead.
        instead: String,
    },
    /// The embedded runtime could not be written to disk.
    #[error("cannot write the built-in runtime to {path}: {source}")]
    Cache {
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl Launch {
    /// Decides how to start the package's runtime. A built-in runtime runs on the interpreter
    /// of its own version when PATH has one that works (`python3.10` for `Python3.10`, `node16`
    /// for `Node.js16.17`), otherwise on the machine's `python3` / `node`, and
    /// [`Launch::note`] says which interpreter stands in.
    pub fn resolve(package: &Package, host_path: Option<&str>) -> Result<Self, LaunchError> {
        let path = host_path.unwrap_or("/usr/local/bin:/usr/bin:/bin");
        let runtime_name = &package.config.runtime_name;
        let builtin = |found: Interpreter, flags: &[&str], file: &str, source: &str| {
            let script = cached_runtime(file, source)?;
            Ok(Launch {
                program: found.program,
                args: flags
                    .iter()
                    .map(Into::into)
                    .chain([script.into_os_string()])
                    .collect(),
                runs_initializer: true,
                kind: RuntimeKind::RuntimeApi,
                note: found.note,
            })
        };
        match &package.config.runtime {
            Runtime::Custom => Ok(Launch {
                program: package.bootstrap(),
                args: Vec::new(),
                runs_initializer: false,
                kind: RuntimeKind::RuntimeApi,
                note: None,
            }),
            Runtime::Http => Ok(Launch {
                program: package.bootstrap(),
                args: Vec::new(),
                runs_initializer: false,
                kind: RuntimeKind::HttpServer,
                note: None,
            }),
            // `-B`: no `__pycache__` written into the function's code directory (read-only on
            // the platforms).
            Runtime::Python { version } => builtin(
                interpreters::python(runtime_name, version, path)?,
                &["-B"],
                "fnbox_runtime.py",
                PYTHON_RUNTIME,
            ),
            Runtime::Node { version } => builtin(
                interpreters::node(runtime_name, version, path)?,
                &[],
                "fnbox_runtime.js",
                NODE_RUNTIME,
            ),
        }
    }
}

use interpreters::Interpreter;

/// Writes an embedded runtime to `<cache>/fnbox-runtimes-<uid>/<hash>/<file>` once.
fn cached_runtime(file: &str, source: &str) -> Result<PathBuf, LaunchError> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    source.hash(&mut h);
    let base = std::env::temp_dir().join(format!("fnbox-runtimes-{}", nix::unistd::getuid()));
    let dir = base.join(format!("{:016x}", h.finish()));
    let path = dir.join(file);
    if std::fs::read_to_string(&path)
        .map(|s| s == source)
        .unwrap_or(false)
    {
        return Ok(path);
    }
    let io = |e| LaunchError::Cache {
        path: path.clone(),
        source: e,
    };
    std::fs::create_dir_all(&dir).map_err(io)?;
    let tmp = dir.join(format!(".{file}.{}", std::process::id()));
    std::fs::write(&tmp, source).map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    Ok(path)
}

/// Finds `program` in `path` (a `PATH`-style list).
pub fn which(program: &str, path: &str) -> Option<PathBuf> {
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(program))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt;
            p.metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(yaml: &str, files: &[&str]) -> (tempfile::TempDir, Package) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("function.yaml"), yaml).unwrap();
        for f in files {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        let pkg = fnbox_package::load(dir.path()).unwrap();
        (dir, pkg)
    }

    #[test]
    fn functiongraph_python_uses_the_built_in_runtime() {
        let (_d, pkg) = package("func_name: f\nruntime: Python3.9\n", &["index.py"]);
        match Launch::resolve(&pkg, std::env::var("PATH").ok().as_deref()) {
            Ok(l) => assert!(
                l.runs_initializer
                    && l.args[0] == "-B"
                    && l.args[1].to_string_lossy().ends_with("fnbox_runtime.py")
            ),
            Err(e) => panic!("{e} (install python3: apt-get install python3)"),
        }
    }
}
