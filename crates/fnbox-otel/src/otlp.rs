//! OTLP/HTTP export: one pipeline per function (its own resource: `service.name` is the
//! function), each with the SDK's batch span processor, batch log processor and periodic metric
//! reader. They run on the SDK's own threads with bounded queues: the engine's tasks only hand
//! finished records over, never wait for the network. A failed export is counted
//! (`fnbox.otlp.export_failures`) and warned about (the 1st, 10th, 100th, … time per signal).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use fnbox_engine::telemetry::Status;
use fnbox_engine::trace::TraceContext;
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter, MeterProvider as _};
use opentelemetry::trace::{SpanContext, SpanId, SpanKind, TraceFlags, TraceId, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogExporter, SdkLogger, SdkLoggerProvider};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, SpanData, SpanEvents, SpanExporter, SpanLinks, SpanProcessor,
};
use opentelemetry_sdk::Resource;

use crate::config::OtlpConfig;
use crate::model::{InitDone, InvocationDone, LogLine, Source};
use crate::{FunctionInfo, DURATION_BUCKETS, MEMORY_BUCKETS};

/// Export failures per signal, shared with the Prometheus side.
#[derive(Debug, Default)]
pub struct Failures {
    counts: [AtomicU64; 3],
    /// Records given up, per signal.
    pub records: [AtomicU64; 3],
}

const SIGNALS: [&str; 3] = ["traces", "metrics", "logs"];

impl Failures {
    fn record(&self, signal: usize, records: u64, error: &dyn std::fmt::Display) {
        self.records[signal].fetch_add(records, Ordering::Relaxed);
        let n = self.counts[signal].fetch_add(1, Ordering::Relaxed) + 1;
        // 1st, 10th, 100th, …: loud enough to notice, never a flood.
        if n == 1 || (n % 10 == 0 && (n as f64).log10().fract() == 0.0) {
            tracing::warn!(
                signal = SIGNALS[signal],
                failed_exports = n,
                records,
                error = %error,
                "OTLP export failed; the records are dropped (invocations are not affected)"
            );
        }
    }
}

#[derive(Debug)]
struct CountedSpans<E> {
    inner: E,
    failures: Arc<Failures>,
}

impl<E: SpanExporter> SpanExporter for CountedSpans<E> {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let n = batch.len() as u64;
        async move {
            let r = self.inner.export(batch).await;
            if let Err(e) = &r {
                self.failures.record(0, n, e);
            }
            r
        }
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }
    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource)
    }
}

#[derive(Debug)]
struct CountedLogs<E> {
    inner: E,
    failures: Arc<Failures>,
}

impl<E: LogExporter> LogExporter for CountedLogs<E> {
    fn export(
        &self,
        batch: LogBatch<'_>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let n = batch.iter().count() as u64;
        async move {
            let r = self.inner.export(batch).await;
            if let Err(e) = &r {
                self.failures.record(2, n, e);
            }
            r
        }
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }
    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource)
    }
}

struct CountedMetrics<E> {
    inner: E,
    failures: Arc<Failures>,
}

impl<E: PushMetricExporter> PushMetricExporter for CountedMetrics<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let r = self.inner.export(metrics).await;
        if let Err(e) = &r {
            self.failures.record(1, 1, e);
        }
        r
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }
    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

/// The instruments of one function.
struct Instruments {
    invocations: Counter<u64>,
    errors: Counter<u64>,
    timeouts: Counter<u64>,
    coldstarts: Counter<u64>,
    refusals: Counter<u64>,
    invoke_duration: Histogram<f64>,
    init_duration: Histogram<f64>,
    mem_usage: Histogram<f64>,
    instances: Gauge<i64>,
}

impl Instruments {
    fn new(meter: &Meter) -> Self {
        Self {
            invocations: meter
                .u64_counter("faas.invocations")
                .with_unit("{invocation}")
                .with_description("Successful invocations")
                .build(),
            errors: meter
                .u64_counter("faas.errors")
                .with_unit("{error}")
                .with_description("Invocations that ended in an error or a failure")
                .build(),
            timeouts: meter
                .u64_counter("faas.timeouts")
                .with_unit("{timeout}")
                .with_description("Invocations that timed out")
                .build(),
            coldstarts: meter
                .u64_counter("faas.coldstarts")
                .with_unit("{coldstart}")
                .with_description("Init phases (instances started)")
                .build(),
            refusals: meter
                .u64_counter("fnbox.pool.refusals")
                .with_unit("{invocation}")
                .with_description("Invocations refused because every instance was busy")
                .build(),
            invoke_duration: meter
                .f64_histogram("faas.invoke_duration")
                .with_unit("s")
                .with_description("Invocation duration")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
            init_duration: meter
                .f64_histogram("faas.init_duration")
                .with_unit("s")
                .with_description("Init phase duration")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
            mem_usage: meter
                .f64_histogram("faas.mem_usage")
                .with_unit("By")
                .with_description("Peak memory of the instance during an invocation")
                .with_boundaries(MEMORY_BUCKETS.to_vec())
                .build(),
            instances: meter
                .i64_gauge("fnbox.instances")
                .with_unit("{instance}")
                .with_description("Instances by lifecycle state")
                .build(),
        }
    }
}

/// One function's pipelines.
struct Pipeline {
    info: FunctionInfo,
    spans: BatchSpanProcessor,
    logs: SdkLoggerProvider,
    logger: SdkLogger,
    meters: SdkMeterProvider,
    instruments: Instruments,
}

/// Every function's OTLP pipelines.
pub struct Otlp {
    pipelines: HashMap<String, Pipeline>,
    /// Failures so far.
    pub failures: Arc<Failures>,
    scope: InstrumentationScope,
}

fn build_err(what: &str, e: impl std::fmt::Display) -> String {
    format!("OTLP {what} exporter: {e}")
}

impl Otlp {
    /// Builds the pipelines (spawns the SDK's threads); errors name the exporter.
    pub fn new(
        config: &OtlpConfig,
        functions: &[FunctionInfo],
        instances: Option<crate::InstancesFn>,
        depth: crate::AsyncDepth,
    ) -> Result<Self, String> {
        let failures = Arc::new(Failures::default());
        let mut pipelines = HashMap::new();
        for info in functions {
            let resource = resource(config, info);
            let mut b = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_headers(config.headers.clone());
            if let Some(url) = config.signal_url("traces") {
                b = b.with_endpoint(url);
            }
            let exporter = b.build().map_err(|e| build_err("trace", e))?;
            let mut spans = BatchSpanProcessor::builder(CountedSpans {
                inner: exporter,
                failures: failures.clone(),
            })
            .build();
            spans.set_resource(&resource);

            let mut b = opentelemetry_otlp::LogExporter::builder()
                .with_http()
                .with_headers(config.headers.clone());
            if let Some(url) = config.signal_url("logs") {
                b = b.with_endpoint(url);
            }
            let exporter = b.build().map_err(|e| build_err("log", e))?;
            let logs = SdkLoggerProvider::builder()
                .with_resource(resource.clone())
                .with_batch_exporter(CountedLogs {
                    inner: exporter,
                    failures: failures.clone(),
                })
                .build();
            let logger = logs.logger("fnbox");

            let mut b = opentelemetry_otlp::MetricExporter::builder()
                .with_http()
                .with_headers(config.headers.clone());
            if let Some(url) = config.signal_url("metrics") {
                b = b.with_endpoint(url);
            }
            let exporter = b.build().map_err(|e| build_err("metric", e))?;
            let reader = PeriodicReader::builder(CountedMetrics {
                inner: exporter,
                failures: failures.clone(),
            })
            .build();
            let meters = SdkMeterProvider::builder()
                .with_resource(resource)
                .with_reader(reader)
                .build();
            let meter = meters.meter("fnbox");
            let instruments = Instruments::new(&meter);
            if let Some(f) = instances.clone() {
                observe_delivery(&meter, &info.name, f);
            }
            observe_async_depth(&meter, &info.name, depth.clone());
            pipelines.insert(
                info.name.clone(),
                Pipeline {
                    info: info.clone(),
                    spans,
                    logs,
                    logger,
                    meters,
                    instruments,
                },
            );
        }
        Ok(Self {
            pipelines,
            failures,
            scope: InstrumentationScope::builder("fnbox")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
        })
    }

    /// Spans and metrics of a finished invocation.
    pub fn invocation(&self, inv: &InvocationDone) {
        let Some(p) = self.pipelines.get(&*inv.function) else {
            return;
        };
        let attrs = [KeyValue::new("faas.name", inv.function.to_string())];
        let i = &p.instruments;
        match inv.status {
            Status::Success => i.invocations.add(1, &attrs),
            Status::Timeout => i.timeouts.add(1, &attrs),
            Status::Error | Status::Failure => i.errors.add(1, &attrs),
        }
        i.invoke_duration
            .record(inv.metrics.duration_ms / 1000.0, &attrs);
        i.mem_usage
            .record(inv.metrics.memory_used_mb * 1024.0 * 1024.0, &attrs);
        if inv.trace.sampled {
            for span in invocation_spans(inv, &p.info, &self.scope) {
                p.spans.on_end(span);
            }
        }
    }

    /// An init phase began.
    pub fn init_started(&self, function: &str) {
        if let Some(p) = self.pipelines.get(function) {
            p.instruments
                .coldstarts
                .add(1, &[KeyValue::new("faas.name", function.to_string())]);
        }
    }

    /// An init phase ended; a failed one becomes a span of its own (no invocation carries it).
    pub fn init(&self, function: &str, pod: &str, init: &InitDone, duration_ms: f64) {
        let Some(p) = self.pipelines.get(function) else {
            return;
        };
        p.instruments.init_duration.record(
            duration_ms / 1000.0,
            &[KeyValue::new("faas.name", function.to_string())],
        );
        if init.status != Status::Success {
            let trace = TraceContext::for_invocation(
                &init.caused_by,
                init.start.timestamp().max(0) as u64,
                None,
            );
            let mut span = init_span(init, &trace, &p.info, pod, &self.scope);
            span.parent_span_id = SpanId::INVALID;
            p.spans.on_end(span);
        }
    }

    /// Instance counts by state.
    pub fn states(&self, function: &str, counts: &[(&'static str, i64)]) {
        if let Some(p) = self.pipelines.get(function) {
            for (state, n) in counts {
                p.instruments.instances.record(
                    *n,
                    &[
                        KeyValue::new("faas.name", function.to_string()),
                        KeyValue::new("state", *state),
                    ],
                );
            }
        }
    }

    /// A refusal.
    pub fn refused(&self, function: &str) {
        if let Some(p) = self.pipelines.get(function) {
            p.instruments
                .refusals
                .add(1, &[KeyValue::new("faas.name", function.to_string())]);
        }
    }

    /// A log record, correlated to its invocation's span when known.
    pub fn log(&self, line: &LogLine) {
        let Some(p) = self.pipelines.get(&*line.function) else {
            return;
        };
        let mut r = p.logger.create_log_record();
        r.set_timestamp(system_time(line.time));
        r.set_observed_timestamp(SystemTime::now());
        r.set_severity_number(Severity::Info);
        r.set_severity_text("INFO");
        r.set_body(AnyValue::String(line.body.clone().into()));
        r.add_attribute("faas.instance", line.pod.to_string());
        match &line.source {
            Source::Function => r.add_attribute("fnbox.log.source", "function"),
            Source::Extension(name) => {
                r.add_attribute("fnbox.log.source", "extension");
                r.add_attribute("fnbox.extension.name", name.clone());
            }
            Source::Output(who) => {
                r.add_attribute("fnbox.log.source", "output");
                r.add_attribute("fnbox.process", who.clone());
            }
        }
        if let Some((id, trace)) = &line.invocation {
            r.add_attribute("faas.invocation_id", id.clone());
            r.set_trace_context(
                TraceId::from_bytes(trace.trace_id),
                SpanId::from_bytes(trace.span_id),
                Some(flags(trace.sampled)),
            );
        }
        p.logger.emit(r);
    }

    /// Flushes and stops every pipeline (blocking: run off the async workers).
    pub fn shutdown(&self) {
        for p in self.pipelines.values() {
            let _ = p.spans.force_flush();
            let _ = p.spans.shutdown();
            let _ = p.logs.shutdown();
            let _ = p.meters.shutdown();
        }
    }
}

fn observe_delivery(meter: &Meter, function: &str, f: crate::InstancesFn) {
    for (name, pick) in [
        (
            "fnbox.telemetry.delivered_records",
            (|s: &fnbox_engine::SubscriberInfo| s.delivered_records) as fn(&_) -> u64,
        ),
        (
            "fnbox.telemetry.dropped_records",
            |s: &fnbox_engine::SubscriberInfo| s.dropped_records,
        ),
    ] {
        let f = f.clone();
        let function = function.to_string();
        let _ = meter
            .u64_observable_counter(name)
            .with_unit("{record}")
            .with_description("Telemetry records per subscriber of the live instances")
            .with_callback(move |o| {
                for (fname, instances) in f() {
                    if fname != function {
                        continue;
                    }
                    for i in instances {
                        for s in &i.telemetry {
                            o.observe(
                                pick(s),
                                &[
                                    KeyValue::new("faas.name", fname.clone()),
                                    KeyValue::new("faas.instance", i.pod_name.clone()),
                                    KeyValue::new("subscriber", s.uri.clone()),
                                ],
                            );
                        }
                    }
                }
            })
            .build();
    }
}

/// `fnbox.async.invocations{state=queued|running}`: the function's async queue as the server
/// last sampled it (0 while nothing waits, so a drained queue shows as 0, not as a gap).
fn observe_async_depth(meter: &Meter, function: &str, depth: crate::AsyncDepth) {
    let function = function.to_string();
    let _ = meter
        .i64_observable_gauge("fnbox.async.invocations")
        .with_unit("{invocation}")
        .with_description("Asynchronous invocations of the function queued or running")
        .with_callback(move |o| {
            let (queued, running) = depth
                .lock()
                .map(|d| d.get(&function).copied().unwrap_or_default())
                .unwrap_or_default();
            for (state, n) in [("queued", queued), ("running", running)] {
                o.observe(
                    i64::try_from(n).unwrap_or(i64::MAX),
                    &[KeyValue::new("state", state)],
                );
            }
        })
        .build();
}

fn resource(config: &OtlpConfig, info: &FunctionInfo) -> Resource {
    Resource::builder()
        .with_service_name(
            config
                .service_name
                .clone()
                .unwrap_or_else(|| info.name.clone()),
        )
        .with_attributes([
            KeyValue::new("service.version", info.version.clone()),
            KeyValue::new("faas.name", info.name.clone()),
            KeyValue::new("faas.version", info.version.clone()),
            KeyValue::new("faas.max_memory", i64::from(info.memory_mb) * 1024 * 1024),
            KeyValue::new("cloud.provider", info.cloud_provider),
        ])
        .build()
}

fn system_time(t: DateTime<Utc>) -> SystemTime {
    SystemTime::from(t)
}

fn flags(sampled: bool) -> TraceFlags {
    if sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    }
}

/// A child span id derived from the request id and the child's role (stable, so a replay of
/// the same observations gives the same tree).
fn child_id(request_id: &str, role: &str) -> SpanId {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (request_id, role).hash(&mut h);
    SpanId::from_bytes(h.finish().max(1).to_be_bytes())
}

fn status(status: Status, error_type: &Option<String>) -> opentelemetry::trace::Status {
    match status {
        Status::Success => opentelemetry::trace::Status::Unset,
        other => opentelemetry::trace::Status::error(format!(
            "{}{}",
            other.as_str(),
            error_type
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        )),
    }
}

/// One span to emit, besides its trace and scope.
struct Piece {
    name: Cow<'static, str>,
    id: SpanId,
    parent: SpanId,
    kind: SpanKind,
    times: (DateTime<Utc>, DateTime<Utc>),
    attributes: Vec<KeyValue>,
    status: opentelemetry::trace::Status,
}

fn span(trace: &TraceContext, scope: &InstrumentationScope, p: Piece) -> SpanData {
    SpanData {
        span_context: SpanContext::new(
            TraceId::from_bytes(trace.trace_id),
            p.id,
            flags(trace.sampled),
            false,
            TraceState::default(),
        ),
        parent_span_id: p.parent,
        parent_span_is_remote: false,
        span_kind: p.kind,
        name: p.name,
        start_time: system_time(p.times.0),
        end_time: system_time(p.times.1.max(p.times.0)),
        attributes: p.attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: p.status,
        instrumentation_scope: scope.clone(),
    }
}

fn init_span(
    init: &InitDone,
    trace: &TraceContext,
    info: &FunctionInfo,
    pod: &str,
    scope: &InstrumentationScope,
) -> SpanData {
    let mut attrs = vec![
        KeyValue::new("faas.name", info.name.clone()),
        KeyValue::new("faas.instance", pod.to_string()),
        KeyValue::new("faas.coldstart", true),
        KeyValue::new("fnbox.phase", "init"),
        KeyValue::new("fnbox.status", init.status.as_str()),
    ];
    if let Some(e) = &init.error_type {
        attrs.push(KeyValue::new("error.type", e.clone()));
    }
    span(
        trace,
        scope,
        Piece {
            name: format!("init {}", info.name).into(),
            id: child_id(&init.caused_by, "init"),
            parent: SpanId::from_bytes(trace.span_id),
            kind: SpanKind::Internal,
            times: (init.start, init.end),
            attributes: attrs,
            status: status(init.status, &init.error_type),
        },
    )
}

/// The invocation span, its init child on a cold start, and the extensions' tail after the
/// runtime answered.
pub(crate) fn invocation_spans(
    inv: &InvocationDone,
    info: &FunctionInfo,
    scope: &InstrumentationScope,
) -> Vec<SpanData> {
    let mut out = Vec::with_capacity(3);
    let mut attrs = vec![
        KeyValue::new("faas.invocation_id", inv.request_id.clone()),
        KeyValue::new("faas.trigger", info.trigger),
        KeyValue::new("faas.coldstart", inv.cold.is_some()),
        KeyValue::new("faas.name", info.name.clone()),
        KeyValue::new("faas.version", info.version.clone()),
        KeyValue::new("faas.instance", inv.pod.to_string()),
        KeyValue::new("faas.max_memory", i64::from(info.memory_mb) * 1024 * 1024),
        KeyValue::new("cloud.provider", info.cloud_provider),
        KeyValue::new("fnbox.status", inv.status.as_str()),
        KeyValue::new("fnbox.duration_ms", inv.metrics.duration_ms),
        KeyValue::new("fnbox.memory_used_mb", inv.metrics.memory_used_mb),
    ];
    if let Some(e) = &inv.error_type {
        attrs.push(KeyValue::new("error.type", e.clone()));
    }
    // On a cold start the invocation span covers the init it waited for.
    let start = inv
        .cold
        .as_ref()
        .map(|c| c.start.min(inv.start))
        .unwrap_or(inv.start);
    let mut root = span(
        &inv.trace,
        scope,
        Piece {
            name: info.name.clone().into(),
            id: SpanId::from_bytes(inv.trace.span_id),
            parent: inv
                .trace
                .parent
                .map(|p| SpanId::from_bytes(p.span_id))
                .unwrap_or(SpanId::INVALID),
            kind: SpanKind::Server,
            times: (start, inv.end),
            attributes: attrs,
            status: status(inv.status, &inv.error_type),
        },
    );
    root.parent_span_is_remote = inv.trace.parent.is_some();
    out.push(root);
    if let Some(init) = &inv.cold {
        out.push(init_span(init, &inv.trace, info, &inv.pod, scope));
    }
    if let Some(answered) = inv.runtime_done {
        out.push(span(
            &inv.trace,
            scope,
            Piece {
                name: "extensions".into(),
                id: child_id(&inv.request_id, "extensions"),
                parent: SpanId::from_bytes(inv.trace.span_id),
                kind: SpanKind::Internal,
                times: (answered, inv.end),
                attributes: vec![
                    KeyValue::new("faas.invocation_id", inv.request_id.clone()),
                    KeyValue::new("fnbox.phase", "extensions"),
                ],
                status: opentelemetry::trace::Status::Unset,
            },
        ));
    }
    out
}
