//! What can go wrong in a `fnbox` command, and the documented exit code of each.
//!
//! Subcommands return `Result<(), MainError>`; `main` alone prints the error (`error: …` on
//! stderr) and turns it into the process exit code, so the README's table of exit codes has one
//! counterpart in the code: [`MainError::exit_code`].

use std::net::SocketAddr;
use std::path::PathBuf;

/// Documented exit codes (README, "Exit codes").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    /// Everything worked.
    Ok = 0,
    /// A function invocation failed (handler error, timeout, crash, out of memory).
    FunctionFailed = 1,
    /// Bad usage or an invalid package (nothing was started).
    Usage = 2,
    /// The function could not be initialised (after 3 attempts).
    InitFailed = 3,
    /// fnbox itself failed (I/O, internal error).
    Internal = 4,
}

/// A boxed error of the HTTP client or of a response body (fnbox-cli does not name hyper's
/// types; their messages and sources are all it shows).
pub type NetError = Box<dyn std::error::Error + Send + Sync>;

/// An invocation that ended in an error: a handler error or a fault (timeout, crash, memory).
#[derive(Debug, thiserror::Error)]
#[error("request '{request_id}' failed: {reason}")]
pub struct InvocationFailure {
    /// The invocation's request id.
    pub request_id: String,
    /// `errorType: errorMessage` of the error body, or the body as text.
    pub reason: String,
}

/// Why a `fnbox` command failed. The message is the `Display` text; the exit code is
/// [`MainError::exit_code`].
#[derive(Debug, thiserror::Error)]
pub enum MainError {
    // ---- 1: an invocation failed ----
    /// A handler error or a fault of one invocation.
    #[error(transparent)]
    Invocation(#[from] InvocationFailure),
    /// An asynchronous invocation that `--wait` saw fail for good.
    #[error("request '{request_id}' failed after {attempts} attempt(s): {last_error}")]
    AsyncFailed {
        /// Its request id.
        request_id: String,
        /// Attempts made, as the status route reported them.
        attempts: String,
        /// The last attempt's error.
        last_error: String,
    },
    /// `fnbox test-extension`: these scenarios failed (the scorecard says why).
    #[error("extension test failed: {0}")]
    ExtensionFailed(String),
    /// Several things went wrong in one command (`fnbox run --times N`), in the order they
    /// happened; the exit code is that of the last one (as the loop stops at a fatal error).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Several(Vec<MainError>),

    // ---- 2: bad usage or an invalid package ----
    /// The package does not load.
    #[error(transparent)]
    Package(#[from] fnbox_package::PackageError),
    /// `fnbox test-extension` cannot run (bad target, unwritable scratch space).
    #[error(transparent)]
    ExtTest(#[from] fnbox_exttest::ExtTestError),
    /// The package's runtime cannot be launched on this machine.
    #[error(transparent)]
    Launch(#[from] fnbox_engine::launch::LaunchError),
    /// `--event-file` cannot be read.
    #[error("cannot read event file {}: {source}", .path.display())]
    EventFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `--event-file -` and stdin cannot be read.
    #[error("cannot read the event from stdin: {0}")]
    EventStdin(#[source] std::io::Error),
    /// `--memory-mode cgroup` on a machine without a usable cgroup.
    #[error("--memory-mode cgroup: {0}")]
    Cgroup(#[source] fnbox_limits::LimitError),
    /// `--config` or `--listen` is invalid.
    #[error(transparent)]
    Config(#[from] fnbox_serve::config::ConfigError),
    /// `--token` is not a valid header value.
    #[error("--token: {0}")]
    Token(String),
    /// `--pod-name` is given where fnbox does not run one instance per pod.
    #[error("--pod-name {name:?}: {reason}")]
    PodName {
        /// As given.
        name: String,
        /// What is required.
        reason: String,
    },
    /// A served function cannot be registered (bad package, clashing names or ports).
    #[error(transparent)]
    Registry(#[from] fnbox_serve::RegistryError),
    /// The data dir's async store cannot be opened.
    #[error(transparent)]
    Store(#[from] fnbox_async::StoreError),
    /// The async worker cannot be set up.
    #[error("{0}")]
    AsyncSetup(String),
    /// OTLP export is misconfigured (the message names the flag, key or variable).
    #[error("{0}")]
    Otlp(String),
    /// `--server` is `https://…`.
    #[error("--server {0}: https is not supported; fnbox serve speaks plain HTTP on loopback")]
    Https(String),
    /// `--server` is not an `http://host[:port]` URL.
    #[error("--server {0}: expected a URL like http://127.0.0.1:8000")]
    ServerUrl(String),
    /// The HTTP request cannot be built (e.g. a token that is not a header value).
    #[error("cannot build the request: {0}")]
    Request(#[from] http::Error),

    // ---- 3: init failed ----
    /// `fnbox run`: the function did not initialise in 3 attempts.
    #[error("function '{function}' {source}")]
    Init {
        /// Its name.
        function: String,
        /// The last attempt's error.
        source: fnbox_engine::InitError,
    },
    /// `fnbox serve`: a function's reserved instances did not start.
    #[error(transparent)]
    Start(#[from] fnbox_serve::StartError),

    // ---- the front door's answer: code by status ----
    /// `fnbox serve` refused or failed the request.
    #[error("fnbox serve answered {status}: {code}: {message}")]
    Refused {
        /// HTTP status.
        status: http::StatusCode,
        /// `FSS.xxxx` or Lambda's error type; empty when the body has neither.
        code: String,
        /// Its message.
        message: String,
    },
    /// The status route of an async invocation answered an error.
    #[error("status of request '{request_id}': fnbox serve answered {status}: {message}")]
    StatusRefused {
        /// The invocation asked about.
        request_id: String,
        /// HTTP status.
        status: http::StatusCode,
        /// `FSS.xxxx: message`, or the body as text.
        message: String,
    },

    // ---- 4: internal ----
    /// The tokio runtime did not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The engine refused an invocation (the instance was not ready).
    #[error(transparent)]
    NotReady(#[from] fnbox_engine::NotReady),
    /// SIGINT/SIGTERM handlers cannot be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The bound socket's address cannot be read.
    #[error("cannot read the bound address: {0}")]
    LocalAddr(#[source] std::io::Error),
    /// The front door stopped with an I/O error.
    #[error("the front door failed: {0}")]
    FrontDoor(#[source] std::io::Error),
    /// `fnbox serve` cannot be reached.
    #[error("cannot reach fnbox serve at {server}: {} ({hint})", chain(.source.as_ref()))]
    Unreachable {
        /// `--server`.
        server: String,
        /// What to check, or what is left behind.
        hint: String,
        /// The client's error.
        source: NetError,
    },
    /// `fnbox serve` closed the connection in the middle of its answer.
    #[error("fnbox serve at {server} broke off its answer: {}", chain(.source.as_ref()))]
    BrokenAnswer {
        /// `--server`.
        server: String,
        /// The body's error.
        source: NetError,
    },
    /// A 202 without a request id.
    #[error("fnbox serve accepted the invocation but sent no request id")]
    NoRequestId,
    /// The status route answered something that is not JSON.
    #[error("status of request '{request_id}' is not JSON: {source}")]
    StatusNotJson {
        /// The invocation asked about.
        request_id: String,
        /// The parse error.
        source: serde_json::Error,
    },
}

impl MainError {
    /// The documented exit code of this error.
    pub fn exit_code(&self) -> ExitCode {
        use MainError::*;
        match self {
            Invocation(_) | AsyncFailed { .. } | ExtensionFailed(_) => ExitCode::FunctionFailed,
            Several(errors) => errors.last().map_or(ExitCode::Internal, Self::exit_code),
            Package(_)
            | ExtTest(_)
            | Launch(_)
            | EventFile { .. }
            | EventStdin(_)
            | Cgroup(_)
            | Config(_)
            | Token(_)
            | PodName { .. }
            | Registry(_)
            | Store(_)
            | AsyncSetup(_)
            | Otlp(_)
            | Https(_)
            | ServerUrl(_)
            | Request(_) => ExitCode::Usage,
            Init { .. } | Start(_) => ExitCode::InitFailed,
            Refused { status, code, .. } => match status.as_u16() {
                408 => ExitCode::FunctionFailed,
                500 if code == "FSS.1404" || code == "FSS.1405" => ExitCode::InitFailed,
                429 => ExitCode::Internal,
                400..=499 => ExitCode::Usage,
                _ => ExitCode::Internal,
            },
            StatusRefused { status, .. } if status.is_client_error() => ExitCode::Usage,
            StatusRefused { .. } => ExitCode::Internal,
            Runtime(_)
            | NotReady(_)
            | Signals(_)
            | Listen { .. }
            | LocalAddr(_)
            | FrontDoor(_)
            | Unreachable { .. }
            | BrokenAnswer { .. }
            | NoRequestId
            | StatusNotJson { .. } => ExitCode::Internal,
        }
    }

    /// The `error: …` lines `main` prints: one per error, [`MainError::Several`] flattened.
    pub fn lines(&self) -> Vec<String> {
        match self {
            MainError::Several(errors) => errors.iter().flat_map(Self::lines).collect(),
            e => vec![format!("error: {e}")],
        }
    }
}

/// An error and its sources, each source once (hyper's errors repeat their cause in their own
/// message).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: u16, code: &str) -> MainError {
        MainError::Refused {
            status: http::StatusCode::from_u16(status).unwrap(),
            code: code.into(),
            message: "m".into(),
        }
    }

    #[test]
    fn front_door_answers_map_to_the_documented_codes() {
        assert_eq!(
            refused(408, "FSS.0408").exit_code(),
            ExitCode::FunctionFailed
        );
        assert_eq!(refused(500, "FSS.1404").exit_code(), ExitCode::InitFailed);
        assert_eq!(refused(500, "FSS.1405").exit_code(), ExitCode::InitFailed);
        assert_eq!(refused(500, "FSS.0500").exit_code(), ExitCode::Internal);
        assert_eq!(refused(429, "FSS.0429").exit_code(), ExitCode::Internal);
        assert_eq!(refused(404, "FSS.1051").exit_code(), ExitCode::Usage);
        assert_eq!(
            refused(404, "FSS.1051").to_string(),
            "fnbox serve answered 404 Not Found: FSS.1051: m"
        );
    }

    #[test]
    fn several_errors_print_in_order_and_exit_with_the_last_code() {
        let failed = || {
            MainError::from(InvocationFailure {
                request_id: "r1".into(),
                reason: "KeyError: missing key".into(),
            })
        };
        let e = MainError::Several(vec![failed(), MainError::NoRequestId]);
        assert_eq!(e.exit_code(), ExitCode::Internal);
        assert_eq!(
            e.lines(),
            [
                "error: request 'r1' failed: KeyError: missing key",
                "error: fnbox serve accepted the invocation but sent no request id"
            ]
        );
        assert_eq!(
            MainError::Several(vec![failed(), failed()]).exit_code(),
            ExitCode::FunctionFailed
        );
    }
}
