//! fnbox's exporters: every invocation as an OpenTelemetry trace, FaaS metrics and correlated
//! logs over OTLP/HTTP, and the same metrics for Prometheus (`GET /metrics` of `fnbox serve`),
//! built from the engine's observation bus ([`fnbox_engine::Engine::observe`]): the same facts
//! the extensions see, nothing estimated.
//!
//! # Layout
//! - [`config`]: `--otlp-endpoint`, the `otlp:` config key and the `OTEL_*` variables.
//! - [`model`]: pure correlation of observations into finished invocations, init phases,
//!   log lines tied to their invocation, instance counts.
//! - [`otlp`]: the OTLP pipelines (one per function: `service.name` is the function).
//! - [`prom`]: the Prometheus registry.
//!
//! # What is exported
//! - Traces: one SERVER span per invocation named after the function (`faas.invocation_id`,
//!   `faas.trigger`, `faas.coldstart`, `faas.name`, `faas.version`, `faas.instance` = podName,
//!   `faas.max_memory` in bytes, `cloud.provider`, `error.type`, status), child `init <name>`
//!   on the cold start it caused and `extensions` from the runtime's answer to the end of the
//!   invocation. Ids follow [`fnbox_engine::trace`]: the span a function sees as its parent
//!   (`X-Cff-Trace-Id` / `Lambda-Runtime-Trace-Id`) is the invocation span; a caller's
//!   `traceparent` is its parent. A failed init with no invocation is a span of its own.
//! - Metrics (OpenTelemetry FaaS semantic conventions): `faas.invocations` (successful only),
//!   `faas.errors` (error or failure), `faas.timeouts`, `faas.coldstarts` (init phases),
//!   `faas.invoke_duration` / `faas.init_duration` (s), `faas.mem_usage` (By); fnbox's own
//!   `fnbox.instances` by state, `fnbox.pool.refusals`, `fnbox.telemetry.delivered_records` /
//!   `dropped_records` per subscriber of the live instances, `fnbox.async.invocations`
//!   (queued/running, the function's async queue as the server last sampled it). Prometheus adds
//!   `fnbox_observations_lost_total` and `fnbox_otlp_export_failures_total`.
//! - Logs: `[Function]` and `[Extension]` lines, and with [`output_channel`] every other output
//!   line, with the trace and span of the invocation in flight on their instance.
//!
//! # Hot path
//! The engine publishes to a bounded broadcast and never waits; this crate's task turns
//! observations into records and hands them to the SDK's bounded batch queues, exported from
//! the SDK's threads. A dead or slow endpoint costs the invocations nothing: exports fail or
//! time out on those threads, records are dropped and counted, and a warning says so.
//!
//! # Why `prometheus-client`
//! `prometheus-client` is the Prometheus project's own Rust client (OpenMetrics text, typed
//! families, collectors for values read at scrape time), released steadily; the SDK's
//! `opentelemetry-prometheus` exporter is marked beta and its README points new users to OTLP.
//! Both sides are fed by the same correlation ([`model`]), so they count the same things.

pub mod config;
pub mod model;
pub mod otlp;
pub mod prom;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use fnbox_engine::instance::process::{LogLine as EngineLine, Role};
use fnbox_engine::{Engine, InstanceInfo, LineEcho};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

pub use config::{OtlpConfig, OtlpFile};
use model::{Model, Output};

/// Histogram bounds for durations, seconds.
pub const DURATION_BUCKETS: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0,
];

/// Histogram bounds for memory, bytes (1 MiB … 8 GiB).
pub const MEMORY_BUCKETS: [f64; 14] = [
    1_048_576.0,
    2_097_152.0,
    4_194_304.0,
    8_388_608.0,
    16_777_216.0,
    33_554_432.0,
    67_108_864.0,
    134_217_728.0,
    268_435_456.0,
    536_870_912.0,
    1_073_741_824.0,
    2_147_483_648.0,
    4_294_967_296.0,
    8_589_934_592.0,
];

/// Every function's instances (name, listing), read when metrics are collected.
pub type InstancesFn = Arc<dyn Fn() -> Vec<(String, Vec<InstanceInfo>)> + Send + Sync>;

/// The async queue's depth per function as last sampled: name → (queued, running). Written
/// by [`Exporters::set_async_depth`] from the server's sampler, read by the OTLP gauge's
/// callback when the SDK collects (so collection never queries the store).
pub(crate) type AsyncDepth = Arc<std::sync::Mutex<std::collections::HashMap<String, (u64, u64)>>>;

/// What the exporters know about a served function.
#[derive(Clone, Debug)]
pub struct FunctionInfo {
    /// `func_name`.
    pub name: String,
    /// `latest`.
    pub version: String,
    /// `memory_size`, MB.
    pub memory_mb: u32,
    /// `huawei_cloud` (FunctionGraph dialect) or `aws` (Lambda).
    pub cloud_provider: &'static str,
    /// `faas.trigger`: `http` behind `fnbox serve`, `other` for `fnbox run`.
    pub trigger: &'static str,
}

/// Options of [`Exporters::start`].
pub struct Options {
    /// OTLP export, when configured.
    pub otlp: Option<OtlpConfig>,
    /// The functions served.
    pub functions: Vec<FunctionInfo>,
    /// Live instances, for the telemetry delivery counters.
    pub instances: Option<InstancesFn>,
    /// Other output lines, from [`output_channel`].
    pub output: Option<OutputLines>,
}

/// One other output line: pod, (when it was read, process, text).
type OutputLine = (String, (chrono::DateTime<chrono::Utc>, String, String));

/// The receiving side of [`output_channel`].
pub struct OutputLines(mpsc::Receiver<OutputLine>);

/// Lines kept for the exporters before they are dropped (counted as lost).
const OUTPUT_CAPACITY: usize = 4096;

/// A line echo for [`fnbox_engine::EngineConfig::echo`] that hands every output line without
/// a telemetry marker to the exporters (bounded; never blocks), and its receiving side.
pub fn output_channel() -> (LineEcho, OutputLines) {
    let (tx, rx) = mpsc::channel::<OutputLine>(OUTPUT_CAPACITY);
    let echo: LineEcho = Arc::new(move |pod: &str, lines: &[EngineLine]| {
        for line in lines {
            let marker = match &*line.role {
                Role::Runtime => "[Function]",
                Role::Extension(_) => "[Extension]",
            };
            // Marked lines already arrive as telemetry events (and cost nothing here: a burst
            // of them is the telemetry hot path).
            if !line.text.contains(marker) {
                let who = match &*line.role {
                    Role::Runtime => "runtime".to_string(),
                    Role::Extension(name) => name.clone(),
                };
                let _ = tx.try_send((
                    pod.to_string(),
                    (chrono::Utc::now(), who, line.text.clone()),
                ));
            }
        }
    });
    (echo, OutputLines(rx))
}

/// Runs the exporters; [`Exporters::shutdown`] flushes them.
pub struct Exporters {
    prom: Arc<prom::Prom>,
    depth: AsyncDepth,
    otlp: Option<Arc<otlp::Otlp>>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Exporters {
    /// Subscribes to `engine`'s observations and starts exporting. Errors (an exporter that
    /// cannot be built) name what failed. Must run inside a tokio runtime.
    pub fn start(engine: &Engine, options: Options) -> Result<Self, String> {
        let prom = Arc::new(prom::Prom::new(options.instances.clone()));
        let depth = AsyncDepth::default();
        let otlp = match &options.otlp {
            Some(c) => Some(Arc::new(otlp::Otlp::new(
                c,
                &options.functions,
                options.instances.clone(),
                depth.clone(),
            )?)),
            None => None,
        };
        // Paced: a busy engine does not wake the exporters for every observation. Not with
        // OTLP logs: an output line, which comes on a channel of its own, is given the span of
        // the invocation its pod runs, so the observations must be taken in step with it.
        let pace = if options.output.is_some() {
            Duration::ZERO
        } else {
            fnbox_engine::observe::PACE
        };
        let rx = fnbox_engine::observe::Paced::new(engine.observe(), pace);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run(
            rx,
            options.output,
            prom.clone(),
            otlp.clone(),
            cancel.clone(),
        ));
        Ok(Self {
            prom,
            depth,
            otlp,
            cancel,
            task,
        })
    }

    /// Whether OTLP export is on.
    pub fn otlp_enabled(&self) -> bool {
        self.otlp.is_some()
    }

    /// The Prometheus text exposition of every instrument.
    pub fn render_prometheus(&self) -> String {
        if let Some(o) = &self.otlp {
            for (i, signal) in ["traces", "metrics", "logs"].iter().enumerate() {
                let total = o.failures.records[i].load(Ordering::Relaxed);
                let c = self
                    .prom
                    .export_failures
                    .get_or_create(&vec![("signal".to_string(), signal.to_string())]);
                let seen = c.get();
                if total > seen {
                    c.inc_by(total - seen);
                }
            }
        }
        self.prom.render()
    }

    /// The async queue's depth as last sampled, per function `(name, queued, running)`: the
    /// node-wide totals become Prometheus' `fnbox_async_invocations{state}`, each function's
    /// own counts its OTLP `fnbox.async.invocations{state}` gauge (every function is its own
    /// OTLP service, so a node-wide figure has no resource to live on). A function missing
    /// from `per_function` has nothing queued or running. The server samples the store off the
    /// invoke path and calls this.
    pub fn set_async_depth(&self, per_function: &[(String, u64, u64)]) {
        let (queued, running) = per_function
            .iter()
            .fold((0u64, 0u64), |(q, r), (_, fq, fr)| (q + fq, r + fr));
        for (state, n) in [("queued", queued), ("running", running)] {
            self.prom
                .async_invocations
                .get_or_create(&vec![("state".to_string(), state.to_string())])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let mut depth = self.depth.lock().expect("async depth lock");
        depth.clear();
        depth.extend(
            per_function
                .iter()
                .map(|(name, q, r)| (name.clone(), (*q, *r))),
        );
    }

    /// A renderer for `GET /metrics`.
    pub fn prometheus(self: &Arc<Self>) -> Arc<dyn Fn() -> String + Send + Sync> {
        let me = self.clone();
        Arc::new(move || me.render_prometheus())
    }

    /// Processes what was observed so far, then flushes and stops the OTLP pipelines (within
    /// `grace`). Call after the engine shut down, so the last reports are included.
    pub async fn shutdown(&self, grace: Duration) {
        self.cancel.cancel();
        // The task drains what is buffered, then ends; `abort` is only a backstop.
        let _ = tokio::time::timeout(grace, async {
            while !self.task.is_finished() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        self.task.abort();
        if let Some(o) = self.otlp.clone() {
            let flush = tokio::task::spawn_blocking(move || o.shutdown());
            if tokio::time::timeout(grace, flush).await.is_err() {
                tracing::warn!(?grace, "OTLP exporters did not flush in time");
            }
        }
    }
}

async fn run(
    mut rx: fnbox_engine::observe::Paced<Arc<fnbox_engine::Observed>>,
    mut output: Option<OutputLines>,
    prom: Arc<prom::Prom>,
    otlp: Option<Arc<otlp::Otlp>>,
    cancel: CancellationToken,
) {
    let mut model = Model::default();
    let mut out = Vec::new();
    let mut lost_warned = false;
    loop {
        let line = async {
            match output.as_mut() {
                Some(o) => o.0.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            r = rx.recv() => match r {
                // Log lines only feed OTLP's logs: without OTLP they are skipped before the
                // model (a burst of a million lines must not cost the exporters a million
                // look-ups, nor push invocation observations out of the broadcast).
                Ok(o) if otlp.is_none() && is_log_line(&o) => {}
                Ok(o) => model.observe(&o, &mut out),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    prom.lost.inc_by(n);
                    if !lost_warned {
                        lost_warned = true;
                        tracing::warn!(lost = n, "exporters fell behind the engine: observations lost (counted in fnbox_observations_lost_total)");
                    }
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            Some((pod, line)) = line => {
                if otlp.is_none() {
                    continue;
                }
                if let Some(function) = model.function_of(&pod) {
                    model.output(function, pod.into(), line, &mut out);
                }
            }
            _ = cancel.cancelled() => {
                // Drain what is already buffered, then stop.
                while let Ok(o) = rx.try_recv() {
                    model.observe(&o, &mut out);
                }
                if let Some(o) = output.as_mut() {
                    while let Ok((pod, line)) = o.0.try_recv() {
                        if let Some(function) = model.function_of(&pod) {
                            model.output(function, pod.into(), line, &mut out);
                        }
                    }
                }
                emit(&mut out, &prom, otlp.as_deref());
                break;
            }
        }
        emit(&mut out, &prom, otlp.as_deref());
    }
}

/// A `function` or `extension` telemetry event: one output line.
fn is_log_line(o: &fnbox_engine::Observed) -> bool {
    matches!(
        &o.what,
        fnbox_engine::Observation::Telemetry(e)
            if matches!(**e, fnbox_engine::telemetry::Event::Function { .. }
                | fnbox_engine::telemetry::Event::Extension { .. })
    )
}

fn labels(function: &str) -> Vec<(String, String)> {
    vec![("faas_name".to_string(), function.to_string())]
}

fn emit(out: &mut Vec<Output>, prom: &prom::Prom, otlp: Option<&otlp::Otlp>) {
    for o in out.drain(..) {
        match &o {
            Output::Invocation(inv) => {
                prom.with_function(&inv.function, |m, _| {
                    match inv.status {
                        fnbox_engine::telemetry::Status::Success => m.invocations.inc(),
                        fnbox_engine::telemetry::Status::Timeout => m.timeouts.inc(),
                        _ => m.errors.inc(),
                    };
                    m.invoke_duration.observe(inv.metrics.duration_ms / 1000.0);
                    m.mem_usage
                        .observe(inv.metrics.memory_used_mb * 1024.0 * 1024.0);
                });
                if let Some(x) = otlp {
                    x.invocation(inv);
                }
            }
            Output::InitStarted { function } => {
                prom.coldstarts.get_or_create(&labels(function)).inc();
                if let Some(x) = otlp {
                    x.init_started(function);
                }
            }
            Output::Init {
                function,
                pod,
                init,
                duration_ms,
            } => {
                prom.init_duration
                    .get_or_create(&labels(function))
                    .observe(duration_ms / 1000.0);
                if let Some(x) = otlp {
                    x.init(function, pod, init, *duration_ms);
                }
            }
            Output::Log(line) => {
                if let Some(x) = otlp {
                    x.log(line);
                }
            }
            Output::States { function, counts } => {
                prom.with_function(function, |m, instances| {
                    for (state, n) in counts {
                        m.state(instances, state).set(*n);
                    }
                });
                if let Some(x) = otlp {
                    x.states(function, counts);
                }
            }
            Output::Refused { function } => {
                prom.refusals.get_or_create(&labels(function)).inc();
                if let Some(x) = otlp {
                    x.refused(function);
                }
            }
        }
    }
}
