//! Which interpreter runs a built-in runtime of a given version (issue 21 item 6).
//!
//! FunctionGraph lists Python2.7, Python3.6 … Python3.12 and Node.js6.10 … Node.js20.15. fnbox
//! runs the runtime on the interpreter of that version when PATH has one that works (it is run
//! once with `--version`-like arguments: a pyenv shim that only names another version does not
//! count), otherwise on the machine's `python3` / `node`, and says which one stands in. The
//! built-in runtimes need Python 3.8+ and Node.js 14+, so an older interpreter of the exact
//! version cannot run them either. Python 2 is refused: no Python 3 interpreter runs Python 2
//! code faithfully, and the built-in runtime does not run on Python 2.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use super::{which, LaunchError};

/// The interpreter chosen, and the start-up note when it is a stand-in.
#[derive(Debug)]
pub(super) struct Interpreter {
    pub(super) program: PathBuf,
    pub(super) note: Option<String>,
}

/// Oldest Python (major, minor) the built-in runtime runs on.
const PYTHON_MIN: (u32, u32) = (3, 8);
/// Oldest Node.js major the built-in runtime runs on.
const NODE_MIN: u32 = 14;

const PYTHON_VERSION: &[&str] = &[
    "-c",
    "import sys; print('%d.%d.%d' % tuple(sys.version_info[:3]))",
];
const NODE_VERSION: &[&str] = &["--version"];

/// What `program args` printed (trimmed), when it ran and exited 0; cached per program, so a
/// function's instances cost one probe per interpreter for fnbox's whole run.
fn probe(program: &Path, args: &[&str]) -> Option<String> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, Option<String>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    if let Some(hit) = cache
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(program)
    {
        return hit.clone();
    }
    // Synchronous on purpose: a function's launch is decided once, when it is loaded (before
    // anything is served), and the answer is cached.
    let out = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty());
    cache
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(program.to_path_buf(), out.clone());
    out
}

/// `3.10.13` → (3, 10); `v20.20.2` → (20, 20).
fn major_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.trim_start_matches('v').split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// A working interpreter named `name` on `path`, with the version it reports.
fn find(name: &str, args: &[&str], path: &str) -> Option<(PathBuf, String)> {
    let program = which(name, path)?;
    let version = probe(&program, args)?;
    Some((program, version))
}

/// The interpreter for `Python<version>`.
pub(super) fn python(runtime: &str, version: &str, path: &str) -> Result<Interpreter, LaunchError> {
    let wanted = major_minor(version);
    if wanted.is_some_and(|(major, _)| major == 2) {
        let why = match ["python2.7", "python2"]
            .iter()
            .find_map(|n| find(n, PYTHON_VERSION, path))
        {
            Some((program, v)) => format!(
                "fnbox's built-in Python runtime runs on Python 3 only, and {} (Python {v}) \
                 cannot run it: run the function as runtime Custom with a bootstrap that starts \
                 your Python 2 code, or move it to Python3.x",
                program.display()
            ),
            None => format!(
                "needs a Python 2.7 interpreter (python2.7 or python2 on PATH), and none was \
                 found (PATH={path}); fnbox's built-in Python runtime runs on Python 3 only: \
                 move the function to Python3.x, or run it as runtime Custom with a bootstrap \
                 that starts python2.7 (install Python 2.7)"
            ),
        };
        return Err(LaunchError::NoInterpreter {
            runtime: runtime.to_string(),
            why,
        });
    }
    let exact = format!("python{version}");
    let usable = |v: &str| major_minor(v).is_some_and(|mm| mm >= PYTHON_MIN);
    if let Some((program, v)) = find(&exact, PYTHON_VERSION, path).filter(|(_, v)| usable(v)) {
        if major_minor(&v) == wanted {
            return Ok(Interpreter {
                program,
                note: None,
            });
        }
    }
    let Some((program, v)) = find("python3", PYTHON_VERSION, path).filter(|(_, v)| usable(v))
    else {
        return Err(LaunchError::InterpreterMissing {
            runtime: runtime.to_string(),
            program: "python3".into(),
            path: path.into(),
        });
    };
    let note = (major_minor(&v) != wanted).then(|| {
        format!(
            "runtime {runtime}: no working {exact} on PATH{}; python3 {v} ({}) stands in",
            if wanted.is_some_and(|mm| mm < PYTHON_MIN) {
                " (the built-in runtime needs Python 3.8+)"
            } else {
                ""
            },
            program.display()
        )
    });
    Ok(Interpreter { program, note })
}

/// The interpreter for `Node.js<version>`.
pub(super) fn node(runtime: &str, version: &str, path: &str) -> Result<Interpreter, LaunchError> {
    let wanted: Option<u32> = version.split('.').next().and_then(|m| m.parse().ok());
    let exact = format!("node{}", wanted.map(|m| m.to_string()).unwrap_or_default());
    let major_of = |v: &str| major_minor(v).map(|(m, _)| m);
    let usable = |v: &str| major_of(v).is_some_and(|m| m >= NODE_MIN);
    for name in [exact.as_str(), "node"] {
        if let Some((program, v)) = find(name, NODE_VERSION, path).filter(|(_, v)| usable(v)) {
            if major_of(&v) == wanted {
                return Ok(Interpreter {
                    program,
                    note: None,
                });
            }
        }
    }
    let Some((program, v)) = find("node", NODE_VERSION, path).filter(|(_, v)| usable(v)) else {
        return Err(LaunchError::InterpreterMissing {
            runtime: runtime.to_string(),
            program: "node".into(),
            path: path.into(),
        });
    };
    let note = format!(
        "runtime {runtime}: no working node {} on PATH{}; node {v} ({}) stands in",
        wanted.map(|m| m.to_string()).unwrap_or_default(),
        if wanted.is_some_and(|m| m < NODE_MIN) {
            " (the built-in runtime needs Node.js 14+)"
        } else {
            ""
        },
        program.display()
    );
    Ok(Interpreter {
        program,
        note: Some(note),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PATH directory holding fake interpreters that print `version`.
    fn fake(dir: &Path, name: &str, version: &str) {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\necho {version}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn the_exact_version_runs_when_it_works_else_a_stand_in_is_named() {
        let d = tempfile::tempdir().unwrap();
        fake(d.path(), "python3", "3.11.7");
        fake(d.path(), "python3.10", "3.10.13");
        fake(d.path(), "node", "v20.20.2");
        // A pyenv-like shim that fails does not count.
        std::fs::write(d.path().join("python3.9"), "#!/bin/sh\nexit 127\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            d.path().join("python3.9"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let path = d.path().to_str().unwrap();

        let i = python("Python3.10", "3.10", path).unwrap();
        assert!(i.program.ends_with("python3.10") && i.note.is_none());
        let i = python("Python3.11", "3.11", path).unwrap();
        assert!(i.program.ends_with("python3") && i.note.is_none());
        let i = python("Python3.9", "3.9", path).unwrap();
        assert_eq!(
            i.note.unwrap(),
            format!(
                "runtime Python3.9: no working python3.9 on PATH; python3 3.11.7 ({path}/python3) stands in"
            )
        );
        let i = python("Python3.6", "3.6", path).unwrap();
        assert!(i.note.unwrap().contains("needs Python 3.8+"));
        let e = python("Python2.7", "2.7", path).unwrap_err().to_string();
        assert!(
            e.starts_with("runtime Python2.7: needs a Python 2.7 interpreter")
                && e.contains("install Python 2.7"),
            "{e}"
        );
        fake(d.path(), "python2.7", "2.7.18");
        let e = python("Python2.7", "2.7", path).unwrap_err().to_string();
        assert!(e.contains("(Python 2.7.18) cannot run it"), "{e}");

        let i = node("Node.js20.15", "20.15", path).unwrap();
        assert!(i.program.ends_with("node") && i.note.is_none());
        let i = node("Node.js6.10", "6.10", path).unwrap();
        assert_eq!(
            i.note.unwrap(),
            format!(
                "runtime Node.js6.10: no working node 6 on PATH (the built-in runtime needs Node.js 14+); node v20.20.2 ({path}/node) stands in"
            )
        );
        fake(d.path(), "node16", "v16.17.0");
        let i = node("Node.js16.17", "16.17", path).unwrap();
        assert!(i.program.ends_with("node16") && i.note.is_none());

        let empty = tempfile::tempdir().unwrap();
        let e = node("Node.js20.15", "20.15", empty.path().to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs `node` on PATH"), "{e}");
    }
}
