//! Errors of the store and of the settings.

use std::path::PathBuf;

use thiserror::Error;

/// Why the store could not open, accept or answer. Every start-up variant names the path, so
/// `fnbox serve` can print it as is and exit.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The data dir could not be created or written (for example a path under a regular file,
    /// a read-only file system, missing permissions).
    #[error(
        "async invocation store: cannot create or write {path}: {reason}; \
         --data-dir must be a writable directory"
    )]
    DataDirUnwritable {
        /// The data dir (or the file in it that could not be created).
        path: PathBuf,
        /// The operating system's error.
        reason: String,
    },
    /// Another process holds the data dir's lock.
    #[error(
        "async invocation store: {path} is in use by another fnbox process{holder}; \
         stop it or choose another --data-dir"
    )]
    Locked {
        /// The database file.
        path: PathBuf,
        /// ` (pid N)` when the lock file names the holder, else empty.
        holder: String,
    },
    /// The database file is not an SQLite database or is damaged.
    #[error(
        "async invocation store: {path} is corrupt ({reason}); fnbox will not touch it. \
         Move it away to start with an empty queue (its invocations are then lost), \
         or repair it with the sqlite3 shell's .recover"
    )]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        reason: String,
    },
    /// The database was written by a newer fnbox.
    #[error(
        "async invocation store: {path} has schema version {found}, newer than this fnbox \
         supports ({supported}); use a newer fnbox or another --data-dir"
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// `PRAGMA user_version` of the file.
        found: i64,
        /// The newest schema this binary knows.
        supported: i64,
    },
    /// Any other SQLite failure at open (e.g. WAL not supported by the file system).
    #[error("async invocation store: cannot open {path}: {reason}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The payload is over the 256 KiB limit (the caller should have answered 413 already).
    #[error("async request body is {size} bytes, over the limit of {limit} bytes")]
    PayloadTooLarge {
        /// Body size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The request id is already in the queue.
    #[error("request id {0} was already accepted")]
    DuplicateRequestId(String),
    /// The request id is empty or too long.
    #[error("invalid request id {0:?}: must be 1..=128 bytes")]
    InvalidRequestId(String),
    /// The PostgreSQL queue could not be used at start-up: unreachable, refused the login,
    /// too old a server, or a schema written by a newer fnbox. `url` has its password
    /// redacted.
    #[error("async invocation queue {url}: {reason}")]
    Postgres {
        /// The `--queue` URL, password replaced by `***`.
        url: String,
        /// What went wrong and what to do.
        reason: String,
    },
    /// The queue's database cannot be reached now (it went away while serving). Nothing was
    /// accepted; the caller should answer 503 and the client retry later.
    #[error("async invocation queue {location} is unavailable: {reason}")]
    Unavailable {
        /// The redacted URL (or the database file).
        location: String,
        /// What the client library said.
        reason: String,
    },
    /// A database operation failed after start-up (disk full, I/O error, …).
    #[error("async invocation store {path}: {reason}")]
    Database {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        reason: String,
    },
}

/// Invalid per-function asynchronous settings.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SettingsError {
    /// A number outside its allowed range.
    #[error("{field} = {value} is out of range {range}")]
    OutOfRange {
        /// The field name as written in the configuration.
        field: &'static str,
        /// The value given.
        value: String,
        /// The allowed range.
        range: &'static str,
    },
    /// A destination that fnbox cannot deliver to.
    #[error("{field}: {reason}")]
    Destination {
        /// The field name as written in the configuration.
        field: &'static str,
        /// Why.
        reason: String,
    },
}
