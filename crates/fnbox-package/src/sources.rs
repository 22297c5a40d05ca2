//! Layers (Lambda) and dependencies (FunctionGraph): staging the directories and `.zip` files
//! that `layers:` / `dependencies:` list into the one directory an instance sees.
//!
//! - **Layers** are merged in order into a fresh directory (later layers win on a clash, as
//!   Lambda extracts each layer over `/opt`); that directory is [`crate::Package::opt_dir`],
//!   presented read-only at `/opt` inside the instance.
//! - **Dependencies** are merged with the code: the code directory is copied into a fresh
//!   directory and every dependency is laid over it in order (a dependency's file wins on a
//!   clash, FunctionGraph's rule); that directory becomes [`crate::Package::root`].
//!
//! Paths are relative to the package: its directory, or the directory holding a `.zip`
//! package. A `.zip` is extracted with the package's own safety checks and limits
//! (`crate::archive`) but as stored (no top-level directory is stripped). A directory is
//! copied without following symlinks; a symlink must resolve inside its layer/dependency.
//! Editor backups (names ending in `~`) are skipped, as in archives.
//!
//! Limits: Lambda's 250 MB unzipped quota over all layers together; FunctionGraph's 300 MB
//! and 30,000 files per dependency (functiongraph-facts §1.2, functiongraph_01_2119).
//! Every error names the field, the entry as written in function.yaml, and the rule.

use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use crate::{archive, PackageError};

/// Lambda's quota on the unzipped size of a function's layers (and code), bytes.
pub const MAX_LAYERS_BYTES: u64 = 250 * 1024 * 1024;
/// FunctionGraph's largest dependency, bytes.
pub const MAX_DEPENDENCY_BYTES: u64 = 300 * 1024 * 1024;
/// FunctionGraph's most files in one dependency.
pub const MAX_DEPENDENCY_FILES: u64 = 30_000;

/// A staged directory and what owns it.
#[derive(Debug)]
pub(crate) struct Staged {
    /// Removed when dropped.
    pub dir: TempDir,
    /// Canonical path of `dir`.
    pub root: PathBuf,
}

/// Where list entries are resolved and how they are named in messages.
pub(crate) struct Origin<'a> {
    /// Directory relative paths start from.
    pub base: &'a Path,
    /// The config file (for messages).
    pub config_file: &'a Path,
}

/// What one source brought: bytes and files (symlinks count as files).
#[derive(Default, Clone, Copy)]
struct Tally {
    bytes: u64,
    files: u64,
}

/// Per-source limits (`None` = only the running total matters).
#[derive(Clone, Copy)]
struct Limit {
    bytes: Option<(u64, &'static str)>,
    files: Option<(u64, &'static str)>,
}

const NO_LIMIT: Limit = Limit {
    bytes: None,
    files: None,
};

fn field_error(origin: &Origin<'_>, field: &str, message: String) -> PackageError {
    PackageError::Field {
        file: origin.config_file.to_owned(),
        field: field.to_owned(),
        message,
    }
}

fn new_stage(prefix: &str) -> Result<Staged, PackageError> {
    // Next to extracted zip packages (the CLI's data dir, swept after a killed fnbox).
    let parent = crate::extraction_dir();
    std::fs::create_dir_all(&parent)
        .map_err(|e| PackageError::io(&parent, "cannot create the extraction directory", e))?;
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&parent)
        .map_err(|e| PackageError::io(&parent, "cannot create a temporary directory", e))?;
    let root = fs::canonicalize(dir.path())
        .map_err(|e| PackageError::io(dir.path(), "cannot resolve", e))?;
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755))
        .map_err(|e| PackageError::io(&root, "cannot set permissions", e))?;
    Ok(Staged { dir, root })
}

/// Merges `layers` in order into a new directory (the instance's `/opt`).
pub(crate) fn stage_layers(
    origin: &Origin<'_>,
    layers: &[String],
) -> Result<Option<Staged>, PackageError> {
    if layers.is_empty() {
        return Ok(None);
    }
    let staged = new_stage("fnbox-opt-")?;
    let mut total = 0u64;
    for layer in layers {
        let tally = overlay_source(origin, "layers", "layer", layer, &staged.root, NO_LIMIT)?;
        total += tally.bytes;
        if total > MAX_LAYERS_BYTES {
            return Err(field_error(
                origin,
                "layers",
                format!(
                    "layer '{layer}' brings the layers' unzipped size to {} bytes; Lambda allows \
                     at most {} MB unzipped for a function's layers",
                    total,
                    MAX_LAYERS_BYTES / (1024 * 1024)
                ),
            ));
        }
    }
    Ok(Some(staged))
}

/// Copies the code root into a new directory and lays every dependency over it in order.
pub(crate) fn stage_dependencies(
    origin: &Origin<'_>,
    code_root: &Path,
    dependencies: &[String],
) -> Result<Option<Staged>, PackageError> {
    if dependencies.is_empty() {
        return Ok(None);
    }
    let staged = new_stage("fnbox-pkg-")?;
    overlay(
        code_root,
        code_root,
        &staged.root,
        &mut Tally::default(),
        &|_, message| {
            PackageError::layout(code_root, format!("{}: {message}", code_root.display()))
        },
    )?;
    let limit = Limit {
        bytes: Some((
            MAX_DEPENDENCY_BYTES,
            "FunctionGraph allows at most 300 MB per dependency",
        )),
        files: Some((
            MAX_DEPENDENCY_FILES,
            "FunctionGraph allows at most 30000 files per dependency",
        )),
    };
    for dependency in dependencies {
        overlay_source(
            origin,
            "dependencies",
            "dependency",
            dependency,
            &staged.root,
            limit,
        )?;
    }
    Ok(Some(staged))
}

/// Resolves one list entry (directory or `.zip`) and lays it over `dest`.
fn overlay_source(
    origin: &Origin<'_>,
    field: &str,
    what: &str,
    entry: &str,
    dest: &Path,
    limit: Limit,
) -> Result<Tally, PackageError> {
    let path = origin.base.join(entry);
    let err = |message: String| field_error(origin, field, format!("{what} '{entry}': {message}"));
    let meta = match fs::metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(err(format!("{} does not exist", path.display())))
        }
        Err(e) => return Err(err(format!("cannot inspect {}: {e}", path.display()))),
    };
    let is_zip = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("zip"));
    let extracted;
    let src = if meta.is_dir() {
        fs::canonicalize(&path)
            .map_err(|e| err(format!("cannot resolve {}: {e}", path.display())))?
    } else if meta.is_file() && is_zip {
        extracted = archive::extract_verbatim(&path)?;
        extracted.root.clone()
    } else {
        return Err(err(format!(
            "{} is neither a directory nor a .zip file",
            path.display()
        )));
    };
    let mut tally = Tally::default();
    let check = |tally: &Tally| -> Result<(), PackageError> {
        if let Some((max, rule)) = limit.bytes {
            if tally.bytes > max {
                return Err(err(format!("holds more than {max} bytes; {rule}")));
            }
        }
        if let Some((max, rule)) = limit.files {
            if tally.files > max {
                return Err(err(format!("holds more than {max} files; {rule}")));
            }
        }
        Ok(())
    };
    // Count first, so that a dependency over the limits is refused before anything is copied.
    count(&src, &mut tally, &|p: &Path, e: io::Error| {
        err(format!("cannot read {}: {e}", p.display()))
    })?;
    check(&tally)?;
    overlay(&src, &src, dest, &mut Tally::default(), &|_, message| {
        err(message)
    })?;
    Ok(tally)
}

fn is_skipped(name: &std::ffi::OsStr) -> bool {
    name.to_string_lossy().ends_with('~')
}

fn count(
    dir: &Path,
    tally: &mut Tally,
    io_err: &dyn Fn(&Path, io::Error) -> PackageError,
) -> Result<(), PackageError> {
    for entry in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let entry = entry.map_err(|e| io_err(dir, e))?;
        if is_skipped(&entry.file_name()) {
            continue;
        }
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).map_err(|e| io_err(&path, e))?;
        if meta.is_dir() {
            count(&path, tally, io_err)?;
        } else {
            tally.files += 1;
            if meta.is_file() {
                tally.bytes += meta.len();
            }
        }
    }
    Ok(())
}

/// Lays the tree `src` (inside the source root `top`) over `dest`: directories are merged,
/// anything else at a clashing path is replaced by the source's entry.
fn overlay(
    top: &Path,
    src: &Path,
    dest: &Path,
    tally: &mut Tally,
    fail: &dyn Fn(&Path, String) -> PackageError,
) -> Result<(), PackageError> {
    let io = |p: &Path, action: &str, e: io::Error| {
        fail(p, format!("cannot {action} {}: {e}", p.display()))
    };
    for entry in fs::read_dir(src).map_err(|e| io(src, "read", e))? {
        let entry = entry.map_err(|e| io(src, "read", e))?;
        let name = entry.file_name();
        if is_skipped(&name) {
            continue;
        }
        let from = entry.path();
        let to = dest.join(&name);
        let meta = fs::symlink_metadata(&from).map_err(|e| io(&from, "inspect", e))?;
        let existing = fs::symlink_metadata(&to).ok();
        if meta.is_dir() {
            match existing {
                Some(m) if m.is_dir() => {}
                Some(_) => {
                    fs::remove_file(&to).map_err(|e| io(&to, "replace", e))?;
                    fs::create_dir(&to).map_err(|e| io(&to, "create", e))?;
                }
                None => fs::create_dir(&to).map_err(|e| io(&to, "create", e))?,
            }
            let mode = meta.permissions().mode() & 0o777 | 0o700;
            fs::set_permissions(&to, fs::Permissions::from_mode(mode))
                .map_err(|e| io(&to, "set permissions of", e))?;
            overlay(top, &from, &to, tally, fail)?;
            continue;
        }
        match existing {
            Some(m) if m.is_dir() => fs::remove_dir_all(&to).map_err(|e| io(&to, "replace", e))?,
            Some(_) => fs::remove_file(&to).map_err(|e| io(&to, "replace", e))?,
            None => {}
        }
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&from).map_err(|e| io(&from, "read", e))?;
            match fs::canonicalize(&from) {
                Ok(resolved) if resolved.starts_with(top) => {}
                Ok(_) => {
                    return Err(fail(
                        &from,
                        format!(
                            "{} is a symlink to '{}', outside it",
                            from.display(),
                            target.display()
                        ),
                    ))
                }
                Err(_) => {
                    return Err(fail(
                        &from,
                        format!(
                            "{} is a symlink to '{}', which does not exist",
                            from.display(),
                            target.display()
                        ),
                    ))
                }
            }
            symlink(&target, &to).map_err(|e| io(&to, "create", e))?;
            tally.files += 1;
        } else if meta.is_file() {
            fs::copy(&from, &to).map_err(|e| io(&from, "copy", e))?;
            let mode = meta.permissions().mode() & 0o777 | 0o400;
            fs::set_permissions(&to, fs::Permissions::from_mode(mode))
                .map_err(|e| io(&to, "set permissions of", e))?;
            tally.files += 1;
            tally.bytes += meta.len();
        }
        // Sockets, fifos and devices are not code: skipped.
    }
    Ok(())
}
