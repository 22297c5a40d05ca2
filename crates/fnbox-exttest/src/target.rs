//! What is tested: the extensions of a function package, or a directory of extensions, and the
//! function fnbox runs beside them in each scenario.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fnbox_package::{Dialect, Extension, Package};

use crate::ExtTestError;

/// The extensions under test.
pub struct Target {
    /// The path as given.
    pub shown: PathBuf,
    /// The dialect they speak.
    pub dialect: Dialect,
    /// The extension files (absolute paths, started where they are).
    pub extensions: Vec<Extension>,
    /// The package's `user_data` (the extensions' configuration), empty for a directory.
    pub user_data: BTreeMap<String, String>,
    /// Keeps a zip's extraction alive.
    _package: Option<Arc<Package>>,
}

impl Target {
    /// A package (directory with `function.yaml`/`.yml`/`.json`, or a `.zip`): its extensions
    /// and `user_data`; or a directory of extensions: FunctionGraph `extension*.sh` files, or
    /// Lambda executables (with `--dialect lambda`), in the directory itself or in its
    /// `extension/` (resp. `extensions/`) subdirectory.
    pub fn resolve(path: &Path, dialect: Option<Dialect>) -> Result<Target, ExtTestError> {
        if !path.exists() {
            return Err(ExtTestError::Target(format!(
                "{}: no such file or directory",
                path.display()
            )));
        }
        let is_package = path.is_file()
            || fnbox_package::CONFIG_FILES
                .iter()
                .any(|f| path.join(f).exists());
        if is_package {
            let package = Arc::new(fnbox_package::load(path)?);
            if let Some(d) = dialect {
                if d != package.config.dialect {
                    return Err(ExtTestError::Target(format!(
                        "--dialect {}: the package {} says dialect {}; drop --dialect or change function.yaml",
                        d.as_str(),
                        path.display(),
                        package.config.dialect.as_str()
                    )));
                }
            }
            if package.extensions.is_empty() {
                return Err(ExtTestError::Target(format!(
                    "{}: the package has no extensions ({})",
                    path.display(),
                    where_extensions_go(package.config.dialect)
                )));
            }
            return Ok(Target {
                shown: path.to_owned(),
                dialect: package.config.dialect,
                extensions: package.extensions.clone(),
                user_data: package.config.user_data.clone(),
                _package: Some(package),
            });
        }
        let dialect = dialect.unwrap_or(Dialect::FunctionGraph);
        let sub = match dialect {
            Dialect::FunctionGraph => "extension",
            Dialect::Lambda => "extensions",
        };
        let dir = if path.join(sub).is_dir() {
            path.join(sub)
        } else {
            path.to_owned()
        };
        let dir = std::fs::canonicalize(&dir)
            .map_err(|e| ExtTestError::Target(format!("{}: {e}", dir.display())))?;
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| ExtTestError::Target(format!("{}: {e}", dir.display())))?;
        let mut extensions = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(meta) = std::fs::metadata(entry.path()) else {
                continue;
            };
            let wanted = meta.is_file()
                && match dialect {
                    Dialect::FunctionGraph => {
                        name.starts_with("extension") && name.ends_with(".sh")
                    }
                    Dialect::Lambda => meta.permissions().mode() & 0o111 != 0,
                };
            if wanted {
                extensions.push(Extension {
                    name,
                    path: entry.path(),
                });
            }
        }
        extensions.sort_by(|a, b| a.name.cmp(&b.name));
        if extensions.is_empty() {
            return Err(ExtTestError::Target(format!(
                "{}: no extensions found ({}; or give a function package)",
                path.display(),
                where_extensions_go(dialect)
            )));
        }
        if extensions.len() > fnbox_package::MAX_EXTENSIONS {
            return Err(ExtTestError::Target(format!(
                "{}: {} extensions; at most {} run beside one function",
                path.display(),
                extensions.len(),
                fnbox_package::MAX_EXTENSIONS
            )));
        }
        Ok(Target {
            shown: path.to_owned(),
            dialect,
            extensions,
            user_data: BTreeMap::new(),
            _package: None,
        })
    }

    /// Names of the extensions, for the heading.
    pub fn names(&self) -> String {
        self.extensions
            .iter()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn where_extensions_go(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::FunctionGraph => "FunctionGraph: extension/extension*.sh",
        Dialect::Lambda => "Lambda: executables in extensions/",
    }
}

/// The bash runtime fnbox runs beside the extension. The event says what to do:
/// `{"exttest":"ok|burst|sleep|crash|oom","tag":"…","lines":N}`; every action first prints
/// `[Function] exttest <tag>` (`burst`: N numbered lines).
pub const RUNTIME: &str = r#"#!/bin/bash
# fnbox test-extension's function: plain bash speaking the runtime API over /dev/tcp.
set -u
trap '' PIPE
export LC_ALL=C
ADDR=${AWS_LAMBDA_RUNTIME_API:-$RUNTIME_API_ADDR}
HOST=${ADDR%:*}
PORT=${ADDR##*:}
if [ "${EXTTEST_DIALECT:-functiongraph}" = lambda ]; then
  NEXT=/2018-06-01/runtime/invocation/next; ID_HEADER=lambda-runtime-aws-request-id
  response_path() { echo "/2018-06-01/runtime/invocation/$1/response"; }
else
  NEXT=/v1/runtime/invocation/request; ID_HEADER=x-cff-request-id
  response_path() { echo "/v1/runtime/invocation/response/$1"; }
fi
http() {
  local method=$1 path=$2 body=${3-} line length=
  REQUEST_ID= BODY=
  exec 3<>"/dev/tcp/$HOST/$PORT" || return 1
  printf '%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s' \
    "$method" "$path" "$ADDR" "${#body}" "$body" >&3
  IFS=' ' read -r _ STATUS _ <&3 || { exec 3<&-; return 1; }
  while IFS= read -r line <&3; do
    line=${line%$'\r'}
    [ -z "$line" ] && break
    case ${line,,} in
      "$ID_HEADER":*) REQUEST_ID=${line#*:}; REQUEST_ID=${REQUEST_ID//[[:space:]]/} ;;
      content-length:*) length=${line#*:}; length=${length//[[:space:]]/} ;;
    esac
  done
  if [ -n "$length" ] && [ "$length" -gt 0 ]; then IFS= read -r -N "$length" BODY <&3; fi
  exec 3<&-
  return 0
}
field() { [[ $BODY =~ \"$1\":\"?([A-Za-z0-9_.-]+) ]] && echo "${BASH_REMATCH[1]}"; }
while true; do
  if ! http GET "$NEXT" || [ -z "$REQUEST_ID" ]; then sleep 0.05; continue; fi
  action=$(field exttest); tag=$(field tag)
  case $action in
    burst) seq -f "[Function] exttest $tag %.0f" 1 "$(field lines)" ;;
    *) echo "[Function] exttest $tag" ;;
  esac
  case $action in
    sleep) sleep 3600 ;;
    crash) exit 3 ;;
    oom) exec tail /dev/zero ;;
  esac
  http POST "$(response_path "$REQUEST_ID")" '{"ok":true}' || true
done
"#;
