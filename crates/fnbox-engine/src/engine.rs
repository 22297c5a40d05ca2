//! The engine: what all functions of one fnbox process share (memory controller, task
//! ownership, shutdown signal, output echo) and the [`Function`] handle that starts instances.

use std::sync::Arc;
use std::time::Duration;

use fnbox_limits::MemoryController;
use fnbox_package::Package;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::dialect::Dialect;
use crate::instance::process::LogLine;
use crate::instance::{InitError, Instance};
use crate::launch::{Launch, LaunchError};
use crate::netns::NetworkMode;

/// Receives every output line of every instance, with the instance's pod name (for fnbox's own
/// log output), in the batches one pipe read yields (one call per read, not per line: see
/// [`crate::instance::process::LineSink`]). Must not block.
pub type LineEcho = Arc<dyn Fn(&str, &[LogLine]) + Send + Sync>;

/// How many fresh instances are tried before an init failure reaches the caller.
pub const INIT_ATTEMPTS: u32 = 3;

/// Engine-wide settings.
#[derive(Clone)]
pub struct EngineConfig {
    /// How memory limits are enforced.
    pub memory: MemoryController,
    /// Where instance output goes besides telemetry.
    pub echo: Option<LineEcho>,
    /// `PATH` handed to instances.
    pub host_path: Option<String>,
    /// SIGTERM-to-SIGKILL grace at shutdown (CONTRACT §3: 2 s).
    pub shutdown_grace: Duration,
    /// Time extensions get to register (CONTRACT §3: 10 s).
    pub extension_init_timeout: Duration,
    /// Whether instances get their own network namespace. [`EngineConfig::new`] keeps the
    /// host network; the CLI sets [`NetworkMode::detect`]'s answer.
    pub network: NetworkMode,
    /// The `podName` of every instance, when fnbox runs one instance per pod in a cluster
    /// (CONTRACT §2: the pod's own name); `None`: `<func_name>-<memory_size>-<8 hex>` each.
    pub pod_name: Option<String>,
    /// Host network only: where fnbox's connections to an instance's listeners (invoke pushes,
    /// telemetry batches) really go, given the address the extension registered. `None` (the
    /// default): straight to it. `fnbox test-extension` puts its recording proxy there.
    pub listener_redirect: Option<fnbox_telemetry::Redirect>,
    /// What instances' processes may do ([`crate::contain`]). [`EngineConfig::new`] contains
    /// nothing; the CLI sets [`crate::contain::Containment::detect`]'s answer.
    pub containment: crate::contain::Containment,
    /// How idle instances of dialects that freeze (Lambda) are frozen; detected from `memory`
    /// by [`EngineConfig::new`].
    pub freeze: Arc<fnbox_limits::FreezeController>,
    /// Bound of each telemetry subscriber's queue, in bytes of encoded records (default
    /// [`fnbox_telemetry::DEFAULT_QUEUE_BYTES`]); `fnbox serve`'s `telemetry_queue_bytes`.
    pub telemetry_queue_bytes: usize,
    /// What a runtime or extension may hold open on its instance's API server
    /// (`crate::http_serve`).
    pub instance_http: crate::http_serve::InstanceHttpLimits,
}

impl EngineConfig {
    /// Defaults with the given memory controller.
    pub fn new(memory: MemoryController) -> Self {
        Self {
            freeze: Arc::new(fnbox_limits::FreezeController::detect(&memory)),
            memory,
            echo: None,
            host_path: None,
            shutdown_grace: Duration::from_secs(2),
            extension_init_timeout: Duration::from_secs(10),
            network: NetworkMode::Host,
            pod_name: None,
            listener_redirect: None,
            containment: crate::contain::Containment::off("EngineConfig::new"),
            telemetry_queue_bytes: fnbox_telemetry::DEFAULT_QUEUE_BYTES,
            instance_http: Default::default(),
        }
    }
}

/// Shared by every function of one fnbox process.
pub struct Engine {
    pub(crate) config: EngineConfig,
    pub(crate) tracker: TaskTracker,
    pub(crate) cancel: CancellationToken,
    /// Client towards instances on the host network (keep-alive pooled, shared).
    pub(crate) client: HttpClient,
    /// Engine-wide observers ([`Engine::observe`]).
    pub(crate) observers: crate::observe::Observers,
}

/// The HTTP client fnbox uses towards an instance's listeners (invoke pushes).
pub type HttpClient = hyper_util::client::legacy::Client<
    fnbox_telemetry::Connector,
    http_body_util::Full<bytes::Bytes>,
>;

/// A client whose connections go through `connector`.
pub(crate) fn http_client(connector: fnbox_telemetry::Connector) -> HttpClient {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector)
}

impl Engine {
    /// A new engine.
    pub fn new(config: EngineConfig) -> Arc<Self> {
        let client = http_client(fnbox_telemetry::Connector::host());
        Arc::new(Self {
            config,
            tracker: TaskTracker::new(),
            cancel: CancellationToken::new(),
            client,
            observers: Default::default(),
        })
    }

    /// Settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Every telemetry event, state change and refusal of every instance from now on (see
    /// [`crate::observe`]). Bounded: a consumer that falls behind loses events, never slows them.
    pub fn observe(&self) -> tokio::sync::broadcast::Receiver<Arc<crate::Observed>> {
        self.observers.subscribe()
    }

    /// Signals every task of the engine to stop and waits for them (bounded by `grace`).
    pub async fn shutdown(&self, grace: Duration) {
        self.cancel.cancel();
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(?grace, "engine tasks still running after the grace period");
        }
    }
}

/// A loaded function: starts instances of one package in one dialect.
pub struct Function {
    pub(crate) engine: Arc<Engine>,
    pub(crate) package: Arc<Package>,
    pub(crate) dialect: Arc<dyn Dialect>,
    pub(crate) launch: Launch,
    /// Set for `snapshot: true` / `snap_start: PublishedVersions` functions.
    pub(crate) snapshot: Option<crate::snapshot::Snapshot>,
}

impl Function {
    /// Prepares a function; fails when its runtime cannot be launched on this machine (e.g.
    /// no `python3` on `PATH` for a Python function) or in this dialect.
    pub fn new(
        engine: Arc<Engine>,
        package: Arc<Package>,
        dialect: Arc<dyn Dialect>,
    ) -> Result<Self, LaunchError> {
        let launch = dialect.launch(&package, engine.config.host_path.as_deref())?;
        let snapshot =
            crate::snapshot::mode_for(&package, &launch).map(crate::snapshot::Snapshot::new);
        Ok(Self {
            engine,
            package,
            dialect,
            launch,
            snapshot,
        })
    }

    /// How instances after the first are restored, for snapshot functions.
    pub fn restore_mode(&self) -> Option<crate::snapshot::RestoreMode> {
        self.snapshot.as_ref().map(|s| s.mode())
    }

    /// The snapshot state of a snapshot function (its template, in fork mode).
    pub fn snapshot(&self) -> Option<&crate::snapshot::Snapshot> {
        self.snapshot.as_ref()
    }

    /// The package.
    pub fn package(&self) -> &Arc<Package> {
        &self.package
    }

    /// The engine it runs on.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// What start-up should say about the runtime's interpreter (a stand-in version), if
    /// anything.
    pub fn launch_note(&self) -> Option<&str> {
        self.launch.note.as_deref()
    }

    /// The dialect its instances speak.
    pub fn dialect(&self) -> &Arc<dyn Dialect> {
        &self.dialect
    }

    /// Whether each instance gets its own network namespace: the engine isolates and the
    /// package does not ask for `network: host`.
    pub fn isolated(&self) -> bool {
        self.engine.config.network == NetworkMode::Isolated
            && self.package.config.network == fnbox_package::Network::Isolated
    }

    /// Starts an instance, trying up to [`INIT_ATTEMPTS`] fresh instances before giving up.
    /// `trace_id` is the request that caused the cold start (a fresh id when `None`).
    pub async fn start_instance(
        &self,
        trace_id: Option<String>,
    ) -> Result<Arc<Instance>, InitError> {
        let trace_id = trace_id.unwrap_or_else(crate::invocation::new_request_id);
        let mut last = None;
        for attempt in 1..=INIT_ATTEMPTS {
            match Instance::start(self, &trace_id).await {
                Ok(instance) => return Ok(Arc::new(instance)),
                Err(mut err) => {
                    tracing::warn!(function = %self.package.config.func_name, attempt, error = %err, "init failed");
                    err.attempts = attempt;
                    let restore = crate::snapshot::is_restore_failure(&err);
                    last = Some(err);
                    // A failed restore is not retried: the same snapshot fails the same way.
                    if self.engine.cancel.is_cancelled() || restore {
                        break;
                    }
                }
            }
        }
        Err(last.expect("at least one attempt"))
    }
}
