//! The timeline's state, pure: observations in, phases (records), instances and counters out.
//! No clock of its own (the caller passes `now`), no I/O, so every rule is unit-tested.
//!
//! # Joining events into records
//! A record is one phase of one instance: `*Start` opens it, `*RuntimeDone` sets its status,
//! `*Report` closes it with its metrics (a report whose start was never seen makes a whole
//! record of its own). `[Function]` / `[Extension]` lines and the other instance events belong
//! to the instance's newest open record, or, when none is open, to its last closed one (an
//! extension often prints after the report, when its telemetry batch arrives). Lines carry no
//! request id, so with `concurrent_num` > 1 a line may land on a neighbour invocation.
//!
//! # Bounds
//! Records older than the window (by their end, or their start while open) and records beyond
//! the count limit are dropped oldest first; each record keeps at most [`MAX_EVENTS`] events
//! (the rest are counted), and all records together at most [`MAX_TOTAL_EVENTS`] (the oldest
//! records go first); dead instances leave with the window, and at most [`MAX_DEAD`] are
//! kept.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use fnbox_engine::lifecycle::State;
use fnbox_engine::telemetry::{Event, Phase, ReportMetrics, Status};
use fnbox_engine::{Observation, Observed};

/// Events kept per record (platform events and lines); more are counted, not kept.
pub const MAX_EVENTS: usize = 200;
/// Events kept in all (about 50 MB of lines at most); beyond it the oldest records go.
pub const MAX_TOTAL_EVENTS: usize = 200_000;
/// Dead instances kept at most (oldest leave first).
pub const MAX_DEAD: usize = 2_000;
/// Stretch over which `p50` / `p99` are computed.
pub const PERCENTILE_WINDOW: Duration = Duration::from_secs(60);
/// Stretch over which invocations per second are computed.
pub const RATE_WINDOW: Duration = Duration::from_secs(10);

/// How much history the timeline keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimelineConfig {
    /// Records older than this are dropped.
    pub window: Duration,
    /// At most this many records (init, restore and invoke phases) are kept.
    pub max_invocations: usize,
}

/// Defaults: the last 10 minutes, at most 10,000 records.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(600);
/// See [`DEFAULT_WINDOW`].
pub const DEFAULT_MAX_INVOCATIONS: usize = 10_000;
/// Largest `--ui-max-invocations`.
pub const MAX_MAX_INVOCATIONS: usize = 1_000_000;

impl Default for TimelineConfig {
    fn default() -> Self {
        Self {
            window: DEFAULT_WINDOW,
            max_invocations: DEFAULT_MAX_INVOCATIONS,
        }
    }
}

impl TimelineConfig {
    /// Checks the ranges; the message names the flag.
    pub fn validate(&self) -> Result<(), String> {
        if self.window.is_zero() || self.window > Duration::from_secs(86_400) {
            return Err(format!(
                "--ui-history {:?} is out of range (more than 0, at most 24h)",
                self.window
            ));
        }
        if self.max_invocations == 0 || self.max_invocations > MAX_MAX_INVOCATIONS {
            return Err(format!(
                "--ui-max-invocations {} is out of range (1..={MAX_MAX_INVOCATIONS})",
                self.max_invocations
            ));
        }
        Ok(())
    }
}

/// How a phase ended, as the page colours it: `status` refined by `errorType`.
pub fn outcome(status: Option<Status>, error_type: Option<&str>) -> &'static str {
    match status {
        None => "running",
        Some(Status::Success) => "success",
        Some(Status::Error) => "error",
        Some(Status::Timeout) => "timeout",
        Some(Status::Failure) if error_type == Some("Runtime.OutOfMemory") => "oom",
        Some(Status::Failure) => "crash",
    }
}

/// Every value `?status=` accepts.
pub const STATUS_FILTERS: [&str; 7] = [
    "success", "error", "timeout", "oom", "crash", "failure", "running",
];

/// Lower-case phase name.
pub fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Init => "init",
        Phase::Invoke => "invoke",
        Phase::Restore => "restore",
    }
}

fn phase_key(p: Phase) -> u8 {
    match p {
        Phase::Init => 0,
        Phase::Invoke => 1,
        Phase::Restore => 2,
    }
}

/// One phase of one instance.
#[derive(Clone, Debug)]
pub struct Record {
    /// Increasing per timeline.
    pub id: u64,
    /// Function name.
    pub function: Arc<str>,
    /// Instance.
    pub pod: Arc<str>,
    /// Init, invoke or restore.
    pub phase: Phase,
    /// Request id (for init, the request that caused the cold start).
    pub request_id: String,
    /// `*Start`.
    pub start: DateTime<Utc>,
    /// `*RuntimeDone`.
    pub runtime_done: Option<DateTime<Utc>>,
    /// `*Report`'s end.
    pub end: Option<DateTime<Utc>>,
    /// Status, from `*RuntimeDone`, then `*Report`.
    pub status: Option<Status>,
    /// `errorType`.
    pub error_type: Option<String>,
    /// The report's figures.
    pub metrics: Option<ReportMetrics>,
    /// The typed events of this record, in order (at most [`MAX_EVENTS`]).
    pub events: Vec<Arc<Event>>,
    /// Events not kept.
    pub events_dropped: u32,
    /// An event to encode before this record's own (the instance's init report, for the
    /// first invocation of a Lambda instance: its report carries `initDurationMs`).
    pub prime: Option<Arc<Event>>,
}

impl Record {
    /// See [`outcome`].
    pub fn outcome(&self) -> &'static str {
        outcome(self.status, self.error_type.as_deref())
    }

    /// Whether `?status=` value `filter` selects this record.
    pub fn matches_status(&self, filter: &str) -> bool {
        match filter {
            "failure" => self.status == Some(Status::Failure),
            "running" => self.end.is_none(),
            f => self.outcome() == f,
        }
    }

    fn last_time(&self) -> DateTime<Utc> {
        self.end.unwrap_or(self.start)
    }

    /// Keeps `e` unless the record is full; whether it was kept.
    fn push(&mut self, e: Arc<Event>) -> bool {
        if self.events.len() < MAX_EVENTS {
            self.events.push(e);
            true
        } else {
            self.events_dropped += 1;
            false
        }
    }
}

/// One instance as the timeline knows it.
#[derive(Clone, Debug)]
pub struct Pod {
    /// Function name.
    pub function: Arc<str>,
    /// `podName`.
    pub name: Arc<str>,
    /// Last lifecycle state seen.
    pub state: State,
    /// When it entered that state.
    pub since: DateTime<Utc>,
    /// First seen.
    pub born: DateTime<Utc>,
    /// Shutdown began.
    pub shutdown: Option<DateTime<Utc>>,
    /// Gone.
    pub died: Option<DateTime<Utc>>,
    /// `memory_size`, MB.
    pub memory_size_mb: u32,
    /// Peak of the last report, MB.
    pub memory_used_mb: Option<f64>,
    /// Invocations reported.
    pub invocations: u64,
    /// Ids of its open records, oldest first.
    open: Vec<u64>,
    /// Its last closed record.
    last: Option<u64>,
    /// Its init report (see [`Record::prime`]), until its first invocation takes it.
    init_report: Option<Arc<Event>>,
}

/// Totals of one function since the server started (not subject to the window).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Invocations reported.
    pub invocations: u64,
    /// Invocations that did not succeed.
    pub errors: u64,
    /// Instances started (`initStart`).
    pub cold_starts: u64,
    /// Invocations refused because every instance was busy.
    pub refusals: u64,
}

/// What one observation changed, for the live stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Touched {
    /// A record and how many of its events were there before.
    pub record: Option<(u64, usize)>,
    /// An instance.
    pub pod: Option<Arc<str>>,
    /// A function's counters.
    pub counters: Option<Arc<str>>,
}

/// What the timeline knows about a served function.
#[derive(Clone, Debug)]
pub struct FunctionInfo {
    /// `memory_size`, MB.
    pub memory_size_mb: u32,
}

/// The whole state.
pub struct Model {
    config: TimelineConfig,
    functions: HashMap<Arc<str>, FunctionInfo>,
    next_id: u64,
    records: VecDeque<Record>,
    open: HashMap<(Arc<str>, String, u8), u64>,
    pods: HashMap<Arc<str>, Pod>,
    counters: HashMap<Arc<str>, Counters>,
    /// Events kept in all records.
    total_events: usize,
    /// Observations the timeline missed because it fell behind.
    pub lagged: u64,
}

impl Model {
    /// An empty timeline over the served functions.
    pub fn new(config: TimelineConfig, functions: HashMap<Arc<str>, FunctionInfo>) -> Self {
        let counters = functions
            .keys()
            .map(|f| (f.clone(), Counters::default()))
            .collect();
        Self {
            config,
            functions,
            next_id: 1,
            records: VecDeque::new(),
            open: HashMap::new(),
            pods: HashMap::new(),
            counters,
            total_events: 0,
            lagged: 0,
        }
    }

    /// Settings.
    pub fn config(&self) -> &TimelineConfig {
        &self.config
    }

    /// Records, oldest first.
    pub fn records(&self) -> impl DoubleEndedIterator<Item = &Record> {
        self.records.iter()
    }

    /// One record.
    pub fn record(&self, id: u64) -> Option<&Record> {
        // Ids increase along the deque.
        let i = self.records.binary_search_by_key(&id, |r| r.id).ok()?;
        self.records.get(i)
    }

    fn record_mut(&mut self, id: u64) -> Option<&mut Record> {
        let i = self.records.binary_search_by_key(&id, |r| r.id).ok()?;
        self.records.get_mut(i)
    }

    /// Instances, alive and recently dead.
    pub fn pods(&self) -> impl Iterator<Item = &Pod> {
        self.pods.values()
    }

    /// One instance.
    pub fn pod(&self, name: &str) -> Option<&Pod> {
        self.pods.get(name)
    }

    /// Totals per function.
    pub fn counters(&self) -> impl Iterator<Item = (&Arc<str>, &Counters)> {
        self.counters.iter()
    }

    fn pod_entry(&mut self, function: &Arc<str>, pod: &Arc<str>, now: DateTime<Utc>) -> &mut Pod {
        let memory_size_mb = self
            .functions
            .get(function)
            .map(|f| f.memory_size_mb)
            .unwrap_or(0);
        self.pods.entry(pod.clone()).or_insert_with(|| Pod {
            function: function.clone(),
            name: pod.clone(),
            state: State::Initializing,
            since: now,
            born: now,
            shutdown: None,
            died: None,
            memory_size_mb,
            memory_used_mb: None,
            invocations: 0,
            open: Vec::new(),
            last: None,
            init_report: None,
        })
    }

    /// Applies one observation seen at `now`.
    pub fn apply(&mut self, o: &Observed, now: DateTime<Utc>) -> Touched {
        let mut t = Touched::default();
        match &o.what {
            Observation::Refused => {
                self.counters
                    .entry(o.function.clone())
                    .or_default()
                    .refusals += 1;
                t.counters = Some(o.function.clone());
            }
            Observation::State(state) => {
                let pod = self.pod_entry(&o.function, &o.pod_name, now);
                pod.state = *state;
                pod.since = now;
                match state {
                    State::ShuttingDown => pod.shutdown = Some(now),
                    State::Dead => pod.died = Some(now),
                    _ => {}
                }
                t.pod = Some(o.pod_name.clone());
            }
            Observation::Telemetry(event) => self.telemetry(o, event, now, &mut t),
        }
        self.prune(now);
        t
    }

    fn telemetry(&mut self, o: &Observed, event: &Arc<Event>, now: DateTime<Utc>, t: &mut Touched) {
        match &**event {
            Event::Start {
                phase,
                time,
                trace_id,
                ..
            } => {
                let id = self.open_record(o, *phase, trace_id, *time, now);
                if let Some(r) = self.record_mut(id) {
                    t.record = Some((id, r.events.len()));
                    if r.push(event.clone()) {
                        self.total_events += 1;
                    }
                }
                if *phase == Phase::Init {
                    self.counters
                        .entry(o.function.clone())
                        .or_default()
                        .cold_starts += 1;
                    t.counters = Some(o.function.clone());
                }
            }
            Event::RuntimeDone {
                phase,
                time,
                trace_id,
                status,
                error_type,
                ..
            } => {
                let key = (o.pod_name.clone(), trace_id.clone(), phase_key(*phase));
                let id = match self.open.get(&key) {
                    Some(&id) => id,
                    None => self.open_record(o, *phase, trace_id, *time, now),
                };
                if let Some(r) = self.record_mut(id) {
                    t.record = Some((id, r.events.len()));
                    r.runtime_done = Some(*time);
                    r.status = Some(*status);
                    r.error_type = error_type.clone();
                    if r.push(event.clone()) {
                        self.total_events += 1;
                    }
                }
            }
            Event::Report {
                phase,
                start,
                end,
                trace_id,
                status,
                error_type,
                metrics,
                ..
            } => {
                let key = (o.pod_name.clone(), trace_id.clone(), phase_key(*phase));
                let id = match self.open.get(&key) {
                    Some(&id) => id,
                    None => self.open_record(o, *phase, trace_id, *start, now),
                };
                self.open.remove(&key);
                if let Some(r) = self.record_mut(id) {
                    t.record = Some((id, r.events.len()));
                    r.end = Some(*end);
                    r.status = Some(*status);
                    r.error_type = error_type.clone();
                    r.metrics = Some(*metrics);
                    if r.push(event.clone()) {
                        self.total_events += 1;
                    }
                }
                let pod = self.pod_entry(&o.function, &o.pod_name, now);
                pod.open.retain(|&x| x != id);
                pod.last = Some(id);
                pod.memory_used_mb = Some(metrics.memory_used_mb);
                if *phase == Phase::Init {
                    pod.init_report = Some(event.clone());
                }
                if *phase == Phase::Invoke {
                    pod.invocations += 1;
                    let c = self.counters.entry(o.function.clone()).or_default();
                    c.invocations += 1;
                    if *status != Status::Success {
                        c.errors += 1;
                    }
                    t.counters = Some(o.function.clone());
                }
                t.pod = Some(o.pod_name.clone());
            }
            // Lines and the other instance events: the newest open record, else the last one.
            _ => {
                let Some(pod) = self.pods.get(&o.pod_name) else {
                    return;
                };
                let Some(id) = pod.open.last().copied().or(pod.last) else {
                    return;
                };
                if let Some(r) = self.record_mut(id) {
                    t.record = Some((id, r.events.len()));
                    if r.push(event.clone()) {
                        self.total_events += 1;
                    }
                }
            }
        }
    }

    fn open_record(
        &mut self,
        o: &Observed,
        phase: Phase,
        trace_id: &str,
        start: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let pod = self.pod_entry(&o.function, &o.pod_name, now);
        pod.open.push(id);
        let prime = if phase == Phase::Invoke {
            pod.init_report.take()
        } else {
            None
        };
        self.open.insert(
            (o.pod_name.clone(), trace_id.to_string(), phase_key(phase)),
            id,
        );
        self.records.push_back(Record {
            id,
            function: o.function.clone(),
            pod: o.pod_name.clone(),
            phase,
            request_id: trace_id.to_string(),
            start,
            runtime_done: None,
            end: None,
            status: None,
            error_type: None,
            metrics: None,
            events: Vec::new(),
            events_dropped: 0,
            prime,
        });
        id
    }

    /// Drops what the window and the limits no longer keep.
    pub fn prune(&mut self, now: DateTime<Utc>) {
        let window =
            chrono::Duration::from_std(self.config.window).unwrap_or(chrono::Duration::MAX);
        let horizon = now - window;
        while let Some(front) = self.records.front() {
            if self.records.len() <= self.config.max_invocations
                && self.total_events <= MAX_TOTAL_EVENTS
                && front.last_time() >= horizon
            {
                break;
            }
            let r = self.records.pop_front().expect("front exists");
            self.total_events -= r.events.len();
            if r.end.is_none() {
                self.open
                    .remove(&(r.pod.clone(), r.request_id.clone(), phase_key(r.phase)));
            }
            if let Some(pod) = self.pods.get_mut(&r.pod) {
                pod.open.retain(|&x| x != r.id);
                if pod.last == Some(r.id) {
                    pod.last = None;
                }
            }
        }
        let dead = self.pods.values().filter(|p| p.died.is_some()).count();
        if dead == 0 {
            return;
        }
        let mut gone: Vec<(DateTime<Utc>, Arc<str>)> = self
            .pods
            .values()
            .filter_map(|p| p.died.map(|d| (d, p.name.clone())))
            .collect();
        gone.sort();
        let excess = dead.saturating_sub(MAX_DEAD);
        for (i, (died, name)) in gone.into_iter().enumerate() {
            if i < excess || died < horizon {
                self.pods.remove(&name);
            } else {
                break;
            }
        }
    }

    /// Per-function figures at `now`.
    pub fn stats(&self, now: DateTime<Utc>) -> Vec<FunctionStats> {
        let rate_from = now - chrono::Duration::from_std(RATE_WINDOW).expect("small");
        let pct_from = now - chrono::Duration::from_std(PERCENTILE_WINDOW).expect("small");
        let mut per: HashMap<&Arc<str>, (u64, Vec<f64>)> = HashMap::new();
        for r in self.records.iter().rev() {
            let (Some(end), Some(m)) = (r.end, r.metrics) else {
                continue;
            };
            if r.phase != Phase::Invoke {
                continue;
            }
            if r.start < pct_from && end < pct_from {
                // Records are in start order: an older start with an end inside the
                // window is still possible, so only stop on ends.
                continue;
            }
            let e = per.entry(&r.function).or_default();
            if end >= rate_from {
                e.0 += 1;
            }
            if end >= pct_from {
                e.1.push(m.duration_ms);
            }
        }
        let mut out: Vec<FunctionStats> = self
            .counters
            .iter()
            .map(|(f, c)| {
                let (recent, mut durations) = per.remove(f).unwrap_or_default();
                durations.sort_by(f64::total_cmp);
                FunctionStats {
                    function: f.clone(),
                    per_second: recent as f64 / RATE_WINDOW.as_secs_f64(),
                    p50_ms: percentile(&durations, 0.50),
                    p99_ms: percentile(&durations, 0.99),
                    counters: c.clone(),
                }
            })
            .collect();
        out.sort_by(|a, b| a.function.cmp(&b.function));
        out
    }
}

/// Figures of one function.
#[derive(Clone, Debug, PartialEq)]
pub struct FunctionStats {
    /// Name.
    pub function: Arc<str>,
    /// Invocations reported per second over [`RATE_WINDOW`].
    pub per_second: f64,
    /// Median duration over [`PERCENTILE_WINDOW`].
    pub p50_ms: Option<f64>,
    /// 99th percentile over [`PERCENTILE_WINDOW`].
    pub p99_ms: Option<f64>,
    /// Totals.
    pub counters: Counters,
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests;
