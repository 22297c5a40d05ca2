//! Running the front door, and stopping it.
//!
//! # Asynchronous invocations
//! With [`Server::with_async`] the server owns the durable queue: the async routes enqueue into
//! it, and [`Server::run`] spawns the worker once serving begins (after [`Server::start`]).
//!
//! # Shutdown order
//! When the shutdown future completes (SIGINT/SIGTERM in the CLI):
//! 1. the listener closes: no new connections; open connections finish their requests;
//! 2. the async worker stops claiming; attempts in flight are recorded as interrupted (they
//!    run again at the next start) while their pool calls go on under step 3; its tasks are
//!    awaited for at most [`WORKER_STOP`];
//! 3. every pool closes at once: requests not yet on an instance get 503 (FSS.0503), in-flight
//!    invocations finish or time out (each within its own deadline), then every instance shuts
//!    down (SIGTERM, telemetry flushed, SIGKILL after the grace period);
//! 4. the engine's tasks end ([`Engine::shutdown`]), among them what outlived an invocation's
//!    HTTP answer (extension pushes, reports); the pools already waited for the invocations.
//!
//! Connections are served by `fnbox_engine::http_serve` under [`HttpLimits`] (header, body and
//! idle timeouts, a connection cap; `--http-*` flags and the `http:` config keys).
//!
//! Steps 1 and 3 are bounded by the longest function timeout plus margins; a drain that
//! overruns is cut off with a warning instead of hanging.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use fnbox_async::{AsyncStore, AsyncWorker, WorkerSettings};
use fnbox_engine::http_serve::HttpLimits;
use fnbox_engine::Engine;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{self, AppState};
use crate::queue::{worker_settings, AsyncOptions, PoolInvoker};
use crate::registry::{Registry, StartError};

/// How long shutdown waits for the async worker's tasks.
pub const WORKER_STOP: Duration = Duration::from_secs(5);

/// The async worker: its settings until spawned, then its handle; its own tracker and token.
struct WorkerSlot {
    settings: WorkerSettings,
    handle: std::sync::Mutex<Option<AsyncWorker>>,
    tracker: TaskTracker,
    cancel: CancellationToken,
}

/// Slack on top of the longest function timeout for the HTTP drain.
const DRAIN_SLACK: Duration = Duration::from_secs(10);

/// The front door over a set of functions.
pub struct Server {
    state: Arc<AppState>,
    engine: Arc<Engine>,
    worker: Option<WorkerSlot>,
    http_limits: HttpLimits,
}

impl Server {
    /// A server for `registry`'s functions; `token` protects every route.
    pub fn new(engine: Arc<Engine>, registry: Registry, token: Option<String>) -> Self {
        Self {
            state: Arc::new(AppState::new(Arc::new(registry), token)),
            engine,
            worker: None,
            http_limits: HttpLimits::FRONT_DOOR,
        }
    }

    /// Serves under `limits` (header, body, idle timeouts and connection count) instead of
    /// [`HttpLimits::FRONT_DOOR`].
    pub fn with_http_limits(mut self, limits: HttpLimits) -> Self {
        self.http_limits = limits;
        self
    }

    /// Serves asynchronous invocations from `store` (opened by the caller at start-up), with
    /// per-function settings from each function's dialect and `async_invoke_config`. Errors
    /// (an invalid `async_invoke_config`) name the function.
    pub fn with_async(mut self, store: AsyncStore, options: &AsyncOptions) -> Result<Self, String> {
        let settings = worker_settings(&self.state.registry, options)?;
        if self.state.queue.set(store).is_err() {
            return Err("the async invocation store is already set".into());
        }
        self.worker = Some(WorkerSlot {
            settings,
            handle: std::sync::Mutex::new(None),
            tracker: TaskTracker::new(),
            cancel: CancellationToken::new(),
        });
        Ok(self)
    }

    /// Keeps a live timeline of the served functions (`/ui`, `/api/*`), fed from the
    /// engine's observations from now on, by a task that ends with [`Server::stop`].
    pub fn with_timeline(self, config: crate::timeline::TimelineConfig) -> Self {
        let timeline = crate::timeline::Timeline::new(config, &self.state.registry);
        timeline.spawn(self.engine.observe(), self.state.registry.clone());
        let _ = self.state.timeline.set(timeline);
        self
    }

    /// Serves `GET /metrics` (behind the token, like every route) with `render`'s text.
    pub fn with_metrics(self, render: Arc<dyn Fn() -> String + Send + Sync>) -> Self {
        let _ = self.state.metrics.set(render);
        self
    }

    /// The async queue, when set.
    pub fn async_store(&self) -> Option<&AsyncStore> {
        self.state.queue.get()
    }

    /// Starts the async worker (once; [`Server::run`] calls it).
    pub fn spawn_async_worker(&self) -> Result<(), String> {
        let (Some(slot), Some(store)) = (&self.worker, self.state.queue.get()) else {
            return Ok(());
        };
        let mut handle = slot.handle.lock().expect("worker lock");
        if handle.is_some() || slot.cancel.is_cancelled() {
            return Ok(());
        }
        let invoker = PoolInvoker::new(self.state.registry.clone());
        let worker = AsyncWorker::spawn(
            store.clone(),
            invoker,
            slot.settings.clone(),
            slot.tracker.clone(),
            slot.cancel.clone(),
        )
        .map_err(|e| e.to_string())?;
        *handle = Some(worker);
        Ok(())
    }

    /// Stops the async worker: no new claims, attempts in flight recorded as interrupted;
    /// waits for its tasks for at most [`WORKER_STOP`].
    async fn stop_worker(&self) {
        let Some(slot) = &self.worker else { return };
        slot.cancel.cancel();
        slot.tracker.close();
        if tokio::time::timeout(WORKER_STOP, slot.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "async worker still busy after {WORKER_STOP:?}; going on with the shutdown"
            );
        }
    }

    /// The served functions.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.state.registry
    }

    /// The router (for tests that drive it without a listener).
    pub fn router(&self) -> Router {
        api::router(self.state.clone())
    }

    /// Starts every pool: reserved instances are up when this returns. On error, call
    /// [`Server::stop`].
    pub async fn start(&self) -> Result<(), StartError> {
        self.state.registry.start().await
    }

    /// Serves on `listener` (bound by the caller) until `shutdown` completes, then shuts down in
    /// the documented order.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let stop = CancellationToken::new();
        let serve = fnbox_engine::http_serve::serve(
            listener,
            self.router(),
            self.http_limits,
            stop.clone(),
        );
        let mut http = tokio::spawn(serve);
        if let Err(e) = self.spawn_async_worker() {
            tracing::error!(error = %e, "async worker did not start");
        }
        let mut failed = None;
        tokio::select! {
            _ = shutdown => {}
            r = &mut http => {
                let e = match r {
                    Ok(()) => std::io::Error::other("the HTTP server stopped on its own"),
                    Err(e) => std::io::Error::other(e),
                };
                tracing::error!(error = %e, "front door failed");
                failed = Some(e);
            }
        }
        stop.cancel();
        if let Some(t) = self.state.timeline.get() {
            // Live streams never end by themselves: end them, so the drain does not wait.
            t.close_streams();
        }
        self.stop_worker().await;
        tracing::info!(
            "shutting down: no new connections; in-flight invocations finish or time out"
        );
        let budget = self.state.registry.max_timeout() + DRAIN_SLACK;
        let drain = async {
            if failed.is_none() && tokio::time::timeout(budget, &mut http).await.is_err() {
                tracing::warn!(
                    ?budget,
                    "open connections still busy after the drain budget: closing them"
                );
                http.abort();
            }
        };
        tokio::join!(self.state.registry.shutdown(), drain);
        self.stop().await;
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Steps 2–5 of the shutdown order, for a server that is not (or no longer) serving.
    pub async fn stop(&self) {
        self.stop_worker().await;
        self.state.registry.shutdown().await;
        // Invocation tasks that outlived their HTTP answer (extensions finishing, reports,
        // async attempts) belong to the engine; the pools above waited for them.
        let grace = self.engine.config().shutdown_grace + Duration::from_secs(1);
        self.engine.shutdown(grace).await;
        if let Some(t) = self.state.timeline.get() {
            t.stop().await;
        }
    }
}
