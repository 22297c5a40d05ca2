//! The one error type of this crate.
//!
//! Every message starts with the path the user knows (the package directory, the config file, or
//! `fn.zip/entry` for files inside an archive) so it can be printed as is, compiler style.

use std::io;
use std::path::PathBuf;

/// Why a package could not be loaded. `Display` is the complete, user-facing message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PackageError {
    /// The package path does not exist.
    #[error("{path}: no such file or directory: expected a function directory or a .zip file", path = .path.display())]
    NotFound {
        /// The path as given.
        path: PathBuf,
    },

    /// The package path exists but is neither a directory nor a `.zip` file.
    #[error("{path}: not a function package: expected a directory or a .zip file", path = .path.display())]
    NotAPackage {
        /// The path as given.
        path: PathBuf,
    },

    /// An I/O operation failed.
    #[error("{path}: {action}: {source}", path = .path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// What fnbox was doing, e.g. "cannot read".
        action: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// The config file is not valid YAML (or JSON for `function.json`).
    #[error("{file}:{line}:{column}: {message}", file = .file.display())]
    Syntax {
        /// The config file.
        file: PathBuf,
        /// 1-based line (0 when the parser gave no position).
        line: usize,
        /// 1-based column (0 when the parser gave no position).
        column: usize,
        /// The parser's message, e.g. "invalid YAML: mapping values are not allowed in this context".
        message: String,
    },

    /// More than one config file is present.
    #[error("{first} and {second} both exist: keep only one config file", first = .first.display(), second = .second.display())]
    ConflictingConfigs {
        /// The config file fnbox would have used.
        first: PathBuf,
        /// The other one.
        second: PathBuf,
    },

    /// The config file as a whole is malformed (e.g. a list instead of a mapping).
    #[error("{file}: {message}", file = .file.display())]
    Config {
        /// The config file.
        file: PathBuf,
        /// What is wrong.
        message: String,
    },

    /// A field has a wrong type or a value outside its allowed set.
    #[error("{file}: field '{field}': {message}", file = .file.display())]
    Field {
        /// The config file (or the package directory when there is none).
        file: PathBuf,
        /// The field name, e.g. `memory_size`.
        field: String,
        /// What is wrong and what is allowed.
        message: String,
    },

    /// The config file has a field fnbox does not know.
    #[error("{file}: unknown field '{field}'{hint}; allowed fields: {allowed}", file = .file.display())]
    UnknownField {
        /// The config file.
        file: PathBuf,
        /// The unknown field.
        field: String,
        /// `" (did you mean 'x'?)"` or empty.
        hint: String,
        /// Comma-separated list of the allowed fields.
        allowed: String,
    },

    /// The package layout is wrong (missing or non-executable bootstrap, too many extensions, ...).
    /// The message names the path itself, e.g. "fn/bootstrap is not executable: run chmod +x …".
    #[error("{message}")]
    Layout {
        /// The file or directory concerned.
        path: PathBuf,
        /// What is wrong and how to fix it, starting with the path.
        message: String,
    },

    /// The zip archive as a whole is unusable (not a zip, too many entries, too large).
    #[error("{zip}: {message}", zip = .zip.display())]
    Zip {
        /// The archive.
        zip: PathBuf,
        /// What is wrong.
        message: String,
    },

    /// One entry of the zip archive is rejected.
    #[error("{zip}: entry '{entry}': {message}", zip = .zip.display())]
    ZipEntry {
        /// The archive.
        zip: PathBuf,
        /// The entry name as stored in the archive.
        entry: String,
        /// What is wrong.
        message: String,
    },
}

impl PackageError {
    pub(crate) fn io(path: impl Into<PathBuf>, action: &'static str, source: io::Error) -> Self {
        PackageError::Io {
            path: path.into(),
            action,
            source,
        }
    }

    pub(crate) fn layout(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        PackageError::Layout {
            path: path.into(),
            message: message.into(),
        }
    }
}
