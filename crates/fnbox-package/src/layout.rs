//! Checks that need the package's files: bootstrap, handler file, extensions.
//!
//! Every function takes the real (canonical) root to look at and the root as shown to the user to
//! build messages. A symlink is followed only when it resolves inside the root, so a package can
//! never make fnbox start something outside itself.

use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::config::{Dialect, FunctionConfig, HandlerSpec};
use crate::{Extension, PackageError};

/// Most extensions one function may have (FunctionGraph HW-2707, and Lambda's own limit).
pub const MAX_EXTENSIONS: usize = 10;

/// Where the package came from, for messages.
pub(crate) struct Root<'a> {
    /// Canonical code root.
    pub real: &'a Path,
    /// The root as the user knows it (`fn/` or `fn.zip/fn`).
    pub shown: &'a Path,
    /// True when the root is an extracted archive (changes the chmod hint).
    pub from_zip: bool,
}

/// What a path inside the root turned out to be.
enum Found {
    Missing,
    /// A regular file (after following a symlink that stays inside the root).
    File(Metadata),
    /// Something else (directory, socket, ...).
    NotAFile,
    /// A symlink that dangles or leaves the root; the string says which.
    BadLink(String),
}

impl Root<'_> {
    fn inspect(&self, rel: &Path) -> Result<Found, PackageError> {
        let path = self.real.join(rel);
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::Missing),
            Err(e) => return Err(PackageError::io(self.shown.join(rel), "cannot inspect", e)),
        };
        let meta = if meta.file_type().is_symlink() {
            let target = fs::read_link(&path)
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            match fs::canonicalize(&path) {
                Err(_) => {
                    return Ok(Found::BadLink(format!(
                        "is a symlink to '{target}', which does not exist"
                    )))
                }
                Ok(resolved) if !resolved.starts_with(self.real) => {
                    return Ok(Found::BadLink(format!(
                        "is a symlink to '{target}', outside the code root"
                    )))
                }
                Ok(resolved) => fs::metadata(&resolved)
                    .map_err(|e| PackageError::io(self.shown.join(rel), "cannot inspect", e))?,
            }
        } else {
            meta
        };
        Ok(if meta.is_file() {
            Found::File(meta)
        } else {
            Found::NotAFile
        })
    }

    fn chmod_hint(&self, rel: &str) -> String {
        if self.from_zip {
            format!("run chmod +x {rel} before zipping (zip keeps permission bits)")
        } else {
            format!("run chmod +x {}", self.shown.join(rel).display())
        }
    }
}

/// Custom and http runtimes: `bootstrap` must be an executable regular file at the root.
pub(crate) fn check_bootstrap(
    root: &Root<'_>,
    config: &FunctionConfig,
) -> Result<(), PackageError> {
    let shown = root.shown.join("bootstrap");
    let fail = |what: String| PackageError::layout(&shown, format!("{} {what}", shown.display()));
    match root.inspect(Path::new("bootstrap"))? {
        Found::Missing => Err(fail(format!(
            "is missing: runtime '{}' starts an executable file named bootstrap at the code root",
            config.runtime_name
        ))),
        Found::NotAFile => Err(fail("is not a regular file".to_owned())),
        Found::BadLink(why) => Err(fail(why)),
        // FunctionGraph runs `/bin/bash bootstrap` (openYuanrong's launcher), so a published
        // one-line bootstrap without the executable bit is fine there; Lambda executes it.
        Found::File(meta)
            if meta.permissions().mode() & 0o111 == 0
                && config.dialect != crate::Dialect::FunctionGraph =>
        {
            Err(fail(format!(
                "is not executable: {}",
                root.chmod_hint("bootstrap")
            )))
        }
        Found::File(_) => Ok(()),
    }
}

/// Built-in runtimes: the handler's code file must exist (the initializer is in the same file).
pub(crate) fn check_handler_file(
    root: &Root<'_>,
    config_file: &Path,
    config: &FunctionConfig,
) -> Result<(), PackageError> {
    let spec = match HandlerSpec::parse(&config.handler, &config.runtime) {
        Ok(Some(spec)) => spec,
        // parse_config already rejected malformed handlers; bootstrap runtimes have no file.
        _ => return Ok(()),
    };
    for candidate in &spec.candidates {
        if let Found::File(_) = root.inspect(Path::new(candidate))? {
            return Ok(());
        }
    }
    let wanted = root.shown.join(&spec.candidates[0]);
    let also = if spec.candidates[0].ends_with(".js") {
        " (or .mjs, .cjs)"
    } else {
        ""
    };
    Err(PackageError::Field {
        file: config_file.to_owned(),
        field: "handler".to_owned(),
        message: format!(
            "'{}' needs the file {}{also}, which does not exist",
            config.handler,
            wanted.display()
        ),
    })
}

/// Finds the extensions of the package's dialect, sorted by name.
///
/// FunctionGraph: every regular file `extension/extension*.sh` (started with `/bin/bash`, so it
/// need not be executable). Lambda: every executable regular file directly in `extensions/`;
/// non-executable files there are skipped with a warning.
pub(crate) fn discover_extensions(
    root: &Root<'_>,
    dialect: Dialect,
) -> Result<Vec<Extension>, PackageError> {
    let dir_name = match dialect {
        Dialect::FunctionGraph => "extension",
        Dialect::Lambda => "extensions",
    };
    let dir = root.real.join(dir_name);
    let shown_dir = root.shown.join(dir_name);
    match fs::symlink_metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Ok(Vec::new()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(PackageError::io(shown_dir, "cannot inspect", e)),
    }
    let entries = fs::read_dir(&dir).map_err(|e| PackageError::io(&shown_dir, "cannot list", e))?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| PackageError::io(&shown_dir, "cannot list", e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if dialect == Dialect::FunctionGraph
            && !(name.starts_with("extension") && name.ends_with(".sh"))
        {
            continue;
        }
        let rel = PathBuf::from(dir_name).join(&name);
        let shown = root.shown.join(&rel);
        match root.inspect(&rel)? {
            Found::File(meta) => {
                if dialect == Dialect::Lambda && meta.permissions().mode() & 0o111 == 0 {
                    tracing::warn!(path = %shown.display(), "not executable, not started as an extension");
                    continue;
                }
            }
            Found::BadLink(why) => {
                return Err(PackageError::layout(
                    &shown,
                    format!("{} {why}", shown.display()),
                ))
            }
            Found::Missing | Found::NotAFile => continue,
        }
        found.push(Extension {
            path: root.real.join(&rel),
            name,
        });
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    if found.len() > MAX_EXTENSIONS {
        let names: Vec<&str> = found.iter().map(|e| e.name.as_str()).collect();
        return Err(PackageError::layout(
            &shown_dir,
            format!(
                "{} holds {} extensions ({}); at most {MAX_EXTENSIONS} are allowed",
                shown_dir.display(),
                found.len(),
                names.join(", ")
            ),
        ));
    }
    Ok(found)
}

/// Where a Lambda instance sees its layers.
pub const OPT_IN_INSTANCE: &str = "/opt";

/// Adds the extensions of the merged layers (`<opt>/extensions/`, Lambda's
/// `/opt/extensions`) to the package's own, with their in-instance path
/// `/opt/extensions/<name>`. A name in both is an error naming both files; the total is
/// bounded by [`MAX_EXTENSIONS`].
pub(crate) fn merge_layer_extensions(
    found: &mut Vec<Extension>,
    layers: &Root<'_>,
    package_shown: &Path,
) -> Result<(), PackageError> {
    for ext in discover_extensions(layers, Dialect::Lambda)? {
        if found.iter().any(|own| own.name == ext.name) {
            let own = package_shown.join("extensions").join(&ext.name);
            return Err(PackageError::layout(
                &own,
                format!(
                    "extension '{}' is both {} and /opt/extensions/{} (from layers:); \
                     extension names must be unique",
                    ext.name,
                    own.display(),
                    ext.name
                ),
            ));
        }
        found.push(Extension {
            path: Path::new(OPT_IN_INSTANCE)
                .join("extensions")
                .join(&ext.name),
            name: ext.name,
        });
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    if found.len() > MAX_EXTENSIONS {
        let names: Vec<&str> = found.iter().map(|e| e.name.as_str()).collect();
        return Err(PackageError::layout(
            package_shown,
            format!(
                "the package and its layers hold {} extensions ({}); at most {MAX_EXTENSIONS} \
                 are allowed",
                found.len(),
                names.join(", ")
            ),
        ));
    }
    Ok(())
}
