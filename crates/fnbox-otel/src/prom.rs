//! `GET /metrics`: the same instruments in the Prometheus text format, with `prometheus-client`.
//!
//! Names are what an OpenTelemetry-to-Prometheus conversion gives the OTLP instruments (dots
//! become underscores, the unit and `_total` are appended): `faas.invocations` →
//! `faas_invocations_total`, `faas.invoke_duration` (s) → `faas_invoke_duration_seconds`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::{InstancesFn, DURATION_BUCKETS, MEMORY_BUCKETS};

type Labels = Vec<(String, String)>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS.iter().copied())
}

fn memory_histogram() -> Histogram {
    Histogram::new(MEMORY_BUCKETS.iter().copied())
}

/// The Prometheus instruments.
pub struct Prom {
    registry: Registry,
    pub(crate) invocations: Family<Labels, Counter>,
    pub(crate) errors: Family<Labels, Counter>,
    pub(crate) timeouts: Family<Labels, Counter>,
    pub(crate) coldstarts: Family<Labels, Counter>,
    pub(crate) refusals: Family<Labels, Counter>,
    pub(crate) invoke_duration: Histograms,
    pub(crate) init_duration: Histograms,
    pub(crate) mem_usage: Histograms,
    pub(crate) instances: Family<Labels, Gauge>,
    pub(crate) lost: Counter,
    pub(crate) export_failures: Family<Labels, Counter>,
    pub(crate) async_invocations: Family<Labels, Gauge>,
    /// Per-function handles, see [`Prom::with_function`].
    functions: Mutex<HashMap<Arc<str>, FunctionInstruments>>,
}

/// One function's per-invocation instruments, looked up once: a family lookup builds and
/// hashes a label set (with allocations), and the exporter task makes several per invocation.
/// A handle shares its value with the family's entry (prometheus-client's metrics are `Arc`s
/// inside), and entries are never removed, so a handle never goes stale.
pub(crate) struct FunctionInstruments {
    pub(crate) invocations: Counter,
    pub(crate) errors: Counter,
    pub(crate) timeouts: Counter,
    pub(crate) invoke_duration: Histogram,
    pub(crate) mem_usage: Histogram,
    states: Vec<(&'static str, Gauge)>,
    function: Arc<str>,
}

impl FunctionInstruments {
    /// The `fnbox_instances` gauge of `state`.
    pub(crate) fn state(
        &mut self,
        instances: &Family<Labels, Gauge>,
        state: &'static str,
    ) -> &Gauge {
        let i = match self.states.iter().position(|(s, _)| *s == state) {
            Some(i) => i,
            None => {
                let mut labels = crate::labels(&self.function);
                labels.push(("state".to_string(), state.to_string()));
                let gauge = instances.get_or_create(&labels).clone();
                self.states.push((state, gauge));
                self.states.len() - 1
            }
        };
        &self.states[i].1
    }
}

impl Prom {
    /// A registry with every instrument; `instances` feeds the per-subscriber telemetry
    /// counters at each scrape.
    pub fn new(instances: Option<InstancesFn>) -> Self {
        let mut registry = Registry::default();
        let p = Self {
            invocations: Family::default(),
            errors: Family::default(),
            timeouts: Family::default(),
            coldstarts: Family::default(),
            refusals: Family::default(),
            invoke_duration: Family::new_with_constructor(duration_histogram),
            init_duration: Family::new_with_constructor(duration_histogram),
            mem_usage: Family::new_with_constructor(memory_histogram),
            instances: Family::default(),
            lost: Counter::default(),
            export_failures: Family::default(),
            async_invocations: Family::default(),
            functions: Mutex::default(),
            registry: Registry::default(),
        };
        registry.register(
            "faas_invocations",
            "Successful invocations",
            p.invocations.clone(),
        );
        registry.register(
            "faas_errors",
            "Invocations that ended in an error or a failure",
            p.errors.clone(),
        );
        registry.register(
            "faas_timeouts",
            "Invocations that timed out",
            p.timeouts.clone(),
        );
        registry.register(
            "faas_coldstarts",
            "Init phases (instances started)",
            p.coldstarts.clone(),
        );
        registry.register_with_unit(
            "faas_invoke_duration",
            "Invocation duration (platform.report durationMs)",
            Unit::Seconds,
            p.invoke_duration.clone(),
        );
        registry.register_with_unit(
            "faas_init_duration",
            "Init phase duration (platform.initReport durationMs)",
            Unit::Seconds,
            p.init_duration.clone(),
        );
        registry.register_with_unit(
            "faas_mem_usage",
            "Peak memory of the instance during an invocation",
            Unit::Bytes,
            p.mem_usage.clone(),
        );
        registry.register(
            "fnbox_instances",
            "Instances by lifecycle state",
            p.instances.clone(),
        );
        registry.register(
            "fnbox_pool_refusals",
            "Invocations refused because every instance was busy (FSS.0429 / TooManyRequestsException)",
            p.refusals.clone(),
        );
        registry.register(
            "fnbox_observations_lost",
            "Engine observations the exporters fell too far behind to see",
            p.lost.clone(),
        );
        registry.register(
            "fnbox_otlp_export_failures",
            "OTLP records given up after a failed export, by signal",
            p.export_failures.clone(),
        );
        registry.register(
            "fnbox_async_invocations",
            "Asynchronous invocations in the durable queue by state (queued, running), node-wide, sampled every few seconds",
            p.async_invocations.clone(),
        );
        if let Some(f) = instances {
            registry.register_collector(Box::new(Delivery(f)));
        }
        Self { registry, ..p }
    }

    /// Runs `f` with `function`'s instruments (created on first use).
    pub(crate) fn with_function<R>(
        &self,
        function: &Arc<str>,
        f: impl FnOnce(&mut FunctionInstruments, &Family<Labels, Gauge>) -> R,
    ) -> R {
        let mut functions = self.functions.lock().unwrap_or_else(|e| e.into_inner());
        let m = functions.entry(function.clone()).or_insert_with(|| {
            let labels = crate::labels(function);
            FunctionInstruments {
                invocations: self.invocations.get_or_create(&labels).clone(),
                errors: self.errors.get_or_create(&labels).clone(),
                timeouts: self.timeouts.get_or_create(&labels).clone(),
                invoke_duration: self.invoke_duration.get_or_create(&labels).clone(),
                mem_usage: self.mem_usage.get_or_create(&labels).clone(),
                states: Vec::new(),
                function: function.clone(),
            }
        });
        f(m, &self.instances)
    }

    /// The text exposition (OpenMetrics flavour, which Prometheus scrapes as is).
    pub fn render(&self) -> String {
        let mut s = String::new();
        if prometheus_client::encoding::text::encode(&mut s, &self.registry).is_err() {
            let _ = writeln!(s, "# encoding failed");
        }
        s
    }
}

/// Per-subscriber telemetry delivery counters of the live instances, read at scrape time.
struct Delivery(InstancesFn);

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Delivery")
    }
}

impl prometheus_client::collector::Collector for Delivery {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshot = (self.0)();
        for (name, help, pick) in [
            (
                "fnbox_telemetry_delivered_records",
                "Telemetry records a subscriber acknowledged (live instances)",
                (|s: &fnbox_engine::SubscriberInfo| s.delivered_records) as fn(&_) -> u64,
            ),
            (
                "fnbox_telemetry_dropped_records",
                "Telemetry records lost for a subscriber (live instances)",
                |s: &fnbox_engine::SubscriberInfo| s.dropped_records,
            ),
        ] {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (function, instances) in &snapshot {
                for i in instances {
                    for s in &i.telemetry {
                        let labels: Labels = vec![
                            ("faas_name".into(), function.clone()),
                            ("faas_instance".into(), i.pod_name.clone()),
                            ("subscriber".into(), s.uri.clone()),
                        ];
                        ConstCounter::new(pick(s)).encode(metric.encode_family(&labels)?)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Shared handle.
pub type SharedProm = Arc<Prom>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_handles_update_the_exposed_families() {
        let p = Prom::new(None);
        let f: Arc<str> = "f".into();
        for _ in 0..2 {
            p.with_function(&f, |m, _| m.invocations.inc());
        }
        p.with_function(&f, |m, instances| {
            m.state(instances, "idle").set(3);
            m.state(instances, "busy").set(1);
            m.state(instances, "idle").set(2);
            m.mem_usage.observe(1024.0);
        });
        let text = p.render();
        assert!(
            text.contains(r#"faas_invocations_total{faas_name="f"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"fnbox_instances{faas_name="f",state="idle"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"fnbox_instances{faas_name="f",state="busy"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"faas_mem_usage_bytes_count{faas_name="f"} 1"#),
            "{text}"
        );
    }
}
