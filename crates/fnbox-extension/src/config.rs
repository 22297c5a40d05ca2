//! Where the extension API is, and what this extension is called.
//!
//! FunctionGraph identifies an extension by the **file name of the `extension*.sh` script it
//! launched** (header `FunctionGraph-Extension-Name`), not by the binary that script starts. The
//! platform passes that name to nobody, so the usual way to learn it is for the launcher to hand
//! its own `$0` to the binary:
//!
//! ```sh
//! #!/bin/bash
//! exec "$(dirname "$0")/my-extension" "$0" "$@"
//! ```
//!
//! and for the binary to call [`launcher_name_from_args`].

use std::ffi::OsStr;
use std::path::Path;

use crate::ExtensionError;

/// Environment variable holding `host:port` of the extension API.
pub const EXTENSION_API_ADDR_ENV: &str = "EXTENSION_API_ADDR";

/// Where to reach the platform's extension API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtensionConfig {
    /// `host:port` of the extension API, without scheme.
    pub api_addr: String,
}

impl ExtensionConfig {
    /// A config for an explicit `host:port` (tests, or a platform that names it differently).
    pub fn new(api_addr: impl Into<String>) -> Result<Self, ExtensionError> {
        let api_addr = api_addr.into().trim().to_string();
        if !is_host_port(&api_addr) {
            return Err(ExtensionError::InvalidApiAddr {
                var: EXTENSION_API_ADDR_ENV,
                value: api_addr,
            });
        }
        Ok(Self { api_addr })
    }

    /// Reads `EXTENSION_API_ADDR`, which FunctionGraph (and fnbox) sets for every extension.
    pub fn from_env() -> Result<Self, ExtensionError> {
        match std::env::var(EXTENSION_API_ADDR_ENV) {
            Ok(v) if !v.trim().is_empty() => Self::new(v),
            _ => Err(ExtensionError::MissingEnv {
                var: EXTENSION_API_ADDR_ENV,
            }),
        }
    }
}

/// `host:port` with a numeric port and no scheme or path.
fn is_host_port(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && !host.contains('/')
                && !host.contains(' ')
                && port.parse::<u16>().is_ok()
        }
        None => false,
    }
}

/// The file-name part of a launcher path (`extension/extensionDemo.sh` → `extensionDemo.sh`).
pub fn launcher_name(path: impl AsRef<OsStr>) -> Option<String> {
    Path::new(path.as_ref())
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
}

/// The extension name from the first command-line argument, which the launcher script is
/// expected to set to its own `$0` (see the module docs).
pub fn launcher_name_from_args() -> Result<String, ExtensionError> {
    std::env::args_os()
        .nth(1)
        .and_then(launcher_name)
        .ok_or(ExtensionError::MissingLauncherArg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launcher_name_takes_the_file_name() {
        assert_eq!(
            launcher_name("extension/extensionDemo.sh").as_deref(),
            Some("extensionDemo.sh")
        );
        assert_eq!(
            launcher_name("/opt/function/code/extension/extensionA.sh").as_deref(),
            Some("extensionA.sh")
        );
        assert_eq!(
            launcher_name("extensionB.sh").as_deref(),
            Some("extensionB.sh")
        );
        assert_eq!(launcher_name(""), None);
    }

    #[test]
    fn api_addr_must_be_host_port() {
        assert!(ExtensionConfig::new("127.0.0.1:9000").is_ok());
        assert!(ExtensionConfig::new(" localhost:1 ").is_ok());
        for bad in ["127.0.0.1", "http://127.0.0.1:9000", ":80", "h:99999", ""] {
            assert!(
                matches!(
                    ExtensionConfig::new(bad),
                    Err(ExtensionError::InvalidApiAddr { .. })
                ),
                "{bad:?} accepted"
            );
        }
    }
}
