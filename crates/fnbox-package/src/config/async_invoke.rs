//! `async_invoke_config` in function.yaml: FunctionGraph's asynchronous invocation settings
//! (`PUT …/async-invoke-config`), with its field names:
//!
//! ```yaml
//! async_invoke_config:
//!   max_async_retry_attempts: 2            # 0..=8 retries after a failed attempt
//!   max_async_event_age_in_seconds: 3600   # 1..=86400
//!   destination_config:
//!     on_success: {destination: HTTP, param: {url: "http://127.0.0.1:9000/ok"}}
//!     on_failure: {destination: HTTP, param: '{"url":"http://127.0.0.1:9000/ko"}'}
//! ```
//!
//! `param` is an object or, as FunctionGraph's API has it, a string holding JSON. fnbox delivers
//! to `HTTP` destinations only (plain `http://` URLs); OBS, SMN, DIS and function targets are
//! refused with a message saying so.

use serde::Serialize;
use serde_yaml_ng::Value;

use super::{describe, Fields};
use crate::PackageError;

const FIELD: &str = "async_invoke_config";

/// A function's asynchronous invocation settings (unset fields keep the platform's defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AsyncInvokeConfig {
    /// Retries after a failed attempt, 0..=8.
    pub max_async_retry_attempts: Option<u32>,
    /// Maximum event age in seconds, 1..=86400.
    pub max_async_event_age_in_seconds: Option<u64>,
    /// `destination_config.on_success`.
    pub on_success: Option<AsyncDestination>,
    /// `destination_config.on_failure`.
    pub on_failure: Option<AsyncDestination>,
}

/// One destination: fnbox supports `HTTP` with `param: {url: "http://…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AsyncDestination {
    /// `HTTP`.
    pub destination: String,
    /// The URL notifications are POSTed to.
    pub url: String,
}

impl Fields<'_> {
    pub(super) fn async_invoke_config(&self) -> Result<Option<AsyncInvokeConfig>, PackageError> {
        let mapping = match self.values.get(FIELD) {
            None => return Ok(None),
            Some(Value::Mapping(m)) => m,
            Some(other) => {
                return Err(self.error(
                    FIELD,
                    format!("expected a mapping, found {}", describe(other)),
                ))
            }
        };
        let mut out = AsyncInvokeConfig::default();
        for (key, value) in mapping {
            let key = match key {
                Value::String(k) => k.as_str(),
                other => {
                    return Err(self.error(
                        FIELD,
                        format!("field names must be strings, found {}", describe(other)),
                    ))
                }
            };
            if value.is_null() {
                continue;
            }
            match key {
                "max_async_retry_attempts" => {
                    out.max_async_retry_attempts = Some(self.async_int(key, value, 0, 8)? as u32)
                }
                "max_async_event_age_in_seconds" => {
                    out.max_async_event_age_in_seconds =
                        Some(self.async_int(key, value, 1, 86_400)?)
                }
                "destination_config" => {
                    let Value::Mapping(dc) = value else {
                        return Err(self.error(
                            FIELD,
                            format!(
                                "destination_config: expected a mapping with on_success and/or on_failure, found {}",
                                describe(value)
                            ),
                        ));
                    };
                    for (k, v) in dc {
                        let k = k.as_str().unwrap_or_default();
                        if v.is_null() {
                            continue;
                        }
                        let target = self.destination(k, v)?;
                        match k {
                            "on_success" => out.on_success = Some(target),
                            _ => out.on_failure = Some(target),
                        }
                    }
                }
                "enable_async_status_log" => {}
                other => {
                    return Err(self.error(
                        FIELD,
                        format!(
                            "unknown field '{other}'; allowed: max_async_retry_attempts, \
                             max_async_event_age_in_seconds, destination_config, enable_async_status_log"
                        ),
                    ))
                }
            }
        }
        Ok(Some(out))
    }

    fn async_int(&self, key: &str, value: &Value, lo: u64, hi: u64) -> Result<u64, PackageError> {
        match value.as_u64() {
            Some(v) if (lo..=hi).contains(&v) => Ok(v),
            Some(v) => Err(self.error(
                FIELD,
                format!("{key}: {v} is out of range; allowed: {lo} to {hi}"),
            )),
            None => Err(self.error(
                FIELD,
                format!(
                    "{key}: expected a whole number from {lo} to {hi}, found {}",
                    describe(value)
                ),
            )),
        }
    }

    fn destination(&self, key: &str, value: &Value) -> Result<AsyncDestination, PackageError> {
        let at = format!("destination_config.{key}");
        if key != "on_success" && key != "on_failure" {
            return Err(self.error(
                FIELD,
                format!(
                    "destination_config: unknown field '{key}'; allowed: on_success, on_failure"
                ),
            ));
        }
        let Value::Mapping(m) = value else {
            return Err(self.error(
                FIELD,
                format!(
                    "{at}: expected a mapping {{destination: HTTP, param: {{url: \"http://…\"}}}}, found {}",
                    describe(value)
                ),
            ));
        };
        let get = |name: &str| m.get(Value::String(name.to_owned()));
        for k in m.keys() {
            let k = k.as_str().unwrap_or_default();
            if k != "destination" && k != "param" {
                return Err(self.error(
                    FIELD,
                    format!("{at}: unknown field '{k}'; allowed: destination, param"),
                ));
            }
        }
        let destination = match get("destination") {
            Some(Value::String(d)) if d.eq_ignore_ascii_case("HTTP") => d.clone(),
            Some(Value::String(d)) => {
                return Err(self.error(
                    FIELD,
                    format!(
                        "{at}: destination '{d}' is not emulated; fnbox supports HTTP with param {{url: \"http://…\"}}"
                    ),
                ))
            }
            _ => {
                return Err(self.error(
                    FIELD,
                    format!("{at}: destination must be HTTP (with param {{url: \"http://…\"}})"),
                ))
            }
        };
        let url = match get("param") {
            Some(Value::Mapping(p)) => p
                .get(Value::String("url".to_owned()))
                .and_then(Value::as_str)
                .map(str::to_owned),
            Some(Value::String(s)) => match serde_json::from_str::<serde_json::Value>(s) {
                Ok(v) => v.get("url").and_then(|u| u.as_str()).map(str::to_owned),
                Err(e) => return Err(self.error(FIELD, format!("{at}: param is not JSON: {e}"))),
            },
            _ => None,
        };
        let Some(url) = url else {
            return Err(self.error(
                FIELD,
                format!("{at}: param needs a url string, e.g. param: {{url: \"http://127.0.0.1:9000/done\"}}"),
            ));
        };
        let rest = url.strip_prefix("http://").unwrap_or_default();
        if rest.is_empty() || rest.starts_with('/') {
            return Err(self.error(
                FIELD,
                format!(
                    "{at}: url '{url}' must be a plain http:// URL with a host (fnbox has no TLS)"
                ),
            ));
        }
        Ok(AsyncDestination { destination, url })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::parse_config;

    fn parse(text: &str) -> Result<Option<AsyncInvokeConfig>, String> {
        parse_config(text, Path::new("function.yaml"), "fn")
            .map(|c| c.async_invoke_config)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn absent_is_none_and_fields_parse() {
        assert_eq!(parse("").unwrap(), None);
        let c = parse(
            "async_invoke_config:\n  max_async_retry_attempts: 2\n  max_async_event_age_in_seconds: 3600\n  destination_config:\n    on_success: {destination: HTTP, param: {url: \"http://127.0.0.1:9/ok\"}}\n    on_failure: {destination: http, param: '{\"url\":\"http://h:1/ko\"}'}\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.max_async_retry_attempts, Some(2));
        assert_eq!(c.max_async_event_age_in_seconds, Some(3600));
        assert_eq!(c.on_success.unwrap().url, "http://127.0.0.1:9/ok");
        assert_eq!(c.on_failure.unwrap().url, "http://h:1/ko");
    }

    #[test]
    fn bad_values_are_named() {
        for (text, parts) in [
            ("async_invoke_config: 3", vec!["async_invoke_config", "mapping"]),
            ("async_invoke_config: {max_async_retry_attempts: 9}", vec!["max_async_retry_attempts", "0 to 8"]),
            ("async_invoke_config: {max_async_event_age_in_seconds: 0}", vec!["max_async_event_age_in_seconds", "1 to 86400"]),
            ("async_invoke_config: {max_async_retry_attempts: \"2\"}", vec!["whole number"]),
            ("async_invoke_config: {retries: 2}", vec!["unknown field 'retries'"]),
            ("async_invoke_config: {destination_config: {on_failure: {destination: OBS, param: {}}}}", vec!["destination_config.on_failure", "not emulated"]),
            ("async_invoke_config: {destination_config: {on_success: {destination: HTTP, param: {url: \"https://x\"}}}}", vec!["http://", "TLS"]),
            ("async_invoke_config: {destination_config: {on_success: {destination: HTTP, param: {}}}}", vec!["needs a url"]),
            ("async_invoke_config: {destination_config: {on_done: {destination: HTTP}}}", vec!["unknown field 'on_done'"]),
        ] {
            let e = parse(text).unwrap_err();
            for p in parts {
                assert!(e.contains(p), "{text}: {e} should mention {p}");
            }
        }
    }
}
