//! Per-function asynchronous settings and the worker's own settings.
//!
//! # Defaults and where they come from
//! | setting | FunctionGraph preset | Lambda preset | source |
//! |---|---|---|---|
//! | attempts | 1 (no retry) | 3 (2 retries) | FG UMN 0390_03 "by default FunctionGraph does not retry if a function fails due to a code error"; Lambda DG "retries twice" |
//! | max event age | 6 h | 6 h | Lambda DG (21,600 s); FG: range 1–86,400 s, default unspecified |
//! | retry backoff | 60 s, ×2, ≤ 5 min | same | Lambda DG "one minute before the first retry, two minutes before the second"; FG unspecified |
//! | throttle backoff | 1 s, ×2, ≤ 5 min | same | Lambda DG (throttles retried with backoff from 1 s to 5 min until max age) |
//! | concurrency | 10 | 10 | `max_instances` 10 × `concurrent_num` 1 (CONTRACT §1); serve passes the real product |
//!
//! Throttled attempts never consume the attempt budget; they are retried until the event is
//! older than its maximum age.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

use crate::error::SettingsError;
use crate::notification::NotificationFormat;

/// Exponential backoff: `initial × multiplier^(n-1)`, capped at `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the first retry.
    pub initial: Duration,
    /// Growth per retry (1 = constant).
    pub multiplier: u32,
    /// Largest delay.
    pub max: Duration,
}

impl Backoff {
    /// A backoff starting at `initial`, doubling, capped at `max`.
    pub const fn doubling(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            multiplier: 2,
            max,
        }
    }

    /// The delay before retry number `n` (1-based; 0 is treated as 1).
    pub fn delay(&self, n: u32) -> Duration {
        let exp = n.saturating_sub(1).min(32);
        let factor = (self.multiplier.max(1) as u64).saturating_pow(exp);
        let ms = (self.initial.as_millis() as u64).saturating_mul(factor);
        Duration::from_millis(ms).min(self.max)
    }
}

/// Where notifications go. Each is an `http://` URL that receives a POST.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Destinations {
    /// After a successful invocation.
    pub on_success: Option<String>,
    /// After an invocation failed for good (retries used up, too old, unknown function).
    pub on_failure: Option<String>,
}

impl Destinations {
    /// Checks both URLs.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if let Some(u) = &self.on_success {
            crate::delivery::parse_destination(u).map_err(|reason| SettingsError::Destination {
                field: "on_success",
                reason,
            })?;
        }
        if let Some(u) = &self.on_failure {
            crate::delivery::parse_destination(u).map_err(|reason| SettingsError::Destination {
                field: "on_failure",
                reason,
            })?;
        }
        Ok(())
    }
}

/// How one function's asynchronous invocations are run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionSettings {
    /// Attempts that may fail before the invocation fails for good (≥ 1; retries + 1).
    /// Attempts interrupted by a stop of fnbox are counted but do not use this budget.
    pub max_attempts: u32,
    /// Interrupted attempts after which the invocation fails for good (≥ 1), so an event
    /// that brings fnbox down cannot loop forever.
    pub max_interrupted_attempts: u32,
    /// An invocation older than this is not attempted again.
    pub max_event_age: Duration,
    /// Delay before retrying a failed attempt (function error, fault, interruption).
    pub retry_backoff: Backoff,
    /// Delay before retrying a throttled attempt (no free instance).
    pub throttle_backoff: Backoff,
    /// Most invocations of this function in flight at once (`max_instances × concurrent_num`).
    pub max_concurrency: u32,
    /// Notification targets.
    pub destinations: Destinations,
    /// Shape of the notifications.
    pub notification: NotificationFormat,
    /// URN (FunctionGraph) or ARN (Lambda) put in notifications; the function key when unset.
    pub function_urn: Option<String>,
}

/// Interrupted attempts tolerated by default.
pub const DEFAULT_MAX_INTERRUPTED_ATTEMPTS: u32 = 3;

/// Lambda's and fnbox's default maximum event age: 6 hours.
pub const DEFAULT_MAX_EVENT_AGE: Duration = Duration::from_secs(6 * 3600);

impl FunctionSettings {
    /// FunctionGraph's defaults: no retry on errors.
    pub fn functiongraph() -> Self {
        Self {
            max_attempts: 1,
            max_interrupted_attempts: DEFAULT_MAX_INTERRUPTED_ATTEMPTS,
            max_event_age: DEFAULT_MAX_EVENT_AGE,
            retry_backoff: Backoff::doubling(Duration::from_secs(60), Duration::from_secs(300)),
            throttle_backoff: Backoff::doubling(Duration::from_secs(1), Duration::from_secs(300)),
            max_concurrency: 10,
            destinations: Destinations::default(),
            notification: NotificationFormat::FunctionGraph,
            function_urn: None,
        }
    }

    /// Lambda's defaults: two retries.
    pub fn lambda() -> Self {
        Self {
            max_attempts: 3,
            notification: NotificationFormat::Lambda,
            ..Self::functiongraph()
        }
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.max_attempts == 0 {
            return Err(SettingsError::OutOfRange {
                field: "max_attempts",
                value: "0".into(),
                range: "1..",
            });
        }
        if self.max_interrupted_attempts == 0 {
            return Err(SettingsError::OutOfRange {
                field: "max_interrupted_attempts",
                value: "0".into(),
                range: "1..",
            });
        }
        if self.max_concurrency == 0 {
            return Err(SettingsError::OutOfRange {
                field: "max_concurrency",
                value: "0".into(),
                range: "1..",
            });
        }
        self.destinations.validate()
    }
}

impl Default for FunctionSettings {
    fn default() -> Self {
        Self::functiongraph()
    }
}

/// FunctionGraph's async invocation configuration (`PUT …/async-invoke-config`, UMN
/// "Asynchronous Notification Policy"), with fnbox's `HTTP` destination: `{"destination":
/// "HTTP", "param": "{\"url\":\"http://127.0.0.1:9000/done\"}"}` (`param` may also be an
/// object). Meant for `function.yaml` and for the serve crate's config API.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AsyncInvokeConfig {
    /// Retries after a failed attempt, 0..=8.
    #[serde(default)]
    pub max_async_retry_attempts: Option<u32>,
    /// Maximum event age in seconds, 1..=86400.
    #[serde(default)]
    pub max_async_event_age_in_seconds: Option<u64>,
    /// Targets.
    #[serde(default)]
    pub destination_config: Option<DestinationConfig>,
    /// Accepted for compatibility; fnbox always keeps the status log.
    #[serde(default)]
    pub enable_async_status_log: Option<bool>,
}

/// `destination_config` of [`AsyncInvokeConfig`].
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DestinationConfig {
    /// On success.
    #[serde(default)]
    pub on_success: Option<DestinationTarget>,
    /// On failure.
    #[serde(default)]
    pub on_failure: Option<DestinationTarget>,
}

/// One target: `destination` is the service (`HTTP` only in fnbox), `param` its parameters.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DestinationTarget {
    /// Target service.
    pub destination: String,
    /// JSON parameters (a string holding JSON, as FunctionGraph's API has it, or an object).
    pub param: serde_json::Value,
}

impl DestinationTarget {
    fn url(&self, field: &'static str) -> Result<String, SettingsError> {
        if !self.destination.eq_ignore_ascii_case("HTTP") {
            return Err(SettingsError::Destination {
                field,
                reason: format!(
                    "destination {:?} is not emulated; fnbox supports \"HTTP\" with param {{\"url\":\"http://…\"}}",
                    self.destination
                ),
            });
        }
        let param = match &self.param {
            serde_json::Value::String(s) => {
                serde_json::from_str(s).map_err(|e| SettingsError::Destination {
                    field,
                    reason: format!("param is not JSON: {e}"),
                })?
            }
            v => v.clone(),
        };
        let url = param.get("url").and_then(|u| u.as_str()).ok_or_else(|| {
            SettingsError::Destination {
                field,
                reason: "param has no \"url\" string".into(),
            }
        })?;
        crate::delivery::parse_destination(url)
            .map_err(|reason| SettingsError::Destination { field, reason })?;
        Ok(url.to_string())
    }
}

impl AsyncInvokeConfig {
    /// Applies the configuration over `base` (a preset), checking FunctionGraph's ranges.
    pub fn apply(&self, mut base: FunctionSettings) -> Result<FunctionSettings, SettingsError> {
        if let Some(r) = self.max_async_retry_attempts {
            if r > 8 {
                return Err(SettingsError::OutOfRange {
                    field: "max_async_retry_attempts",
                    value: r.to_string(),
                    range: "0..=8",
                });
            }
            base.max_attempts = r + 1;
        }
        if let Some(age) = self.max_async_event_age_in_seconds {
            if !(1..=86_400).contains(&age) {
                return Err(SettingsError::OutOfRange {
                    field: "max_async_event_age_in_seconds",
                    value: age.to_string(),
                    range: "1..=86400",
                });
            }
            base.max_event_age = Duration::from_secs(age);
        }
        if let Some(dc) = &self.destination_config {
            base.destinations = Destinations {
                on_success: dc
                    .on_success
                    .as_ref()
                    .map(|t| t.url("destination_config.on_success"))
                    .transpose()?,
                on_failure: dc
                    .on_failure
                    .as_ref()
                    .map(|t| t.url("destination_config.on_failure"))
                    .transpose()?,
            };
        }
        Ok(base)
    }
}

/// How destination notifications are POSTed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliverySettings {
    /// POSTs per notification before it is recorded as failed.
    pub max_attempts: u32,
    /// Delay between POSTs.
    pub backoff: Backoff,
    /// Connect + answer time limit per POST.
    pub timeout: Duration,
    /// Notifications in flight at once (all functions).
    pub concurrency: usize,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            backoff: Backoff::doubling(Duration::from_secs(1), Duration::from_secs(60)),
            timeout: Duration::from_secs(10),
            concurrency: 4,
        }
    }
}

/// Everything the worker needs besides the store and the invoker.
#[derive(Clone, Debug)]
pub struct WorkerSettings {
    /// Settings of functions not in `functions`.
    pub default: FunctionSettings,
    /// Per-function settings, by the function key used at enqueue.
    pub functions: HashMap<String, FunctionSettings>,
    /// Longest sleep between two looks at the queue (a safety net; enqueues and finished
    /// attempts wake the worker at once).
    pub poll_interval: Duration,
    /// Destination delivery.
    pub delivery: DeliverySettings,
    /// Finished invocations (with their notifications delivered or given up) older than this
    /// are deleted; `None` keeps them forever.
    pub retention: Option<Duration>,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            default: FunctionSettings::default(),
            functions: HashMap::new(),
            poll_interval: Duration::from_secs(1),
            delivery: DeliverySettings::default(),
            retention: Some(Duration::from_secs(7 * 24 * 3600)),
        }
    }
}

impl WorkerSettings {
    /// The settings of `function`.
    pub fn for_function(&self, function: &str) -> &FunctionSettings {
        self.functions.get(function).unwrap_or(&self.default)
    }

    /// Checks every function's settings.
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.default.validate()?;
        for s in self.functions.values() {
            s.validate()?;
        }
        if self.delivery.max_attempts == 0 {
            return Err(SettingsError::OutOfRange {
                field: "delivery.max_attempts",
                value: "0".into(),
                range: "1..",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Backoff::doubling(Duration::from_secs(60), Duration::from_secs(300));
        assert_eq!(b.delay(1), Duration::from_secs(60));
        assert_eq!(b.delay(2), Duration::from_secs(120));
        assert_eq!(b.delay(3), Duration::from_secs(240));
        assert_eq!(b.delay(4), Duration::from_secs(300));
        assert_eq!(b.delay(400), Duration::from_secs(300));
        assert_eq!(b.delay(0), Duration::from_secs(60));
    }

    #[test]
    fn presets_follow_the_platforms() {
        assert_eq!(FunctionSettings::functiongraph().max_attempts, 1);
        assert_eq!(FunctionSettings::lambda().max_attempts, 3);
        assert_eq!(
            FunctionSettings::lambda().notification,
            NotificationFormat::Lambda
        );
    }

    #[test]
    fn fg_config_applies_with_string_or_object_param() {
        let cfg: AsyncInvokeConfig = serde_json::from_value(serde_json::json!({
            "max_async_retry_attempts": 2,
            "max_async_event_age_in_seconds": 3600,
            "destination_config": {
                "on_success": {"destination": "HTTP", "param": "{\"url\":\"http://127.0.0.1:9/ok\"}"},
                "on_failure": {"destination": "HTTP", "param": {"url": "http://127.0.0.1:9/ko"}}
            }
        }))
        .unwrap();
        let s = cfg.apply(FunctionSettings::functiongraph()).unwrap();
        assert_eq!(s.max_attempts, 3);
        assert_eq!(s.max_event_age, Duration::from_secs(3600));
        assert_eq!(
            s.destinations.on_success.as_deref(),
            Some("http://127.0.0.1:9/ok")
        );
        assert_eq!(
            s.destinations.on_failure.as_deref(),
            Some("http://127.0.0.1:9/ko")
        );
    }

    #[test]
    fn fg_config_rejects_out_of_range_and_foreign_targets() {
        let bad = AsyncInvokeConfig {
            max_async_retry_attempts: Some(9),
            ..Default::default()
        };
        assert!(matches!(
            bad.apply(FunctionSettings::default()),
            Err(SettingsError::OutOfRange {
                field: "max_async_retry_attempts",
                ..
            })
        ));
        let bad = AsyncInvokeConfig {
            max_async_event_age_in_seconds: Some(0),
            ..Default::default()
        };
        assert!(bad.apply(FunctionSettings::default()).is_err());
        let obs: AsyncInvokeConfig = serde_json::from_value(serde_json::json!({
            "destination_config": {"on_failure": {"destination": "OBS", "param": "{}"}}
        }))
        .unwrap();
        let err = obs.apply(FunctionSettings::default()).unwrap_err();
        assert!(err.to_string().contains("not emulated"), "{err}");
        let https: AsyncInvokeConfig = serde_json::from_value(serde_json::json!({
            "destination_config": {"on_failure": {"destination": "HTTP", "param": {"url": "https://x"}}}
        }))
        .unwrap();
        assert!(https.apply(FunctionSettings::default()).is_err());
    }
}
