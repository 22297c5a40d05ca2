//! Wiring of `fnbox-otel` into `fnbox serve` and `fnbox run`: the `--otlp-endpoint` flag, the
//! function facts the exporters need, and the output echo shared with stderr.

use std::sync::Arc;

use fnbox_engine::LineEcho;
use fnbox_otel::{FunctionInfo, OtlpConfig, OtlpFile};
use fnbox_package::Package;

use crate::MainError;

/// `--otlp-endpoint` (also the `otlp:` key of a serve config and the `OTEL_*` variables).
#[derive(clap::Args, Debug, Default)]
pub struct OtlpArgs {
    /// Export every invocation as an OpenTelemetry trace, FaaS metrics and logs over OTLP/HTTP
    /// (protobuf) to this base URL, e.g. http://127.0.0.1:4318 (`/v1/traces`, `/v1/metrics`,
    /// `/v1/logs` are appended). Default: `otlp.endpoint` of --config, else
    /// OTEL_EXPORTER_OTLP_ENDPOINT; off when none is set.
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
}

impl OtlpArgs {
    /// Checked settings (`None`: export off); errors name the flag, key or variable.
    pub fn resolve(&self, file: Option<&OtlpFile>) -> Result<Option<OtlpConfig>, MainError> {
        OtlpConfig::resolve(
            self.otlp_endpoint.as_deref(),
            "--otlp-endpoint",
            file,
            |k| std::env::var(k).ok(),
        )
        .map_err(MainError::Otlp)
    }
}

/// What the exporters know about a package.
pub fn function_info(package: &Package, trigger: &'static str) -> FunctionInfo {
    let c = &package.config;
    FunctionInfo {
        name: c.func_name.clone(),
        version: "latest".into(),
        memory_mb: c.memory_size,
        cloud_provider: match c.dialect {
            fnbox_package::Dialect::Lambda => "aws",
            _ => "huawei_cloud",
        },
        trigger,
    }
}

/// Both echoes, one after the other.
pub fn both(a: LineEcho, b: LineEcho) -> LineEcho {
    Arc::new(move |pod, lines| {
        a(pod, lines);
        b(pod, lines);
    })
}

/// The exporters of `fnbox serve` (trigger `http`), over every served function; prints where
/// OTLP goes when it is on.
pub fn start_serve(
    engine: &fnbox_engine::Engine,
    registry: &fnbox_serve::Registry,
    otlp: &Option<OtlpConfig>,
    lines: fnbox_otel::OutputLines,
) -> Result<Arc<fnbox_otel::Exporters>, MainError> {
    let functions = registry
        .iter()
        .map(|s| function_info(s.function().package(), "http"))
        .collect();
    let pools: Vec<(String, Arc<fnbox_engine::Pool>)> = registry
        .iter()
        .map(|s| (s.name().to_string(), s.pool().clone()))
        .collect();
    let instances: fnbox_otel::InstancesFn = Arc::new(move || {
        pools
            .iter()
            .map(|(name, pool)| (name.clone(), pool.instances()))
            .collect()
    });
    let exporters = fnbox_otel::Exporters::start(
        engine,
        fnbox_otel::Options {
            otlp: otlp.clone(),
            functions,
            instances: Some(instances),
            output: Some(lines),
        },
    )
    .map_err(MainError::Otlp)?;
    if let Some(c) = otlp {
        println!("{}", describe(c));
    }
    Ok(Arc::new(exporters))
}

/// The start-up line saying where OTLP goes.
pub fn describe(c: &OtlpConfig) -> String {
    format!(
        "otlp: exporting traces, metrics and logs to {}",
        c.endpoint
            .as_deref()
            .unwrap_or("the OTEL_EXPORTER_OTLP_*_ENDPOINT variables")
    )
}

/// The exporters of `fnbox run` (trigger `other`), only when OTLP is configured.
pub fn start_run(
    engine: &fnbox_engine::Engine,
    package: &Package,
    otlp: Option<OtlpConfig>,
    lines: fnbox_otel::OutputLines,
) -> Result<Option<fnbox_otel::Exporters>, MainError> {
    let Some(config) = otlp else {
        return Ok(None);
    };
    eprintln!("{}", describe(&config));
    fnbox_otel::Exporters::start(
        engine,
        fnbox_otel::Options {
            otlp: Some(config),
            functions: vec![function_info(package, "other")],
            instances: None,
            output: Some(lines),
        },
    )
    .map(Some)
    .map_err(MainError::Otlp)
}
