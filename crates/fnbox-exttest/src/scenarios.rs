//! The scenarios: each a scripted sequence of invocations and faults on a fresh instance, then
//! checks over what the extension did. See `docs/test-extension.md` for what each checks and
//! why it matters on the real platform.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fnbox_engine::telemetry::{Event, Phase};
use fnbox_engine::{
    Dialect, Engine, EngineConfig, Function, Instance, InvokeOutcome, InvokeRequest, InvokeResult,
    Observation,
};
use fnbox_package::Dialect as DialectName;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::probe::Probed;
use crate::procs::{ProcFigures, Sampler};
use crate::proxy::Proxy;
use crate::record::{kind, ApiCall, Delays, ExchangeKind, Produced, Rec, Recorder, Seen};
use crate::score::{Judge, ScenarioResult, Scorecard};
use crate::target::{Target, RUNTIME};
use crate::ExtTestError;

/// The scenarios, in run order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// Registration, subscription, init telemetry replayed.
    ColdStart,
    /// Many invocations: every notice answered, every event once, in order.
    Warm,
    /// One invocation printing many `[Function]` lines.
    Burst,
    /// The function overruns its deadline.
    Timeout,
    /// The runtime exits mid-invocation.
    Crash,
    /// The function exceeds its memory.
    Oom,
    /// Invoke notices and batch bodies arrive late.
    SlowPlatform,
    /// Events queued when the instance stops; SIGTERM.
    Shutdown,
    /// Diagnostic: how the listener answers.
    BadAnswers,
}

impl Scenario {
    /// Every scenario, in run order.
    pub const ALL: [Scenario; 9] = [
        Scenario::ColdStart,
        Scenario::Warm,
        Scenario::Burst,
        Scenario::Timeout,
        Scenario::Crash,
        Scenario::Oom,
        Scenario::SlowPlatform,
        Scenario::Shutdown,
        Scenario::BadAnswers,
    ];

    /// Its command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::ColdStart => "cold-start",
            Scenario::Warm => "warm",
            Scenario::Burst => "burst",
            Scenario::Timeout => "timeout",
            Scenario::Crash => "crash",
            Scenario::Oom => "oom",
            Scenario::SlowPlatform => "slow-platform",
            Scenario::Shutdown => "shutdown",
            Scenario::BadAnswers => "bad-answers",
        }
    }

    /// By command-line name.
    pub fn parse(name: &str) -> Result<Scenario, String> {
        Scenario::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| {
                format!(
                    "unknown scenario '{name}'; one of: {}",
                    Scenario::ALL.map(Scenario::name).join(", ")
                )
            })
    }
}

/// How the run is shaped.
#[derive(Clone, Debug)]
pub struct Options {
    /// Package or extension directory.
    pub target: PathBuf,
    /// Dialect for a directory of extensions (a package says its own).
    pub dialect: Option<DialectName>,
    /// Scenarios to run, in [`Scenario::ALL`] order; all when empty.
    pub scenarios: Vec<Scenario>,
    /// Invocations of `warm`.
    pub warm_invocations: u32,
    /// Lines of `burst`.
    pub burst_lines: u32,
    /// Invoke-notice delay of `slow-platform`.
    pub push_delay: Duration,
    /// Batch-body delay of `slow-platform`.
    pub batch_delay: Duration,
    /// How memory limits are enforced.
    pub memory: fnbox_limits::MemoryController,
    /// `PATH` for the instances.
    pub host_path: Option<String>,
}

impl Options {
    /// Defaults for `target`.
    pub fn new(target: PathBuf, memory: fnbox_limits::MemoryController) -> Self {
        Self {
            target,
            dialect: None,
            scenarios: Vec::new(),
            warm_invocations: crate::WARM_INVOCATIONS,
            burst_lines: crate::BURST_LINES,
            push_delay: crate::PUSH_DELAY,
            batch_delay: crate::BATCH_DELAY,
            memory,
            host_path: std::env::var("PATH").ok(),
        }
    }
}

/// A push answered slower than this adds visibly to every invocation's billed duration.
const SLOW_PUSH: Duration = Duration::from_millis(100);
/// A batch held longer than this makes the platform queue (and then drop) new events.
const SLOW_BATCH: Duration = Duration::from_secs(1);
/// Registration slower than this adds visibly to every cold start.
const SLOW_REGISTRATION: Duration = Duration::from_secs(1);
/// How long a scenario waits for the telemetry it expects once its invocations are done.
const DELIVERY_WAIT: Duration = Duration::from_secs(6);

/// Runs the scenarios and returns the scorecard.
pub async fn run(opts: Options) -> Result<Scorecard, ExtTestError> {
    let target = Target::resolve(&opts.target, opts.dialect)?;
    let scratch = tempfile::Builder::new()
        .prefix("fnbox-exttest-")
        .tempdir()
        .map_err(|source| ExtTestError::Io {
            path: std::env::temp_dir(),
            source,
        })?;
    let rec = Recorder::default();
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let proxy = Proxy::new(rec.clone(), tracker.clone(), cancel.clone());
    let mut config = EngineConfig::new(opts.memory.clone());
    config.host_path = opts.host_path.clone();
    config.listener_redirect = Some(proxy.redirect());
    let engine = Engine::new(config);
    observe(&engine, rec.clone(), &tracker, cancel.clone());
    let base: Arc<dyn Dialect> = match target.dialect {
        DialectName::FunctionGraph => Arc::new(fnbox_fg::FunctionGraph),
        DialectName::Lambda => Arc::new(fnbox_lambda::Lambda),
    };
    let harness = Harness {
        engine: engine.clone(),
        rec,
        target,
        opts: opts.clone(),
        base,
        scratch: scratch.path().to_owned(),
    };
    let wanted: Vec<Scenario> = Scenario::ALL
        .into_iter()
        .filter(|s| opts.scenarios.is_empty() || opts.scenarios.contains(s))
        .collect();
    let mut results = Vec::new();
    for scenario in wanted {
        results.push(harness.run(scenario).await?);
    }
    engine.shutdown(Duration::from_secs(5)).await;
    cancel.cancel();
    tracker.close();
    tracker.wait().await;
    Ok(Scorecard {
        target: harness.target.shown.display().to_string(),
        dialect: harness.target.dialect.as_str().to_string(),
        extensions: harness
            .target
            .extensions
            .iter()
            .map(|e| e.name.clone())
            .collect(),
        memory_mode: opts.memory.describe(),
        scenarios: results,
    })
}

/// Copies every telemetry event the engine produces into the recorder.
fn observe(engine: &Engine, rec: Recorder, tracker: &TaskTracker, cancel: CancellationToken) {
    let mut rx = engine.observe();
    tracker.spawn(async move {
        loop {
            let got = tokio::select! {
                _ = cancel.cancelled() => return,
                got = rx.recv() => got,
            };
            match got {
                Ok(o) => {
                    if let Observation::Telemetry(event) = &o.what {
                        if let Some(r) = rec_of(event) {
                            let at = rec.now();
                            rec.with(|s| s.produced.push(Produced { rec: r, at }));
                        }
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    rec.with(|s| s.observe_lagged += n)
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

/// An engine event in the shape of a delivered record.
fn rec_of(event: &Event) -> Option<Rec> {
    let phase_name = |phase: &Phase, init: &str, invoke: &str, restore: &str| match phase {
        Phase::Init => init.to_string(),
        Phase::Invoke => invoke.to_string(),
        Phase::Restore => restore.to_string(),
    };
    let blank = |kind: String| Rec {
        kind,
        trace: None,
        line: None,
        status: None,
        error_type: None,
        dropped: None,
    };
    Some(match event {
        Event::Start {
            phase, trace_id, ..
        } => Rec {
            trace: Some(trace_id.clone()),
            ..blank(phase_name(
                phase,
                kind::INIT_START,
                kind::START,
                "platform.restorestart",
            ))
        },
        Event::RuntimeDone {
            phase,
            trace_id,
            status,
            error_type,
            ..
        } => Rec {
            trace: Some(trace_id.clone()),
            status: Some(status.as_str().to_string()),
            error_type: error_type.clone(),
            ..blank(phase_name(
                phase,
                kind::INIT_RUNTIME_DONE,
                kind::RUNTIME_DONE,
                "platform.restoreruntimedone",
            ))
        },
        Event::Report {
            phase,
            trace_id,
            status,
            error_type,
            ..
        } => Rec {
            trace: Some(trace_id.clone()),
            status: Some(status.as_str().to_string()),
            error_type: error_type.clone(),
            ..blank(phase_name(
                phase,
                kind::INIT_REPORT,
                kind::REPORT,
                "platform.restorereport",
            ))
        },
        Event::Function { line, .. } => Rec {
            line: Some(line.trim_end().to_string()),
            ..blank(kind::FUNCTION.to_string())
        },
        Event::Extension { line, .. } => Rec {
            line: Some(line.trim_end().to_string()),
            ..blank(kind::EXTENSION.to_string())
        },
        _ => return None,
    })
}

struct Harness {
    engine: Arc<Engine>,
    rec: Recorder,
    target: Target,
    opts: Options,
    base: Arc<dyn Dialect>,
    scratch: PathBuf,
}

/// One scenario's function, instance-to-be and measurements.
struct Stage {
    function: Function,
    status_dir: PathBuf,
    sampler: Sampler,
}

/// How an extension process ended, from the wrapper's status file.
#[derive(Clone, Debug)]
struct Exit {
    name: String,
    /// `None`: no status written, so the wrapper was SIGKILLed with it.
    code: Option<i32>,
    /// When it exited.
    at: Option<SystemTime>,
}

/// What every scenario ends with.
struct Ended {
    seen: Seen,
    procs: ProcFigures,
    exits: Vec<Exit>,
}

impl Harness {
    async fn run(&self, scenario: Scenario) -> Result<ScenarioResult, ExtTestError> {
        let mut j = Judge::default();
        match scenario {
            Scenario::ColdStart => self.cold_start(&mut j).await?,
            Scenario::Warm => {
                self.invocations(
                    &mut j,
                    "warm",
                    self.opts.warm_invocations,
                    3,
                    Delays::default(),
                )
                .await?
            }
            Scenario::Burst => self.burst(&mut j).await?,
            Scenario::Timeout => self.fault(&mut j, "timeout", "sleep").await?,
            Scenario::Crash => self.fault(&mut j, "crash", "crash").await?,
            Scenario::Oom => self.fault(&mut j, "oom", "oom").await?,
            Scenario::SlowPlatform => {
                let delays = Delays {
                    push: self.opts.push_delay,
                    batch: self.opts.batch_delay,
                };
                let timeout = (3 + 2 * (delays.push + delays.batch).as_secs()).min(900) as u32;
                j.figure("push_delay_ms", delays.push.as_millis() as u64);
                j.figure("batch_delay_ms", delays.batch.as_millis() as u64);
                self.invocations(&mut j, "slow-platform", 5, timeout, delays)
                    .await?
            }
            Scenario::Shutdown => self.shutdown(&mut j).await?,
            Scenario::BadAnswers => self.bad_answers(&mut j).await?,
        }
        Ok(j.finish(scenario.name()))
    }

    /// A fresh package for one scenario: the bash function, the extensions under test where
    /// they are, the target's `user_data` plus the harness's own entries.
    fn stage(&self, name: &str, timeout: u32, delays: Delays) -> Result<Stage, ExtTestError> {
        self.rec.reset(delays);
        let root = self.scratch.join(name);
        let status_dir = self.scratch.join(format!("{name}.exits"));
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| ExtTestError::Io { path, source }
        };
        std::fs::create_dir_all(&root).map_err(io(&root))?;
        std::fs::create_dir_all(&status_dir).map_err(io(&status_dir))?;
        let bootstrap = root.join("bootstrap");
        std::fs::write(&bootstrap, RUNTIME).map_err(io(&bootstrap))?;
        let mut perms = std::fs::metadata(&bootstrap)
            .map_err(io(&bootstrap))?
            .permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&bootstrap, perms).map_err(io(&bootstrap))?;
        let run_id = uuid::Uuid::new_v4().simple().to_string();
        let mut user_data = self.target.user_data.clone();
        user_data.insert("EXTTEST_RUN".into(), run_id.clone());
        user_data.insert(
            "EXTTEST_STATUS_DIR".into(),
            status_dir.display().to_string(),
        );
        user_data.insert(
            "EXTTEST_DIALECT".into(),
            self.target.dialect.as_str().into(),
        );
        let config = serde_json::json!({
            "func_name": "exttest",
            "runtime": match self.target.dialect {
                DialectName::FunctionGraph => "Custom",
                DialectName::Lambda => "provided.al2023",
            },
            "dialect": self.target.dialect.as_str(),
            "memory_size": 128,
            "timeout": timeout,
            "network": "host",
            "user_data": user_data,
        });
        let file = root.join("function.json");
        std::fs::write(&file, config.to_string()).map_err(io(&file))?;
        let mut package = fnbox_package::load(&root)?;
        package.extensions = self.target.extensions.clone();
        let dialect: Arc<dyn Dialect> = Arc::new(Probed::new(self.base.clone(), self.rec.clone()));
        let function = Function::new(self.engine.clone(), Arc::new(package), dialect)?;
        Ok(Stage {
            function,
            status_dir,
            sampler: Sampler::start(&run_id),
        })
    }

    /// Shuts the instance down (when one is alive), then collects.
    async fn end(&self, stage: Stage, instance: Option<Arc<Instance>>) -> Ended {
        if let Some(instance) = instance {
            instance.shutdown().await;
        }
        let procs = stage.sampler.stop().await;
        let exits = self
            .target
            .extensions
            .iter()
            .map(|e| read_exit(&stage.status_dir, &e.name))
            .collect();
        Ended {
            seen: self.rec.take(),
            procs,
            exits,
        }
    }

    /// Waits until `done` holds for what was seen (or `limit` passes).
    async fn settle(&self, limit: Duration, done: impl Fn(&Seen) -> bool) -> bool {
        let until = Instant::now() + limit;
        loop {
            if self.rec.with(|s| done(s)) {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn start(&self, j: &mut Judge, stage: &Stage) -> Option<Arc<Instance>> {
        let began = Instant::now();
        match stage.function.start_instance(None).await {
            Ok(i) => {
                j.figure("init_ms", ms(began.elapsed()));
                Some(i)
            }
            Err(e) => {
                j.fail(format!("the instance did not start: {e}"));
                None
            }
        }
    }

    async fn cold_start(&self, j: &mut Judge) -> Result<(), ExtTestError> {
        let stage = self.stage("cold-start", 3, Delays::default())?;
        let instance = self.start(j, &stage).await;
        let subscribed = instance.is_some()
            && self
                .settle(DELIVERY_WAIT, |s| {
                    [kind::INIT_START, kind::INIT_RUNTIME_DONE, kind::INIT_REPORT]
                        .iter()
                        .all(|k| acked(s).any(|r| r.kind == *k))
                })
                .await;
        let _ = subscribed;
        let ended = self.end(stage, instance).await;
        let seen = &ended.seen;
        registration(j, seen, &self.target);
        if let Some(sub) = subscription(seen) {
            let missing: Vec<&str> = [kind::INIT_START, kind::INIT_RUNTIME_DONE, kind::INIT_REPORT]
                .into_iter()
                .filter(|k| !acked(seen).any(|r| r.kind == *k))
                .collect();
            if !missing.is_empty() && types(sub).platform {
                j.fail(format!(
                    "init telemetry never acknowledged: {} missing{}",
                    missing.join(", "),
                    batch_trouble(seen)
                ));
            } else if types(sub).platform {
                j.ok(format!(
                    "registered in {} ms, subscribed in {} ms; init telemetry replayed and acknowledged",
                    ms(registered_at(seen).unwrap_or_default()),
                    ms(sub.at)
                ));
            }
        }
        batches(j, seen);
        figures(j, &ended);
        Ok(())
    }

    /// `count` invocations on one instance (warm, slow-platform): every notice answered,
    /// every batch accepted, every event of every invocation acknowledged once, in order.
    async fn invocations(
        &self,
        j: &mut Judge,
        name: &str,
        count: u32,
        timeout: u32,
        delays: Delays,
    ) -> Result<(), ExtTestError> {
        let stage = self.stage(name, timeout, delays)?;
        let instance = self.start(j, &stage).await;
        let mut runs: Vec<(String, String)> = Vec::new();
        let mut alive = instance.clone();
        if let Some(inst) = &instance {
            let began = Instant::now();
            for i in 1..=count {
                let tag = format!("{name}-{i}");
                let outcome = invoke(inst, "ok", &tag, None).await;
                runs.push((outcome.request_id.clone(), tag));
                if let InvokeResult::Fault(f) = &outcome.result {
                    alive = None;
                    j.fail(format!(
                        "invocation {i} of {count} failed: {}: {}{}",
                        f.error_type(),
                        f.message,
                        notice_hint(&self.rec, &outcome.request_id, self.target.dialect)
                    ));
                    break;
                }
            }
            j.figure("invocations", runs.len());
            j.figure("invocations_ms", ms(began.elapsed()));
            if let Some((last, _)) = runs.last().cloned() {
                self.settle(DELIVERY_WAIT + delays.batch * 3, |s| {
                    acked(s).any(|r| r.kind == kind::REPORT && r.trace.as_deref() == Some(&last))
                })
                .await;
                // The platform's own slowness ends with the invocations: a batch still held
                // by the delay must not be cut by the shutdown and counted against the
                // extension.
                self.rec.set_delays(Delays::default());
                self.settle(DELIVERY_WAIT + delays.batch * 2, |s| {
                    s.exchanges.iter().all(|e| e.done)
                })
                .await;
            }
        }
        let ended = self.end(stage, alive).await;
        let seen = &ended.seen;
        notices(j, seen, self.target.dialect, true);
        batches(j, seen);
        if let Some(sub) = subscription(seen) {
            if !j.failed() {
                match in_order(seen, &runs, types(sub)) {
                    Ok(n) => j.ok(format!(
                        "{} invocations; all {n} events acknowledged once, in order",
                        runs.len()
                    )),
                    Err(e) => j.fail(e),
                }
            }
        } else {
            j.fail("never subscribed to telemetry");
        }
        figures(j, &ended);
        Ok(())
    }

    async fn burst(&self, j: &mut Judge) -> Result<(), ExtTestError> {
        let lines = self.opts.burst_lines;
        let stage = self.stage("burst", 30, Delays::default())?;
        let instance = self.start(j, &stage).await;
        let mut alive = instance.clone();
        let mut trace = None;
        let mut stats = None;
        if let Some(inst) = &instance {
            let began = Instant::now();
            let outcome = invoke(inst, "burst", "burst", Some(lines)).await;
            j.figure("invocation_ms", ms(began.elapsed()));
            trace = Some(outcome.request_id.clone());
            if let InvokeResult::Fault(f) = &outcome.result {
                alive = None;
                j.fail(format!(
                    "the burst invocation failed: {}: {}{}",
                    f.error_type(),
                    f.message,
                    notice_hint(&self.rec, &outcome.request_id, self.target.dialect)
                ));
            } else {
                // Everything produced is either delivered or dropped (counted), or the
                // listener stopped answering.
                let settle_began = Instant::now();
                let mut last = (0u64, Instant::now());
                loop {
                    let s = inst.delivery_stats();
                    let accounted: u64 = s
                        .iter()
                        .map(|(_, d)| d.delivered_records + d.dropped_records)
                        .sum();
                    let produced = self.rec.with(|s| s.produced.len() as u64);
                    if accounted >= produced.saturating_sub(2) && accounted > 0 {
                        break;
                    }
                    if accounted != last.0 {
                        last = (accounted, Instant::now());
                    } else if last.1.elapsed() > DELIVERY_WAIT {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                j.figure("drain_ms", ms(settle_began.elapsed()));
                stats = inst.delivery_stats().into_iter().next().map(|(_, d)| d);
            }
        }
        let ended = self.end(stage, alive).await;
        let seen = &ended.seen;
        notices(j, seen, self.target.dialect, false);
        batches(j, seen);
        let prefix = "[Function] exttest burst ";
        let delivered = acked(seen)
            .filter(|r| {
                r.kind == kind::FUNCTION && r.line.as_deref().is_some_and(|l| l.starts_with(prefix))
            })
            .count();
        let notified: u64 = acked(seen)
            .filter(|r| r.kind == kind::LOGS_DROPPED)
            .filter_map(|r| r.dropped)
            .sum();
        j.figure("lines_printed", lines);
        j.figure("lines_delivered", delivered);
        if let Some(d) = &stats {
            j.figure("records_dropped", d.dropped_records);
            j.figure("failed_posts", d.failed_posts);
        }
        j.figure("drops_notified", notified);
        if let (Some(trace), Some(sub)) = (&trace, subscription(seen)) {
            let report = acked(seen)
                .any(|r| r.kind == kind::REPORT && r.trace.as_deref() == Some(trace.as_str()));
            let dropped = stats.map(|d| d.dropped_records).unwrap_or(0);
            if types(sub).platform && !report && dropped == 0 {
                j.fail(format!(
                    "the burst invocation's platform.report was never acknowledged{}",
                    batch_trouble(seen)
                ));
            }
            if !j.failed() {
                j.ok(format!(
                    "{delivered} of {lines} lines delivered, {dropped} dropped by the platform's bounded queue; every batch answered 2xx"
                ));
            }
        } else if trace.is_some() {
            j.fail("never subscribed to telemetry");
        }
        figures(j, &ended);
        Ok(())
    }

    /// timeout / crash / oom: the function fails mid-invocation; the extension must receive
    /// the failed invocation's events with their status and errorType before it is stopped.
    async fn fault(&self, j: &mut Judge, name: &str, action: &str) -> Result<(), ExtTestError> {
        let stage = self.stage(name, 3, Delays::default())?;
        let instance = self.start(j, &stage).await;
        let mut trace = None;
        let mut alive = instance.clone();
        if let Some(inst) = &instance {
            let outcome = invoke(inst, action, name, None).await;
            j.figure("invocation_ms", ms_f(outcome.metrics.duration_ms));
            trace = Some(outcome.request_id.clone());
            match &outcome.result {
                InvokeResult::Fault(_) => alive = None,
                other => j.warn(format!(
                    "the function did not fail as scripted ({}); nothing to judge",
                    match other {
                        InvokeResult::Ok(_) => "it succeeded",
                        _ => "handler error",
                    }
                )),
            }
        }
        let ended = self.end(stage, alive).await;
        let seen = &ended.seen;
        batches(j, seen);
        if let (Some(trace), Some(sub)) = (trace, subscription(seen)) {
            let produced: HashMap<&str, &Rec> = seen
                .produced
                .iter()
                .filter(|p| p.rec.trace.as_deref() == Some(trace.as_str()))
                .map(|p| (p.rec.kind.as_str(), &p.rec))
                .collect();
            if let Some(done) = produced.get(kind::RUNTIME_DONE) {
                j.figure("status", done.status.clone());
                j.figure("error_type", done.error_type.clone());
            }
            if types(sub).platform {
                for k in [kind::RUNTIME_DONE, kind::REPORT] {
                    let Some(want) = produced.get(k) else {
                        continue;
                    };
                    let got = acked(seen).find(|r| r.kind == k && r.trace == want.trace);
                    match got {
                        None => j.fail(format!(
                            "{k} of the failed invocation ({} {}) never acknowledged before the instance was torn down{}",
                            want.status.as_deref().unwrap_or("?"),
                            want.error_type.as_deref().unwrap_or(""),
                            batch_trouble(seen)
                        )),
                        Some(r) if r.status != want.status || r.error_type != want.error_type => {
                            j.fail(format!(
                                "{k} arrived with status {:?} / errorType {:?}, expected {:?} / {:?}",
                                r.status, r.error_type, want.status, want.error_type
                            ))
                        }
                        Some(_) => {}
                    }
                }
            }
            if !j.failed() {
                j.ok(format!(
                    "the {name} reached the extension: runtimeDone and report ({} {}) acknowledged before teardown",
                    produced
                        .get(kind::REPORT)
                        .and_then(|r| r.status.clone())
                        .unwrap_or_default(),
                    produced
                        .get(kind::REPORT)
                        .and_then(|r| r.error_type.clone())
                        .unwrap_or_default()
                ));
            }
        } else if !j.failed() {
            j.fail("never subscribed to telemetry");
        }
        figures(j, &ended);
        Ok(())
    }

    /// Three invocations, the last printing 2,000 lines, then an immediate shutdown: what is
    /// still queued must reach the extension within the grace period, and the extension must
    /// exit on SIGTERM (Lambda: after SHUTDOWN) before SIGKILL.
    async fn shutdown(&self, j: &mut Judge) -> Result<(), ExtTestError> {
        let stage = self.stage("shutdown", 3, Delays::default())?;
        let instance = self.start(j, &stage).await;
        let mut runs = Vec::new();
        let mut alive = instance.clone();
        if let Some(inst) = &instance {
            for i in 1..=3 {
                let tag = format!("shutdown-{i}");
                let outcome = if i == 3 {
                    invoke(inst, "burst", &tag, Some(2000)).await
                } else {
                    invoke(inst, "ok", &tag, None).await
                };
                runs.push((outcome.request_id.clone(), tag));
                if let InvokeResult::Fault(f) = &outcome.result {
                    alive = None;
                    j.fail(format!(
                        "invocation {i} failed before the shutdown: {}: {}{}",
                        f.error_type(),
                        f.message,
                        notice_hint(&self.rec, &outcome.request_id, self.target.dialect)
                    ));
                    break;
                }
            }
        }
        let stop_began = SystemTime::now();
        let began = Instant::now();
        let was_alive = alive.is_some();
        let ended = self.end(stage, alive).await;
        j.figure("shutdown_ms", ms(began.elapsed()));
        let seen = &ended.seen;
        if was_alive {
            if let Some(sub) = subscription(seen) {
                let t = types(sub);
                let expected: Vec<Key> = runs
                    .iter()
                    .enumerate()
                    .flat_map(|(i, (trace, tag))| {
                        let mut keys = expected_keys(trace, tag, t);
                        if i == 2 && t.function {
                            // The burst invocation's lines: "[Function] exttest <tag> <n>".
                            keys.retain(|k| !matches!(k, Key::Line(_)));
                            let at = keys.len().min(if t.platform { 1 } else { 0 });
                            let lines = (1..=2000)
                                .map(|n| Key::Line(format!("[Function] exttest {tag} {n}")));
                            keys.splice(at..at, lines);
                        }
                        keys
                    })
                    .collect();
                match check_sequence(&expected, seen) {
                    Ok(n) => j.ok(format!(
                        "all {n} events queued at shutdown delivered within the grace; the extension exited on SIGTERM"
                    )),
                    Err(e) => j.fail(format!("at shutdown: {e}")),
                }
            } else {
                j.fail("never subscribed to telemetry");
            }
            for exit in &ended.exits {
                match (exit.code, exit.at) {
                    (None, _) => j.fail(format!(
                        "{} did not exit on SIGTERM: killed by SIGKILL after the {} s grace (on the real platform, its last events and its own flush are lost)",
                        exit.name,
                        self.engine.config().shutdown_grace.as_secs()
                    )),
                    (Some(code), at) => {
                        if let Some(at) = at {
                            if let Ok(after) = at.duration_since(stop_began) {
                                j.figure(&format!("{}_exit_after_ms", exit.name), ms(after));
                            }
                        }
                        if code != 0 && code != 128 + 15 {
                            j.warn(format!(
                                "{} exited with code {code} at shutdown (0 is expected after SIGTERM{})",
                                exit.name,
                                if self.target.dialect == DialectName::Lambda { " / SHUTDOWN" } else { "" }
                            ));
                        }
                    }
                }
            }
        }
        notices(j, seen, self.target.dialect, false);
        batches(j, seen);
        figures(j, &ended);
        Ok(())
    }

    /// Diagnostic: ten ordinary invocations, then two probes straight to the telemetry
    /// listener (a record of an event type it cannot know, an empty batch); every answer
    /// summarised. Warns, never fails.
    async fn bad_answers(&self, j: &mut Judge) -> Result<(), ExtTestError> {
        let stage = self.stage("bad-answers", 3, Delays::default())?;
        let instance = self.start(j, &stage).await;
        let mut alive = instance.clone();
        let mut probes = Vec::new();
        if let Some(inst) = &instance {
            for i in 1..=10 {
                let outcome = invoke(inst, "ok", &format!("bad-answers-{i}"), None).await;
                if let InvokeResult::Fault(f) = &outcome.result {
                    alive = None;
                    j.warn(format!(
                        "invocation {i} failed ({}: {}); the listener was not probed",
                        f.error_type(),
                        f.message
                    ));
                    break;
                }
            }
            let listener = self.rec.with(|s| subscription(s).and_then(listener_of));
            if let (Some(addr), true) = (listener, alive.is_some()) {
                let unknown = match self.target.dialect {
                    DialectName::FunctionGraph => serde_json::json!([{
                        "name": "platform.exttestProbe",
                        "startTime": "2024-01-01T00:00:00.000Z",
                        "traceId": "exttest-probe"
                    }]),
                    DialectName::Lambda => serde_json::json!([{
                        "time": "2024-01-01T00:00:00.000Z",
                        "type": "platform.exttestProbe",
                        "record": {}
                    }]),
                };
                for (what, body) in [
                    (
                        "a batch with an event type it does not know",
                        unknown.to_string(),
                    ),
                    ("an empty batch", "[]".to_string()),
                ] {
                    probes.push((what, post(addr, body).await));
                }
            }
        }
        let probed_alive = alive.is_some();
        let ended = self.end(stage, alive).await;
        let seen = &ended.seen;
        let mut statuses: HashMap<String, usize> = HashMap::new();
        let mut slow = 0;
        for e in &seen.exchanges {
            let label = format!(
                "{} {}",
                match e.kind {
                    ExchangeKind::Push => "push",
                    ExchangeKind::Batch => "batch",
                },
                e.answered.describe()
            );
            *statuses.entry(label).or_default() += 1;
            if e.latency > SLOW_BATCH {
                slow += 1;
            }
        }
        let mut summary: Vec<String> = statuses
            .into_iter()
            .map(|(k, n)| format!("{k} ×{n}"))
            .collect();
        summary.sort();
        j.figure("answers", summary.join(", "));
        j.figure("slow_answers", slow);
        let bad: Vec<String> = seen
            .exchanges
            .iter()
            .filter(|e| !e.answered.ok())
            .map(|e| e.answered.describe())
            .collect();
        if !bad.is_empty() {
            j.warn(format!(
                "{} of {} requests to the listener were not answered 2xx (first: {}); the platform retries, then drops them",
                bad.len(),
                seen.exchanges.len(),
                bad[0]
            ));
        }
        if slow > 0 {
            j.warn(format!(
                "{slow} answer(s) took over {} ms; while a batch is held, new events queue behind it",
                SLOW_BATCH.as_millis()
            ));
        }
        for (what, got) in &probes {
            j.figure(
                if what.starts_with("an empty") {
                    "probe_empty_batch"
                } else {
                    "probe_unknown_type"
                },
                got.clone(),
            );
            if !got.starts_with("HTTP 2") {
                j.warn(format!(
                    "the listener answered {what} with {got}: real platforms add event types and may send small batches; accept and ignore what you do not know"
                ));
            }
        }
        if probes.is_empty() && probed_alive {
            j.warn("no telemetry listener to probe (never subscribed)");
        }
        if j.clean() {
            j.ok(format!(
                "every one of {} requests answered 2xx, none slow; probes accepted",
                seen.exchanges.len()
            ));
        }
        figures(j, &ended);
        Ok(())
    }
}

/// One invocation with the harness function's event.
async fn invoke(instance: &Instance, action: &str, tag: &str, lines: Option<u32>) -> InvokeOutcome {
    let mut event = serde_json::json!({"exttest": action, "tag": tag});
    if let Some(n) = lines {
        event["lines"] = n.into();
    }
    let req = InvokeRequest::sync(event.to_string());
    let id = req.request_id.clone();
    match instance.invoke(req).await {
        Ok(o) => o,
        Err(e) => InvokeOutcome {
            request_id: id,
            result: InvokeResult::Fault(fnbox_engine::Fault {
                kind: fnbox_engine::FaultKind::RuntimeExit,
                message: e.to_string(),
            }),
            error_type: None,
            metrics: fnbox_engine::telemetry::ReportMetrics::new(Duration::ZERO, 0, 128),
            log: Vec::new(),
        },
    }
}

/// Why an invocation timed out, when its notice was never answered.
fn notice_hint(rec: &Recorder, request_id: &str, dialect: DialectName) -> String {
    let unanswered = rec.with(|s| {
        s.notices
            .iter()
            .any(|n| n.request_id == request_id && n.answered_after.is_none())
    });
    if !unanswered {
        return String::new();
    }
    match dialect {
        DialectName::FunctionGraph => " — the extension never answered its invoke push (POST /extension/invoke): the invocation cannot end until every push is answered, so each one runs into its deadline; answer the push at once (200) and do slow work after".into(),
        DialectName::Lambda => " — the extension never asked for its next event (GET /2020-01-01/extension/event/next) after INVOKE: the invocation cannot end until it does".into(),
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

fn ms_f(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn read_exit(dir: &Path, name: &str) -> Exit {
    let text = std::fs::read_to_string(dir.join(format!("{name}.exit"))).unwrap_or_default();
    let mut parts = text.split_whitespace();
    let code = parts.next().and_then(|c| c.parse().ok());
    let at = parts
        .next()
        .and_then(|n| n.parse::<u64>().ok())
        .map(|ns| UNIX_EPOCH + Duration::from_nanos(ns));
    Exit {
        name: name.to_string(),
        code,
        at,
    }
}

/// Records of every batch the listener answered 2xx, in delivery order.
fn acked(seen: &Seen) -> impl Iterator<Item = &Rec> {
    seen.exchanges
        .iter()
        .filter(|e| e.kind == ExchangeKind::Batch && e.answered.ok())
        .flat_map(|e| e.records.iter())
}

/// The accepted telemetry subscription.
fn subscription(seen: &Seen) -> Option<&ApiCall> {
    seen.api
        .iter()
        .find(|c| c.path.ends_with("/telemetry") && (200..300).contains(&c.status))
}

fn registered_at(seen: &Seen) -> Option<Duration> {
    seen.api
        .iter()
        .filter(|c| c.path.ends_with("/extension/register") && c.status == 200)
        .map(|c| c.at)
        .max()
}

/// Which streams the extension subscribed to.
#[derive(Clone, Copy, Debug)]
struct Types {
    platform: bool,
    function: bool,
}

fn types(sub: &ApiCall) -> Types {
    let body = String::from_utf8_lossy(&sub.body);
    Types {
        platform: body.contains("\"platform\""),
        function: body.contains("\"function\""),
    }
}

/// The listener's address from the subscription body (`http://127.0.0.1:<port>` or Lambda's
/// `http://sandbox.localdomain:<port>`).
fn listener_of(sub: &ApiCall) -> Option<std::net::SocketAddr> {
    let body = String::from_utf8_lossy(&sub.body);
    let at = body.find("http://")? + "http://".len();
    let rest = &body[at..];
    let end = rest.find(['"', '/']).unwrap_or(rest.len());
    let port: u16 = rest[..end].rsplit(':').next()?.parse().ok()?;
    Some(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
}

/// POSTs a body straight to the listener; returns how it answered.
async fn post(addr: std::net::SocketAddr, body: String) -> String {
    use http_body_util::{BodyExt, Full};
    let attempt = async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connection refused ({e})"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Full<bytes::Bytes>>(
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .map_err(|e| format!("connection closed ({e})"))?;
        let driver = tokio::spawn(conn);
        let req = http::Request::post("/")
            .header(http::header::HOST, addr.to_string())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(bytes::Bytes::from(body)))
            .expect("valid probe request");
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("connection closed ({e})"))?;
        let status = resp.status().as_u16();
        let _ = resp.into_body().collect().await;
        driver.abort();
        Ok::<_, String>(format!("HTTP {status}"))
    };
    match tokio::time::timeout(Duration::from_secs(5), attempt).await {
        Ok(Ok(s)) | Ok(Err(s)) => s,
        Err(_) => "no answer within 5 s".into(),
    }
}

fn registration(j: &mut Judge, seen: &Seen, target: &Target) {
    for c in seen.api.iter().filter(|c| c.status >= 400) {
        j.fail(format!(
            "the instance API refused {} with HTTP {} (body sent: {})",
            c.path,
            c.status,
            String::from_utf8_lossy(&c.body)
                .chars()
                .take(200)
                .collect::<String>()
        ));
    }
    match registered_at(seen) {
        None => j.fail(format!(
            "{} never registered (POST {})",
            target.names(),
            match target.dialect {
                DialectName::FunctionGraph => "/extension/register",
                DialectName::Lambda => "/2020-01-01/extension/register",
            }
        )),
        Some(at) => {
            j.figure("registered_ms", ms(at));
            if at > SLOW_REGISTRATION {
                j.warn(format!(
                    "registration took {} ms: every cold start waits for it",
                    ms(at)
                ));
            }
        }
    }
    match subscription(seen) {
        None => j.fail("never subscribed to telemetry (no accepted subscription)"),
        Some(sub) => j.figure("subscribed_ms", ms(sub.at)),
    }
}

/// Invoke notices: all answered, how fast. `judge`: warn when slow (only where the machine is
/// otherwise quiet; under a burst the figures are kept but not judged).
fn notices(j: &mut Judge, seen: &Seen, dialect: DialectName, judge: bool) {
    if seen.notices.is_empty() {
        return;
    }
    let mut took: Vec<f64> = seen
        .notices
        .iter()
        .filter_map(|n| n.answered_after.map(ms))
        .collect();
    let unanswered = seen.notices.len() - took.len();
    j.figure("notices", seen.notices.len());
    j.figure("notices_unanswered", unanswered);
    if !took.is_empty() {
        took.sort_by(f64::total_cmp);
        j.figure("notice_p50_ms", pct(&took, 50.0));
        j.figure("notice_max_ms", pct(&took, 100.0));
        let p99 = pct(&took, 99.0);
        if judge && p99 > ms(SLOW_PUSH) {
            j.warn(format!(
                "{} took {p99} ms (p99) to be done with an invocation: it adds that much to every invocation's duration",
                match dialect {
                    DialectName::FunctionGraph => "answering the invoke push",
                    DialectName::Lambda => "asking for the next event",
                }
            ));
        }
    }
    // FunctionGraph: the listener's own answer time, as the proxy saw it.
    let mut pushes: Vec<f64> = seen
        .exchanges
        .iter()
        .filter(|e| e.kind == ExchangeKind::Push && e.answered.ok())
        .map(|e| ms(e.latency))
        .collect();
    if !pushes.is_empty() {
        pushes.sort_by(f64::total_cmp);
        j.figure("push_answer_p50_ms", pct(&pushes, 50.0));
        j.figure("push_answer_max_ms", pct(&pushes, 100.0));
    }
    let refused: Vec<_> = seen
        .exchanges
        .iter()
        .filter(|e| e.kind == ExchangeKind::Push && !e.answered.ok())
        .collect();
    if let Some(first) = refused.first() {
        j.warn(format!(
            "{} invoke push(es) not answered 2xx (first: {}); the platform logs it and moves on",
            refused.len(),
            first.answered.describe()
        ));
    }
}

/// Batches: all answered 2xx, latency.
fn batches(j: &mut Judge, seen: &Seen) {
    let batches: Vec<_> = seen
        .exchanges
        .iter()
        .filter(|e| e.kind == ExchangeKind::Batch)
        .collect();
    let mut lat: Vec<f64> = batches.iter().map(|b| ms(b.latency)).collect();
    lat.sort_by(f64::total_cmp);
    j.figure("batches", batches.len());
    j.figure(
        "batches_refused",
        batches.iter().filter(|b| !b.answered.ok()).count(),
    );
    j.figure("events_acknowledged", acked(seen).count());
    if !lat.is_empty() {
        j.figure("batch_p50_ms", pct(&lat, 50.0));
        j.figure("batch_p99_ms", pct(&lat, 99.0));
        j.figure("batch_max_ms", pct(&lat, 100.0));
    }
    let refused: Vec<_> = batches.iter().filter(|b| !b.answered.ok()).collect();
    if let Some(first) = refused.first() {
        j.fail(format!(
            "the listener refused {} of {} batches ({}): the platform retries a refused batch a few times, then drops it for good",
            refused.len(),
            batches.len(),
            first.answered.describe()
        ));
    } else if let Some(p99) = lat.last().filter(|_| pct(&lat, 99.0) > ms(SLOW_BATCH)) {
        j.warn(format!(
            "slow listener: batches took up to {p99} ms to be answered; while one is held, new events queue and overflow"
        ));
    }
}

/// What went wrong with batches, appended to reasons.
fn batch_trouble(seen: &Seen) -> String {
    let refused: Vec<_> = seen
        .exchanges
        .iter()
        .filter(|e| e.kind == ExchangeKind::Batch && !e.answered.ok())
        .collect();
    match refused.first() {
        Some(e) => format!(
            " (the listener answered {} batch(es) with {})",
            refused.len(),
            e.answered.describe()
        ),
        None if seen.exchanges.iter().all(|e| e.kind != ExchangeKind::Batch) => {
            " (no batch ever reached the listener)".into()
        }
        None => String::new(),
    }
}

fn figures(j: &mut Judge, ended: &Ended) {
    j.figure("ext_cpu_ms", ended.procs.cpu_ms);
    j.figure("ext_peak_rss_kib", ended.procs.peak_rss_kib);
    j.figure("ext_processes", ended.procs.processes);
    for exit in &ended.exits {
        j.figure(
            &format!("{}_exit", exit.name),
            match exit.code {
                Some(c) if c > 128 => format!("signal {}", c - 128),
                Some(c) => format!("code {c}"),
                None => "killed (SIGKILL)".into(),
            },
        );
    }
    if ended.seen.observe_lagged > 0 {
        j.figure("observe_lagged", ended.seen.observe_lagged);
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// What the exactly-once, in-order check compares.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Platform(&'static str, String),
    Line(String),
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Platform(k, t) => write!(f, "{k} of {t}"),
            Key::Line(l) => write!(f, "function line '{l}'"),
        }
    }
}

fn key_of(r: &Rec) -> Option<Key> {
    let platform = [kind::START, kind::RUNTIME_DONE, kind::REPORT]
        .into_iter()
        .find(|k| *k == r.kind);
    match (platform, &r.trace, &r.line) {
        (Some(k), Some(t), _) => Some(Key::Platform(k, t.clone())),
        (None, _, Some(l)) if r.kind == kind::FUNCTION => Some(Key::Line(l.trim_end().to_string())),
        _ => None,
    }
}

fn expected_keys(trace: &str, tag: &str, t: Types) -> Vec<Key> {
    let mut keys = Vec::new();
    if t.platform {
        keys.push(Key::Platform(kind::START, trace.to_string()));
    }
    if t.function {
        keys.push(Key::Line(format!("[Function] exttest {tag}")));
    }
    if t.platform {
        keys.push(Key::Platform(kind::RUNTIME_DONE, trace.to_string()));
        keys.push(Key::Platform(kind::REPORT, trace.to_string()));
    }
    keys
}

fn in_order(seen: &Seen, runs: &[(String, String)], t: Types) -> Result<usize, String> {
    let expected: Vec<Key> = runs
        .iter()
        .flat_map(|(trace, tag)| expected_keys(trace, tag, t))
        .collect();
    check_sequence(&expected, seen)
}

/// Every expected event acknowledged exactly once, in the expected order.
fn check_sequence(expected: &[Key], seen: &Seen) -> Result<usize, String> {
    let wanted: HashSet<&Key> = expected.iter().collect();
    let got: Vec<Key> = acked(seen)
        .filter_map(key_of)
        .filter(|k| wanted.contains(k))
        .collect();
    let mut counts: HashMap<&Key, usize> = HashMap::new();
    for k in &got {
        *counts.entry(k).or_default() += 1;
    }
    let dups: Vec<&&Key> = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(k, _)| k)
        .collect();
    if let Some(first) = dups.first() {
        return Err(format!(
            "{} event(s) acknowledged more than once (e.g. {first}): a batch was answered with an error after being processed, so the platform sent it again",
            dups.len()
        ));
    }
    let missing: Vec<&Key> = expected
        .iter()
        .filter(|k| !counts.contains_key(k))
        .collect();
    if let Some(first) = missing.first() {
        return Err(format!(
            "{} of {} events never acknowledged (first: {first}){}",
            missing.len(),
            expected.len(),
            batch_trouble(seen)
        ));
    }
    if let Some(i) = (0..expected.len()).find(|&i| expected[i] != got[i]) {
        return Err(format!(
            "events out of order: expected {} at position {i}, got {}",
            expected[i], got[i]
        ));
    }
    Ok(expected.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Answered, Exchange};

    fn rec(kind: &str, trace: Option<&str>, line: Option<&str>) -> Rec {
        Rec {
            kind: kind.into(),
            trace: trace.map(String::from),
            line: line.map(String::from),
            status: None,
            error_type: None,
            dropped: None,
        }
    }

    fn batch(records: Vec<Rec>, answered: Answered) -> Exchange {
        Exchange {
            kind: ExchangeKind::Batch,
            at: Duration::ZERO,
            latency: Duration::from_millis(1),
            answered,
            records,
            trace: None,
            done: true,
        }
    }

    const BOTH: Types = Types {
        platform: true,
        function: true,
    };

    #[test]
    fn the_sequence_check_finds_losses_duplicates_and_disorder() {
        let runs = vec![("t1".to_string(), "w-1".to_string())];
        let good = vec![
            rec(kind::START, Some("t1"), None),
            rec(kind::FUNCTION, None, Some("[Function] exttest w-1")),
            rec(kind::EXTENSION, None, Some("[Extension] noise")),
            rec(kind::RUNTIME_DONE, Some("t1"), None),
            rec(kind::REPORT, Some("t1"), None),
        ];
        let mut seen = Seen::default();
        seen.exchanges
            .push(batch(good.clone(), Answered::Status(200)));
        assert_eq!(in_order(&seen, &runs, BOTH), Ok(4));

        // The same batch refused: nothing counts as delivered.
        seen.exchanges[0].answered = Answered::Status(500);
        let err = in_order(&seen, &runs, BOTH).unwrap_err();
        assert!(err.contains("4 of 4 events never acknowledged"), "{err}");
        assert!(err.contains("HTTP 500"), "{err}");

        // Accepted twice.
        let mut seen = Seen::default();
        seen.exchanges
            .push(batch(good.clone(), Answered::Status(200)));
        seen.exchanges
            .push(batch(good[3..].to_vec(), Answered::Status(202)));
        let err = in_order(&seen, &runs, BOTH).unwrap_err();
        assert!(err.contains("more than once"), "{err}");

        // Out of order.
        let mut swapped = good.clone();
        swapped.swap(3, 4);
        let mut seen = Seen::default();
        seen.exchanges.push(batch(swapped, Answered::Status(200)));
        let err = in_order(&seen, &runs, BOTH).unwrap_err();
        assert!(err.contains("out of order"), "{err}");
    }

    #[test]
    fn subscription_bodies_give_types_and_the_listener() {
        let call = ApiCall {
            path: "/telemetry".into(),
            status: 200,
            at: Duration::ZERO,
            body: bytes::Bytes::from_static(
                br#"{"subscriber": {"protocol": "POST", "uri": "http://127.0.0.1:8082"}, "types": ["platform", "function", "extension"],}"#,
            ),
        };
        let t = types(&call);
        assert!(t.platform && t.function);
        assert_eq!(listener_of(&call), Some(([127, 0, 0, 1], 8082).into()));
        let lambda = ApiCall {
            body: bytes::Bytes::from_static(
                br#"{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:4243/t"}}"#,
            ),
            ..call
        };
        assert!(!types(&lambda).function);
        assert_eq!(listener_of(&lambda), Some(([127, 0, 0, 1], 4243).into()));
    }

    #[test]
    fn records_of_both_dialects_read_alike() {
        let fg = Rec::parse_batch(
            br#"[{"name":"platform.RuntimeDone","startTime":"x","traceId":"t","status":"timeout","errorType":"Sandbox.Timedout"},
                {"name":"function","startTime":"x","logs":"[Function] a"}]"#,
        )
        .unwrap();
        assert_eq!(fg[0].kind, kind::RUNTIME_DONE);
        assert_eq!(fg[0].status.as_deref(), Some("timeout"));
        assert_eq!(fg[1].line.as_deref(), Some("[Function] a"));
        let lambda = Rec::parse_batch(
            br#"[{"time":"x","type":"platform.runtimeDone","record":{"requestId":"t","status":"failure","errorType":"Runtime.ExitError"}},
                {"time":"x","type":"function","record":"[Function] a"}]"#,
        )
        .unwrap();
        assert_eq!(
            key_of(&lambda[0]),
            Some(Key::Platform(kind::RUNTIME_DONE, "t".into()))
        );
        assert_eq!(key_of(&lambda[1]), Some(Key::Line("[Function] a".into())));
        assert!(Scenario::parse("nope").unwrap_err().contains("cold-start"));
    }
}
