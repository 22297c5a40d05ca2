//! Where OTLP goes: `--otlp-endpoint`, the `otlp:` key of the serve config file, and the
//! standard `OTEL_*` variables, checked once at start-up.
//!
//! Precedence: the flag, then the config file, then `OTEL_EXPORTER_OTLP_ENDPOINT` (and the
//! per-signal `OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_ENDPOINT`, which the OTLP exporter reads
//! itself when neither flag nor file names an endpoint). Export is off when none is set.
//! `OTEL_EXPORTER_OTLP_HEADERS`, `_TIMEOUT` and `_COMPRESSION` are read by the exporter;
//! `OTEL_SERVICE_NAME` replaces `service.name` (default: the function's name).

use std::collections::HashMap;

use serde::Deserialize;

/// The only protocol built in: OTLP over HTTP with protobuf bodies.
pub const HTTP_PROTOBUF: &str = "http/protobuf";

/// Signal-specific endpoint variables the exporter honours on its own.
const SIGNAL_ENDPOINT_VARS: [&str; 3] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
];

/// The `otlp:` key of the serve config file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OtlpFile {
    /// Base URL of an OTLP/HTTP receiver, e.g. `http://127.0.0.1:4318`.
    pub endpoint: Option<String>,
    /// `http/protobuf` (the default and the only one built in).
    pub protocol: Option<String>,
    /// Extra HTTP headers on every export (e.g. an API key).
    #[serde(default)]
    pub headers: HashMap<String, String>,
}

/// Checked OTLP settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtlpConfig {
    /// Base URL (`/v1/traces`, `/v1/metrics`, `/v1/logs` are appended); `None` when only the
    /// per-signal variables name endpoints.
    pub endpoint: Option<String>,
    /// Extra headers (the exporter adds `OTEL_EXPORTER_OTLP_HEADERS`).
    pub headers: HashMap<String, String>,
    /// `OTEL_SERVICE_NAME`, replacing the function name as `service.name`.
    pub service_name: Option<String>,
}

impl OtlpConfig {
    /// Settings from the flag (`flag` names it in errors), the config file's `otlp:` key and the
    /// environment (`env` is a lookup, `std::env::var` in the binary). `Ok(None)`: export off.
    pub fn resolve(
        flag: Option<&str>,
        flag_name: &str,
        file: Option<&OtlpFile>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, String> {
        let env = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        if let Some(p) = file.and_then(|f| f.protocol.as_deref()) {
            check_protocol(p, "otlp.protocol")?;
        }
        for var in [
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
            "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
        ] {
            if let Some(p) = env(var) {
                check_protocol(&p, var)?;
            }
        }
        let endpoint = match (flag, file.and_then(|f| f.endpoint.as_deref())) {
            (Some(v), _) => Some(check_endpoint(v, flag_name)?),
            (None, Some(v)) => Some(check_endpoint(v, "otlp.endpoint")?),
            (None, None) => match env("OTEL_EXPORTER_OTLP_ENDPOINT") {
                Some(v) => Some(check_endpoint(&v, "OTEL_EXPORTER_OTLP_ENDPOINT")?),
                None => None,
            },
        };
        let mut signal_only = false;
        for var in SIGNAL_ENDPOINT_VARS {
            if let Some(v) = env(var) {
                check_endpoint(&v, var)?;
                signal_only = true;
            }
        }
        if endpoint.is_none() && !signal_only {
            return Ok(None);
        }
        let mut headers = HashMap::new();
        if let Some(f) = file {
            for (k, v) in &f.headers {
                if http::HeaderName::from_bytes(k.as_bytes()).is_err()
                    || http::HeaderValue::from_str(v).is_err()
                {
                    return Err(format!("otlp.headers: {k:?} is not a valid HTTP header"));
                }
                headers.insert(k.clone(), v.clone());
            }
        }
        Ok(Some(Self {
            endpoint,
            headers,
            service_name: env("OTEL_SERVICE_NAME"),
        }))
    }

    /// The full URL of one signal (`traces`, `metrics`, `logs`), when a base endpoint is set.
    pub fn signal_url(&self, signal: &str) -> Option<String> {
        self.endpoint
            .as_ref()
            .map(|e| format!("{}/v1/{signal}", e.trim_end_matches('/')))
    }
}

fn check_protocol(value: &str, name: &str) -> Result<(), String> {
    match value.trim() {
        HTTP_PROTOBUF => Ok(()),
        "grpc" | "http/json" => Err(format!(
            "{name}: protocol {value:?} is not built into fnbox; use {HTTP_PROTOBUF:?} (an OpenTelemetry Collector converts)"
        )),
        other => Err(format!(
            "{name}: unknown OTLP protocol {other:?} (expected {HTTP_PROTOBUF:?})"
        )),
    }
}

/// An `http://` or `https://` URL with a host.
fn check_endpoint(value: &str, name: &str) -> Result<String, String> {
    let v = value.trim();
    let uri: http::Uri = v
        .parse()
        .map_err(|e| format!("{name}: {v:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => {
            return Err(format!(
                "{name}: {v:?} must be an http:// or https:// URL (OTLP/HTTP, e.g. http://127.0.0.1:4318)"
            ))
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{name}: {v:?} has no host"));
    }
    Ok(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn nothing_set_means_off() {
        assert_eq!(
            OtlpConfig::resolve(None, "--otlp-endpoint", None, none),
            Ok(None)
        );
    }

    #[test]
    fn the_flag_wins_and_signal_urls_are_derived() {
        let file = OtlpFile {
            endpoint: Some("http://file:4318".into()),
            ..Default::default()
        };
        let c = OtlpConfig::resolve(
            Some("http://127.0.0.1:4318/"),
            "--otlp-endpoint",
            Some(&file),
            |k| (k == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "http://env:1".to_string()),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            c.signal_url("traces").as_deref(),
            Some("http://127.0.0.1:4318/v1/traces")
        );
        let c = OtlpConfig::resolve(None, "--otlp-endpoint", Some(&file), none)
            .unwrap()
            .unwrap();
        assert_eq!(c.endpoint.as_deref(), Some("http://file:4318"));
    }

    #[test]
    fn the_environment_is_honoured() {
        let env = |k: &str| match k {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://collector:4318".to_string()),
            "OTEL_SERVICE_NAME" => Some("svc".to_string()),
            _ => None,
        };
        let c = OtlpConfig::resolve(None, "--otlp-endpoint", None, env)
            .unwrap()
            .unwrap();
        assert_eq!(c.endpoint.as_deref(), Some("http://collector:4318"));
        assert_eq!(c.service_name.as_deref(), Some("svc"));
        let env = |k: &str| {
            (k == "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").then(|| "http://t:1/v1/traces".to_string())
        };
        let c = OtlpConfig::resolve(None, "--otlp-endpoint", None, env)
            .unwrap()
            .unwrap();
        assert_eq!(c.endpoint, None);
    }

    #[test]
    fn bad_values_name_the_flag_key_or_variable() {
        let e = OtlpConfig::resolve(Some("not a url"), "--otlp-endpoint", None, none).unwrap_err();
        assert!(e.starts_with("--otlp-endpoint: "), "{e}");
        let e = OtlpConfig::resolve(Some("ftp://x"), "--otlp-endpoint", None, none).unwrap_err();
        assert!(e.contains("http://"), "{e}");
        let file = OtlpFile {
            endpoint: Some("127.0.0.1:4318".into()),
            ..Default::default()
        };
        let e = OtlpConfig::resolve(None, "--otlp-endpoint", Some(&file), none).unwrap_err();
        assert!(e.starts_with("otlp.endpoint: "), "{e}");
        let file = OtlpFile {
            protocol: Some("carrier-pigeon".into()),
            ..Default::default()
        };
        let e = OtlpConfig::resolve(None, "--otlp-endpoint", Some(&file), none).unwrap_err();
        assert!(e.starts_with("otlp.protocol: unknown OTLP protocol"), "{e}");
        let env = |k: &str| (k == "OTEL_EXPORTER_OTLP_PROTOCOL").then(|| "grpc".to_string());
        let e = OtlpConfig::resolve(Some("http://x:1"), "--otlp-endpoint", None, env).unwrap_err();
        assert!(e.starts_with("OTEL_EXPORTER_OTLP_PROTOCOL: "), "{e}");
        let env = |k: &str| (k == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "nope".to_string());
        let e = OtlpConfig::resolve(None, "--otlp-endpoint", None, env).unwrap_err();
        assert!(e.starts_with("OTEL_EXPORTER_OTLP_ENDPOINT: "), "{e}");
    }
}
