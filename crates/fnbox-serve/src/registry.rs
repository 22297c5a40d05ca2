//! The functions one `fnbox serve` process serves: packages loaded, overrides applied, names
//! checked unique, one [`Pool`] each, and the lookups both front doors use.
//!
//! # Fixed ports
//! When the engine isolates instances (one network namespace each, see
//! `fnbox_engine::netns`), fixed ports never collide and none of this applies. On the host
//! network (isolation impossible here, or `network: host` in function.yaml), a
//! function whose HTTP runtime binds port 8000, or whose extensions bind ports in 8081..=8090,
//! runs ONE instance at a time ([`PoolConfig::from_function`] with `exclusive`). Two different
//! functions that need the same fixed ports would collide as soon as both have an instance, so
//! [`Registry::load`] refuses to serve them together and names both: an HTTP function and an
//! extension function may be served together (8000 vs 8081..=8090); two HTTP functions, or two
//! functions with extensions, may not.

use std::collections::HashMap;
use std::sync::Arc;

use fnbox_engine::{Dialect, Engine, Function, InitError, Pool, PoolConfig};
use fnbox_package::{Package, PackageError, Runtime};
use fnbox_wire::front::{lambda_values, FunctionListing};

use crate::api::error::FrontError;
use crate::config::FunctionSpec;
use crate::urn::{lambda_arn, FgRef, LambdaRef, Version};

/// A group of fixed ports a function's instances bind on the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FixedPorts {
    /// The HTTP runtime's port 8000.
    Http,
    /// FunctionGraph extension listeners, anywhere in 8081..=8090.
    Extensions,
    /// Lambda extension listeners: whatever ports the extensions choose.
    LambdaExtensions,
}

impl FixedPorts {
    /// For messages.
    pub fn describe(self) -> &'static str {
        match self {
            FixedPorts::Http => "port 8000 (runtime: http)",
            FixedPorts::Extensions => "ports 8081-8090 (extensions)",
            FixedPorts::LambdaExtensions => "the ports its extensions listen on",
        }
    }
}

/// Why the functions could not be loaded. Nothing has been started when this is returned.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No function to serve.
    #[error(
        "nothing to serve: give one or more package paths, or --config with a `functions:` list"
    )]
    Empty,
    /// A package is invalid.
    #[error("{}{source}", prefix(origin))]
    Package {
        /// Where it was listed.
        origin: String,
        /// Why.
        source: PackageError,
    },
    /// An override does not fit the package.
    #[error("{}function '{name}': {message}", prefix(origin))]
    Override {
        /// Where it was listed.
        origin: String,
        /// Function name.
        name: String,
        /// Field and range.
        message: String,
    },
    /// Two packages define the same function name.
    #[error("function name '{name}' is used twice: by {first} and by {second}; names must be unique (change func_name in one function.yaml)")]
    Duplicate {
        /// The name.
        name: String,
        /// First package.
        first: String,
        /// Second package.
        second: String,
    },
    /// The runtime cannot be launched on this machine.
    #[error("function '{name}': {source}")]
    Launch {
        /// Function name.
        name: String,
        /// Why.
        source: fnbox_engine::launch::LaunchError,
    },
    /// Two functions need the same fixed ports.
    #[error("functions '{first}' and '{second}' both need {}: until instances get their own network they would collide, so fnbox serves only one of them at a time; serve them separately", ports.describe())]
    PortConflict {
        /// Port group.
        ports: FixedPorts,
        /// First function.
        first: String,
        /// Second function.
        second: String,
    },
}

fn prefix(origin: &str) -> String {
    if origin == "command line" {
        String::new()
    } else {
        format!("{origin}: ")
    }
}

/// A reserved instance could not be started.
#[derive(Debug, thiserror::Error)]
#[error("function '{name}': reserved instance: {source}")]
pub struct StartError {
    /// Function name.
    pub name: String,
    /// Why.
    pub source: InitError,
}

/// One served function.
pub struct Served {
    function: Arc<Function>,
    pool: Arc<Pool>,
    fixed_ports: Vec<FixedPorts>,
    shown: String,
}

impl Served {
    /// The function.
    pub fn function(&self) -> &Arc<Function> {
        &self.function
    }

    /// Its pool.
    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    /// `func_name`.
    pub fn name(&self) -> &str {
        &self.function.package().config.func_name
    }

    /// The package as given (path and where it was listed).
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Whether it runs one instance at a time for lack of network isolation.
    pub fn exclusive(&self) -> bool {
        !self.fixed_ports.is_empty()
    }

    /// The listing of `GET /functions`.
    pub fn listing(&self) -> FunctionListing {
        let c = &self.function.package().config;
        let p = self.pool.config();
        FunctionListing {
            name: c.func_name.clone(),
            package: c.package.clone(),
            urn: c.urn(),
            runtime: c.runtime_name.clone(),
            dialect: c.dialect.to_string(),
            handler: c.handler.clone(),
            memory_size: c.memory_size,
            timeout: c.timeout,
            concurrent_num: c.concurrent_num,
            max_instances: p.max_instances,
            reserved_instances: p.reserved_instances,
            idle_timeout: c.idle_timeout,
            exclusive: self.exclusive(),
            instances: self.pool.instances().len(),
        }
    }

    /// Start-up lines: what is served and how.
    pub fn describe(&self) -> Vec<String> {
        let c = &self.function.package().config;
        let p = self.pool.config();
        let mut lines = vec![format!(
            "function {}: {}, runtime {}, memory {} MB, timeout {} s, max_instances {}, concurrent_num {}, reserved {}, idle_timeout {} s",
            c.func_name,
            c.urn(),
            c.runtime_name,
            c.memory_size,
            c.timeout,
            p.max_instances,
            c.concurrent_num,
            p.reserved_instances,
            c.idle_timeout
        )];
        if c.network == fnbox_package::Network::Host {
            lines.push(format!(
                "  network: host (`network: host` in {}'s config: its instances share the host's network)",
                c.func_name
            ));
        }
        if self.exclusive() {
            let ports: Vec<&str> = self.fixed_ports.iter().map(|p| p.describe()).collect();
            lines.push(format!(
                "  note: {} needs fixed {}: it runs ONE instance at a time (max_instances {} → 1) on the host network",
                c.func_name,
                ports.join(" and "),
                c.max_instances
            ));
        }
        if let Some(mode) = self.function.restore_mode() {
            lines.push(format!("  restore: {}", mode.describe()));
        }
        for note in &self.function.package().notes {
            lines.push(format!("  note: {note}"));
        }
        if let Some(note) = self.function.launch_note() {
            lines.push(format!("  note: {note}"));
        }
        lines
    }
}

/// Every served function.
pub struct Registry {
    functions: Vec<Arc<Served>>,
    by_name: HashMap<String, usize>,
}

/// The dialect that runs a package's instances (its `dialect:` in function.yaml): the one
/// place, above both dialects, where the dialect object is chosen and a new one is plugged in.
/// `fnbox run` uses it too.
pub fn dialect_for(package: &Package) -> Arc<dyn Dialect> {
    match package.config.dialect {
        fnbox_package::Dialect::FunctionGraph => Arc::new(fnbox_fg::FunctionGraph),
        fnbox_package::Dialect::Lambda => Arc::new(fnbox_lambda::Lambda),
    }
}

/// The fixed ports a package's instances bind on the host.
fn fixed_ports(package: &Package) -> Vec<FixedPorts> {
    let mut out = Vec::new();
    if package.config.runtime == Runtime::Http {
        out.push(FixedPorts::Http);
    }
    if !package.extensions.is_empty() {
        out.push(match package.config.dialect {
            fnbox_package::Dialect::FunctionGraph => FixedPorts::Extensions,
            fnbox_package::Dialect::Lambda => FixedPorts::LambdaExtensions,
        });
    }
    out
}

impl Registry {
    /// Loads every package, applies overrides and checks the set; starts nothing.
    pub fn load(engine: &Arc<Engine>, specs: &[FunctionSpec]) -> Result<Self, RegistryError> {
        if specs.is_empty() {
            return Err(RegistryError::Empty);
        }
        let mut functions: Vec<Arc<Served>> = Vec::with_capacity(specs.len());
        let mut by_name = HashMap::new();
        let mut port_owner: HashMap<&'static str, String> = HashMap::new();
        for spec in specs {
            let mut package =
                fnbox_package::load_with(&spec.path, &spec.flags).map_err(|source| {
                    RegistryError::Package {
                        origin: spec.origin.clone(),
                        source,
                    }
                })?;
            spec.overrides
                .apply(&mut package.config)
                .map_err(|message| RegistryError::Override {
                    origin: spec.origin.clone(),
                    name: package.config.func_name.clone(),
                    message,
                })?;
            let name = package.config.func_name.clone();
            let shown = spec.to_string();
            if let Some(&i) = by_name.get(&name) {
                let first: &Arc<Served> = &functions[i];
                return Err(RegistryError::Duplicate {
                    name,
                    first: first.shown.clone(),
                    second: shown,
                });
            }
            let dialect = dialect_for(&package);
            let package = Arc::new(package);
            let function = Function::new(engine.clone(), package, dialect).map_err(|source| {
                RegistryError::Launch {
                    name: name.clone(),
                    source,
                }
            })?;
            let function = Arc::new(function);
            // With a network namespace per instance the fixed ports never collide.
            let ports = if function.isolated() {
                Vec::new()
            } else {
                fixed_ports(function.package())
            };
            for p in &ports {
                let key = p.describe();
                if let Some(first) = port_owner.get(key) {
                    return Err(RegistryError::PortConflict {
                        ports: *p,
                        first: first.clone(),
                        second: name,
                    });
                }
                port_owner.insert(key, name.clone());
            }
            let pool = Pool::new(
                function.clone(),
                PoolConfig::from_function(&function, !ports.is_empty()),
            );
            by_name.insert(name, functions.len());
            functions.push(Arc::new(Served {
                function,
                pool,
                fixed_ports: ports,
                shown,
            }));
        }
        Ok(Self { functions, by_name })
    }

    /// Starts every pool (reserved instances, reclaimers), all at once; the first failure is
    /// returned after every start has finished (call [`Registry::shutdown`] then).
    pub async fn start(&self) -> Result<(), StartError> {
        let results = futures::future::join_all(self.functions.iter().map(|s| async move {
            s.pool.start().await.map_err(|source| StartError {
                name: s.name().to_string(),
                source,
            })
        }))
        .await;
        results.into_iter().collect()
    }

    /// Shuts every pool down at once: no new invocations, in-flight ones finish or time out,
    /// instances stop.
    pub async fn shutdown(&self) {
        futures::future::join_all(self.functions.iter().map(|s| s.pool.shutdown())).await;
    }

    /// The functions, in the order given.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Served>> {
        self.functions.iter()
    }

    /// A function by name.
    pub fn get(&self, name: &str) -> Option<&Arc<Served>> {
        self.by_name.get(name).map(|&i| &self.functions[i])
    }

    /// The longest `timeout` of any function (bounds how long in-flight invocations can last).
    pub fn max_timeout(&self) -> std::time::Duration {
        self.functions
            .iter()
            .map(|s| s.function.package().config.timeout_duration())
            .max()
            .unwrap_or_default()
    }

    /// The names served, comma-separated (for messages).
    pub fn names(&self) -> String {
        self.functions
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Resolves a FunctionGraph reference: FSS.1051 when no such function (or another package),
    /// FSS.1052 / FSS.1053 for a version other than `latest` / an alias.
    pub fn resolve_fg(&self, given: &str, r: &FgRef) -> Result<Arc<Served>, FrontError> {
        let served = self
            .get(&r.name)
            .filter(|s| {
                r.package
                    .as_deref()
                    .is_none_or(|p| p == s.function.package().config.package)
            })
            .ok_or_else(|| FrontError::UnknownFunction {
                given: given.to_string(),
                serving: self.names(),
            })?;
        match &r.version {
            Version::Latest => Ok(served.clone()),
            Version::Other(v) => Err(FrontError::UnknownVersion {
                given: given.to_string(),
                version: v.clone(),
            }),
            Version::Alias(a) => Err(FrontError::UnknownAlias {
                given: given.to_string(),
                alias: a.clone(),
            }),
        }
    }

    /// Resolves a Lambda reference. The name `function` (what tools written for Lambda's
    /// emulator send) means the only function when exactly one is served and none is called
    /// `function`. Any qualifier but `$LATEST` is not found.
    pub fn resolve_lambda(&self, r: &LambdaRef) -> Result<Arc<Served>, FrontError> {
        let served = self.get(&r.name).or_else(|| {
            (r.name == lambda_values::EMULATOR_NAME && self.functions.len() == 1)
                .then(|| &self.functions[0])
        });
        let arn = match &r.qualifier {
            Some(q) => format!("{}:{q}", lambda_arn(&r.name)),
            None => lambda_arn(&r.name),
        };
        match served {
            Some(s) if r.is_latest() => Ok(s.clone()),
            Some(_) => Err(FrontError::UnknownVersion {
                given: arn,
                version: r.qualifier.clone().unwrap_or_default(),
            }),
            None => Err(FrontError::UnknownFunction {
                given: arn,
                serving: self.names(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(config: &str, extension: &str) -> (tempfile::TempDir, Package) {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("function.yaml"), config).unwrap();
        let exec = |p: &std::path::Path| {
            std::fs::write(p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        exec(&dir.path().join("bootstrap"));
        let ext = dir.path().join(extension);
        std::fs::create_dir_all(ext.parent().unwrap()).unwrap();
        exec(&ext);
        let pkg = fnbox_package::load(dir.path()).unwrap();
        (dir, pkg)
    }

    #[test]
    fn each_dialect_names_its_own_extension_ports() {
        let (_d, fg) = package("func_name: f\n", "extension/extensionA.sh");
        assert_eq!(fixed_ports(&fg), [FixedPorts::Extensions]);
        assert!(FixedPorts::Extensions.describe().contains("8081-8090"));
        let (_d, lambda) = package("func_name: l\ndialect: lambda\n", "extensions/ext");
        assert_eq!(fixed_ports(&lambda), [FixedPorts::LambdaExtensions]);
        assert!(!FixedPorts::LambdaExtensions.describe().contains("8081"));
    }
}
