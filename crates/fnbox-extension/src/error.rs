//! Everything [`crate::ExtensionBuilder::run`] can fail with, each naming the step that failed.

/// Why an extension could not start or keep running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExtensionError {
    /// A required environment variable is missing (outside FunctionGraph or fnbox?).
    #[error("environment variable {var} is not set; the platform sets it (host:port of the extension API) for every extension it launches")]
    MissingEnv {
        /// Variable name.
        var: &'static str,
    },
    /// The extension API address is not `host:port`.
    #[error("{var}={value:?} is not host:port")]
    InvalidApiAddr {
        /// Variable name.
        var: &'static str,
        /// Value found.
        value: String,
    },
    /// [`crate::launcher_name_from_args`] found no first argument.
    #[error("no launcher path in the first argument: start the binary from the extension*.sh script as `exec <binary> \"$0\"` so it can register under the script's file name")]
    MissingLauncherArg,
    /// The extension name cannot be sent as the `FunctionGraph-Extension-Name` header.
    #[error("extension name {name:?} is unusable: {reason}")]
    InvalidName {
        /// Name given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A listener address breaks FunctionGraph's rules (127.0.0.1, ports 8081–8090).
    #[error("{which} address {addr:?} is not allowed: {reason}")]
    InvalidAddress {
        /// `invoke` or `telemetry`.
        which: &'static str,
        /// Address given.
        addr: String,
        /// Rule broken.
        reason: String,
    },
    /// The telemetry subscription is malformed before it is even sent.
    #[error("telemetry subscription is invalid: {reason}")]
    InvalidSubscription {
        /// Rule broken.
        reason: String,
    },
    /// Binding a listener failed (port taken, no permission…).
    #[error("cannot bind the {which} listener on {addr}: {source}")]
    Bind {
        /// `invoke` or `telemetry`.
        which: &'static str,
        /// Address.
        addr: String,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
    /// A call to the platform did not complete (connection refused, timeout, broken body).
    #[error("{what} request to {url} failed: {message}")]
    Request {
        /// `register` or `subscribe`.
        what: &'static str,
        /// Full URL.
        url: String,
        /// Cause.
        message: String,
    },
    /// `POST /extension/register` answered something other than 200.
    #[error("registration refused (HTTP {status}): {}", describe(.error_type, .message))]
    RegisterRefused {
        /// HTTP status.
        status: u16,
        /// `errorInfo.errorType` (or the body's `errorType`), possibly empty.
        error_type: String,
        /// `errorInfo.errorMessage`, or the body text when it is not the documented JSON.
        message: String,
    },
    /// `POST /extension/register` answered 200 with a body that is not JSON.
    #[error("registration answered 200 but the body is not a register response: {message}")]
    BadRegisterResponse {
        /// Parse error and body excerpt.
        message: String,
    },
    /// `POST /telemetry` answered something other than 200.
    #[error("telemetry subscription refused (HTTP {status}): {}", describe(.error_type, .message))]
    SubscribeRefused {
        /// HTTP status.
        status: u16,
        /// The body's `errorType`, possibly empty.
        error_type: String,
        /// The body's `errorMessage`, or the body text when it is not the documented JSON.
        message: String,
    },
    /// A listener stopped with an I/O error while serving.
    #[error("the {which} listener on {addr} failed: {source}")]
    Serve {
        /// `invoke` or `telemetry`.
        which: &'static str,
        /// Address.
        addr: String,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
    /// SIGTERM/SIGINT handlers could not be installed.
    #[error("cannot install the SIGTERM/SIGINT handler: {0}")]
    Signal(#[source] std::io::Error),
}

fn describe(error_type: &str, message: &str) -> String {
    match (error_type.is_empty(), message.is_empty()) {
        (true, true) => "(no error message in the response)".to_string(),
        (true, false) => message.to_string(),
        (false, true) => error_type.to_string(),
        (false, false) => format!("{error_type}: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_show_the_platform_message() {
        let e = ExtensionError::RegisterRefused {
            status: 400,
            error_type: "Extension.InvalidAddress".into(),
            message: "port 8011 is outside 8081..8090".into(),
        };
        assert_eq!(
            e.to_string(),
            "registration refused (HTTP 400): Extension.InvalidAddress: port 8011 is outside 8081..8090"
        );
        let e = ExtensionError::SubscribeRefused {
            status: 500,
            error_type: String::new(),
            message: String::new(),
        };
        assert_eq!(
            e.to_string(),
            "telemetry subscription refused (HTTP 500): (no error message in the response)"
        );
    }
}
