//! The instance pool of one function (CONTRACT §1, §3, §6): reuse an instance with a free
//! slot, or cold-start one up to `max_instances`; when every slot is taken, wait a bounded time
//! and then refuse (FunctionGraph's FSS.0429). Reserved instances start with the pool and are
//! never reclaimed; on-demand ones are reclaimed after `idle_timeout`. A faulted instance is
//! dropped from the pool and replaced on demand (reserved ones at once).
//!
//! # Design
//! - The pool's lock is a `std::sync::Mutex` held only to pick or add an instance — never
//!   across an await, an init or an invocation — so one slow function never delays another.
//!   Picking an instance takes its concurrency slot under that lock ([`Pooled::try_begin`]), so
//!   two callers never race for the last slot.
//! - Nothing polls: waiters for a slot and [`Pool::shutdown`] wait on a [`Notify`] that
//!   every release, cold start and removal signals. The reclaimer sleeps until the earliest
//!   idle deadline, so an instance is reclaimed at `idle_timeout`, not at the next tick; a
//!   release wakes it only when it had no deadline to sleep to (an invocation never pays for a
//!   reclaimer wake-up otherwise). Pools with reserved instances also check every
//!   [`PoolConfig::reserved_check`] that none was lost while idle.
//! - Every clock is tokio's, and the pool is generic over what it pools ([`Factory`] /
//!   [`Pooled`]), so its behaviour is tested under paused time with fake instances
//!   (`tests/pool_paused.rs`) as well as end to end with real ones.
//! - An invocation runs in its own task on the engine's tracker ([`Pool::submit`]): a caller
//!   that goes away never cancels it half-way (the instance would be left busy, a cold start
//!   half-counted), and the caller gets its [`Answer`] as soon as the runtime answered while the
//!   task finishes the invocation (extensions, report).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::engine::Function;
use crate::instance::{InitError, Instance};
use crate::invocation::{Answer, AnswerTx, Invocation, InvokeOutcome, InvokeRequest};
use crate::lifecycle::State;

/// What a pool needs of an instance.
pub trait Pooled: Send + Sync + 'static {
    /// Lifecycle state now.
    fn state(&self) -> State;
    /// Takes one concurrency slot if one is free (called under the pool's lock).
    fn try_begin(&self) -> bool;
    /// Whether a slot is free now.
    fn can_accept(&self) -> bool;
    /// Runs an invocation whose slot was taken with [`Pooled::try_begin`]; calls `answer` once,
    /// as soon as the caller's answer is known.
    fn run_begun(
        &self,
        req: InvokeRequest,
        answer: AnswerTx,
    ) -> impl Future<Output = InvokeOutcome> + Send;
    /// Orderly shutdown.
    fn shutdown(&self) -> impl Future<Output = ()> + Send;
    /// `podName`.
    fn pod_name(&self) -> &str;
    /// Invocations served.
    fn invocations(&self) -> u64;
    /// Highest per-invocation memory peak, bytes.
    fn peak_bytes(&self) -> u64;
    /// Time since the instance started.
    fn age(&self) -> Duration;
    /// Each telemetry subscriber's delivery counters so far.
    fn delivery(&self) -> Vec<SubscriberInfo> {
        Vec::new()
    }
}

/// What a pool needs of a function: instances, and the engine's task ownership.
pub trait Factory: Send + Sync + 'static {
    /// The instances it starts.
    type Instance: Pooled;
    /// Starts an instance (retrying failed inits as the platform does); `trace_id` is the
    /// request that caused the cold start.
    fn start_instance(
        &self,
        trace_id: Option<String>,
    ) -> impl Future<Output = Result<Arc<Self::Instance>, InitError>> + Send;
    /// Function name, for messages.
    fn name(&self) -> &str;
    /// `concurrent_num`, for messages.
    fn concurrency(&self) -> u32;
    /// The function's invocation timeout: how long shutdown waits for invocations in flight.
    fn timeout(&self) -> Duration;
    /// Owner of the pool's background tasks and invocation tasks.
    fn tracker(&self) -> &TaskTracker;
    /// An invocation was refused because every instance was busy.
    fn refused(&self) {}
    /// Cancelled when the engine stops.
    fn cancelled(&self) -> &CancellationToken;
}

impl Factory for Function {
    type Instance = Instance;

    fn start_instance(
        &self,
        trace_id: Option<String>,
    ) -> impl Future<Output = Result<Arc<Instance>, InitError>> + Send {
        Function::start_instance(self, trace_id)
    }

    fn name(&self) -> &str {
        &self.package.config.func_name
    }

    fn concurrency(&self) -> u32 {
        self.package.config.concurrent_num
    }

    fn timeout(&self) -> Duration {
        self.package.config.timeout_duration()
    }

    fn tracker(&self) -> &TaskTracker {
        &self.engine.tracker
    }

    fn cancelled(&self) -> &CancellationToken {
        &self.engine.cancel
    }

    fn refused(&self) {
        // No allocation on a refusal nobody observes.
        if !self.engine.observers.active() {
            return;
        }
        self.engine.observers.send(
            &self.package.config.func_name.as_str().into(),
            &"".into(),
            crate::observe::Observation::Refused,
        );
    }
}

/// How a pool sizes itself.
#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// Most instances at once.
    pub max_instances: u32,
    /// Instances started with the pool and kept warm.
    pub reserved_instances: u32,
    /// Idle time after which an on-demand instance is reclaimed.
    pub idle_timeout: Duration,
    /// How long a request waits for a free slot before it is refused.
    pub acquire_timeout: Duration,
    /// How often a pool with reserved instances checks that none was lost (a reserved
    /// instance that dies while idle is otherwise only noticed by the next invocation).
    pub reserved_check: Duration,
}

impl PoolConfig {
    /// The function's own settings; `exclusive` functions (fixed ports without network
    /// isolation) are limited to one instance.
    pub fn from_function(function: &Function, exclusive: bool) -> Self {
        let c = &function.package().config;
        let max = if exclusive { 1 } else { c.max_instances };
        Self {
            max_instances: max,
            reserved_instances: c.reserved_instances.min(max),
            idle_timeout: Duration::from_secs(c.idle_timeout as u64),
            acquire_timeout: Duration::from_secs(1),
            reserved_check: Duration::from_secs(5),
        }
    }
}

/// Why a request got no instance.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PoolError {
    /// Every instance is busy and no more may start.
    #[error("all {max} instance(s) of function '{function}' are busy (max_instances {max}, concurrent_num {concurrency}); retry later")]
    Saturated {
        /// Function name.
        function: String,
        /// `max_instances`.
        max: u32,
        /// `concurrent_num`.
        concurrency: u32,
    },
    /// A new instance could not be initialised.
    #[error(transparent)]
    Init(#[from] InitError),
    /// The pool is shutting down.
    #[error("function '{0}' is shutting down")]
    Closed(String),
}

struct Slot<I> {
    instance: Arc<I>,
    reserved: bool,
    last_used: Instant,
}

struct PoolState<I> {
    slots: Vec<Slot<I>>,
    starting: u32,
    starting_reserved: u32,
    closed: bool,
}

impl<I: Pooled> PoolState<I> {
    /// Drops dead instances; returns them so they can be torn down outside the lock.
    fn prune(&mut self) -> Vec<Arc<I>> {
        let mut dead = Vec::new();
        self.slots.retain(|s| {
            let alive = s.instance.state() != State::Dead;
            if !alive {
                dead.push(s.instance.clone());
            }
            alive
        });
        dead
    }

    fn busy(&self) -> bool {
        self.starting > 0
            || self
                .slots
                .iter()
                .any(|s| matches!(s.instance.state(), State::Busy(_)))
    }
}

/// A snapshot of one instance for listings.
#[derive(Clone, Debug, serde::Serialize)]
pub struct InstanceInfo {
    /// `podName`.
    pub pod_name: String,
    /// `idle`, `busy`, …
    pub state: String,
    /// Invocations in flight.
    pub in_flight: u32,
    /// Invocations served.
    pub invocations: u64,
    /// Highest per-invocation memory peak, MB.
    pub peak_memory_mb: f64,
    /// Seconds since the instance started.
    pub age_seconds: f64,
    /// Seconds since the last invocation ended.
    pub idle_seconds: f64,
    /// Kept warm, never reclaimed.
    pub reserved: bool,
    /// The instance's telemetry subscribers and what was delivered to them.
    pub telemetry: Vec<SubscriberInfo>,
}

/// One telemetry subscriber of an instance, for listings and metrics.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SubscriberInfo {
    /// The listener's URI.
    pub uri: String,
    /// Records the listener acknowledged.
    pub delivered_records: u64,
    /// Records lost (queue full, batch given up, shutdown).
    pub dropped_records: u64,
    /// POST attempts that failed.
    pub failed_posts: u64,
}

/// The pool of one function.
pub struct Pool<F: Factory = Function> {
    function: Arc<F>,
    config: PoolConfig,
    state: Mutex<PoolState<F::Instance>>,
    /// Signalled whenever a slot frees up, an instance is added or goes away, or the pool
    /// closes.
    changed: Notify,
    /// Wakes the reclaimer (see the module docs); shared with it, so the reclaimer does not
    /// keep the pool alive while it sleeps.
    reclaimer: Arc<Notify>,
    /// The reclaimer sleeps without an idle deadline: the next release must wake it.
    reclaimer_unarmed: AtomicBool,
}

/// An invocation's hold on one instance slot; released when dropped.
struct Lease<F: Factory> {
    pool: Arc<Pool<F>>,
    instance: Arc<F::Instance>,
}

impl<F: Factory> Drop for Lease<F> {
    fn drop(&mut self) {
        self.pool.release(&self.instance);
    }
}

impl<F: Factory> Pool<F> {
    /// A pool for `function`; call [`Pool::start`] to bring up reserved instances and the
    /// reclaimer.
    pub fn new(function: Arc<F>, config: PoolConfig) -> Arc<Self> {
        Arc::new(Self {
            function,
            config,
            state: Mutex::new(PoolState {
                slots: Vec::new(),
                starting: 0,
                starting_reserved: 0,
                closed: false,
            }),
            changed: Notify::new(),
            reclaimer: Arc::new(Notify::new()),
            reclaimer_unarmed: AtomicBool::new(true),
        })
    }

    /// The function.
    pub fn function(&self) -> &Arc<F> {
        &self.function
    }

    /// The sizing in force.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    fn name(&self) -> &str {
        self.function.name()
    }

    /// Starts the reserved instances (awaited, so start-up reports their failures) and the
    /// background task that reclaims idle instances and replaces lost reserved ones.
    pub async fn start(self: &Arc<Self>) -> Result<(), InitError> {
        self.top_up_reserved().await?;
        let me = Arc::downgrade(self);
        let cancel = self.function.cancelled().clone();
        self.function.tracker().spawn(async move {
            loop {
                let Some(pool) = me.upgrade() else { break };
                let reclaimer = pool.reclaimer.clone();
                let woken = reclaimer.notified();
                tokio::pin!(woken);
                woken.as_mut().enable();
                let next = pool.reclaim_idle().await;
                if let Err(e) = pool.top_up_reserved().await {
                    tracing::warn!(function = %pool.name(), error = %e, "a reserved instance could not be replaced");
                }
                let check = (pool.config.reserved_instances > 0)
                    .then(|| Instant::now() + pool.config.reserved_check);
                let wake = next.into_iter().chain(check).min();
                drop(pool);
                let sleep = async {
                    match wake {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = &mut woken => {}
                    _ = sleep => {}
                }
            }
        });
        Ok(())
    }

    /// Starts one invocation on a free or new instance and returns as soon as the caller's
    /// answer is known; the invocation finishes in its own task (see the module docs).
    pub async fn submit(self: &Arc<Self>, req: InvokeRequest) -> Result<Invocation, PoolError> {
        let (answer_tx, answer_rx) = oneshot::channel::<Result<Answer, PoolError>>();
        let (done_tx, done_rx) = oneshot::channel();
        let pool = self.clone();
        self.function.tracker().spawn(async move {
            let lease = match pool.acquire(&req.request_id).await {
                Ok(lease) => lease,
                Err(e) => {
                    let _ = answer_tx.send(Err(e));
                    return;
                }
            };
            let answer = AnswerTx::new(move |a| {
                let _ = answer_tx.send(Ok(a));
            });
            let outcome = lease.instance.run_begun(req, answer).await;
            drop(lease);
            let _ = done_tx.send(outcome);
        });
        match answer_rx.await {
            Ok(Ok(answer)) => Ok(Invocation::new(answer, done_rx)),
            Ok(Err(e)) => Err(e),
            // The task ended without an answer: only when the runtime is shutting down.
            Err(_) => Err(PoolError::Closed(self.name().to_string())),
        }
    }

    /// Runs one invocation to its end (extensions done, report emitted): [`Pool::submit`],
    /// then wait for the rest.
    pub async fn invoke(self: &Arc<Self>, req: InvokeRequest) -> Result<InvokeOutcome, PoolError> {
        let invocation = self.submit(req).await?;
        invocation
            .finished()
            .await
            .ok_or_else(|| PoolError::Closed(self.name().to_string()))
    }

    async fn acquire(self: &Arc<Self>, request_id: &str) -> Result<Lease<F>, PoolError> {
        let mut deadline = Instant::now() + self.config.acquire_timeout;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let (dead, start_new) = {
                let mut st = self.state.lock().expect("pool lock");
                if st.closed {
                    return Err(PoolError::Closed(self.name().to_string()));
                }
                let dead = st.prune();
                // Prefer the most recently used instance: it is warm, and idle ones age out.
                let pick = st
                    .slots
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.instance.can_accept())
                    .max_by_key(|(_, s)| s.last_used)
                    .map(|(i, _)| i);
                if let Some(i) = pick {
                    if st.slots[i].instance.try_begin() {
                        let instance = st.slots[i].instance.clone();
                        drop(st);
                        self.teardown(dead);
                        return Ok(Lease {
                            pool: self.clone(),
                            instance,
                        });
                    }
                }
                let total = st.slots.len() as u32 + st.starting;
                let start_new = total < self.config.max_instances;
                if start_new {
                    st.starting += 1;
                }
                (dead, start_new)
            };
            self.teardown(dead);
            if start_new {
                return self.cold_start(request_id).await;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                if self.state.lock().expect("pool lock").starting > 0 {
                    // An instance is still initialising: its slots may be ours.
                    deadline = Instant::now() + self.config.acquire_timeout;
                    continue;
                }
                self.function.refused();
                return Err(PoolError::Saturated {
                    function: self.name().to_string(),
                    max: self.config.max_instances,
                    concurrency: self.function.concurrency(),
                });
            }
        }
    }

    async fn cold_start(self: &Arc<Self>, request_id: &str) -> Result<Lease<F>, PoolError> {
        let result = self
            .function
            .start_instance(Some(request_id.to_string()))
            .await;
        let mut st = self.state.lock().expect("pool lock");
        st.starting -= 1;
        let outcome = match result {
            Ok(instance) => {
                let begun = !st.closed && instance.try_begin();
                st.slots.push(Slot {
                    instance: instance.clone(),
                    reserved: false,
                    last_used: Instant::now(),
                });
                if begun {
                    Ok(Lease {
                        pool: self.clone(),
                        instance,
                    })
                } else {
                    Err(PoolError::Closed(self.name().to_string()))
                }
            }
            Err(e) => Err(PoolError::Init(e)),
        };
        drop(st);
        // Its other slots (concurrent_num > 1) are free for waiters; a failed start frees
        // room for another.
        self.changed.notify_waiters();
        outcome
    }

    fn release(&self, instance: &Arc<F::Instance>) {
        let dead = {
            let mut st = self.state.lock().expect("pool lock");
            if let Some(slot) = st
                .slots
                .iter_mut()
                .find(|s| Arc::ptr_eq(&s.instance, instance))
            {
                slot.last_used = Instant::now();
            }
            st.prune()
        };
        if !dead.is_empty() || self.reclaimer_unarmed.load(Ordering::Acquire) {
            self.reclaimer.notify_one();
        }
        self.teardown(dead);
        self.changed.notify_waiters();
    }

    /// Shuts dead instances down in the background (they are already killed; this flushes
    /// what is left and reaps their tasks).
    fn teardown(&self, dead: Vec<Arc<F::Instance>>) {
        for instance in dead {
            self.function
                .tracker()
                .spawn(async move { instance.shutdown().await });
        }
    }

    /// Reclaims on-demand instances idle for `idle_timeout`; returns when the next one would be
    /// due.
    async fn reclaim_idle(&self) -> Option<Instant> {
        let now = Instant::now();
        let timeout = self.config.idle_timeout;
        let (idle, next) = {
            let mut st = self.state.lock().expect("pool lock");
            let mut out = st.prune();
            st.slots.retain(|s| {
                let reclaim = !s.reserved
                    && s.instance.state() == State::Idle
                    && now.duration_since(s.last_used) >= timeout;
                if reclaim {
                    out.push(s.instance.clone());
                }
                !reclaim
            });
            let next = st
                .slots
                .iter()
                .filter(|s| !s.reserved && s.instance.state() == State::Idle)
                .map(|s| s.last_used + timeout)
                .min();
            // Under the lock, so a release that follows sees it (and one that came first was
            // seen here).
            self.reclaimer_unarmed
                .store(next.is_none(), Ordering::Release);
            (out, next)
        };
        if !idle.is_empty() {
            self.changed.notify_waiters();
        }
        for instance in idle {
            tracing::info!(function = %self.name(), pod = %instance.pod_name(), "reclaiming instance");
            instance.shutdown().await;
        }
        next
    }

    async fn top_up_reserved(&self) -> Result<(), InitError> {
        loop {
            {
                let mut st = self.state.lock().expect("pool lock");
                let dead = st.prune();
                let reserved =
                    st.slots.iter().filter(|s| s.reserved).count() as u32 + st.starting_reserved;
                let total = st.slots.len() as u32 + st.starting;
                let done = st.closed
                    || reserved >= self.config.reserved_instances
                    || total >= self.config.max_instances;
                if !done {
                    st.starting += 1;
                    st.starting_reserved += 1;
                }
                drop(st);
                self.teardown(dead);
                if done {
                    return Ok(());
                }
            }
            let result = self.function.start_instance(None).await;
            let mut st = self.state.lock().expect("pool lock");
            st.starting -= 1;
            st.starting_reserved -= 1;
            match result {
                Ok(instance) => {
                    st.slots.push(Slot {
                        instance,
                        reserved: true,
                        last_used: Instant::now(),
                    });
                    drop(st);
                    self.changed.notify_waiters();
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Snapshot of the instances.
    pub fn instances(&self) -> Vec<InstanceInfo> {
        let st = self.state.lock().expect("pool lock");
        let now = Instant::now();
        st.slots
            .iter()
            .map(|s| {
                let state = s.instance.state();
                InstanceInfo {
                    pod_name: s.instance.pod_name().to_string(),
                    state: state.name().to_string(),
                    in_flight: if let State::Busy(n) = state { n } else { 0 },
                    invocations: s.instance.invocations(),
                    peak_memory_mb: s.instance.peak_bytes() as f64 / (1024.0 * 1024.0),
                    age_seconds: s.instance.age().as_secs_f64(),
                    idle_seconds: now.duration_since(s.last_used).as_secs_f64(),
                    reserved: s.reserved,
                    telemetry: s.instance.delivery(),
                }
            })
            .collect()
    }

    /// Stops taking invocations, lets the ones in flight finish (each within its own
    /// deadline), then shuts every instance down.
    pub async fn shutdown(&self) {
        self.state.lock().expect("pool lock").closed = true;
        self.changed.notify_waiters();
        // In-flight invocations end by their deadline at the latest.
        let end = Instant::now() + self.function.timeout() + Duration::from_secs(1);
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if !self.state.lock().expect("pool lock").busy() {
                break;
            }
            if tokio::time::timeout_at(end, changed).await.is_err() {
                tracing::warn!(function = %self.name(), "invocations still running at shutdown after their deadline");
                break;
            }
        }
        let all: Vec<Arc<F::Instance>> = {
            let mut st = self.state.lock().expect("pool lock");
            st.slots.drain(..).map(|s| s.instance).collect()
        };
        futures::future::join_all(all.iter().map(|i| i.shutdown())).await;
    }
}
