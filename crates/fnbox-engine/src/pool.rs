//! The instance pool of one function (CONTRACT §1, §3, §6): reuse an instance with a free
//! slot, or cold-start one up to `max_instances`; when every slot is taken, wait a bounded time
//! and then refuse (FunctionGraph's FSS.0429). Reserved instances start with the pool and are
//! never reclaimed; on-demand ones are reclaimed after `idle_timeout`. A faulted instance is
//! dropped from the pool and replaced on demand (reserved ones at once).
//!
//! # Design
//! The pool's lock is a `std::sync::Mutex` held only to pick or add an instance — never across
//! an await, an init or an invocation — so one slow function never delays another. Picking an
//! instance takes its concurrency slot under that lock ([`Instance::try_begin`]), so two
//! callers never race for the last slot. Waiters are woken through a [`Notify`] whenever a slot
//! frees up or an instance goes away.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, Notify};

use crate::engine::Function;
use crate::instance::{InitError, Instance};
use crate::invocation::{InvokeOutcome, InvokeRequest, InvokeResult};
use crate::lifecycle::State;

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

struct Slot {
    instance: Arc<Instance>,
    reserved: bool,
    last_used: Instant,
}

#[derive(Default)]
struct PoolState {
    slots: Vec<Slot>,
    starting: u32,
    starting_reserved: u32,
    closed: bool,
}

impl PoolState {
    /// Drops dead instances; returns them so they can be torn down outside the lock.
    fn prune(&mut self) -> Vec<Arc<Instance>> {
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
}

/// The pool of one function.
pub struct Pool {
    function: Arc<Function>,
    config: PoolConfig,
    state: Mutex<PoolState>,
    freed: Notify,
}

/// An invocation's hold on one instance slot; released when dropped.
struct Lease<'a> {
    pool: &'a Pool,
    instance: Arc<Instance>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        self.pool.release(&self.instance);
    }
}

impl Pool {
    /// A pool for `function`; call [`Pool::start`] to bring up reserved instances and the
    /// reclaimer.
    pub fn new(function: Arc<Function>, config: PoolConfig) -> Arc<Self> {
        Arc::new(Self {
            function,
            config,
            state: Mutex::new(PoolState::default()),
            freed: Notify::new(),
        })
    }

    /// The function.
    pub fn function(&self) -> &Arc<Function> {
        &self.function
    }

    /// The sizing in force.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// Starts the reserved instances (awaited, so start-up reports their failures) and the
    /// background task that reclaims idle instances and replaces lost reserved ones.
    pub async fn start(self: &Arc<Self>) -> Result<(), InitError> {
        self.top_up_reserved().await?;
        let me = Arc::downgrade(self);
        let engine = self.function.engine.clone();
        let tracker = engine.tracker.clone();
        let period =
            (self.config.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
        tracker.spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = engine.cancel.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let Some(pool) = me.upgrade() else { break };
                pool.reclaim_idle().await;
                if let Err(e) = pool.top_up_reserved().await {
                    tracing::warn!(function = %pool.name(), error = %e, "a reserved instance could not be replaced");
                }
            }
        });
        Ok(())
    }

    fn name(&self) -> &str {
        &self.function.package().config.func_name
    }

    /// Runs one invocation on a free or new instance.
    pub async fn invoke(&self, req: InvokeRequest) -> Result<InvokeOutcome, PoolError> {
        self.invoke_with(req, None).await
    }

    /// [`Pool::invoke`], sending the result on `early` as soon as the runtime answered.
    pub async fn invoke_with(
        &self,
        req: InvokeRequest,
        early: Option<oneshot::Sender<InvokeResult>>,
    ) -> Result<InvokeOutcome, PoolError> {
        let lease = self.acquire(&req.request_id).await?;
        let outcome = lease.instance.run_begun(req, early).await;
        drop(lease);
        Ok(outcome)
    }

    async fn acquire(&self, request_id: &str) -> Result<Lease<'_>, PoolError> {
        let mut deadline = tokio::time::Instant::now() + self.config.acquire_timeout;
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
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
                            pool: self,
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
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                if self.state.lock().expect("pool lock").starting > 0 {
                    // An instance is still initialising: its slots may be ours.
                    deadline = tokio::time::Instant::now() + self.config.acquire_timeout;
                    continue;
                }
                let c = &self.function.package().config;
                return Err(PoolError::Saturated {
                    function: self.name().to_string(),
                    max: self.config.max_instances,
                    concurrency: c.concurrent_num,
                });
            }
        }
    }

    async fn cold_start(&self, request_id: &str) -> Result<Lease<'_>, PoolError> {
        let result = self
            .function
            .start_instance(Some(request_id.to_string()))
            .await;
        let mut st = self.state.lock().expect("pool lock");
        st.starting -= 1;
        match result {
            Ok(instance) => {
                let closed = st.closed;
                let begun = !closed && instance.try_begin();
                st.slots.push(Slot {
                    instance: instance.clone(),
                    reserved: false,
                    last_used: Instant::now(),
                });
                drop(st);
                // Its other slots (concurrent_num > 1) are free for waiters.
                self.freed.notify_waiters();
                if begun {
                    Ok(Lease {
                        pool: self,
                        instance,
                    })
                } else {
                    self.freed.notify_waiters();
                    Err(PoolError::Closed(self.name().to_string()))
                }
            }
            Err(e) => {
                drop(st);
                self.freed.notify_waiters();
                Err(PoolError::Init(e))
            }
        }
    }

    fn release(&self, instance: &Arc<Instance>) {
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
        self.teardown(dead);
        self.freed.notify_waiters();
    }

    /// Shuts dead instances down in the background (they are already killed; this flushes
    /// what is left and reaps their tasks).
    fn teardown(&self, dead: Vec<Arc<Instance>>) {
        for instance in dead {
            self.function
                .engine
                .tracker
                .spawn(async move { instance.shutdown().await });
        }
    }

    async fn reclaim_idle(&self) {
        let now = Instant::now();
        let idle: Vec<Arc<Instance>> = {
            let mut st = self.state.lock().expect("pool lock");
            let mut out = st.prune();
            let timeout = self.config.idle_timeout;
            st.slots.retain(|s| {
                let reclaim = !s.reserved
                    && s.instance.state() == State::Idle
                    && now.duration_since(s.last_used) >= timeout;
                if reclaim {
                    out.push(s.instance.clone());
                }
                !reclaim
            });
            out
        };
        if !idle.is_empty() {
            self.freed.notify_waiters();
        }
        for instance in idle {
            tracing::info!(function = %self.name(), pod = %instance.pod_name(), "reclaiming instance");
            instance.shutdown().await;
        }
    }

    async fn top_up_reserved(&self) -> Result<(), InitError> {
        loop {
            {
                let mut st = self.state.lock().expect("pool lock");
                let _ = st.prune();
                let reserved =
                    st.slots.iter().filter(|s| s.reserved).count() as u32 + st.starting_reserved;
                let total = st.slots.len() as u32 + st.starting;
                if st.closed
                    || reserved >= self.config.reserved_instances
                    || total >= self.config.max_instances
                {
                    return Ok(());
                }
                st.starting += 1;
                st.starting_reserved += 1;
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
                    self.freed.notify_waiters();
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
                    state: match state {
                        State::Initializing => "initializing",
                        State::Idle => "idle",
                        State::Busy(_) => "busy",
                        State::ShuttingDown => "shutting_down",
                        State::Dead => "dead",
                    }
                    .to_string(),
                    in_flight: if let State::Busy(n) = state { n } else { 0 },
                    invocations: s.instance.invocations(),
                    peak_memory_mb: s.instance.peak_bytes() as f64 / (1024.0 * 1024.0),
                    age_seconds: s.instance.age().as_secs_f64(),
                    idle_seconds: now.duration_since(s.last_used).as_secs_f64(),
                    reserved: s.reserved,
                }
            })
            .collect()
    }

    /// Stops taking invocations, lets the ones in flight finish (each within its own
    /// deadline), then shuts every instance down.
    pub async fn shutdown(&self) {
        self.state.lock().expect("pool lock").closed = true;
        self.freed.notify_waiters();
        // In-flight invocations end by their deadline at the latest.
        let timeout = self.function.package().config.timeout_duration() + Duration::from_secs(1);
        let end = tokio::time::Instant::now() + timeout;
        loop {
            let busy = {
                let st = self.state.lock().expect("pool lock");
                st.slots
                    .iter()
                    .any(|s| matches!(s.instance.state(), State::Busy(_)))
                    || st.starting > 0
            };
            if !busy || tokio::time::Instant::now() >= end {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let all: Vec<Arc<Instance>> = {
            let mut st = self.state.lock().expect("pool lock");
            st.slots.drain(..).map(|s| s.instance).collect()
        };
        futures::future::join_all(all.iter().map(|i| i.shutdown())).await;
    }
}
