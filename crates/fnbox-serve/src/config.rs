//! The `fnbox serve` config file and the settings it shares with the command line.
//!
//! ```yaml
//! # fnbox.yaml
//! listen: 127.0.0.1:8000        # optional; loopback only unless a token is set
//! token: s3cret                 # optional; every request then needs X-Auth-Token
//! functions:
//!   - path: ./examples/hello    # a package directory or .zip, relative to this file
//!   - path: ./examples/python-hello
//!     max_instances: 4          # optional pool overrides of the package's function.yaml
//!     reserved_instances: 1
//!     concurrent_num: 2
//!     idle_timeout: 30
//! queue: postgres://fnbox:pw@db:5432/fnbox  # optional; async queue shared by several nodes
//! telemetry_queue_bytes: 67108864  # optional; each telemetry subscriber's queue bound
//! http: {header_timeout: 10, body_timeout: 60, idle_timeout: 60, max_connections: 1024}
//! ```
//!
//! Unknown fields are refused; every message names the file and the field. Command-line values
//! win over the file (the CLI merges them, see `fnbox-cli/src/serve.rs`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use fnbox_package::FunctionConfig;
use serde::Deserialize;

/// Where `fnbox serve` listens unless told otherwise.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8000);

/// Range of `max_instances` and `concurrent_num` (CONTRACT §1).
const INSTANCE_RANGE: (u32, u32) = (1, 1000);
/// Range of `idle_timeout`, seconds.
const IDLE_RANGE: (u32, u32) = (1, 86_400);

/// Why the config file or a setting was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not YAML, or a field of the wrong type or unknown.
    #[error("{}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A field's value is not allowed.
    #[error("{}: {field}: {message}", path.display())]
    Field {
        /// The file.
        path: PathBuf,
        /// e.g. `functions[1].max_instances`.
        field: String,
        /// What is allowed.
        message: String,
    },
    /// `listen` / `--listen` is not a socket address, or not loopback without a token.
    #[error("{origin} {value:?}: {reason}")]
    Listen {
        /// `--listen` or `<file>: listen`.
        origin: String,
        /// As given.
        value: String,
        /// Why.
        reason: String,
    },
}

/// Checks `--queue` / `queue:`: a `postgres://` or `postgresql://` URL. The message never
/// repeats the value (it may hold a password).
pub fn check_queue_url(v: &str) -> Result<(), String> {
    let v = v.trim();
    if v.starts_with("postgres://") || v.starts_with("postgresql://") {
        Ok(())
    } else {
        Err(
            "must be a PostgreSQL URL, postgres://user:password@host:port/database \
             (without it the queue is the SQLite file in --data-dir)"
                .into(),
        )
    }
}

/// Pool settings a config entry may override in the package's `function.yaml`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    /// `max_instances`, 1..=1000.
    pub max_instances: Option<u32>,
    /// `reserved_instances`, 0..=max_instances.
    pub reserved_instances: Option<u32>,
    /// `concurrent_num`, 1..=1000.
    pub concurrent_num: Option<u32>,
    /// `idle_timeout`, seconds, 1..=86400.
    pub idle_timeout: Option<u32>,
}

impl Overrides {
    /// Checks the values that do not depend on the package.
    fn check(&self) -> Result<(), (&'static str, String)> {
        let in_range = |field: &'static str, v: Option<u32>, (lo, hi): (u32, u32)| match v {
            Some(v) if v < lo || v > hi => {
                Err((field, format!("{v} is out of range: allowed {lo}..={hi}")))
            }
            _ => Ok(()),
        };
        in_range("max_instances", self.max_instances, INSTANCE_RANGE)?;
        in_range("concurrent_num", self.concurrent_num, INSTANCE_RANGE)?;
        in_range("idle_timeout", self.idle_timeout, IDLE_RANGE)?;
        Ok(())
    }

    /// Applies the overrides to a package's config (all or nothing); the error names the field
    /// and the range.
    pub fn apply(&self, config: &mut FunctionConfig) -> Result<(), String> {
        self.check()
            .map_err(|(field, msg)| format!("{field}: {msg}"))?;
        let max = self.max_instances.unwrap_or(config.max_instances);
        let reserved = self.reserved_instances.unwrap_or(config.reserved_instances);
        if reserved > max {
            return Err(format!(
                "reserved_instances: {reserved} is out of range: allowed 0..={max} (max_instances)"
            ));
        }
        config.max_instances = max;
        config.reserved_instances = reserved;
        if let Some(v) = self.concurrent_num {
            config.concurrent_num = v;
        }
        if let Some(v) = self.idle_timeout {
            config.idle_timeout = v;
        }
        Ok(())
    }

    /// True when nothing is overridden.
    pub fn is_empty(&self) -> bool {
        *self == Overrides::default()
    }
}

/// One function to serve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionSpec {
    /// Package directory or `.zip` (resolved against the config file's directory).
    pub path: PathBuf,
    /// Where it was listed, for messages: `command line` or `fnbox.yaml: functions[2]`.
    pub origin: String,
    /// Pool overrides.
    pub overrides: Overrides,
    /// The configuration of a package without function.yaml (`fnbox serve --runtime …`).
    pub flags: fnbox_package::ConfigFlags,
}

impl FunctionSpec {
    /// A package given on the command line.
    pub fn from_arg(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            origin: "command line".to_string(),
            overrides: Overrides::default(),
            flags: Default::default(),
        }
    }
}

impl fmt::Display for FunctionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.path.display(), self.origin)
    }
}

/// A parsed, validated config file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServeFile {
    /// `listen` (non-loopback needs a token: [`check_exposure`]).
    pub listen: Option<SocketAddr>,
    /// `token`.
    pub token: Option<String>,
    /// `functions`, paths resolved.
    pub functions: Vec<FunctionSpec>,
    /// `queue`: a PostgreSQL URL for the async invocation queue (see [`check_queue_url`]).
    pub queue: Option<String>,
    /// `otlp` (`endpoint`, `protocol`, `headers`), checked by `fnbox_otel::OtlpConfig`.
    pub otlp: Option<fnbox_otel::OtlpFile>,
    /// `telemetry_queue_bytes`: each telemetry subscriber's queue bound, in bytes of encoded
    /// records (at least 1; default `fnbox_telemetry::DEFAULT_QUEUE_BYTES`).
    pub telemetry_queue_bytes: Option<usize>,
    /// `http`: the front door's connection limits (`crate::http_limits`).
    pub http: Option<crate::http_limits::HttpFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    listen: Option<String>,
    token: Option<String>,
    #[serde(default)]
    functions: Vec<RawEntry>,
    queue: Option<String>,
    otlp: Option<fnbox_otel::OtlpFile>,
    telemetry_queue_bytes: Option<usize>,
    http: Option<crate::http_limits::HttpFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    path: PathBuf,
    max_instances: Option<u32>,
    reserved_instances: Option<u32>,
    concurrent_num: Option<u32>,
    idle_timeout: Option<u32>,
}

impl ServeFile {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses config text; `path` names the file in messages and anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        if text.trim().is_empty() {
            return Err(ConfigError::Parse {
                path: path.to_owned(),
                message:
                    "the file is empty: expected at least `functions:` with one `- path: <package>`"
                        .into(),
            });
        }
        let raw: RawFile = serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let field = |field: String, message: String| ConfigError::Field {
            path: path.to_owned(),
            field,
            message,
        };
        let listen = match raw.listen {
            None => None,
            Some(v) => Some(parse_listen(&v, &format!("{}: listen", path.display()))?),
        };
        if let Some(t) = &raw.token {
            check_token(t).map_err(|m| field("token".into(), m))?;
        }
        let mut functions = Vec::with_capacity(raw.functions.len());
        for (i, e) in raw.functions.into_iter().enumerate() {
            if e.path.as_os_str().is_empty() {
                return Err(field(
                    format!("functions[{i}].path"),
                    "must not be empty".into(),
                ));
            }
            let overrides = Overrides {
                max_instances: e.max_instances,
                reserved_instances: e.reserved_instances,
                concurrent_num: e.concurrent_num,
                idle_timeout: e.idle_timeout,
            };
            overrides
                .check()
                .map_err(|(f, m)| field(format!("functions[{i}].{f}"), m))?;
            let resolved = if e.path.is_absolute() {
                e.path
            } else {
                base.join(e.path)
            };
            functions.push(FunctionSpec {
                path: resolved,
                origin: format!("{}: functions[{i}]", path.display()),
                overrides,
                flags: Default::default(),
            });
        }
        if let Some(q) = &raw.queue {
            check_queue_url(q).map_err(|m| field("queue".into(), m))?;
        }
        if let Some(o) = &raw.otlp {
            fnbox_otel::OtlpConfig::resolve(None, "otlp.endpoint", Some(o), |_| None)
                .map_err(|m| field("otlp".into(), m))?;
        }
        if raw.telemetry_queue_bytes == Some(0) {
            return Err(field(
                "telemetry_queue_bytes".into(),
                "must be at least 1 (bytes of telemetry records queued per subscriber), got 0"
                    .into(),
            ));
        }
        if let Some(h) = &raw.http {
            h.check().map_err(|(f, m)| field(f, m))?;
        }
        Ok(Self {
            listen,
            token: raw.token,
            functions,
            queue: raw.queue,
            otlp: raw.otlp,
            telemetry_queue_bytes: raw.telemetry_queue_bytes,
            http: raw.http,
        })
    }
}

/// Checks a token: non-empty, visible ASCII (it travels in a header).
pub fn check_token(token: &str) -> Result<(), String> {
    if token.is_empty() {
        return Err("must not be empty".into());
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(
            "must be visible ASCII without spaces (it is sent in the X-Auth-Token header)".into(),
        );
    }
    Ok(())
}

/// Parses a listen address: `IP:PORT` or `localhost:PORT`. `origin` names the flag or field in
/// messages. Whether a non-loopback address may be used depends on the token:
/// [`check_exposure`].
pub fn parse_listen(value: &str, origin: &str) -> Result<SocketAddr, ConfigError> {
    let err = |reason: String| ConfigError::Listen {
        origin: origin.to_string(),
        value: value.to_string(),
        reason,
    };
    let addr = match value.strip_prefix("localhost:") {
        Some(port) => {
            let port: u16 = port
                .parse()
                .map_err(|_| err(format!("{port:?} is not a port number")))?;
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
        }
        None => value.parse::<SocketAddr>().map_err(|_| {
            err("expected IP:PORT, e.g. 127.0.0.1:8000 ([::1]:8000 for IPv6, port 0 for any free port)".into())
        })?,
    };
    Ok(addr)
}

/// The front door has no TLS and at most a shared token, so fnbox listens on loopback only,
/// unless a token is set: then any address (in a Kubernetes pod, the pod's IP, so the Service
/// and the kubelet's probes reach it; see docs/scale-out.md). `origin` and `value` name the
/// setting in the message.
pub fn check_exposure(
    addr: SocketAddr,
    origin: &str,
    value: &str,
    has_token: bool,
) -> Result<(), ConfigError> {
    if addr.ip().is_loopback() || has_token {
        return Ok(());
    }
    Err(ConfigError::Listen {
        origin: origin.to_string(),
        value: value.to_string(),
        reason: format!(
            "fnbox serve listens on loopback addresses only (127.0.0.0/8, ::1), not {}, unless a token is set (--token, FNBOX_TOKEN or `token:` in the config): the front door has no TLS; use an SSH tunnel or a reverse proxy to reach it from elsewhere",
            addr.ip()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ServeFile, ConfigError> {
        ServeFile::parse(text, Path::new("/etc/x/fnbox.yaml"))
    }

    #[test]
    fn full_file_parses_and_resolves_paths() {
        let f = parse(
            "listen: 127.0.0.1:9000\ntoken: abc\nfunctions:\n  - path: ./hello\n  - path: /abs/py\n    max_instances: 4\n    reserved_instances: 1\n",
        )
        .unwrap();
        assert_eq!(f.listen, Some("127.0.0.1:9000".parse().unwrap()));
        assert_eq!(f.token.as_deref(), Some("abc"));
        assert_eq!(f.functions.len(), 2);
        assert_eq!(f.functions[0].path, Path::new("/etc/x/./hello"));
        assert_eq!(f.functions[0].origin, "/etc/x/fnbox.yaml: functions[0]");
        assert_eq!(f.functions[1].path, Path::new("/abs/py"));
        assert_eq!(f.functions[1].overrides.max_instances, Some(4));
    }

    #[test]
    fn unknown_field_is_named() {
        let e = parse("functions:\n  - path: a\n    max_instance: 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/etc/x/fnbox.yaml: "), "{e}");
        assert!(e.contains("max_instance"), "{e}");
        let e = parse("listn: 1\n").unwrap_err().to_string();
        assert!(e.contains("listn"), "{e}");
    }

    #[test]
    fn out_of_range_override_names_the_field() {
        let e = parse("functions:\n  - path: a\n  - path: b\n    max_instances: 0\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "/etc/x/fnbox.yaml: functions[1].max_instances: 0 is out of range: allowed 1..=1000"
        );
    }

    #[test]
    fn telemetry_queue_bytes_is_a_positive_byte_count() {
        let f = parse("telemetry_queue_bytes: 1048576\n").unwrap();
        assert_eq!(f.telemetry_queue_bytes, Some(1_048_576));
        let e = parse("telemetry_queue_bytes: 0\n").unwrap_err().to_string();
        assert!(
            e.contains("telemetry_queue_bytes") && e.contains("at least 1"),
            "{e}"
        );
        let e = parse("telemetry_queue_bytes: lots\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("telemetry_queue_bytes"), "{e}");
        assert_eq!(
            parse("functions: []\n").unwrap().telemetry_queue_bytes,
            None
        );
    }

    #[test]
    fn queue_is_a_postgres_url_and_never_echoed() {
        let f = parse("queue: postgres://u:pw@db:5432/q\n").unwrap();
        assert_eq!(f.queue.as_deref(), Some("postgres://u:pw@db:5432/q"));
        assert_eq!(parse("functions: []\n").unwrap().queue, None);
        let e = parse("queue: mysql://u:pw@db/q\n").unwrap_err().to_string();
        assert!(
            e.starts_with("/etc/x/fnbox.yaml: queue: must be a PostgreSQL URL"),
            "{e}"
        );
        assert!(!e.contains("pw"), "{e}");
    }

    #[test]
    fn empty_file_and_missing_path() {
        assert!(parse("  \n").unwrap_err().to_string().contains("empty"));
        let e = parse("functions:\n  - max_instances: 2\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("path"), "{e}");
    }

    #[test]
    fn listen_is_loopback_only_without_a_token() {
        assert_eq!(
            parse_listen("localhost:0", "--listen").unwrap(),
            "127.0.0.1:0".parse().unwrap()
        );
        let v6 = parse_listen("[::1]:80", "--listen").unwrap();
        assert!(check_exposure(v6, "--listen", "[::1]:80", false).is_ok());
        let any = parse_listen("0.0.0.0:8000", "--listen").unwrap();
        let e = check_exposure(any, "--listen", "0.0.0.0:8000", false)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "--listen \"0.0.0.0:8000\": fnbox serve listens on loopback addresses only"
            ),
            "{e}"
        );
        assert!(e.contains("unless a token is set"), "{e}");
        assert!(parse_listen("nonsense", "--listen").is_err());
        let f = parse("listen: 10.0.0.1:80\n").unwrap();
        let e = check_exposure(
            f.listen.unwrap(),
            "fnbox.yaml: listen",
            "10.0.0.1:80",
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("fnbox.yaml: listen \"10.0.0.1:80\""), "{e}");
    }

    #[test]
    fn a_token_allows_any_address() {
        // In a pod: the pod IP, behind the token.
        let pod = parse_listen("10.244.1.7:8000", "--listen").unwrap();
        assert!(check_exposure(pod, "--listen", "10.244.1.7:8000", true).is_ok());
        let f = parse("listen: 10.0.0.1:80\ntoken: abc\n").unwrap();
        assert_eq!(f.listen, Some("10.0.0.1:80".parse().unwrap()));
    }

    #[test]
    fn reserved_over_max_is_refused_when_applied() {
        let mut c = FunctionConfig::defaults("f");
        let o = Overrides {
            max_instances: Some(2),
            reserved_instances: Some(3),
            ..Default::default()
        };
        assert_eq!(
            o.apply(&mut c).unwrap_err(),
            "reserved_instances: 3 is out of range: allowed 0..=2 (max_instances)"
        );
        let o = Overrides {
            concurrent_num: Some(5),
            ..Default::default()
        };
        o.apply(&mut c).unwrap();
        assert_eq!(
            (c.concurrent_num, c.max_instances),
            (5, 10),
            "the failed apply changed nothing"
        );
    }

    #[test]
    fn token_must_be_header_safe() {
        assert!(parse("token: 'a b'\n").is_err());
        assert!(check_token("abc-123").is_ok());
    }
}
