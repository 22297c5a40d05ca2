//! The live timeline behind `/ui` and `/api/*`: every instance, phase and invocation of the
//! served functions, joined from [`fnbox_engine::Engine::observe`] and kept for a bounded time.
//!
//! # Layout
//! - [`model`]: the state, pure (observations in; records, instances, counters out).
//! - [`raw`]: records encoded as the function's dialect delivers them to extensions.
//! - this file: [`Timeline`] (the model under a lock, the live stream, JSON views) and the one
//!   task that feeds it.
//!
//! # Design
//! One task, owned by the server, reads the engine's observation broadcast and applies each
//! observation to the model; the engine never waits for it (a task that falls behind loses the
//! oldest observations, counted in `lagged`). Live messages for the page are built only while
//! a page (an `/api/events` stream) is connected; without one, an observation costs a lock, a
//! few map updates and no encoding. While one is, changed records and instances are noted and
//! sent every [`FLUSH_EVERY`], each once however often it changed (an invocation's start,
//! runtimeDone and report become one message on a busy server). The live stream is a bounded
//! broadcast too: a page that falls behind gets a fresh snapshot instead of the messages it
//! missed. Messages are sent under the model's lock, and a new stream flushes what is pending,
//! subscribes and takes its snapshot under the same lock, so a page sees every change exactly
//! once after its snapshot.

pub mod model;
pub mod raw;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use fnbox_engine::telemetry::Event;
use fnbox_engine::Observed;
use serde_json::{json, Value};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::registry::Registry;
pub use model::TimelineConfig;
use model::{FunctionInfo, Model, Pod, Record};
use raw::RawEncoding;

/// Live messages kept for a page that falls behind (then it gets a fresh snapshot).
pub const LIVE_CAPACITY: usize = 4_096;
/// How often connected pages get per-function figures.
pub const STATS_EVERY: Duration = Duration::from_secs(1);
/// How often changes are sent to connected pages.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// Records in a snapshot, newest kept.
pub const SNAPSHOT_RECORDS: usize = 2_000;

/// One live message: its function (for `?function=`) and its JSON text.
#[derive(Debug)]
pub struct Live {
    /// Function it is about (`None`: every page gets it).
    pub function: Option<Arc<str>>,
    /// The JSON object.
    pub json: String,
}

/// Changes not yet sent to the pages.
#[derive(Default)]
struct Pending {
    /// Record id → index of its first event not sent yet.
    records: BTreeMap<u64, usize>,
    pods: BTreeSet<Arc<str>>,
}

/// What the lock guards.
struct Inner {
    model: Model,
    pending: Pending,
}

/// The timeline of one server.
pub struct Timeline {
    inner: Mutex<Inner>,
    encodings: HashMap<Arc<str>, RawEncoding>,
    live: broadcast::Sender<Arc<Live>>,
    lagged: AtomicU64,
    /// Cancelled when the server starts shutting down: live streams end so the HTTP drain
    /// does not wait for them.
    streams: CancellationToken,
    /// Cancelled when the server stops: the feeding task ends.
    cancel: CancellationToken,
    tracker: TaskTracker,
}

fn ms(t: DateTime<Utc>) -> f64 {
    t.timestamp_micros() as f64 / 1000.0
}

impl Timeline {
    /// A timeline over `registry`'s functions.
    pub fn new(config: TimelineConfig, registry: &Registry) -> Arc<Self> {
        let mut functions = HashMap::new();
        let mut encodings = HashMap::new();
        for s in registry.iter() {
            let name: Arc<str> = s.name().into();
            let package = s.function().package();
            functions.insert(
                name.clone(),
                FunctionInfo {
                    memory_size_mb: package.config.memory_size,
                },
            );
            encodings.insert(name, RawEncoding::of(package));
        }
        Arc::new(Self {
            inner: Mutex::new(Inner {
                model: Model::new(config, functions),
                pending: Pending::default(),
            }),
            encodings,
            live: broadcast::channel(LIVE_CAPACITY).0,
            lagged: AtomicU64::new(0),
            streams: CancellationToken::new(),
            cancel: CancellationToken::new(),
            tracker: TaskTracker::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the task that feeds the timeline from `observations` (subscribe before the
    /// pools start, so reserved instances' cold starts are seen); it ends at [`Timeline::stop`].
    pub fn spawn(
        self: &Arc<Self>,
        observations: broadcast::Receiver<Arc<Observed>>,
        registry: Arc<Registry>,
    ) {
        let me = self.clone();
        // Paced: a busy engine does not wake the timeline for every observation (an
        // observation's time is its own; only state changes are stamped on arrival, ≤ 2 ms late).
        let mut observations =
            fnbox_engine::observe::Paced::new(observations, fnbox_engine::observe::PACE);
        self.tracker.spawn(async move {
            let mut tick = tokio::time::interval(STATS_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut flush = tokio::time::interval(FLUSH_EVERY);
            flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = me.cancel.cancelled() => break,
                    o = observations.recv() => match o {
                        Ok(o) => me.observe(&o, Utc::now()),
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            me.lagged.fetch_add(n, Ordering::Relaxed);
                            tracing::warn!(missed = n, "timeline fell behind the engine");
                        }
                        Err(broadcast::error::RecvError::Closed) => break,
                    },
                    _ = tick.tick() => me.tick(&registry, Utc::now()),
                    _ = flush.tick() => me.flush(&mut me.lock()),
                }
            }
        });
    }

    /// Ends live streams (the server is shutting down).
    pub fn close_streams(&self) {
        self.streams.cancel();
    }

    /// A token cancelled when live streams must end.
    pub fn streams_closed(&self) -> CancellationToken {
        self.streams.clone()
    }

    /// Stops the feeding task and waits for it.
    pub async fn stop(&self) {
        self.streams.cancel();
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// Applies one observation (and notes the change for connected pages).
    pub fn observe(&self, o: &Observed, now: DateTime<Utc>) {
        let mut g = self.lock();
        let touched = g.model.apply(o, now);
        if self.live.receiver_count() == 0 {
            return;
        }
        if let Some((id, before)) = touched.record {
            g.pending.records.entry(id).or_insert(before);
        }
        if let Some(pod) = touched.pod {
            g.pending.pods.insert(pod);
        }
    }

    /// Sends the pending changes to the connected pages.
    fn flush(&self, g: &mut Inner) {
        let pending = std::mem::take(&mut g.pending);
        if self.live.receiver_count() == 0 {
            return;
        }
        for (id, from) in pending.records {
            if let Some(r) = g.model.record(id) {
                let mut v = self.record_json(r, Some(from));
                v["type"] = "record".into();
                self.send(Some(r.function.clone()), v);
            }
        }
        for pod in pending.pods.iter().filter_map(|p| g.model.pod(p)) {
            let mut v = pod_json(pod);
            v["type"] = "instance".into();
            self.send(Some(pod.function.clone()), v);
        }
    }

    fn send(&self, function: Option<Arc<str>>, v: Value) {
        let _ = self.live.send(Arc::new(Live {
            function,
            json: v.to_string(),
        }));
    }

    fn tick(&self, registry: &Registry, now: DateTime<Utc>) {
        let mut g = self.lock();
        self.flush(&mut g);
        g.model.prune(now);
        if self.live.receiver_count() == 0 {
            return;
        }
        for f in self.stats_json(&g.model, registry, now) {
            let function: Arc<str> = f["function"].as_str().unwrap_or_default().into();
            let mut v = f;
            v["type"] = "stats".into();
            v["now_ms"] = ms(now).into();
            self.send(Some(function), v);
        }
    }

    /// A live stream's start: its snapshot (as one JSON message) and its receiver, taken
    /// together so nothing is missed or seen twice.
    pub fn subscribe(
        &self,
        registry: &Registry,
        function: Option<&str>,
    ) -> (String, broadcast::Receiver<Arc<Live>>) {
        let mut g = self.lock();
        // What earlier streams have not been sent yet is in this one's snapshot.
        self.flush(&mut g);
        let rx = self.live.subscribe();
        let m = &g.model;
        let now = Utc::now();
        let keep = |f: &str| function.is_none_or(|want| want == f);
        let mut records: Vec<Value> = m
            .records()
            .rev()
            .filter(|r| keep(&r.function))
            .take(SNAPSHOT_RECORDS)
            .map(|r| self.record_json(r, None))
            .collect();
        records.reverse();
        let snapshot = json!({
            "type": "snapshot",
            "now_ms": ms(now),
            "window_s": m.config().window.as_secs_f64(),
            "max_invocations": m.config().max_invocations,
            "functions": self.functions_json(registry, function),
            "instances": m.pods().filter(|p| keep(&p.function)).map(pod_json).collect::<Vec<_>>(),
            "records": records,
            "stats": self.stats_json(m, registry, now).into_iter()
                .filter(|s| keep(s["function"].as_str().unwrap_or_default())).collect::<Vec<_>>(),
        });
        (snapshot.to_string(), rx)
    }

    /// `GET /api/invocations`: newest first.
    pub fn invocations(
        &self,
        function: Option<&str>,
        status: Option<&str>,
        phase: Option<&str>,
        limit: usize,
    ) -> Value {
        let g = self.lock();
        let list: Vec<Value> = g
            .model
            .records()
            .rev()
            .filter(|r| function.is_none_or(|f| *r.function == *f))
            .filter(|r| status.is_none_or(|s| r.matches_status(s)))
            .filter(|r| phase.is_none_or(|p| model::phase_name(r.phase) == p))
            .take(limit)
            .map(|r| self.record_json(r, None))
            .collect();
        Value::Array(list)
    }

    /// `GET /api/instances`: the timeline's instances (alive and recently dead) with the
    /// pools' live figures (telemetry subscribers, reserved) for the alive ones.
    pub fn instances(&self, registry: &Registry, function: Option<&str>) -> Value {
        let live: HashMap<String, fnbox_engine::InstanceInfo> = registry
            .iter()
            .filter(|s| function.is_none_or(|f| s.name() == f))
            .flat_map(|s| s.pool().instances())
            .map(|i| (i.pod_name.clone(), i))
            .collect();
        let g = self.lock();
        let mut pods: Vec<&Pod> = g
            .model
            .pods()
            .filter(|p| function.is_none_or(|f| *p.function == *f))
            .collect();
        pods.sort_by(|a, b| a.born.cmp(&b.born).then(a.name.cmp(&b.name)));
        Value::Array(
            pods.into_iter()
                .map(|p| {
                    let mut v = pod_json(p);
                    if let Some(i) = live.get(&*p.name) {
                        v["reserved"] = i.reserved.into();
                        v["in_flight"] = i.in_flight.into();
                        v["telemetry"] = serde_json::to_value(&i.telemetry).unwrap_or_default();
                    }
                    v
                })
                .collect(),
        )
    }

    /// Per-function figures (`GET /api/stats` and the live stream).
    pub fn stats(&self, registry: &Registry, function: Option<&str>) -> Value {
        let g = self.lock();
        Value::Array(
            self.stats_json(&g.model, registry, Utc::now())
                .into_iter()
                .filter(|s| function.is_none_or(|f| s["function"] == f))
                .collect(),
        )
    }

    /// Observations the timeline missed because it fell behind the engine.
    pub fn lagged(&self) -> u64 {
        self.lagged.load(Ordering::Relaxed)
    }

    fn functions_json(&self, registry: &Registry, function: Option<&str>) -> Vec<Value> {
        registry
            .iter()
            .filter(|s| function.is_none_or(|f| s.name() == f))
            .map(|s| serde_json::to_value(s.listing()).unwrap_or_default())
            .collect()
    }

    fn stats_json(&self, m: &Model, registry: &Registry, now: DateTime<Utc>) -> Vec<Value> {
        let lagged = self.lagged();
        m.stats(now)
            .into_iter()
            .map(|s| {
                // Live delivery counters of every subscriber of the function's instances.
                let telemetry: Vec<Value> = registry
                    .get(&s.function)
                    .map(|served| {
                        served
                            .pool()
                            .instances()
                            .into_iter()
                            .flat_map(|i| {
                                let pod = i.pod_name;
                                i.telemetry.into_iter().map(move |t| {
                                    json!({"pod": pod, "uri": t.uri,
                                           "delivered": t.delivered_records,
                                           "dropped": t.dropped_records,
                                           "failed_posts": t.failed_posts})
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                json!({
                    "function": &*s.function,
                    "per_second": s.per_second,
                    "p50_ms": s.p50_ms,
                    "p99_ms": s.p99_ms,
                    "invocations": s.counters.invocations,
                    "errors": s.counters.errors,
                    "cold_starts": s.counters.cold_starts,
                    "refusals": s.counters.refusals,
                    "telemetry": telemetry,
                    "lagged": lagged,
                })
            })
            .collect()
    }

    /// A record as JSON; with `from`, only the lines and raw events from that index on (a
    /// live update), else all of them.
    fn record_json(&self, r: &Record, from: Option<usize>) -> Value {
        let start = from.unwrap_or(0);
        let lines: Vec<Value> = r
            .events
            .iter()
            .skip(start)
            .filter_map(|e| match &**e {
                Event::Function { time, line } => Some(json!({
                    "time_ms": ms(*time), "stream": "function", "line": line})),
                Event::Extension { time, name, line } => Some(json!({
                    "time_ms": ms(*time), "stream": "extension", "name": name, "line": line})),
                _ => None,
            })
            .collect();
        let raw = self
            .encodings
            .get(&r.function)
            .map(|enc| enc.encode(r, start))
            .unwrap_or_default();
        let m = r.metrics;
        let mut v = json!({
            "id": r.id,
            "function": &*r.function,
            "pod": &*r.pod,
            "phase": model::phase_name(r.phase),
            "request_id": r.request_id,
            "start_ms": ms(r.start),
            "runtime_done_ms": r.runtime_done.map(ms),
            "end_ms": r.end.map(ms),
            "status": r.status.map(|s| s.as_str()),
            "error_type": r.error_type,
            "outcome": r.outcome(),
            "duration_ms": m.map(|m| m.duration_ms),
            "billed_duration_ms": m.map(|m| m.billed_duration_ms),
            "memory_used_mb": m.map(|m| m.memory_used_mb),
            "memory_size_mb": m.map(|m| m.memory_size_mb),
            "events_dropped": r.events_dropped,
        });
        let (lk, rk) = if from.is_some() {
            ("add_lines", "add_raw")
        } else {
            ("lines", "raw")
        };
        v[lk] = lines.into();
        v[rk] = raw.into();
        v
    }
}

fn pod_json(p: &Pod) -> Value {
    json!({
        "function": &*p.function,
        "pod": &*p.name,
        "state": p.state.name(),
        "since_ms": ms(p.since),
        "born_ms": ms(p.born),
        "shutdown_ms": p.shutdown.map(ms),
        "died_ms": p.died.map(ms),
        "memory_size_mb": p.memory_size_mb,
        "memory_used_mb": p.memory_used_mb,
        "invocations": p.invocations,
    })
}
