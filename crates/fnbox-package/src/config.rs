//! `function.yaml` / `function.json`: the typed config and its validation (CONTRACT §1).
//!
//! Design: the text is parsed into a generic [`serde_yaml_ng::Value`] (JSON goes through
//! `serde_json` so JSON syntax errors read like JSON errors) and then validated field by field by
//! hand, instead of `#[derive(Deserialize)]` with `deny_unknown_fields`. That costs some code but is
//! the only way to get messages that name the file, the field *and* the allowed values, to reject
//! unquoted numbers in `user_data` with a "quote it" hint, and to validate `runtime` against the
//! dialect given in the same file. Validation stops at the first error.
//!
//! This module checks only the text; checks that need the package's files (handler file exists,
//! bootstrap is executable) are in `layout.rs`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_yaml_ng::Value;

use crate::PackageError;

#[path = "snapshot.rs"]
mod snapshot;
pub use snapshot::{SnapshotConfig, DEFAULT_RESTORE_HOOK_TIMEOUT};

/// The memory sizes FunctionGraph offers, in MB; `memory_size` must be one of them.
pub const MEMORY_SIZES: &[u32] = &[
    128, 256, 512, 768, 1024, 1280, 1536, 1792, 2048, 2560, 3072, 3584, 4096, 8192, 10240,
];

/// Every field a config file may contain, in documentation order.
pub const FIELDS: &[&str] = &[
    "func_name",
    "package",
    "runtime",
    "handler",
    "memory_size",
    "timeout",
    "initializer_handler",
    "initializer_timeout",
    "user_data",
    "concurrent_num",
    "max_instances",
    "reserved_instances",
    "idle_timeout",
    "dialect",
    "network",
    "async_invoke_config",
    "layers",
    "dependencies",
    "ephemeral_storage",
    "containment",
    "freeze",
    "snapshot",
    "snap_start",
    "restore_hook_handler",
    "restore_hook_timeout",
];

/// `ephemeral_storage` bounds in MB: the size of the instance's private `/tmp` (both platforms
/// offer 512 MB by default and up to 10 GB; Lambda's documented range is 512–10240).
pub const EPHEMERAL_STORAGE_MB: (u32, u32) = (512, 10240);

/// Most characters `user_data` names and values may hold together.
pub const USER_DATA_MAX_CHARS: usize = 4096;

const NAME_PATTERN: &str = "^[A-Za-z][A-Za-z0-9_-]{0,59}$";
const ENV_NAME_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]*$";

/// A validated function config. Every field has its final value (defaults filled in).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FunctionConfig {
    /// Function name, `^[A-Za-z][A-Za-z0-9_-]{0,59}$`.
    pub func_name: String,
    /// Package (application) name, same pattern; `default` when absent.
    pub package: String,
    /// The parsed runtime.
    pub runtime: Runtime,
    /// The runtime as written in the config, e.g. `Python3.9` (`Custom`, or `provided.al2023` in
    /// the Lambda dialect, when absent).
    pub runtime_name: String,
    /// Handler, `file.function` for the built-in runtimes; passed as is to a bootstrap.
    pub handler: String,
    /// Memory limit in MB, one of [`MEMORY_SIZES`].
    pub memory_size: u32,
    /// Invocation timeout in seconds, 3..=900.
    pub timeout: u32,
    /// Initializer handler, same file as `handler`.
    pub initializer_handler: Option<String>,
    /// Initializer timeout in seconds, 1..=300.
    pub initializer_timeout: u32,
    /// Extra environment variables (also exported as `RUNTIME_USERDATA`).
    pub user_data: BTreeMap<String, String>,
    /// Requests one instance serves at once, 1..=1000.
    pub concurrent_num: u32,
    /// Instances per function, 1..=1000.
    pub max_instances: u32,
    /// Instances kept warm, 0..=max_instances.
    pub reserved_instances: u32,
    /// Seconds before an idle on-demand instance is reclaimed, 1..=86400.
    pub idle_timeout: u32,
    /// Which platform's in-sandbox APIs the function sees.
    pub dialect: Dialect,
    /// Whether instances get a network of their own (`isolated`, the default) or share the
    /// host's (`host`).
    pub network: Network,
    /// Asynchronous invocation settings (`async_invoke_config`), FunctionGraph's names.
    pub async_invoke_config: Option<AsyncInvokeConfig>,
    /// `layers:` (Lambda): directories or `.zip` files, relative to the package, merged in
    /// order (later ones win) and presented at `/opt`.
    pub layers: Vec<String>,
    /// `dependencies:` (FunctionGraph): directories or `.zip` files, relative to the package,
    /// merged with the code directory (a dependency's file wins on a clash).
    pub dependencies: Vec<String>,
    /// Size of the instance's private `/tmp` in MB ([`EPHEMERAL_STORAGE_MB`]; 512 by default).
    /// Applied where fnbox contains instances (see the engine's `contain` module).
    pub ephemeral_storage: u32,
    /// `containment: off` opts this function out of containment (its processes run as fnbox's
    /// user in the host's mount namespace); `on` (the default) follows fnbox's mode.
    pub containment: bool,
    /// Whether an idle instance is frozen between invocations (`freeze:`; Lambda only, on by
    /// default there).
    pub freeze: bool,
    /// The restore phase: `snapshot` / `snap_start` and the restore hook.
    pub snapshot: SnapshotConfig,
}

/// The network an instance's processes see (`network:` in function.yaml).
///
/// `isolated` (the default): each instance gets its own network namespace with only a loopback
/// interface, so fixed ports (8000, 8081-8090) never collide between instances, and the
/// function has NO route out (no internet, no host services). fnbox falls back to `host` for
/// every function when it cannot create namespaces (not root, no user namespaces), and says so
/// at start-up. `host`: the instance shares the host's network (outbound access, host
/// loopback); a function with fixed ports then runs one instance at a time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// Own network namespace, loopback only (the default).
    #[default]
    Isolated,
    /// The host's network.
    Host,
}

impl Network {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Network::Isolated => "isolated",
            Network::Host => "host",
        }
    }
}

/// How the function's code is run.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Runtime {
    /// An executable `bootstrap` that talks to the runtime API (also Lambda's `provided*`).
    Custom,
    /// An executable `bootstrap` that serves HTTP on port 8000.
    Http,
    /// Built-in Python event runtime; `version` is e.g. `3.9`.
    Python {
        /// `3.<minor>`.
        version: String,
    },
    /// Built-in Node.js event runtime; `version` is e.g. `18.15` (FunctionGraph) or `20`
    /// (Lambda's `nodejs20.x`).
    Node {
        /// The version part of the runtime name.
        version: String,
    },
}

impl Runtime {
    /// True for the runtimes that start the user's `bootstrap` (Custom and http).
    pub fn needs_bootstrap(&self) -> bool {
        matches!(self, Runtime::Custom | Runtime::Http)
    }
}

/// A platform's set of in-sandbox APIs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// Huawei FunctionGraph (the default).
    #[default]
    FunctionGraph,
    /// AWS Lambda.
    Lambda,
}

impl Dialect {
    /// The config spelling: `functiongraph` or `lambda`.
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::FunctionGraph => "functiongraph",
            Dialect::Lambda => "lambda",
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FunctionConfig {
    /// The config a package without config file gets: every field at its default.
    /// `func_name` is taken as is (not validated).
    pub fn defaults(func_name: &str) -> FunctionConfig {
        FunctionConfig {
            func_name: func_name.to_owned(),
            package: "default".to_owned(),
            runtime: Runtime::Custom,
            runtime_name: "Custom".to_owned(),
            handler: "index.handler".to_owned(),
            memory_size: 128,
            timeout: 3,
            initializer_handler: None,
            initializer_timeout: 3,
            user_data: BTreeMap::new(),
            concurrent_num: 1,
            max_instances: 10,
            reserved_instances: 0,
            idle_timeout: 60,
            dialect: Dialect::FunctionGraph,
            network: Network::Isolated,
            async_invoke_config: None,
            layers: Vec::new(),
            dependencies: Vec::new(),
            ephemeral_storage: EPHEMERAL_STORAGE_MB.0,
            containment: true,
            freeze: false,
            snapshot: SnapshotConfig::default(),
        }
    }

    /// `timeout` as a [`Duration`].
    pub fn timeout_duration(&self) -> Duration {
        Duration::from_secs(u64::from(self.timeout))
    }

    /// `initializer_timeout` as a [`Duration`].
    pub fn initializer_timeout_duration(&self) -> Duration {
        Duration::from_secs(u64::from(self.initializer_timeout))
    }

    /// `idle_timeout` as a [`Duration`].
    pub fn idle_timeout_duration(&self) -> Duration {
        Duration::from_secs(u64::from(self.idle_timeout))
    }

    /// `memory_size` in bytes.
    pub fn memory_bytes(&self) -> u64 {
        u64::from(self.memory_size) * 1024 * 1024
    }

    /// `urn:fss:local:local:function:<package>:<func_name>:latest`.
    pub fn urn(&self) -> String {
        format!(
            "urn:fss:local:local:function:{}:{}:latest",
            self.package, self.func_name
        )
    }

    /// CPU share in millicores: `200 + memory_size / 128 * 100`.
    pub fn cpu_millicores(&self) -> u32 {
        200 + self.memory_size / 128 * 100
    }
}

/// Parses and validates a config from text.
///
/// `origin` names the file in error messages; a `.json` extension selects the JSON parser (for
/// JSON-style syntax errors), anything else is YAML. `default_name` becomes `func_name` when the
/// field is absent (it must then match the name pattern). Checks needing the package's files
/// (handler file, bootstrap) are done by [`crate::load`], not here.
pub fn parse_config(
    text: &str,
    origin: &Path,
    default_name: &str,
) -> Result<FunctionConfig, PackageError> {
    let document = parse_document(text, origin)?;
    from_document(&document, origin, default_name, true)
}

/// The config of a package without config file (`origin` is the package directory).
pub(crate) fn defaults_for(
    origin: &Path,
    default_name: &str,
) -> Result<FunctionConfig, PackageError> {
    from_document(&Value::Null, origin, default_name, false)
}

// ---------------------------------------------------------------------------------------------
// Text → Value

fn parse_document(text: &str, origin: &Path) -> Result<Value, PackageError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let is_json = origin
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
    if is_json {
        // serde_yaml_ng's `Mapping` visitor rejects duplicate keys, for JSON too.
        return serde_json::from_str::<Value>(text).map_err(|e| PackageError::Syntax {
            file: origin.to_owned(),
            line: e.line(),
            column: e.column(),
            message: format!(
                "invalid JSON: {}",
                strip_location(&e.to_string(), e.line(), e.column())
            ),
        });
    }
    let yaml_error = |e: serde_yaml_ng::Error| {
        let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
        let message = e.to_string();
        // The parser points a duplicate key at its mapping's start; point at the duplicate.
        let (line, column) = duplicate_key_line(text, &message).map_or((line, column), |l| (l, 1));
        let message = match oversized_integer(&message) {
            Some(m) => m,
            None => format!("invalid YAML: {}", strip_location(&message, line, column)),
        };
        PackageError::Syntax {
            file: origin.to_owned(),
            line,
            column,
            message,
        }
    };
    let mut value: Value = serde_yaml_ng::from_str(text).map_err(yaml_error)?;
    value.apply_merge().map_err(yaml_error)?;
    Ok(value)
}

/// A number too large for any field (the YAML parser reports it as a type error of `u128`):
/// `field: N is out of range (far larger than any allowed value)`.
fn oversized_integer(message: &str) -> Option<String> {
    let (field, rest) = message.split_once(": invalid type: integer `")?;
    let (number, rest) = rest.split_once('`')?;
    if !rest.starts_with(" as u128") && !rest.starts_with(" as i128") {
        return None;
    }
    Some(format!(
        "{field}: {number} is out of range (far larger than any allowed value)"
    ))
}

/// The line of the second top-level `key:` for a "duplicate entry with key \"key\"" message.
fn duplicate_key_line(text: &str, message: &str) -> Option<usize> {
    let key = message
        .strip_prefix("duplicate entry with key \"")?
        .split('"')
        .next()?;
    let starts = [
        format!("{key}:"),
        format!("\"{key}\":"),
        format!("'{key}':"),
    ];
    text.lines()
        .enumerate()
        .filter(|(_, line)| starts.iter().any(|s| line.starts_with(s.as_str())))
        .nth(1)
        .map(|(i, _)| i + 1)
}

/// Removes the parsers' own " at line L column C" suffix: the position is printed up front.
fn strip_location(message: &str, line: usize, column: usize) -> String {
    let suffix = format!(" at line {line} column {column}");
    match message.find(&suffix) {
        Some(i) => format!("{}{}", &message[..i], &message[i + suffix.len()..]),
        None => message.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// Value → FunctionConfig

/// The fields of one document, with `null` values dropped (a null field means "use the default").
struct Fields<'a> {
    file: &'a Path,
    values: BTreeMap<&'a str, &'a Value>,
}

pub(crate) fn from_document(
    document: &Value,
    file: &Path,
    default_name: &str,
    has_file: bool,
) -> Result<FunctionConfig, PackageError> {
    let mapping = match document {
        Value::Null => None,
        Value::Mapping(m) => Some(m),
        other => {
            return Err(PackageError::Config {
                file: file.to_owned(),
                message: format!(
                    "expected a mapping of field: value, found {}",
                    describe(other)
                ),
            })
        }
    };
    let mut values = BTreeMap::new();
    for (key, value) in mapping.into_iter().flatten() {
        let Value::String(key) = key else {
            return Err(PackageError::Config {
                file: file.to_owned(),
                message: format!(
                    "field names must be strings, found {}; allowed fields: {}",
                    describe(key),
                    FIELDS.join(", ")
                ),
            });
        };
        if !FIELDS.contains(&key.as_str()) {
            return Err(PackageError::UnknownField {
                file: file.to_owned(),
                field: key.clone(),
                hint: suggest(key).map_or_else(String::new, |s| format!(" (did you mean '{s}'?)")),
                allowed: FIELDS.join(", "),
            });
        }
        if !value.is_null() {
            values.insert(key.as_str(), value);
        }
    }
    Fields { file, values }.build(default_name, has_file)
}

impl Fields<'_> {
    fn build(&self, default_name: &str, has_file: bool) -> Result<FunctionConfig, PackageError> {
        let defaults = FunctionConfig::defaults(default_name);

        let dialect = match self.string("dialect")? {
            None => defaults.dialect,
            Some(s) if s.eq_ignore_ascii_case("functiongraph") => Dialect::FunctionGraph,
            Some(s) if s.eq_ignore_ascii_case("lambda") => Dialect::Lambda,
            Some(s) => {
                return Err(self.error(
                    "dialect",
                    format!("'{s}' is not allowed; allowed values: functiongraph, lambda"),
                ))
            }
        };

        let func_name = match self.string("func_name")? {
            Some(name) => {
                if !is_valid_name(name) {
                    return Err(self.error("func_name", bad_name(name)));
                }
                name.to_owned()
            }
            None if is_valid_name(default_name) => default_name.to_owned(),
            None if has_file => {
                return Err(self.error(
                    "func_name",
                    format!(
                    "not set, and the default (the directory or zip file name) '{default_name}' \
                         is not a valid function name ({NAME_PATTERN}): set func_name in this file"
                ),
                ))
            }
            None => {
                return Err(self.error(
                    "func_name",
                    format!(
                    "there is no function.yaml, and the default name (the directory or zip file \
                         name) '{default_name}' is not a valid function name ({NAME_PATTERN}): \
                         add a function.yaml with a func_name"
                ),
                ))
            }
        };

        let package = match self.string("package")? {
            Some(p) if !is_valid_name(p) => return Err(self.error("package", bad_name(p))),
            Some(p) => p.to_owned(),
            None => defaults.package,
        };

        let (runtime, runtime_name) = match self.string("runtime")? {
            Some(name) => match parse_runtime(name, dialect) {
                Some(rt) => (rt, name.to_owned()),
                None => return Err(self.error("runtime", bad_runtime(name, dialect))),
            },
            None => match dialect {
                Dialect::FunctionGraph => (Runtime::Custom, defaults.runtime_name),
                Dialect::Lambda => (Runtime::Custom, "provided.al2023".to_owned()),
            },
        };

        let handler = match self.string("handler")? {
            Some(h) => h.to_owned(),
            // Lambda passes the configured handler through (`_HANDLER`, the extension register
            // response) and has no default: without one, a `provided` function's is "".
            None if dialect == Dialect::Lambda && runtime.needs_bootstrap() => String::new(),
            None => defaults.handler,
        };
        let handler_spec = if handler.is_empty() && self.string("handler")?.is_none() {
            None
        } else {
            self.check_handler("handler", &handler, &runtime)?
        };

        let memory_size = match self.integer("memory_size")? {
            None => defaults.memory_size,
            Some(m) => match u32::try_from(m) {
                Ok(m) if MEMORY_SIZES.contains(&m) => m,
                _ => {
                    return Err(self.error(
                        "memory_size",
                        format!(
                            "{m} is not allowed; allowed values: {} (MB)",
                            MEMORY_SIZES
                                .iter()
                                .map(u32::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ))
                }
            },
        };

        let timeout = self
            .ranged("timeout", 3, 900, "seconds")?
            .unwrap_or(defaults.timeout);

        let initializer_handler = match self.string("initializer_handler")? {
            None => None,
            Some(init) => {
                let init_spec = self.check_handler("initializer_handler", init, &runtime)?;
                if let (Some(h), Some(i)) = (&handler_spec, &init_spec) {
                    if h.file != i.file {
                        return Err(self.error(
                            "initializer_handler",
                            format!(
                                "'{init}' is in file '{}', but the handler '{handler}' is in '{}'; \
                                 the initializer must be in the same file as the handler",
                                i.file, h.file
                            ),
                        ));
                    }
                }
                Some(init.to_owned())
            }
        };
        let initializer_timeout = self
            .ranged("initializer_timeout", 1, 300, "seconds")?
            .unwrap_or(defaults.initializer_timeout);

        let user_data = self.user_data()?;

        let concurrent_num = self
            .ranged("concurrent_num", 1, 1000, "requests")?
            .unwrap_or(defaults.concurrent_num);
        let max_instances = self
            .ranged("max_instances", 1, 1000, "instances")?
            .unwrap_or(defaults.max_instances);
        let reserved_instances = match self.integer("reserved_instances")? {
            None => defaults.reserved_instances,
            Some(r) if (0..=i128::from(max_instances)).contains(&r) => r as u32,
            Some(r) => {
                return Err(self.error(
                    "reserved_instances",
                    format!(
                        "{r} is out of range; allowed: 0 to {max_instances} instances \
                         (at most max_instances, which is {max_instances})"
                    ),
                ))
            }
        };
        let idle_timeout = self
            .ranged("idle_timeout", 1, 86400, "seconds")?
            .unwrap_or(defaults.idle_timeout);

        let network = match self.string("network")? {
            None => defaults.network,
            Some("isolated") => Network::Isolated,
            Some("host") => Network::Host,
            Some(other) => {
                return Err(self.error(
                    "network",
                    format!("'{other}' is not allowed; allowed values: isolated, host"),
                ))
            }
        };

        let async_invoke_config = self.async_invoke_config()?;
        let (layers, dependencies) = self.sources(dialect)?;
        let ephemeral_storage = self
            .ranged(
                "ephemeral_storage",
                EPHEMERAL_STORAGE_MB.0,
                EPHEMERAL_STORAGE_MB.1,
                "MB (the size of the private /tmp)",
            )?
            .unwrap_or(defaults.ephemeral_storage);

        let containment = match self.string("containment")? {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => {
                return Err(self.error(
                    "containment",
                    format!("'{other}' is not allowed; allowed values: on, off"),
                ))
            }
        };

        let freeze = self.freeze(dialect)?;

        let snapshot = self.snapshot_config(dialect, &runtime)?;

        Ok(FunctionConfig {
            layers,
            dependencies,
            containment,
            ephemeral_storage,
            freeze,
            snapshot,
            network,
            async_invoke_config,
            func_name,
            package,
            runtime,
            runtime_name,
            handler,
            memory_size,
            timeout,
            initializer_handler,
            initializer_timeout,
            user_data,
            concurrent_num,
            max_instances,
            reserved_instances,
            idle_timeout,
            dialect,
        })
    }

    fn error(&self, field: &str, message: impl Into<String>) -> PackageError {
        PackageError::Field {
            file: self.file.to_owned(),
            field: field.to_owned(),
            message: message.into(),
        }
    }

    /// `freeze:` a boolean; Lambda packages are frozen unless `freeze: false`, FunctionGraph
    /// packages never (FunctionGraph documents no freeze).
    fn freeze(&self, dialect: Dialect) -> Result<bool, PackageError> {
        let value = match self.values.get("freeze") {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => {
                return Err(self.error(
                    "freeze",
                    format!("expected true or false, found {}", describe(other)),
                ))
            }
        };
        match (dialect, value) {
            (Dialect::Lambda, v) => Ok(v.unwrap_or(true)),
            (Dialect::FunctionGraph, Some(true)) => Err(self.error(
                "freeze",
                "only Lambda packages (dialect: lambda) are frozen between invocations",
            )),
            (Dialect::FunctionGraph, _) => Ok(false),
        }
    }

    fn string(&self, field: &str) -> Result<Option<&str>, PackageError> {
        match self.values.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.error(
                field,
                format!("expected a string, found {}", describe(other)),
            )),
        }
    }

    /// An integer field, unchecked (i128 so negative and huge values can be quoted back).
    fn integer(&self, field: &str) -> Result<Option<i128>, PackageError> {
        let value = match self.values.get(field) {
            None => return Ok(None),
            Some(v) => *v,
        };
        if let Value::Number(n) = value {
            if let Some(u) = n.as_u64() {
                return Ok(Some(i128::from(u)));
            }
            if let Some(i) = n.as_i64() {
                return Ok(Some(i128::from(i)));
            }
        }
        let hint = match value {
            Value::String(s) if s.trim().parse::<i64>().is_ok() => {
                " (write the number without quotes)"
            }
            _ => "",
        };
        Err(self.error(
            field,
            format!("expected a whole number, found {}{hint}", describe(value)),
        ))
    }

    fn ranged(
        &self,
        field: &str,
        lo: u32,
        hi: u32,
        unit: &str,
    ) -> Result<Option<u32>, PackageError> {
        match self.integer(field)? {
            None => Ok(None),
            Some(v) if (i128::from(lo)..=i128::from(hi)).contains(&v) => Ok(Some(v as u32)),
            Some(v) => Err(self.error(
                field,
                format!("{v} is out of range; allowed: {lo} to {hi} {unit}"),
            )),
        }
    }

    /// Shape check of a handler for the built-in runtimes; `None` for bootstrap runtimes, where
    /// the handler is only passed on.
    fn check_handler(
        &self,
        field: &str,
        handler: &str,
        runtime: &Runtime,
    ) -> Result<Option<HandlerSpec>, PackageError> {
        if handler.trim().is_empty() {
            return Err(self.error(field, "must not be empty"));
        }
        match HandlerSpec::parse(handler, runtime) {
            Ok(spec) => Ok(spec),
            Err(why) => Err(self.error(field, format!("'{handler}' {why}"))),
        }
    }

    fn user_data(&self) -> Result<BTreeMap<String, String>, PackageError> {
        const FIELD: &str = "user_data";
        let mapping = match self.values.get(FIELD) {
            None => return Ok(BTreeMap::new()),
            Some(Value::Mapping(m)) => m,
            Some(other) => {
                return Err(self.error(
                    FIELD,
                    format!(
                        "expected a mapping of NAME: \"value\" strings, found {}",
                        describe(other)
                    ),
                ))
            }
        };
        let mut out = BTreeMap::new();
        let mut size = 0usize;
        for (key, value) in mapping {
            let Value::String(key) = key else {
                return Err(self.error(
                    FIELD,
                    format!(
                        "name {} is not a valid environment variable name ({ENV_NAME_PATTERN})",
                        describe(key)
                    ),
                ));
            };
            if !is_env_name(key) {
                return Err(self.error(
                    FIELD,
                    format!(
                        "name '{key}' is not a valid environment variable name ({ENV_NAME_PATTERN})"
                    ),
                ));
            }
            let value = match value {
                Value::String(s) => s.clone(),
                Value::Number(_) | Value::Bool(_) => {
                    let shown = scalar_text(value);
                    return Err(self.error(
                        FIELD,
                        format!(
                            "the value of '{key}' is {}; values must be strings: quote it, \
                             e.g. {key}: \"{shown}\"",
                            describe(value)
                        ),
                    ));
                }
                Value::Null => {
                    return Err(self.error(
                        FIELD,
                        format!(
                            "'{key}' has no value; values must be strings: write {key}: \"\" \
                             for an empty one"
                        ),
                    ))
                }
                other => {
                    return Err(self.error(
                        FIELD,
                        format!(
                            "the value of '{key}' must be a string, found {}",
                            describe(other)
                        ),
                    ))
                }
            };
            size += key.chars().count() + value.chars().count();
            out.insert(key.clone(), value);
        }
        if size > USER_DATA_MAX_CHARS {
            return Err(self.error(
                FIELD,
                format!(
                    "names and values total {size} characters; at most {USER_DATA_MAX_CHARS} are allowed"
                ),
            ));
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------------
// Runtimes

fn parse_runtime(name: &str, dialect: Dialect) -> Option<Runtime> {
    let lower = name.to_ascii_lowercase();
    match dialect {
        Dialect::FunctionGraph => {
            if lower == "custom" {
                Some(Runtime::Custom)
            } else if lower == "http" {
                Some(Runtime::Http)
            } else if let Some(v) = lower.strip_prefix("python") {
                // Python2.7 is listed by the platform too; whether this machine can run it is
                // the launcher's question (fnbox-engine `launch`).
                (is_python3_version(v) || v == "2.7").then(|| Runtime::Python {
                    version: v.to_owned(),
                })
            } else if let Some(v) = lower.strip_prefix("node.js") {
                let ok = !v.is_empty() && v.split('.').all(is_digits);
                ok.then(|| Runtime::Node {
                    version: v.to_owned(),
                })
            } else {
                None
            }
        }
        Dialect::Lambda => {
            if matches!(
                lower.as_str(),
                "provided" | "provided.al2" | "provided.al2023"
            ) {
                Some(Runtime::Custom)
            } else if let Some(v) = lower.strip_prefix("python") {
                is_python3_version(v).then(|| Runtime::Python {
                    version: v.to_owned(),
                })
            } else if let Some(v) = lower.strip_prefix("nodejs") {
                let major = v.strip_suffix(".x")?;
                is_digits(major).then(|| Runtime::Node {
                    version: major.to_owned(),
                })
            } else {
                None
            }
        }
    }
}

fn bad_runtime(name: &str, dialect: Dialect) -> String {
    let other = match dialect {
        Dialect::FunctionGraph => Dialect::Lambda,
        Dialect::Lambda => Dialect::FunctionGraph,
    };
    let hint = if parse_runtime(name, other).is_some() {
        match other {
            Dialect::Lambda => " ('{name}' is a Lambda runtime name: add dialect: lambda)",
            Dialect::FunctionGraph => {
                " ('{name}' is a FunctionGraph runtime name; for a bootstrap use provided.al2023)"
            }
        }
        .replace("{name}", name)
    } else {
        String::new()
    };
    match dialect {
        Dialect::FunctionGraph => format!(
            "'{name}' is not allowed; allowed values: Custom, http, Python2.7, Python3.<minor> (e.g. \
             Python3.9, Python3.12), Node.js<version> (e.g. Node.js6.10, Node.js20.15){hint}"
        ),
        Dialect::Lambda => format!(
            "'{name}' is not allowed with dialect lambda; allowed values: provided, provided.al2, \
             provided.al2023, python3.<minor> (e.g. python3.12), nodejs<major>.x (e.g. nodejs20.x){hint}"
        ),
    }
}

fn is_python3_version(v: &str) -> bool {
    v.strip_prefix("3.").is_some_and(is_digits)
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

// ---------------------------------------------------------------------------------------------
// Handlers

/// Where a built-in runtime's handler lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HandlerSpec {
    /// Path of the code file relative to the root, `/`-separated, without extension.
    pub file: String,
    /// Candidate file names (relative), any of which satisfies the handler.
    pub candidates: Vec<String>,
}

impl HandlerSpec {
    /// Parses `handler` for `runtime`; `Ok(None)` for the bootstrap runtimes (free-form handler);
    /// `Err` holds the reason (to follow the quoted handler).
    pub(crate) fn parse(handler: &str, runtime: &Runtime) -> Result<Option<HandlerSpec>, String> {
        let shape = "is not of the form file.function (e.g. index.handler)";
        match runtime {
            Runtime::Custom | Runtime::Http => Ok(None),
            // `pkg.mod.func` or `pkg/mod.func` → pkg/mod.py (awslambdaric accepts both).
            Runtime::Python { .. } => {
                let (module, function) = handler.rsplit_once('.').ok_or(shape)?;
                if !is_identifier(function, false) {
                    return Err(shape.to_owned());
                }
                let parts: Vec<&str> = module.split(['.', '/']).collect();
                if parts.iter().any(|p| p.is_empty()) {
                    return Err(format!("{shape}: bad module path '{module}'"));
                }
                let file = parts.join("/");
                Ok(Some(HandlerSpec {
                    candidates: vec![format!("{file}.py"), format!("{file}/__init__.py")],
                    file,
                }))
            }
            // `dir/file.func.nested` → dir/file.{js,mjs,cjs} (how the Node runtimes split it).
            Runtime::Node { .. } => {
                let (dir, base) = handler.rsplit_once('/').unwrap_or(("", handler));
                let (name, function) = base.split_once('.').ok_or(shape)?;
                if name.is_empty() || !function.split('.').all(|f| is_identifier(f, true)) {
                    return Err(shape.to_owned());
                }
                if !dir.is_empty()
                    && dir
                        .split('/')
                        .any(|p| p.is_empty() || p == "." || p == "..")
                {
                    return Err(format!(
                        "{shape}: the directory '{dir}' must be a relative path inside the code root"
                    ));
                }
                let file = if dir.is_empty() {
                    name.to_owned()
                } else {
                    format!("{dir}/{name}")
                };
                Ok(Some(HandlerSpec {
                    candidates: ["js", "mjs", "cjs"]
                        .iter()
                        .map(|ext| format!("{file}.{ext}"))
                        .collect(),
                    file,
                }))
            }
        }
    }
}

fn is_identifier(s: &str, allow_dollar: bool) -> bool {
    let ok = |c: char, first: bool| {
        c == '_'
            || (allow_dollar && c == '$')
            || c.is_ascii_alphabetic()
            || (!first && c.is_ascii_digit())
    };
    let mut chars = s.chars();
    chars.next().is_some_and(|c| ok(c, true)) && chars.all(|c| ok(c, false))
}

// ---------------------------------------------------------------------------------------------
// Small helpers

/// `^[A-Za-z][A-Za-z0-9_-]{0,59}$`.
pub(crate) fn is_valid_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 60
        && b[0].is_ascii_alphabetic()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
}

fn bad_name(name: &str) -> String {
    format!(
        "'{name}' is not a valid name; allowed: {NAME_PATTERN} (a letter, then at most 59 letters, \
         digits, '_' or '-')"
    )
}

/// `^[A-Za-z_][A-Za-z0-9_]*$`.
fn is_env_name(s: &str) -> bool {
    is_identifier(s, false)
}

/// "a number (8080)", "a list", ... for type errors.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(_) => format!("a boolean ({})", scalar_text(value)),
        Value::Number(_) => format!("a number ({})", scalar_text(value)),
        Value::String(s) => format!("a string ({s:?})"),
        Value::Sequence(_) => "a list".to_owned(),
        Value::Mapping(_) => "a mapping".to_owned(),
        Value::Tagged(t) => format!("a value tagged {}", t.tag),
    }
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => String::new(),
    }
}

/// A field the user probably meant: same letters ignoring case and `_`, or edit distance ≤ 2.
fn suggest(unknown: &str) -> Option<&'static str> {
    let squash = |s: &str| -> String {
        s.chars()
            .filter(|c| *c != '_' && *c != '-')
            .flat_map(char::to_lowercase)
            .collect()
    };
    let wanted = squash(unknown);
    FIELDS
        .iter()
        .copied()
        .find(|f| squash(f) == wanted)
        .or_else(|| {
            FIELDS
                .iter()
                .copied()
                .map(|f| (edit_distance(&wanted, &squash(f)), f))
                .filter(|(d, _)| *d <= 2)
                .min_by_key(|(d, _)| *d)
                .map(|(_, f)| f)
        })
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

mod async_invoke;
mod sources;
pub use async_invoke::{AsyncDestination, AsyncInvokeConfig};
pub use sources::{MAX_DEPENDENCIES, MAX_LAYERS};

#[cfg(test)]
mod tests;
