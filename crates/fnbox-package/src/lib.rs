//! fnbox-package: load and validate a function package (a directory, or a `.zip` of one).
//!
//! A package is code plus an optional `function.yaml` / `function.yml` / `function.json`
//! (CONTRACT §1). [`load`] turns a path into a [`Package`] whose config is fully validated and
//! whose files have been checked (bootstrap executable, handler file present, extensions found),
//! so that nothing about the package can fail once an instance starts. Errors are meant to be
//! printed as is: each names the file, the field and what is allowed.
//!
//! Layout:
//! - `lib.rs`: [`Package`], [`Extension`], [`load`]: find the config, call the checks.
//! - `config.rs`: [`FunctionConfig`], [`Runtime`], [`Dialect`], [`parse_config`]: text →
//!   validated config (no file system access, so `fnbox validate` and tests can use it directly).
//! - `layout.rs`: checks that need the files: bootstrap, handler file, extension discovery.
//! - `archive.rs`: safe zip extraction (zip-slip, symlinks, duplicates, size bombs).
//! - `error.rs`: [`PackageError`], whose `Display` is the user-facing message.
//!
//! Why a separate crate: both the engine (which runs packages) and the CLI (`fnbox validate`)
//! need exactly the same rules, and keeping them free of any async or process code makes them easy
//! to test exhaustively.

mod archive;
mod config;
mod error;
mod layout;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use archive::{MAX_ENTRIES, MAX_UNCOMPRESSED_BYTES};
pub use config::{
    parse_config, AsyncDestination, AsyncInvokeConfig, Dialect, FunctionConfig, Network, Runtime,
    SnapshotConfig, DEFAULT_RESTORE_HOOK_TIMEOUT, FIELDS, MEMORY_SIZES, USER_DATA_MAX_CHARS,
};
pub use error::PackageError;
pub use layout::MAX_EXTENSIONS;

/// Config file names, in the order they are looked for.
pub const CONFIG_FILES: &[&str] = &["function.yaml", "function.yml", "function.json"];

/// One extension process to start with the function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// File name, e.g. `extensionDemo.sh`; FunctionGraph extensions register with it.
    pub name: String,
    /// Absolute path of the file.
    pub path: PathBuf,
}

/// A loaded, validated function package.
#[derive(Debug)]
pub struct Package {
    /// Absolute (canonical) code root: the directory, or the extraction directory of a zip.
    pub root: PathBuf,
    /// The config file used (absolute), `None` when all defaults apply.
    pub config_file: Option<PathBuf>,
    /// The validated config.
    pub config: FunctionConfig,
    /// The extensions of the config's dialect, sorted by name.
    pub extensions: Vec<Extension>,
    /// Things a user should be told although the package is valid (e.g. that there is no
    /// config file and every setting is its default); the CLI prints them as `note:` lines.
    pub notes: Vec<String>,
    /// Keeps a zip's extraction directory alive as long as the package.
    _extracted: Option<tempfile::TempDir>,
}

impl Package {
    /// `root/bootstrap`, the program the Custom and http runtimes start.
    pub fn bootstrap(&self) -> PathBuf {
        self.root.join("bootstrap")
    }
}

/// Loads the package at `path`: a directory, or a `.zip` file (extracted into a temporary
/// directory that lives as long as the returned [`Package`]).
///
/// The default `func_name` is the directory name or the zip file's stem.
pub fn load(path: &Path) -> Result<Package, PackageError> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(PackageError::NotFound {
                path: path.to_owned(),
            })
        }
        Err(e) => return Err(PackageError::io(path, "cannot inspect", e)),
    };
    if meta.is_dir() {
        let root =
            fs::canonicalize(path).map_err(|e| PackageError::io(path, "cannot resolve", e))?;
        let name = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        return load_root(root, path, &name, None);
    }
    let is_zip = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("zip"));
    if !meta.is_file() || !is_zip {
        return Err(PackageError::NotAPackage {
            path: path.to_owned(),
        });
    }
    let extracted = archive::extract(path)?;
    let name = path
        .file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let root = extracted.root.clone();
    let shown = extracted.shown_root.clone();
    load_root(root, &shown, &name, Some(extracted.dir))
}

/// Loads an existing code root. `shown` is the root as the user knows it (for messages).
fn load_root(
    root: PathBuf,
    shown: &Path,
    default_name: &str,
    extracted: Option<tempfile::TempDir>,
) -> Result<Package, PackageError> {
    let present: Vec<&str> = CONFIG_FILES
        .iter()
        .copied()
        .filter(|name| fs::symlink_metadata(root.join(name)).is_ok())
        .collect();
    if present.len() > 1 {
        return Err(PackageError::ConflictingConfigs {
            first: shown.join(present[0]),
            second: shown.join(present[1]),
        });
    }

    let mut notes = Vec::new();
    let (config, config_file, shown_config) = match present.first() {
        None => {
            notes.push(format!(
                "{} has no function.yaml or function.json: every setting is its default \
                 (func_name '{default_name}', runtime Custom, memory 128 MB, timeout 3 s)",
                shown.display()
            ));
            (
                config::defaults_for(shown, default_name)?,
                None,
                shown.to_owned(),
            )
        }
        Some(name) => {
            let file = root.join(name);
            let shown_file = shown.join(name);
            let text = read_config(&root, &file, &shown_file)?;
            let config = parse_config(&text, &shown_file, default_name)?;
            let body = text.trim_start_matches('\u{feff}').trim();
            if body.is_empty() || body == "null" || body == "~" || body == "{}" {
                notes.push(format!(
                    "{} is empty: every setting is its default",
                    shown_file.display()
                ));
            }
            (config, Some(file), shown_file)
        }
    };

    let layout_root = layout::Root {
        real: &root,
        shown,
        from_zip: extracted.is_some(),
    };
    if config.runtime.needs_bootstrap() {
        layout::check_bootstrap(&layout_root, &config)?;
    } else {
        layout::check_handler_file(&layout_root, &shown_config, &config)?;
    }
    let extensions = layout::discover_extensions(&layout_root, config.dialect)?;

    Ok(Package {
        root,
        config_file,
        config,
        extensions,
        notes,
        _extracted: extracted,
    })
}

/// Most bytes a config file may have; anything bigger is a mistake, not a config.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

fn read_config(root: &Path, file: &Path, shown: &Path) -> Result<String, PackageError> {
    let resolved = fs::canonicalize(file).map_err(|e| PackageError::io(shown, "cannot read", e))?;
    if !resolved.starts_with(root) {
        return Err(PackageError::layout(
            shown,
            format!("{} is a symlink to outside the code root", shown.display()),
        ));
    }
    let meta = fs::metadata(&resolved).map_err(|e| PackageError::io(shown, "cannot read", e))?;
    if !meta.is_file() {
        return Err(PackageError::layout(
            shown,
            format!("{} is not a regular file", shown.display()),
        ));
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(PackageError::layout(
            shown,
            format!(
                "{} is {} bytes; a config file may have at most {MAX_CONFIG_BYTES}",
                shown.display(),
                meta.len()
            ),
        ));
    }
    let bytes = fs::read(&resolved).map_err(|e| PackageError::io(shown, "cannot read", e))?;
    String::from_utf8(bytes).map_err(|e| PackageError::Config {
        file: shown.to_owned(),
        message: format!(
            "not valid UTF-8 (byte {}): save the file as UTF-8",
            e.utf8_error().valid_up_to()
        ),
    })
}
