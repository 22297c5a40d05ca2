//! One execution environment: its API server, its processes, its memory group, its telemetry
//! bus, and the init / invoke / shutdown phases of CONTRACT §3.
//!
//! # Layout
//! - [`channel`]: the queue and in-flight table between the engine and the runtime API.
//! - [`process`]: spawning, supervising and reading the output of processes.
//! - [`env`]: the environment every process gets.
//! - [`extensions`]: registration, and the per-extension event queues of pull (Lambda)
//!   extensions.
//! - [`logs`]: routing output lines to telemetry, the log tail and fnbox's own output.
//! - `freeze`: freezing an idle instance and thawing it (Lambda).
//! - `shutdown`: the two shutdown orders ([`crate::ShutdownOrder`]).
//!
//! # Dialects
//! Where the platforms differ (how extensions start and hear about invocations, when an
//! invocation is over, the environment, which lines are telemetry, how an error body reads,
//! HTTP functions) the instance asks its [`Dialect`]; it never looks at the package's
//! `dialect:`. Pull extensions (registered with [`ExtensionTarget::Pull`]) are generic: init
//! waits until each asked for its first event; shutdown hands them SHUTDOWN in the dialect's
//! [`crate::ShutdownOrder`].

pub mod channel;
pub mod env;
pub mod extensions;
mod freeze;
pub mod logs;
pub mod process;
mod restore;
mod shutdown;
pub use restore::RestoreGate;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use fnbox_limits::MemoryGroup;
use fnbox_package::Package;
use nix::sys::signal::Signal;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::dialect::{Dialect, LogLines};
use crate::engine::{Function, HttpClient};
use crate::invocation::{
    Answer, AnswerTx, Fault, FaultKind, InvokeOutcome, InvokeRequest, InvokeResult,
};
use crate::launch::RuntimeKind;
use crate::lifecycle::{State, Transition};
use crate::netns::NetNs;
use crate::telemetry::{Bus, Event, Phase, ReportMetrics, Span, Status};
use channel::{RuntimeChannel, RuntimeReply, Work, WorkKind};
use extensions::{ExtensionRegistry, ExtensionTarget, ShutdownReason};
use logs::LogRouter;
use process::{describe_exit, ProcessSpec, Role, Supervised};

/// How often the OOM counter is checked while an invocation runs.
const OOM_POLL: Duration = Duration::from_millis(50);

/// The first OOM check of an invocation starting now: the next [`OOM_POLL`] boundary at least
/// one period away, counted from a process-wide origin. Every invocation of the same window
/// shares the timer's deadline, so registering it does not wake tokio's timer driver again
/// (a timer earlier than the driver's next wake-up unparks it: once per invocation, when each
/// took its own `now + 50 ms`). The counter itself was read just before the runtime got the
/// work.
fn first_oom_check(now: tokio::time::Instant) -> tokio::time::Instant {
    static ORIGIN: std::sync::OnceLock<tokio::time::Instant> = std::sync::OnceLock::new();
    let origin = *ORIGIN.get_or_init(|| now);
    let Some(since) = (now + OOM_POLL).checked_duration_since(origin) else {
        // A clock behind the origin (another runtime's paused clock in tests).
        return now + OOM_POLL;
    };
    let period = OOM_POLL.as_nanos();
    let since = since.as_nanos();
    let rounded = since.div_ceil(period) * period;
    origin + Duration::from_nanos(u64::try_from(rounded).unwrap_or(u64::MAX))
}

/// What the dialect routers of one instance may use.
pub struct InstanceApi {
    /// The function's package.
    pub package: Arc<Package>,
    /// Name of this instance (`podName`).
    pub pod_name: String,
    /// The runtime's work queue.
    pub runtime: RuntimeChannel,
    /// The telemetry bus.
    pub bus: Bus,
    /// Launched and registered extensions.
    pub extensions: ExtensionRegistry,
    /// How fnbox reaches the instance's listeners (through its namespace when isolated).
    pub connector: fnbox_telemetry::Connector,
    /// HTTP client through [`InstanceApi::connector`] (keep-alive pooled), for invoke pushes.
    pub client: HttpClient,
    /// Owner of the instance's tasks: a dialect spawns its per-instance work here.
    pub tasks: TaskTracker,
    /// Cancelled when the instance stops.
    pub cancel: CancellationToken,
    /// Lambda resume in place: the runtime's `restore/next` and `restore/error`.
    pub restore: RestoreGate,
    init_error: Mutex<Option<oneshot::Sender<Bytes>>>,
    state: watch::Sender<State>,
}

impl InstanceApi {
    /// The function URN.
    pub fn urn(&self) -> String {
        self.package.config.urn()
    }

    /// The lifecycle state now.
    pub fn state(&self) -> State {
        *self.state.borrow()
    }

    /// An API attached to no instance, for testing a dialect's routers alone: the caller plays
    /// the engine (submits work on `runtime`, releases extension events, reads init errors from
    /// the returned receiver). Its bus delivers on the current Tokio runtime.
    pub fn detached(package: Arc<Package>, pod_name: &str) -> (Self, oneshot::Receiver<Bytes>) {
        let (init_tx, init_rx) = oneshot::channel();
        let (tasks, cancel) = (TaskTracker::new(), CancellationToken::new());
        let connector = fnbox_telemetry::Connector::host();
        let api = InstanceApi {
            runtime: RuntimeChannel::new(package.config.concurrent_num as usize * 2),
            bus: Bus::new(tasks.clone(), cancel.clone()),
            client: crate::engine::http_client(connector.clone()),
            connector,
            tasks,
            cancel,
            extensions: ExtensionRegistry::new(
                package.extensions.iter().map(|e| e.name.clone()).collect(),
            ),
            package,
            pod_name: pod_name.to_string(),
            restore: RestoreGate::default(),
            init_error: Mutex::new(Some(init_tx)),
            state: watch::channel(State::Initializing).0,
        };
        (api, init_rx)
    }

    /// A runtime reported an init failure; returns false when init is already over.
    pub fn fail_init(&self, body: Bytes) -> bool {
        match self.init_error.lock().expect("init_error lock").take() {
            Some(tx) => tx.send(body).is_ok(),
            None => false,
        }
    }
}

/// Why an instance could not be started.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{phase} failed ({status}) after {attempts} attempt(s): {error_type}: {message}", status = .status.as_str(), phase = if *.restore { "restore" } else { "init" })]
pub struct InitError {
    /// Telemetry status of the last attempt.
    pub status: Status,
    /// e.g. `Runtime.ExitError`, `Sandbox.Timedout`, or the runtime's own errorType.
    pub error_type: String,
    /// What happened, for the caller.
    pub message: String,
    /// Instances tried.
    pub attempts: u32,
    /// The runtime's error body when it posted one.
    pub body: Option<Bytes>,
    /// The instance was restoring from a snapshot ([`crate::snapshot`]), not initializing.
    pub restore: bool,
}

impl InitError {
    fn new(status: Status, error_type: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            error_type: error_type.into(),
            message: message.into(),
            attempts: 1,
            body: None,
            restore: false,
        }
    }
}

/// The instance cannot take an invocation now.
#[derive(Debug, Clone, thiserror::Error)]
#[error("instance {pod_name} cannot take an invocation: it is {state:?}")]
pub struct NotReady {
    /// Which instance.
    pub pod_name: String,
    /// Its state.
    pub state: State,
}

/// A running instance.
pub struct Instance {
    api: Arc<InstanceApi>,
    /// Engine-wide observers, with this instance's names.
    tap: crate::telemetry::Tap,
    dialect: Arc<dyn Dialect>,
    api_addr: SocketAddr,
    procs: Mutex<Procs>,
    memory: MemoryGroup,
    /// Freeze between invocations (Lambda); off otherwise.
    freeze: freeze::Freeze,
    logs: Arc<LogRouter>,
    tracker: TaskTracker,
    cancel: CancellationToken,
    /// The instance's own network namespace; `None` on the host network. Dropped with the
    /// instance; the namespace ends when its last process has ended too.
    netns: Option<Arc<NetNs>>,
    /// The instance's containment ([`crate::contain`]); `None` when off.
    sandbox: Option<Arc<crate::contain::Sandbox>>,
    timeout: Duration,
    memory_size_mb: u32,
    concurrency: u32,
    grace: Duration,
    /// The invocation ends when the runtime asks for more work after answering
    /// ([`Dialect::invocation_ends_at_next`]).
    waits_for_next: bool,
    started: Instant,
    invocations: std::sync::atomic::AtomicU64,
    peak_bytes: std::sync::atomic::AtomicU64,
    terminated: std::sync::atomic::AtomicBool,
    /// The init's trace id and duration (ms), until the invocation with that request id takes
    /// it ([`Answer::init_duration_ms`]).
    cold_init: std::sync::Mutex<Option<(String, f64)>>,
}

/// The processes of an instance, filled in as init starts them.
#[derive(Default, Clone)]
struct Procs {
    runtime: Option<Supervised>,
    extensions: Vec<Supervised>,
}

impl Procs {
    fn all(&self) -> impl Iterator<Item = &Supervised> {
        self.runtime.iter().chain(self.extensions.iter())
    }
}

impl Instance {
    /// Runs the init phase once (CONTRACT §3); on failure everything started is torn down.
    pub(crate) async fn start(function: &Function, trace_id: &str) -> Result<Instance, InitError> {
        let engine = &function.engine;
        let package = function.package.clone();
        let config = &package.config;
        let pod_name = match &engine.config.pod_name {
            Some(name) => name.clone(),
            None => format!(
                "{}-{}-{}",
                config.func_name,
                config.memory_size,
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
        };
        let cancel = engine.cancel.child_token();
        let tracker = TaskTracker::new();
        let netns = if function.isolated() {
            // A few ms of syscalls (unshare, ioctl): off the async workers.
            let created = tokio::task::spawn_blocking(NetNs::create)
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
            Some(created.map_err(|e| {
                InitError::new(
                    Status::Failure,
                    "Sandbox.NetworkError",
                    format!("cannot create the instance's network namespace: {e}"),
                )
            })?)
        } else {
            None
        };
        let connector = match &netns {
            Some(ns) => ns.connector(),
            None => fnbox_telemetry::Connector::host()
                .with_redirect(engine.config.listener_redirect.clone()),
        };
        let tap = crate::telemetry::Tap {
            observers: engine.observers.clone(),
            function: config.func_name.as_str().into(),
            pod_name: pod_name.as_str().into(),
        };
        let freeze_gate = fnbox_telemetry::FreezeGate::new();
        let bus = Bus::new(tracker.clone(), cancel.clone())
            .with_connector(connector.clone())
            .with_freeze(freeze_gate.clone())
            .with_queue_bytes(engine.config.telemetry_queue_bytes)
            .with_tap(tap.clone());
        tap.observers.send(
            &tap.function,
            &tap.pod_name,
            crate::observe::Observation::State(State::Initializing),
        );
        // Snapshot functions in fork mode: the first instance builds the template (init), the
        // others restore from it.
        let claim = match &function.snapshot {
            Some(s) if s.mode() == crate::snapshot::RestoreMode::Fork => Some(s.claim().await),
            _ => None,
        };
        let phase = restore::phase_of(&claim);
        let started = Instant::now();
        let start_wall = Utc::now();
        bus.publish(Event::Start {
            phase,
            time: start_wall,
            trace_id: trace_id.to_string(),
            trace: None,
        });

        let memory = engine
            .config
            .memory
            .create_group(&pod_name, config.memory_bytes())
            .map_err(|e| InitError::new(Status::Failure, "Sandbox.LimitError", e.to_string()))?;
        let sandbox = crate::contain::for_instance(function, &memory)
            .await
            .map_err(|e| {
                InitError::new(
                    Status::Failure,
                    "Sandbox.ContainmentError",
                    format!("cannot contain the instance: {e}"),
                )
            })?;
        let freeze = if function.dialect.freezes_when_idle() && config.freeze {
            freeze::Freeze::new(&engine.config.freeze, &memory, freeze_gate)
        } else {
            freeze::Freeze::off(freeze_gate)
        };

        let listener = match &netns {
            // 127.0.0.1:<port> as seen inside the namespace: the runtime's address stays the same.
            Some(ns) => ns
                .listen(0)
                .await
                .and_then(tokio::net::TcpListener::from_std),
            None => tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await,
        }
        .map_err(|e| {
            InitError::new(
                Status::Failure,
                "Sandbox.ApiError",
                format!("cannot bind the instance API: {e}"),
            )
        })?;
        let api_addr = listener
            .local_addr()
            .expect("bound listener has an address");

        let (init_tx, init_rx) = oneshot::channel();
        let dialect = function.dialect.clone();
        let api = Arc::new(InstanceApi {
            package: package.clone(),
            pod_name: pod_name.clone(),
            runtime: RuntimeChannel::new(config.concurrent_num as usize * 2),
            bus: bus.clone(),
            extensions: ExtensionRegistry::new(
                package.extensions.iter().map(|e| e.name.clone()).collect(),
            ),
            client: if netns.is_some() || engine.config.listener_redirect.is_some() {
                crate::engine::http_client(connector.clone())
            } else {
                engine.client.clone()
            },
            connector,
            tasks: tracker.clone(),
            cancel: cancel.clone(),
            restore: RestoreGate::default(),
            init_error: Mutex::new(Some(init_tx)),
            state: watch::channel(State::Initializing).0,
        });
        let router = dialect.instance_router(api.clone());
        let http_limits = engine.config.instance_http.for_instance(
            config
                .timeout_duration()
                .max(config.initializer_timeout_duration()),
            config.concurrent_num,
        );
        tracker.spawn(crate::http_serve::serve(
            listener,
            router,
            http_limits,
            cancel.clone(),
        ));

        let logs = LogRouter::new(bus.clone(), pod_name.clone(), engine.config.echo.clone());
        let logs = Arc::new(match dialect.log_lines() {
            LogLines::Every => logs.every_line(),
            LogLines::Marked => logs,
        });
        let instance = Instance {
            api,
            tap,
            api_addr,
            procs: Mutex::new(Procs::default()),
            memory,
            freeze,
            logs,
            tracker,
            cancel,
            netns,
            sandbox,
            timeout: config.timeout_duration(),
            memory_size_mb: config.memory_size,
            concurrency: config.concurrent_num,
            grace: engine.config.shutdown_grace,
            waits_for_next: dialect.invocation_ends_at_next(config.concurrent_num),
            dialect,
            started,
            invocations: Default::default(),
            peak_bytes: Default::default(),
            terminated: Default::default(),
            cold_init: Default::default(),
        };

        let result = instance.init(function, init_rx, claim, trace_id).await;
        instance.sync_runtime_output().await;

        let end_wall = Utc::now();
        let metrics = ReportMetrics::new(
            started.elapsed(),
            instance.memory.peak_bytes(),
            config.memory_size,
        );
        let (status, error_type) = match &result {
            Ok(()) => (Status::Success, None),
            Err(e) => (e.status, Some(e.error_type.clone())),
        };
        bus.publish(Event::RuntimeDone {
            phase,
            time: end_wall,
            trace_id: trace_id.to_string(),
            status,
            error_type: error_type.clone(),
            spans: Vec::new(),
            produced_bytes: None,
        });
        if result.is_ok() {
            for ext in instance.api.extensions.registered() {
                if let ExtensionTarget::Pull(events) = ext.target {
                    let mut names = Vec::new();
                    if events.invoke {
                        names.push("INVOKE".to_string());
                    }
                    if events.shutdown {
                        names.push("SHUTDOWN".to_string());
                    }
                    bus.publish(Event::ExtensionState {
                        time: Utc::now(),
                        name: ext.name,
                        state: "Ready".into(),
                        events: names,
                        error_type: None,
                    });
                }
            }
        }
        if result.is_ok() {
            *instance.cold_init.lock().expect("cold_init lock") =
                Some((trace_id.to_string(), metrics.duration_ms));
        }
        bus.publish(Event::Report {
            phase,
            start: start_wall,
            end: end_wall,
            trace_id: trace_id.to_string(),
            status,
            error_type,
            metrics,
            pod_name,
        });
        // Lambda SnapStart, resume in place: the restore follows init in the same process.
        let result = match result {
            Ok(())
                if function.restore_mode() == Some(crate::snapshot::RestoreMode::ResumeInPlace) =>
            {
                instance.resume_in_place(trace_id).await
            }
            other => other,
        };
        match result {
            Ok(()) => {
                instance.set_state(Transition::Ready);
                instance.supervise();
                if instance.waits_for_next {
                    // The runtime and every extension wait for their first event.
                    instance.freeze_idle();
                }
                Ok(instance)
            }
            Err(err) => {
                instance
                    .destroy(match err.status {
                        Status::Timeout => ShutdownReason::Timeout,
                        _ => ShutdownReason::Failure,
                    })
                    .await;
                Err(err)
            }
        }
    }

    /// Starts the extensions, waits for their registration, starts the runtime and waits until
    /// it asks for work (running the initializer first for built-in runtimes).
    async fn init(
        &self,
        function: &Function,
        init_rx: oneshot::Receiver<Bytes>,
        claim: Option<crate::snapshot::Claim<'_>>,
        trace_id: &str,
    ) -> Result<(), InitError> {
        let engine = &function.engine;
        let package = &self.api.package;
        let config = &package.config;
        let mut env = env::instance_env(
            &*self.dialect,
            package,
            self.api_addr,
            engine.config.host_path.as_deref(),
        );
        crate::contain::adjust_env(self.sandbox.as_deref(), &mut env);
        let ext_env = self.dialect.extension_env(&env);
        let ext_deadline = tokio::time::Instant::now() + engine.config.extension_init_timeout;
        let restoring = restore::phase_of(&claim) == Phase::Restore;
        let restore_timeout = Duration::from_secs(config.snapshot.restore_hook_timeout as u64);
        let mut deadline = ext_deadline + Duration::from_secs(config.initializer_timeout as u64);

        for ext in &package.extensions {
            let command = self.dialect.extension_command(ext);
            let spec = ProcessSpec {
                program: command.program,
                args: command.args,
                cwd: package.root.clone(),
                env: ext_env.clone(),
                role: Role::Extension(ext.name.clone()),
                netns: self.netns.as_ref().map(|n| n.raw_fd()),
                sandbox: self.sandbox.clone(),
            };
            let proc = process::spawn(spec, &self.memory, self.logs.sink(), &self.tracker)
                .map_err(|e| {
                    InitError::new(Status::Failure, "Extension.LaunchError", e.to_string())
                })?;
            self.procs.lock().expect("procs lock").extensions.push(proc);
        }
        if !package.extensions.is_empty() {
            let extensions = self.procs.lock().expect("procs lock").extensions.clone();
            tokio::select! {
                _ = self.api.extensions.all_registered() => {}
                f = self.api.extensions.failed() => {
                    return Err(InitError::new(Status::Error, f.error_type, format!(
                        "extension '{}' reported an init error: {}", f.name, f.message)));
                }
                (name, status) = any_exit(&extensions) => {
                    return Err(InitError::new(Status::Failure, "Extension.Crash", format!(
                        "extension '{name}' exited during init ({}) before registering", describe_exit(status))));
                }
                _ = tokio::time::sleep_until(ext_deadline) => {
                    return Err(InitError::new(Status::Timeout, "Extension.RegistrationTimeout", format!(
                        "extension(s) {} did not register within {}s", self.api.extensions.missing().join(", "),
                        engine.config.extension_init_timeout.as_secs())));
                }
            }
        }

        let spec = ProcessSpec {
            program: function.launch.program.clone(),
            args: function.launch.args.clone(),
            cwd: package.root.clone(),
            env,
            role: Role::Runtime,
            netns: self.netns.as_ref().map(|n| n.raw_fd()),
            sandbox: self.sandbox.clone(),
        };
        // In its own namespace the port is free by construction.
        if function.launch.kind == RuntimeKind::HttpServer && self.netns.is_none() {
            let port = std::net::SocketAddr::from(([127, 0, 0, 1], crate::launch::HTTP_PORT));
            let probe = tokio::net::TcpStream::connect(port);
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(200), probe).await {
                // Without this check the bridge would take a stranger's server for the function.
                return Err(InitError::new(
                    Status::Failure,
                    "Sandbox.PortInUse",
                    format!("port {} is already in use by another process; an HTTP function needs it free (one HTTP-function instance at a time)", crate::launch::HTTP_PORT),
                ));
            }
        }
        if restoring {
            // The restore (fork, hook, first poll) gets restore_hook_timeout from here.
            deadline = tokio::time::Instant::now() + restore_timeout;
        }
        let mut polls = self.api.runtime.polls();
        let snapshot = claim.is_some();
        let runtime = match claim {
            Some(claim) => {
                let started = self
                    .start_snapshot_runtime(function, claim, spec.env, trace_id, deadline)
                    .await;
                started.map_err(|e| match restoring {
                    true => restore::restore_failure(e, restore_timeout),
                    false => e,
                })?
            }
            None => process::spawn(spec, &self.memory, self.logs.sink(), &self.tracker).map_err(
                |e| InitError::new(Status::Failure, "Runtime.InvalidEntrypoint", e.to_string()),
            )?,
        };
        self.procs.lock().expect("procs lock").runtime = Some(runtime.clone());
        if function.launch.kind == RuntimeKind::HttpServer {
            // The dialect plays the runtime-API client and forwards each invocation to the
            // function's server.
            match self.dialect.runtime_bridge(self.api.clone()) {
                Some(bridge) => {
                    self.tracker.spawn(bridge);
                }
                None => {
                    return Err(InitError::new(
                        Status::Failure,
                        "Runtime.InvalidEntrypoint",
                        format!(
                            "HTTP-server runtimes are not supported in the {} dialect",
                            self.dialect.name()
                        ),
                    ))
                }
            }
        }
        let extensions = self.procs.lock().expect("procs lock").extensions.clone();
        let resume = function.restore_mode() == Some(crate::snapshot::RestoreMode::ResumeInPlace);
        let result = async {
            let init_done = wait_init(
                &*self.dialect,
                &runtime,
                &mut polls,
                init_rx,
                deadline,
                &self.memory,
                function.launch.kind,
            );
            // SnapStart: init also ends when the runtime calls restore/next.
            let restore_point = async {
                match resume {
                    true => self.reached_restore_point().await,
                    false => std::future::pending().await,
                }
            };
            tokio::select! {
                r = init_done => r,
                _ = restore_point => Ok(()),
            }
            .map_err(|e| match restoring {
                true => restore::restore_failure(e, restore_timeout),
                false => e,
            })?;
            // A snapshot's template ran the initializer once, before the first fork.
            if function.launch.runs_initializer && config.initializer_handler.is_some() && !snapshot
            {
                run_initializer(
                    &*self.dialect,
                    &self.api,
                    &runtime,
                    deadline,
                    config.initializer_timeout,
                    &self.memory,
                )
                .await?;
            }
            // The runtime is ready: registration closes, and init ends once every registered
            // pull extension asked for its first event (immediate without any).
            self.api.extensions.close();
            tokio::select! {
                _ = self.api.extensions.all_polled() => Ok(()),
                _ = tokio::time::sleep_until(deadline) => Err(InitError::new(Status::Timeout, "Extension.InitTimeout", format!(
                    "extension(s) {} never asked for an event (GET /2020-01-01/extension/event/next)",
                    self.api.extensions.not_polled().join(", ")))),
                status = runtime.exited() => {
                    let fault = exit_fault(None, status, &self.memory, 0).await;
                    Err(InitError::new(Status::Failure, fault.error_type(), format!("{} during init", fault.message)))
                }
            }
        };
        let result = tokio::select! {
            r = result => r,
            f = self.api.extensions.failed() => Err(InitError::new(Status::Error, f.error_type, format!(
                "extension '{}' reported an error during init: {}", f.name, f.message))),
            (name, status) = any_exit(&extensions) => Err(InitError::new(Status::Failure, "Extension.Crash", format!(
                "extension '{name}' exited during init ({})", describe_exit(status)))),
        };
        self.api.extensions.close();
        result
    }

    /// Watches the processes of a ready instance: one that exits while no invocation runs
    /// (a crash between invocations) marks the instance dead so it is never handed work again.
    fn supervise(&self) {
        let procs = self.procs.lock().expect("procs lock").clone();
        let api = self.api.clone();
        let cancel = self.cancel.clone();
        let tap = self.tap.clone();
        self.tracker.spawn(async move {
            let all: Vec<Supervised> = procs.all().cloned().collect();
            tokio::select! {
                _ = cancel.cancelled() => {}
                (name, status) = any_exit(&all) => {
                    if api.state() == State::Idle {
                        tracing::warn!(pod = %api.pod_name, process = %name, status = %describe_exit(status),
                            "a process of an idle instance exited: the instance is discarded");
                        api.state.send_modify(|s| *s = s.apply(Transition::Fail).unwrap_or(State::Dead));
                        tap.observers.send(&tap.function, &tap.pod_name, crate::observe::Observation::State(State::Dead));
                        for p in procs.all() {
                            p.signal_group(Signal::SIGKILL);
                        }
                    }
                }
            }
        });
    }

    /// The dialect-facing state.
    pub fn api(&self) -> &Arc<InstanceApi> {
        &self.api
    }

    /// `127.0.0.1:<port>` of the instance API.
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// Name of the instance.
    pub fn pod_name(&self) -> &str {
        &self.api.pod_name
    }

    /// Lifecycle state.
    pub fn state(&self) -> State {
        self.api.state()
    }

    /// Process id (and process group id) of the runtime.
    pub fn runtime_pid(&self) -> i32 {
        self.runtime().map(|r| r.pid).unwrap_or(0)
    }

    fn runtime(&self) -> Option<Supervised> {
        self.procs.lock().expect("procs lock").runtime.clone()
    }

    /// Invocations served so far.
    pub fn invocations(&self) -> u64 {
        self.invocations.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits until the runtime's output so far has reached the log router (bounded).
    async fn sync_runtime_output(&self) {
        if let Some(runtime) = self.runtime() {
            runtime.sync_output(Duration::from_millis(100)).await;
        }
    }

    /// Highest per-invocation memory peak so far, in bytes.
    pub fn peak_bytes(&self) -> u64 {
        self.peak_bytes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The instance's `concurrent_num`.
    pub fn concurrency(&self) -> u32 {
        self.concurrency
    }

    /// Time since the instance started.
    pub fn age(&self) -> Duration {
        self.started.elapsed()
    }

    /// Whether the instance can take another invocation now.
    pub fn can_accept(&self) -> bool {
        self.state().can_begin(self.concurrency)
    }

    fn set_state(&self, t: Transition) -> bool {
        let mut now = None;
        self.api.state.send_modify(|s| match s.apply(t) {
            Ok(next) => {
                *s = next;
                now = Some(next);
            }
            Err(e) => {
                tracing::debug!(pod = %self.api.pod_name, error = %e, "transition refused");
            }
        });
        if let Some(state) = now {
            self.observe_state(state);
        }
        now.is_some()
    }

    fn observe_state(&self, state: State) {
        self.tap.observers.send(
            &self.tap.function,
            &self.tap.pod_name,
            crate::observe::Observation::State(state),
        );
    }

    /// Each telemetry subscriber's URI and delivery counters so far.
    pub fn delivery_stats(&self) -> Vec<(http::Uri, fnbox_telemetry::DeliveryStats)> {
        self.api.bus.delivery_stats()
    }

    /// Runs one invocation to its end (CONTRACT §3 "Invoke"). A fault destroys the instance
    /// before this returns; a handler error leaves it ready.
    pub async fn invoke(&self, req: InvokeRequest) -> Result<InvokeOutcome, NotReady> {
        self.invoke_answering(req, AnswerTx::none()).await
    }

    /// [`Instance::invoke`], also delivering the caller's [`Answer`] to `answer` as soon as it
    /// is known, before the extensions finished and the report was emitted.
    pub async fn invoke_answering(
        &self,
        req: InvokeRequest,
        answer: AnswerTx,
    ) -> Result<InvokeOutcome, NotReady> {
        if !self.try_begin() {
            return Err(NotReady {
                pod_name: self.api.pod_name.clone(),
                state: self.state(),
            });
        }
        Ok(self.run_begun(req, answer).await)
    }

    /// Takes one of the instance's concurrency slots if it has a free one. A pool calls this
    /// under its own lock so two callers never pick the same last slot, then calls
    /// [`Instance::run_begun`].
    pub fn try_begin(&self) -> bool {
        self.set_state(Transition::Begin {
            limit: self.concurrency,
        })
    }

    /// `errorType` of a result, as the dialect reads a handler's error body.
    fn error_type(&self, result: &InvokeResult) -> Option<String> {
        match result {
            InvokeResult::Ok(_) => None,
            InvokeResult::HandlerError(body) => Some(
                self.dialect
                    .error_info(body)
                    .error_type
                    .unwrap_or_else(|| "Function.Error".to_string()),
            ),
            InvokeResult::Fault(f) => Some(f.error_type().to_string()),
        }
    }

    /// The caller's answer as of now: the log and the CPU and storage figures only when the
    /// caller asked for the log tail ([`InvokeRequest::tail`]).
    fn answer_now(
        &self,
        req: &InvokeRequest,
        result: &InvokeResult,
        started: Instant,
        usage: &crate::usage::UsageBaseline,
    ) -> Answer {
        let elapsed = started.elapsed();
        let (metrics, log) = if req.tail {
            let (_, metrics) = usage.metrics(&self.memory, elapsed, self.memory_size_mb);
            (metrics, self.logs.snapshot(&req.request_id))
        } else {
            let metrics = crate::usage::UsageBaseline::peak_metrics(
                &self.memory,
                elapsed,
                self.memory_size_mb,
            );
            (metrics, Vec::new())
        };
        Answer {
            request_id: req.request_id.clone(),
            result: result.clone(),
            error_type: self.error_type(result),
            metrics,
            log,
            init_duration_ms: self.take_cold_init(&req.request_id),
        }
    }

    /// The init duration, once, for the invocation whose request started this instance.
    fn take_cold_init(&self, request_id: &str) -> Option<f64> {
        let mut slot = self.cold_init.lock().unwrap_or_else(|e| e.into_inner());
        match slot.as_ref() {
            Some((trace_id, _)) if trace_id == request_id => slot.take().map(|(_, ms)| ms),
            _ => None,
        }
    }

    /// Runs an invocation whose slot was taken with [`Instance::try_begin`]; `answer` gets the
    /// caller's answer as soon as it is known (the runtime's response or error; a fault once
    /// its report is emitted).
    pub async fn run_begun(&self, req: InvokeRequest, mut answer: AnswerTx) -> InvokeOutcome {
        self.invocations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.thaw();
        let bus = &self.api.bus;
        let started = Instant::now();
        let start_wall = Utc::now();
        let deadline = started + self.timeout;
        let deadline_epoch_ms =
            (start_wall.timestamp_millis().max(0) as u64) + self.timeout.as_millis() as u64;
        let trace = crate::trace::TraceContext::for_invocation(
            &req.request_id,
            start_wall.timestamp().max(0) as u64,
            req.trace_parent.as_ref(),
        );
        bus.publish(Event::Start {
            phase: Phase::Invoke,
            time: start_wall,
            trace_id: req.request_id.clone(),
            trace: Some(trace),
        });
        let usage = crate::usage::UsageBaseline::begin(
            &self.memory,
            self.concurrency == 1,
            self.dialect.reports_usage(),
        );
        let oom_before = self.memory.oom_kills();
        self.logs.begin(&req.request_id);

        let work = Work {
            request_id: req.request_id.clone(),
            body: req.event.clone(),
            kind: WorkKind::Invoke(req.invoke_type),
            deadline_epoch_ms,
            trace: Some(trace),
        };
        // Extensions hear about the invocation at the same moment as the runtime.
        let extensions_done =
            self.dialect
                .notify_invoke(&self.api, &req.request_id, deadline_epoch_ms);
        let mut result = match self.api.runtime.submit(work).await {
            Err(_) => InvokeResult::Fault(Fault {
                kind: FaultKind::RuntimeExit,
                message: "the runtime API is closed".into(),
            }),
            Ok(reply) => self.await_reply(reply, deadline, oom_before).await,
        };
        let replied_at = Utc::now();
        let completions = self.api.runtime.completions();
        if matches!(result, InvokeResult::Ok(_) | InvokeResult::HandlerError(_)) {
            // Lines the runtime printed before answering belong to its answer's log and
            // before `runtimeDone`.
            self.sync_runtime_output().await;
            if self.memory.oom_kills() <= oom_before {
                // The caller gets the runtime's answer at once (CONTRACT §3 step 3);
                // extensions finishing with the invocation do not delay it.
                answer.send(self.answer_now(&req, &result, started, &usage));
            }
        }
        let mut next_at = None;
        let runtime_next = self
            .waits_for_next
            .then(|| self.api.runtime.wait_next_after(completions));
        if let (InvokeResult::Ok(_) | InvokeResult::HandlerError(_), true) =
            (&result, extensions_done.is_some() || runtime_next.is_some())
        {
            // The invocation ends when every extension is done with it and (Lambda) the
            // runtime asked for more work, within the deadline.
            let extensions = self.procs.lock().expect("procs lock").extensions.clone();
            let done = async {
                let next = async {
                    if let Some(wait) = runtime_next {
                        wait.await;
                        Some(Utc::now())
                    } else {
                        None
                    }
                };
                let extensions = async {
                    if let Some(done) = extensions_done {
                        done.await
                    }
                };
                futures::join!(next, extensions).0
            };
            // A runtime that exits instead of asking for more work has crashed.
            let runtime_exit = async {
                match self.runtime() {
                    Some(r) if self.waits_for_next => r.exited().await,
                    _ => std::future::pending().await,
                }
            };
            // Biased, faults first: an extension that reports an exit error is also "done" with
            // the invocation (its pending event is released), and both become ready together;
            // the fault must win, not a coin toss.
            tokio::select! {
                biased;
                f = self.api.extensions.failed() => {
                    result = InvokeResult::Fault(Fault {
                        kind: FaultKind::ExtensionCrash,
                        message: format!("extension '{}' reported {}: {}", f.name, f.error_type, f.message),
                    });
                }
                (name, status) = any_exit(&extensions) => {
                    result = InvokeResult::Fault(exit_fault(Some(&name), status, &self.memory, oom_before).await);
                }
                status = runtime_exit => {
                    result = InvokeResult::Fault(exit_fault(None, status, &self.memory, oom_before).await);
                }
                at = done => next_at = at,
                _ = tokio::time::sleep_until(deadline) => {
                    result = InvokeResult::Fault(Fault {
                        kind: FaultKind::Timeout,
                        message: format!("invocation timed out after {}s (an extension did not finish with the invocation)", self.timeout.as_secs()),
                    });
                }
            }
        }
        let result = match result {
            // A process of the instance was OOM-killed even though the runtime answered.
            InvokeResult::Ok(_) | InvokeResult::HandlerError(_)
                if self.memory.oom_kills() > oom_before =>
            {
                InvokeResult::Fault(oom_fault())
            }
            other => other,
        };
        let fault_reason = match &result {
            InvokeResult::Fault(f) if f.kind == FaultKind::Timeout => ShutdownReason::Timeout,
            _ => ShutdownReason::Failure,
        };
        if let InvokeResult::Fault(fault) = &result {
            self.api.runtime.abandon(&req.request_id);
            tracing::info!(pod = %self.api.pod_name, request_id = %req.request_id, error = %fault.message, "invocation fault: destroying instance");
            // Stop the function now; the extensions live until the telemetry of this
            // invocation is flushed to them (see `destroy`).
            if let Some(runtime) = self.runtime() {
                runtime.signal_group(Signal::SIGKILL);
            }
            // What it printed up to the kill.
            self.sync_runtime_output().await;
        }
        let (spans, produced_bytes) = match &result {
            InvokeResult::Ok(body) | InvokeResult::HandlerError(body) => {
                let ms = |a: chrono::DateTime<Utc>, b: chrono::DateTime<Utc>| {
                    (b - a).num_microseconds().unwrap_or(0).max(0) as f64 / 1000.0
                };
                let mut spans = vec![
                    Span {
                        name: "responseLatency",
                        start: start_wall,
                        duration_ms: ms(start_wall, replied_at),
                    },
                    Span {
                        name: "responseDuration",
                        start: replied_at,
                        duration_ms: 0.0,
                    },
                ];
                if let Some(next_at) = next_at {
                    spans.push(Span {
                        name: "runtimeOverhead",
                        start: replied_at,
                        duration_ms: ms(replied_at, next_at),
                    });
                }
                let produced = matches!(result, InvokeResult::Ok(_)).then_some(body.len() as u64);
                (spans, produced)
            }
            InvokeResult::Fault(_) => (Vec::new(), None),
        };
        let error_type = self.error_type(&result);
        bus.publish(Event::RuntimeDone {
            phase: Phase::Invoke,
            time: Utc::now(),
            trace_id: req.request_id.clone(),
            status: result.status(),
            error_type: error_type.clone(),
            spans,
            produced_bytes,
        });
        let (peak, metrics) = usage.metrics(&self.memory, started.elapsed(), self.memory_size_mb);
        self.peak_bytes
            .fetch_max(peak, std::sync::atomic::Ordering::Relaxed);
        bus.publish(Event::Report {
            phase: Phase::Invoke,
            start: start_wall,
            end: Utc::now(),
            trace_id: req.request_id.clone(),
            status: result.status(),
            error_type: error_type.clone(),
            metrics,
            pod_name: self.api.pod_name.clone(),
        });
        let log = self.logs.end(&req.request_id);
        if answer.is_pending() {
            // A fault: the caller learns it now, with the report's figures, before the
            // teardown (which may take the shutdown grace).
            answer.send(Answer {
                request_id: req.request_id.clone(),
                result: result.clone(),
                error_type: error_type.clone(),
                metrics,
                log: log.clone(),
                init_duration_ms: self.take_cold_init(&req.request_id),
            });
        }
        match &result {
            InvokeResult::Fault(_) => self.destroy(fault_reason).await,
            _ => {
                if self.waits_for_next {
                    // The runtime and every extension asked for their next event.
                    self.freeze_idle();
                }
                self.set_state(Transition::Finish);
            }
        }
        InvokeOutcome {
            request_id: req.request_id,
            result,
            error_type,
            metrics,
            log,
        }
    }

    async fn await_reply(
        &self,
        reply: oneshot::Receiver<RuntimeReply>,
        deadline: tokio::time::Instant,
        oom_before: u64,
    ) -> InvokeResult {
        let mut oom_poll =
            tokio::time::interval_at(first_oom_check(tokio::time::Instant::now()), OOM_POLL);
        oom_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let procs = self.procs.lock().expect("procs lock").clone();
        let runtime = procs
            .runtime
            .clone()
            .expect("a ready instance has a runtime");
        tokio::pin!(reply);
        loop {
            tokio::select! {
                r = &mut reply => return match r {
                    Ok(RuntimeReply::Response(body)) => InvokeResult::Ok(body),
                    Ok(RuntimeReply::Error(body)) => InvokeResult::HandlerError(body),
                    Err(_) => InvokeResult::Fault(Fault { kind: FaultKind::RuntimeExit, message: "the invocation was dropped by the instance".into() }),
                },
                _ = tokio::time::sleep_until(deadline) => {
                    return InvokeResult::Fault(Fault {
                        kind: FaultKind::Timeout,
                        message: format!("invocation timed out after {}s", self.timeout.as_secs()),
                    });
                }
                status = runtime.exited() => {
                    return InvokeResult::Fault(exit_fault(None, status, &self.memory, oom_before).await);
                }
                (name, status) = any_exit(&procs.extensions) => {
                    return InvokeResult::Fault(exit_fault(Some(&name), status, &self.memory, oom_before).await);
                }
                f = self.api.extensions.failed() => {
                    return InvokeResult::Fault(Fault {
                        kind: FaultKind::ExtensionCrash,
                        message: format!("extension '{}' reported {}: {}", f.name, f.error_type, f.message),
                    });
                }
                _ = oom_poll.tick() => {
                    if self.memory.oom_kills() > oom_before {
                        return InvokeResult::Fault(oom_fault());
                    }
                }
            }
        }
    }

    /// Freezes the idle instance when its dialect and package want it (see `freeze`).
    fn freeze_idle(&self) {
        if self.freeze.enabled() {
            self.freeze
                .freeze(self.procs.lock().expect("procs lock").all());
        }
    }

    /// Thaws the instance if it is frozen.
    fn thaw(&self) {
        if self.freeze.enabled() {
            self.freeze
                .thaw(self.procs.lock().expect("procs lock").all());
        }
    }

    /// Whether the instance is frozen now (always `false` for dialects that do not freeze).
    pub fn is_frozen(&self) -> bool {
        self.freeze.is_frozen()
    }

    fn kill_all(&self) {
        // A frozen process does not die before it is thawed (cgroup v1).
        self.thaw();
        for p in self.procs.lock().expect("procs lock").all() {
            p.signal_group(Signal::SIGKILL);
        }
        self.memory.kill_all();
    }

    /// Orderly shutdown (idle reclaim, fnbox stopping): SIGTERM, telemetry flushed within the
    /// grace period, SIGKILL for whatever is left, then the API server stops.
    pub async fn shutdown(&self) {
        if !self.set_state(Transition::Shutdown) {
            // Already dead (a fault): make sure nothing is left.
            self.destroy(ShutdownReason::Failure).await;
            return;
        }
        self.terminate(ShutdownReason::Spindown).await;
        self.set_state(Transition::Stopped);
    }

    /// Tears a failed instance down (faults, init failures).
    async fn destroy(&self, reason: ShutdownReason) {
        self.set_state(Transition::Fail);
        self.terminate(reason).await;
    }

    async fn terminate(&self, reason: ShutdownReason) {
        if self
            .terminated
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            return;
        }
        // Shutdown must reach a frozen instance.
        self.thaw();
        let procs = self.procs.lock().expect("procs lock").clone();
        match self.dialect.shutdown_order() {
            crate::ShutdownOrder::ExtensionsNotifiedFirst => {
                self.stop_extensions_notified_first(reason, &procs).await
            }
            crate::ShutdownOrder::RuntimeFirst => self.stop_runtime_first(reason, &procs).await,
        }
        self.kill_all();
        self.memory.remove().await;
        if let Some(sandbox) = &self.sandbox {
            sandbox.remove().await;
        }
        self.freeze.remove();
        self.cancel.cancel();
        self.tracker.close();
        if tokio::time::timeout(Duration::from_secs(2), self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(pod = %self.api.pod_name, "instance tasks still running after shutdown");
        }
    }
}

impl crate::pool::Pooled for Instance {
    fn state(&self) -> State {
        Instance::state(self)
    }

    fn try_begin(&self) -> bool {
        Instance::try_begin(self)
    }

    fn can_accept(&self) -> bool {
        Instance::can_accept(self)
    }

    fn run_begun(
        &self,
        req: InvokeRequest,
        answer: AnswerTx,
    ) -> impl std::future::Future<Output = InvokeOutcome> + Send {
        Instance::run_begun(self, req, answer)
    }

    fn shutdown(&self) -> impl std::future::Future<Output = ()> + Send {
        Instance::shutdown(self)
    }

    fn pod_name(&self) -> &str {
        Instance::pod_name(self)
    }

    fn invocations(&self) -> u64 {
        Instance::invocations(self)
    }

    fn peak_bytes(&self) -> u64 {
        Instance::peak_bytes(self)
    }

    fn age(&self) -> Duration {
        Instance::age(self)
    }

    fn delivery(&self) -> Vec<crate::pool::SubscriberInfo> {
        self.delivery_stats()
            .into_iter()
            .map(|(uri, s)| crate::pool::SubscriberInfo {
                uri: uri.to_string(),
                delivered_records: s.delivered_records,
                dropped_records: s.dropped_records,
                failed_posts: s.failed_posts,
            })
            .collect()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // Last line of defence: no process outlives its instance.
        self.kill_all();
        self.cancel.cancel();
    }
}

/// Resolves when any of `procs` exits, with its name and status; never if `procs` is empty.
async fn any_exit(procs: &[Supervised]) -> (String, std::process::ExitStatus) {
    if procs.is_empty() {
        return std::future::pending().await;
    }
    let waits = procs.iter().map(|p| {
        Box::pin(async move {
            let status = p.exited().await;
            let name = match &*p.role {
                Role::Runtime => "runtime".to_string(),
                Role::Extension(n) => n.clone(),
            };
            (name, status)
        })
    });
    futures::future::select_all(waits).await.0
}

fn oom_fault() -> Fault {
    Fault {
        kind: FaultKind::OutOfMemory,
        message: "runtime memory limit exceeded".into(),
    }
}

/// A process of the instance exited outside shutdown: out of memory when the memory group
/// recorded a kill (whichever process it hit), else a crash of `extension`, or of the runtime
/// when `extension` is `None`.
async fn exit_fault(
    extension: Option<&str>,
    status: std::process::ExitStatus,
    memory: &MemoryGroup,
    oom_before: u64,
) -> Fault {
    use std::os::unix::process::ExitStatusExt;
    if status.signal() == Some(libc::SIGKILL) && memory.oom_kills() <= oom_before {
        // The OOM counter may trail the kill by a moment (RSS sampling in particular).
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if memory.oom_kills() > oom_before {
        return oom_fault();
    }
    match extension {
        None => Fault {
            kind: FaultKind::RuntimeExit,
            message: format!("runtime exited unexpectedly ({})", describe_exit(status)),
        },
        Some(name) => Fault {
            kind: FaultKind::ExtensionCrash,
            message: format!(
                "extension '{name}' exited unexpectedly ({})",
                describe_exit(status)
            ),
        },
    }
}

/// Waits until the runtime first asks for work, or init fails.
async fn wait_init(
    dialect: &dyn Dialect,
    runtime: &Supervised,
    polls: &mut watch::Receiver<u64>,
    init_rx: oneshot::Receiver<Bytes>,
    deadline: tokio::time::Instant,
    memory: &MemoryGroup,
    kind: RuntimeKind,
) -> Result<(), InitError> {
    tokio::select! {
        r = async { polls.wait_for(|n| *n > 0).await.map(|_| ()) } => {
            r.map_err(|_| InitError::new(Status::Failure, "Runtime.ExitError", "instance API closed during init"))?;
            Ok(())
        }
        body = init_rx => {
            let body = body.unwrap_or_default();
            let info = dialect.error_info(&body);
            let error_type = info.error_type.unwrap_or_else(|| "Runtime.InitError".to_string());
            let message = info.message.unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            let mut err = InitError::new(Status::Error, &error_type, message);
            err.body = Some(body);
            Err(err)
        }
        status = runtime.exited() => {
            let fault = exit_fault(None, status, memory, 0).await;
            Err(InitError::new(Status::Failure, fault.error_type(), format!("{} during init", fault.message)))
        }
        _ = tokio::time::sleep_until(deadline) => {
            Err(InitError::new(Status::Timeout, "Sandbox.Timedout", match kind {
                RuntimeKind::RuntimeApi => "init timed out: the runtime never asked for an invocation".to_string(),
                RuntimeKind::HttpServer => format!("init timed out: bootstrap never accepted connections on 127.0.0.1:{}", crate::launch::HTTP_PORT),
            }))
        }
    }
}

/// Hands the initializer to a built-in runtime as its first work item, with its own deadline.
async fn run_initializer(
    dialect: &dyn Dialect,
    api: &InstanceApi,
    runtime: &Supervised,
    init_deadline: tokio::time::Instant,
    initializer_timeout: u32,
    memory: &MemoryGroup,
) -> Result<(), InitError> {
    let timeout = Duration::from_secs(initializer_timeout as u64);
    let deadline = (tokio::time::Instant::now() + timeout).min(init_deadline);
    let work = Work {
        request_id: crate::invocation::new_request_id(),
        body: Bytes::from_static(b"{}"),
        kind: WorkKind::Initializer,
        deadline_epoch_ms: Utc::now().timestamp_millis().max(0) as u64 + timeout.as_millis() as u64,
        trace: None,
    };
    let id = work.request_id.clone();
    let reply = api
        .runtime
        .submit(work)
        .await
        .map_err(|e| InitError::new(Status::Failure, "Runtime.ExitError", e.to_string()))?;
    let outcome = tokio::select! {
        r = reply => match r {
            Ok(RuntimeReply::Response(_)) => Ok(()),
            Ok(RuntimeReply::Error(body)) => {
                let info = dialect.error_info(&body);
                let mut err = InitError::new(Status::Error, info.error_type.as_deref().unwrap_or("Function.InitializerError"),
                    format!("initializer failed: {}", info.message.unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned())));
                err.body = Some(body);
                Err(err)
            }
            Err(_) => Err(InitError::new(Status::Failure, "Runtime.ExitError", "initializer dropped")),
        },
        _ = tokio::time::sleep_until(deadline) => Err(InitError::new(Status::Timeout, "Sandbox.Timedout", format!("initializer timed out after {initializer_timeout}s"))),
        status = runtime.exited() => {
            let fault = exit_fault(None, status, memory, 0).await;
            Err(InitError::new(Status::Failure, fault.error_type(), format!("{} during the initializer", fault.message)))
        }
    };
    if outcome.is_err() {
        api.runtime.abandon(&id);
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_checks_of_one_window_share_their_deadline() {
        let t0 = tokio::time::Instant::now();
        let mut seen = Vec::new();
        for us in (0..200_000).step_by(7_919) {
            let now = t0 + Duration::from_micros(us);
            let at = first_oom_check(now);
            assert!(at >= now + OOM_POLL, "at least one period away");
            assert!(at < now + 2 * OOM_POLL, "at most two");
            seen.push(at);
        }
        // 200 ms of starts share at most five deadlines, one period apart.
        seen.dedup();
        assert!(seen.len() <= 5, "{}", seen.len());
        for pair in seen.windows(2) {
            assert_eq!(pair[1] - pair[0], OOM_POLL);
        }
    }
}
