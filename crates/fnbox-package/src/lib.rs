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
mod flags;
mod layout;
mod sources;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use archive::{MAX_ENTRIES, MAX_UNCOMPRESSED_BYTES};
pub use config::{
    parse_config, AsyncDestination, AsyncInvokeConfig, Dialect, FunctionConfig, Network, Runtime,
    SnapshotConfig, DEFAULT_RESTORE_HOOK_TIMEOUT, EPHEMERAL_STORAGE_MB, FIELDS, MEMORY_SIZES,
    USER_DATA_MAX_CHARS,
};
pub use config::{MAX_DEPENDENCIES, MAX_LAYERS};
pub use error::PackageError;
pub use flags::{ConfigFlags, FLAG_NAMES};
pub use layout::MAX_EXTENSIONS;
pub use sources::{MAX_DEPENDENCY_BYTES, MAX_DEPENDENCY_FILES, MAX_LAYERS_BYTES};

/// Where [`load`] extracts zip packages: set once by the CLI to a directory of its data dir
/// (`<data dir>/packages/<pid>-<start>`), so a later start can find and remove what a killed
/// fnbox left; `$TMPDIR` until set.
static EXTRACTION_DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Sets the directory zip packages are extracted under (once per process; later calls are
/// ignored and return `false`).
pub fn set_extraction_dir(dir: PathBuf) -> bool {
    EXTRACTION_DIR.set(dir).is_ok()
}

/// The directory zip packages are extracted under.
pub fn extraction_dir() -> PathBuf {
    EXTRACTION_DIR
        .get()
        .cloned()
        .unwrap_or_else(std::env::temp_dir)
}

/// Config file names, in the order they are looked for.
pub const CONFIG_FILES: &[&str] = &["function.yaml", "function.yml", "function.json"];

/// One extension process to start with the function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// File name, e.g. `extensionDemo.sh`; FunctionGraph extensions register with it.
    pub name: String,
    /// Absolute path of the file; for an extension from a layer, its path inside the instance,
    /// `/opt/extensions/<name>` (launchers there refer to `/opt/<name>/…`).
    pub path: PathBuf,
}

/// A loaded, validated function package.
#[derive(Debug)]
pub struct Package {
    /// Absolute (canonical) code root: the directory, or the extraction directory of a zip;
    /// with `dependencies:`, the staged directory where they are merged with the code.
    pub root: PathBuf,
    /// the directory presented at /opt inside the instance: the package's layers merged in order; None without layers
    pub opt_dir: Option<PathBuf>,
    /// The config file used (absolute), `None` when all defaults apply.
    pub config_file: Option<PathBuf>,
    /// The validated config.
    pub config: FunctionConfig,
    /// The extensions of the config's dialect, sorted by name.
    pub extensions: Vec<Extension>,
    /// Things a user should be told although the package is valid (e.g. that there is no
    /// config file and every setting is its default); the CLI prints them as `note:` lines.
    pub notes: Vec<String>,
    /// Keeps a zip's extraction directory and the staged layer / dependency directories alive
    /// as long as the package.
    _extracted: Vec<tempfile::TempDir>,
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
    load_with(path, &ConfigFlags::default())
}

/// [`load`], with the function's configuration from command-line flags when the package has no
/// config file (a deploy zip as the platform's console takes it). Flags given for a package
/// that has a config file are an error naming both.
pub fn load_with(path: &Path, flags: &ConfigFlags) -> Result<Package, PackageError> {
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
        return load_root(root.clone(), path, &root, &name, None, flags);
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
    // Layers and dependencies of a zip package are found next to the zip.
    let base = fs::canonicalize(path)
        .ok()
        .and_then(|p| p.parent().map(Path::to_owned))
        .unwrap_or_else(|| PathBuf::from("."));
    load_root(root, &shown, &base, &name, Some(extracted.dir), flags)
}

/// Loads an existing code root. `shown` is the root as the user knows it (for messages);
/// `base` is where `layers:` / `dependencies:` paths start.
fn load_root(
    mut root: PathBuf,
    shown: &Path,
    base: &Path,
    default_name: &str,
    extracted: Option<tempfile::TempDir>,
    flags: &ConfigFlags,
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
        Some(name) if !flags.is_empty() => {
            return Err(PackageError::layout(
                shown.join(name),
                format!(
                    "{} exists: {FLAG_NAMES} configure a package without a config file; \
                     change {name} instead",
                    shown.join(name).display()
                ),
            ));
        }
        None if !flags.is_empty() => {
            notes.push(format!(
                "{} has no function.yaml: the configuration comes from the command line",
                shown.display()
            ));
            (flags.config(default_name)?, None, shown.to_owned())
        }
        None if fs::symlink_metadata(root.join("bootstrap")).is_err() => {
            // Without config and flags it would be a Custom runtime missing its bootstrap;
            // the likelier story is a deploy zip whose configuration lives in the console.
            return Err(PackageError::layout(
                shown,
                format!(
                    "{} has no function.yaml (or function.json) and no configuration flags: \
                     give the function's configuration with {FLAG_NAMES} (e.g. --runtime \
                     Python3.9 --handler index.handler), or add a function.yaml; without \
                     either it is runtime Custom, which needs an executable bootstrap at \
                     the code root",
                    shown.display()
                ),
            ));
        }
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

    let from_zip = extracted.is_some();
    let mut owned: Vec<tempfile::TempDir> = extracted.into_iter().collect();
    let origin = sources::Origin {
        base,
        config_file: &shown_config,
    };
    if let Some(staged) = sources::stage_dependencies(&origin, &root, &config.dependencies)? {
        root = staged.root;
        owned.push(staged.dir);
    }
    let opt_dir = match sources::stage_layers(&origin, &config.layers)? {
        Some(staged) => {
            owned.push(staged.dir);
            Some(staged.root)
        }
        None => None,
    };

    let layout_root = layout::Root {
        real: &root,
        shown,
        from_zip,
    };
    if config.runtime.needs_bootstrap() {
        layout::check_bootstrap(&layout_root, &config)?;
    } else {
        layout::check_handler_file(&layout_root, &shown_config, &config)?;
    }
    let mut extensions = layout::discover_extensions(&layout_root, config.dialect)?;
    if let Some(opt) = &opt_dir {
        let layers_root = layout::Root {
            real: opt,
            shown: Path::new("/opt"),
            from_zip: true,
        };
        layout::merge_layer_extensions(&mut extensions, &layers_root, shown)?;
    }

    Ok(Package {
        root,
        opt_dir,
        config_file,
        config,
        extensions,
        notes,
        _extracted: owned,
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
