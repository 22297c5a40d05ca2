//! [`Extension::builder`] and what [`ExtensionBuilder::run`] does.
//!
//! Order of `run` (why in brackets):
//! 1. validate the name and the addresses (FunctionGraph: 127.0.0.1, ports 8081–8090) and read
//!    `EXTENSION_API_ADDR` unless a config was given;
//! 2. bind the listeners and start serving at once [the platform may push an invocation, or
//!    deliver buffered init telemetry, as soon as it has accepted us; a listener that is bound
//!    but not yet serving could leave the platform's `POST /telemetry` waiting on its own first
//!    delivery];
//! 3. `POST /extension/register`, then `POST /telemetry` [the platform accepts a subscription
//!    only from a registered extension];
//! 4. serve until SIGTERM/SIGINT (or [`ExtensionBuilder::shutdown_signal`]);
//! 5. keep the telemetry listener open for a short drain [FunctionGraph has no shutdown event:
//!    fnbox sends SIGTERM and flushes the last batch — the final `platform.report` — within its
//!    2 s grace], then stop the listeners and run [`ExtensionBuilder::on_shutdown`].
//!
//! Handlers run in their own task, so a panicking handler costs one 500 answer, not the listener.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use fnbox_wire::fg::{
    paths, strip_trailing_commas, BufferingRequest, ErrorBody, InvokePush, RegisterResponse,
    EXTENSION_PORTS, TELEMETRY_TYPES,
};
use http::{HeaderValue, Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;

use crate::client::PlatformClient;
use crate::{ExtensionConfig, ExtensionError, TelemetryEvent};

/// Batching limits of a telemetry subscription (`maxItems`, `maxBytes`, `timeoutMs`; Lambda's
/// names and ranges, accepted by fnbox).
pub type Buffering = BufferingRequest;

/// A telemetry stream to subscribe to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    /// Lifecycle events (`platform.*`).
    Platform,
    /// `[Function]` lines of the function's code.
    Function,
    /// `[Extension]` lines of extensions.
    Extension,
}

impl Stream {
    /// All three streams.
    pub const ALL: [Stream; 3] = [Stream::Platform, Stream::Function, Stream::Extension];

    /// The name used in the subscription's `types`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Platform => TELEMETRY_TYPES[0],
            Stream::Function => TELEMETRY_TYPES[1],
            Stream::Extension => TELEMETRY_TYPES[2],
        }
    }
}

/// Invoke listener used when [`ExtensionBuilder::invoke_address`] is not called.
pub const DEFAULT_INVOKE_ADDRESS: &str = "127.0.0.1:8081";

/// Largest request body the listeners accept. Telemetry batches are at most `maxBytes` (1 MiB)
/// of events; the margin covers array syntax and platforms that ignore the limit.
const BODY_LIMIT: usize = 16 * 1024 * 1024;

/// After the stop signal, the drain ends once no request has been in flight for this long.
const DRAIN_QUIET: Duration = Duration::from_millis(250);

/// How often the drain looks at the listeners' activity.
const DRAIN_POLL: Duration = Duration::from_millis(20);

/// How long stopped listeners get to finish in-flight requests before they are aborted.
const STOP_WAIT: Duration = Duration::from_millis(300);

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;
type InvokeHandler = Arc<dyn Fn(InvokePush) -> BoxFuture + Send + Sync>;
type ReadyHook = Box<dyn FnOnce(&RegisterResponse) + Send>;
type ShutdownHook = Box<dyn FnOnce() -> BoxFuture + Send>;

#[derive(Clone)]
enum TelemetryHandler {
    Typed(Arc<dyn Fn(Vec<TelemetryEvent>) -> BoxFuture + Send + Sync>),
    Raw(Arc<dyn Fn(Vec<Box<RawValue>>) -> BoxFuture + Send + Sync>),
}

struct TelemetrySpec {
    addr: String,
    types: Vec<Stream>,
    buffering: Option<Buffering>,
    handler: TelemetryHandler,
}

/// Entry point: `Extension::builder(name)…run().await`.
#[derive(Debug)]
pub struct Extension {
    _private: (),
}

impl Extension {
    /// Starts describing an extension. `name` is sent as `FunctionGraph-Extension-Name` and
    /// must be the complete file name of the `extension*.sh` script the platform launched (e.g.
    /// `extensionDemo.sh`), not the binary's name; see [`crate::launcher_name_from_args`].
    pub fn builder(name: impl Into<String>) -> ExtensionBuilder {
        ExtensionBuilder {
            name: name.into(),
            config: None,
            invoke_address: DEFAULT_INVOKE_ADDRESS.to_string(),
            on_invoke: None,
            telemetry: None,
            on_ready: None,
            on_shutdown: None,
            shutdown_signal: None,
            shutdown_grace: Duration::from_millis(1200),
            any_port: false,
        }
    }
}

/// Describes an extension; nothing happens until [`run`](Self::run).
#[must_use = "an extension does nothing until .run().await"]
pub struct ExtensionBuilder {
    name: String,
    config: Option<ExtensionConfig>,
    invoke_address: String,
    on_invoke: Option<InvokeHandler>,
    telemetry: Option<TelemetrySpec>,
    on_ready: Option<ReadyHook>,
    on_shutdown: Option<ShutdownHook>,
    shutdown_signal: Option<BoxFuture>,
    shutdown_grace: Duration,
    any_port: bool,
}

impl std::fmt::Debug for ExtensionBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtensionBuilder")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("invoke_address", &self.invoke_address)
            .field(
                "telemetry",
                &self
                    .telemetry
                    .as_ref()
                    .map(|t| (&t.addr, &t.types, &t.buffering)),
            )
            .finish_non_exhaustive()
    }
}

impl ExtensionBuilder {
    /// Where the extension API is; default [`ExtensionConfig::from_env`] at `run` time.
    pub fn config(mut self, config: ExtensionConfig) -> Self {
        self.config = Some(config);
        self
    }

    /// Address of the invoke listener, registered as `FunctionGraph-Extension-Address`;
    /// `127.0.0.1:8081`..`127.0.0.1:8090`, unique per function. Default `127.0.0.1:8081`.
    pub fn invoke_address(mut self, addr: impl Into<String>) -> Self {
        self.invoke_address = addr.into();
        self
    }

    /// Called once per invocation with the platform's push. The platform treats the
    /// invocation as finished only after this returns (fnbox: before `platform.report`), so
    /// keep it short.
    pub fn on_invoke<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(InvokePush) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.on_invoke = Some(Arc::new(move |push| Box::pin(handler(push)) as BoxFuture));
        self
    }

    /// Subscribes to telemetry: a listener on `addr` (same rules as the invoke address; it may
    /// equal it, then one listener serves both) receives batches, each handed to `handler` as
    /// typed events. `buffering` asks for batch limits; `None` keeps the platform defaults.
    pub fn telemetry<F, Fut>(
        mut self,
        addr: impl Into<String>,
        types: &[Stream],
        buffering: Option<Buffering>,
        handler: F,
    ) -> Self
    where
        F: Fn(Vec<TelemetryEvent>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler = TelemetryHandler::Typed(Arc::new(move |events| {
            Box::pin(handler(events)) as BoxFuture
        }));
        self.telemetry = Some(TelemetrySpec {
            addr: addr.into(),
            types: types.to_vec(),
            buffering,
            handler,
        });
        self
    }

    /// Like [`telemetry`](Self::telemetry), but the handler gets each event's JSON text exactly
    /// as received (key order, number spelling, odd names and all), for recorders and proxies
    /// that must not normalise anything. Parse one with `serde_json::from_str(raw.get())`.
    pub fn telemetry_raw<F, Fut>(
        mut self,
        addr: impl Into<String>,
        types: &[Stream],
        buffering: Option<Buffering>,
        handler: F,
    ) -> Self
    where
        F: Fn(Vec<Box<RawValue>>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler = TelemetryHandler::Raw(Arc::new(move |events| {
            Box::pin(handler(events)) as BoxFuture
        }));
        self.telemetry = Some(TelemetrySpec {
            addr: addr.into(),
            types: types.to_vec(),
            buffering,
            handler,
        });
        self
    }

    /// Called once registration (and the subscription, if any) succeeded.
    pub fn on_ready<F>(mut self, hook: F) -> Self
    where
        F: FnOnce(&RegisterResponse) + Send + 'static,
    {
        self.on_ready = Some(Box::new(hook));
        self
    }

    /// Called last, after the listeners stopped, whenever `run` returns once they were bound:
    /// the place to flush what the handlers buffered. Keep it well under the platform's kill
    /// grace (2 s in fnbox, counted from SIGTERM, of which the drain takes up to
    /// [`shutdown_grace`](Self::shutdown_grace)).
    pub fn on_shutdown<F, Fut>(mut self, hook: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.on_shutdown = Some(Box::new(move || Box::pin(hook()) as BoxFuture));
        self
    }

    /// Replaces the default stop signal (SIGTERM or SIGINT) — for tests and embedding.
    pub fn shutdown_signal<F>(mut self, signal: F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.shutdown_signal = Some(Box::pin(signal));
        self
    }

    /// Longest time the listeners stay open after the stop signal to catch the platform's last
    /// telemetry; they close earlier once quiet for 250 ms. Default 1.2 s.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Accepts any loopback address, including port 0 (an ephemeral port, registered as the
    /// port actually bound). For tests and other hosts: FunctionGraph and fnbox refuse ports
    /// outside 8081–8090.
    pub fn allow_any_port(mut self) -> Self {
        self.any_port = true;
        self
    }

    /// Binds, registers, subscribes and serves until the stop signal; see the module docs for
    /// the order. Returns `Ok(())` after a clean stop.
    pub async fn run(self) -> Result<(), ExtensionError> {
        let Self {
            name,
            config,
            invoke_address,
            on_invoke,
            telemetry,
            on_ready,
            on_shutdown,
            shutdown_signal,
            shutdown_grace,
            any_port,
        } = self;
        let config = match config {
            Some(c) => c,
            None => ExtensionConfig::from_env()?,
        };
        let name_header = check_name(&name)?;
        let invoke_addr = listen_addr("invoke", &invoke_address, any_port)?;
        let telemetry = match telemetry {
            Some(t) => {
                if t.types.is_empty() {
                    return Err(ExtensionError::InvalidSubscription {
                        reason: "types is empty; list at least one stream".into(),
                    });
                }
                Some((listen_addr("telemetry", &t.addr, any_port)?, t))
            }
            None => None,
        };
        // Installed before anything else so a SIGTERM during setup still ends in a clean stop.
        let mut signal = match shutdown_signal {
            Some(s) => s,
            None => os_signal()?,
        };

        let activity = Arc::new(Activity::new());
        let shared = Arc::new(Shared {
            on_invoke,
            telemetry: telemetry.as_ref().map(|(_, t)| t.handler.clone()),
            activity: activity.clone(),
        });

        // Bind everything before serving anything, so a taken port fails the start cleanly.
        let invoke_listener = bind("invoke", invoke_addr).await?;
        let invoke_bound = local_addr("invoke", &invoke_listener, invoke_addr)?;
        let telemetry_listener = match &telemetry {
            Some((addr, _)) if *addr != invoke_addr => {
                let l = bind("telemetry", *addr).await?;
                let bound = local_addr("telemetry", &l, *addr)?;
                Some((l, bound))
            }
            _ => None,
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut servers = JoinSet::new();
        let subscription = match (telemetry, telemetry_listener) {
            (Some((_, spec)), Some((listener, bound))) => {
                serve(
                    &mut servers,
                    "invoke",
                    invoke_listener,
                    invoke_router(shared.clone()),
                    stop_rx.clone(),
                );
                serve(
                    &mut servers,
                    "telemetry",
                    listener,
                    telemetry_router(shared.clone()),
                    stop_rx.clone(),
                );
                Some((format!("http://{bound}"), spec))
            }
            (Some((_, spec)), None) => {
                serve(
                    &mut servers,
                    "invoke",
                    invoke_listener,
                    combined_router(shared.clone()),
                    stop_rx.clone(),
                );
                Some((format!("http://{invoke_bound}"), spec))
            }
            (None, _) => {
                serve(
                    &mut servers,
                    "invoke",
                    invoke_listener,
                    invoke_router(shared.clone()),
                    stop_rx.clone(),
                );
                None
            }
        };
        let has_telemetry = subscription.is_some();

        let client = PlatformClient::new(&config.api_addr);
        let setup = async {
            let registered = client
                .register(&name_header, &invoke_bound.to_string())
                .await?;
            tracing::info!(name = %name, address = %invoke_bound, function = %registered.function_name, "registered");
            if let Some((uri, spec)) = subscription {
                let types = spec.types.iter().map(|s| s.as_str().to_string()).collect();
                client.subscribe(uri.clone(), types, spec.buffering).await?;
                tracing::info!(%uri, "subscribed to telemetry");
            }
            Ok::<_, ExtensionError>(registered)
        };
        let stopper = Stopper {
            stop_tx,
            servers,
            activity,
            on_shutdown,
            grace: shutdown_grace,
            has_telemetry,
        };

        let setup_result = tokio::select! {
            r = setup => r,
            () = &mut signal => {
                tracing::info!("stop signal during setup");
                stopper.stop(true).await;
                return Ok(());
            }
        };
        let registered = match setup_result {
            Ok(r) => r,
            Err(e) => {
                stopper.stop(false).await;
                return Err(e);
            }
        };
        if let Some(hook) = on_ready {
            hook(&registered);
        }

        let mut stopper = stopper;
        let outcome = tokio::select! {
            () = &mut signal => Ok(()),
            Some(ended) = stopper.servers.join_next() => server_ended(ended),
        };
        let signalled = outcome.is_ok();
        stopper.stop(signalled).await;
        outcome
    }
}

/// Stops the listeners and runs the shutdown hook.
struct Stopper {
    stop_tx: watch::Sender<bool>,
    servers: JoinSet<Result<(), ExtensionError>>,
    activity: Arc<Activity>,
    on_shutdown: Option<ShutdownHook>,
    grace: Duration,
    has_telemetry: bool,
}

impl Stopper {
    /// `drain`: keep listening for late telemetry first (after a stop signal, not after a failure).
    async fn stop(mut self, drain: bool) {
        if drain {
            let quiet = if self.has_telemetry {
                DRAIN_QUIET.min(self.grace)
            } else {
                Duration::ZERO
            };
            self.activity.drain(quiet, self.grace).await;
        }
        let _ = self.stop_tx.send(true);
        let all_done = async { while self.servers.join_next().await.is_some() {} };
        if tokio::time::timeout(STOP_WAIT, all_done).await.is_err() {
            tracing::warn!("listeners still busy {STOP_WAIT:?} after stop; aborting them");
            self.servers.abort_all();
        }
        if let Some(hook) = self.on_shutdown.take() {
            hook().await;
        }
    }
}

fn server_ended(
    ended: Result<Result<(), ExtensionError>, JoinError>,
) -> Result<(), ExtensionError> {
    match ended {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(ExtensionError::Serve {
            which: "invoke",
            addr: String::new(),
            source: std::io::Error::other(e.to_string()),
        }),
    }
}

/// State the listeners share.
struct Shared {
    on_invoke: Option<InvokeHandler>,
    telemetry: Option<TelemetryHandler>,
    activity: Arc<Activity>,
}

/// Requests in flight and the time of the last one, for the shutdown drain.
struct Activity {
    in_flight: AtomicUsize,
    last: Mutex<Instant>,
}

impl Activity {
    fn new() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            last: Mutex::new(Instant::now()),
        }
    }

    fn touch(&self) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    fn enter(&self) -> Busy<'_> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.touch();
        Busy(self)
    }

    /// Returns once nothing was in flight for `quiet` (counted from the call at the earliest),
    /// or after `max`.
    async fn drain(&self, quiet: Duration, max: Duration) {
        let start = Instant::now();
        loop {
            let idle = self
                .last
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .elapsed()
                .min(start.elapsed());
            if self.in_flight.load(Ordering::SeqCst) == 0 && idle >= quiet {
                return;
            }
            if start.elapsed() >= max {
                tracing::warn!("shutdown drain hit its {max:?} limit");
                return;
            }
            tokio::time::sleep(DRAIN_POLL).await;
        }
    }
}

struct Busy<'a>(&'a Activity);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.touch();
    }
}

fn invoke_router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(paths::EXTENSION_INVOKE, post(invoke))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(shared)
}

/// The telemetry listener accepts any path: the subscription URI may carry one.
fn telemetry_router(shared: Arc<Shared>) -> Router {
    Router::new()
        .fallback(telemetry)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(shared)
}

fn combined_router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(paths::EXTENSION_INVOKE, post(invoke))
        .fallback(telemetry)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(shared)
}

async fn invoke(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let _busy = s.activity.enter();
    let push: InvokePush = match parse_lenient(&body) {
        Ok(p) => p,
        Err(e) => {
            return bad_request(format!(
                "the invoke push must be {{\"traceId\":…,\"invokedFunctionUrn\":…}}: {e}"
            ));
        }
    };
    if let Some(handler) = &s.on_invoke {
        if let Err(e) = tokio::spawn(handler(push)).await {
            return handler_failed("invoke", e);
        }
    }
    StatusCode::OK.into_response()
}

async fn telemetry(State(s): State<Arc<Shared>>, method: Method, body: Bytes) -> Response {
    if method != Method::POST {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            Json(ErrorBody::new(
                "MethodNotAllowed",
                "telemetry is delivered with POST",
            )),
        )
            .into_response();
    }
    let _busy = s.activity.enter();
    let Some(handler) = &s.telemetry else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return StatusCode::OK.into_response();
    }
    let events = match parse_batch(&body) {
        Ok(events) => events,
        Err(e) => {
            return bad_request(format!(
                "the telemetry body must be a JSON array of events: {e}"
            ))
        }
    };
    let work = match handler {
        TelemetryHandler::Typed(h) => h(events
            .iter()
            .map(|raw| {
                serde_json::from_str(raw.get())
                    .unwrap_or(TelemetryEvent::Other(serde_json::Value::Null))
            })
            .collect()),
        TelemetryHandler::Raw(h) => h(events),
    };
    match tokio::spawn(work).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => handler_failed("telemetry", e),
    }
}

/// The events of a batch, each as its own JSON text. A lone object is taken as a batch of one
/// (not what the document says, but unambiguous); trailing commas are forgiven as in
/// [`parse_lenient`]. Public for the fuzz targets (`fuzz/`): what the recorder reads.
pub fn parse_batch(body: &[u8]) -> Result<Vec<Box<RawValue>>, serde_json::Error> {
    fn attempt(text: &str) -> Result<Vec<Box<RawValue>>, serde_json::Error> {
        serde_json::from_str::<Vec<Box<RawValue>>>(text).or_else(|e| {
            match serde_json::from_str::<Box<RawValue>>(text) {
                Ok(one) if one.get().starts_with('{') => Ok(vec![one]),
                _ => Err(e),
            }
        })
    }
    let text = match std::str::from_utf8(body) {
        Ok(text) => text,
        Err(_) => return serde_json::from_slice(body), // reports the encoding error
    };
    attempt(text).or_else(|first| attempt(&strip_trailing_commas(text)).map_err(|_| first))
}

/// JSON, or failing that the same text without trailing commas (the document's own examples
/// have them).
fn parse_lenient<T: DeserializeOwned>(body: &[u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice(body).or_else(|first| match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(&strip_trailing_commas(text)).map_err(|_| first),
        Err(_) => Err(first),
    })
}

fn bad_request(message: String) -> Response {
    tracing::warn!("{message}");
    (
        StatusCode::BAD_REQUEST,
        Json(ErrorBody::new("InvalidRequest", message)),
    )
        .into_response()
}

fn handler_failed(which: &str, e: JoinError) -> Response {
    tracing::error!("the {which} handler failed: {e}");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(ErrorBody::new(
            "Extension.HandlerFailed",
            format!("the {which} handler failed: {e}"),
        )),
    )
        .into_response()
}

fn serve(
    set: &mut JoinSet<Result<(), ExtensionError>>,
    which: &'static str,
    listener: TcpListener,
    router: Router,
    mut stop: watch::Receiver<bool>,
) {
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    set.spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            })
            .await
            .map_err(|source| ExtensionError::Serve {
                which,
                addr,
                source,
            })
    });
}

async fn bind(which: &'static str, addr: SocketAddr) -> Result<TcpListener, ExtensionError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ExtensionError::Bind {
            which,
            addr: addr.to_string(),
            source,
        })
}

fn local_addr(
    which: &'static str,
    listener: &TcpListener,
    asked: SocketAddr,
) -> Result<SocketAddr, ExtensionError> {
    listener
        .local_addr()
        .map_err(|source| ExtensionError::Bind {
            which,
            addr: asked.to_string(),
            source,
        })
}

/// FunctionGraph's rules for extension listeners: `127.0.0.1:8081`..`127.0.0.1:8090`.
fn listen_addr(
    which: &'static str,
    addr: &str,
    any_port: bool,
) -> Result<SocketAddr, ExtensionError> {
    let invalid = |reason: String| ExtensionError::InvalidAddress {
        which,
        addr: addr.to_string(),
        reason,
    };
    let parsed: SocketAddr = addr.trim().parse().map_err(|_| {
        invalid(format!(
            "expected 127.0.0.1:<port> with a port in {}..={}",
            EXTENSION_PORTS.start(),
            EXTENSION_PORTS.end()
        ))
    })?;
    if any_port {
        if !parsed.ip().is_loopback() {
            return Err(invalid("extensions listen on loopback only".into()));
        }
        return Ok(parsed);
    }
    if parsed.ip() != IpAddr::V4(Ipv4Addr::LOCALHOST) {
        return Err(invalid("FunctionGraph only accepts 127.0.0.1".into()));
    }
    if !EXTENSION_PORTS.contains(&parsed.port()) {
        return Err(invalid(format!(
            "the port must be within {}..={}",
            EXTENSION_PORTS.start(),
            EXTENSION_PORTS.end()
        )));
    }
    Ok(parsed)
}

fn check_name(name: &str) -> Result<HeaderValue, ExtensionError> {
    let invalid = |reason: &str| ExtensionError::InvalidName {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    if name.trim().is_empty() {
        return Err(invalid(
            "it is empty; use the file name of the extension*.sh launcher",
        ));
    }
    if name.contains('/') {
        return Err(invalid(
            "it is a path; FunctionGraph wants the launcher's file name only",
        ));
    }
    // Non-ASCII would pass as obs-text but most servers (hyper's `to_str`) refuse to read it.
    if !name.is_ascii() {
        return Err(invalid("a header value must be visible ASCII"));
    }
    let value =
        HeaderValue::from_str(name).map_err(|_| invalid("a header value must be visible ASCII"))?;
    if !(name.starts_with("extension") && name.ends_with(".sh")) {
        tracing::warn!(%name, "FunctionGraph launches only extension*.sh scripts and expects that file name here");
    }
    Ok(value)
}

async fn wait_os_signal(
    mut term: tokio::signal::unix::Signal,
    mut int: tokio::signal::unix::Signal,
) {
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM"),
        _ = int.recv() => tracing::info!("SIGINT"),
    }
}

fn os_signal() -> Result<BoxFuture, ExtensionError> {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate()).map_err(ExtensionError::Signal)?;
    let int = signal(SignalKind::interrupt()).map_err(ExtensionError::Signal)?;
    Ok(Box::pin(wait_os_signal(term, int)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_follow_functiongraph_rules() {
        assert!(listen_addr("invoke", "127.0.0.1:8081", false).is_ok());
        assert!(listen_addr("invoke", "127.0.0.1:8090", false).is_ok());
        for bad in [
            "127.0.0.1:8011",
            "127.0.0.1:8091",
            "0.0.0.0:8081",
            "localhost:8081",
            "8081",
            "[::1]:8081",
        ] {
            let e = listen_addr("invoke", bad, false).unwrap_err();
            assert!(
                matches!(e, ExtensionError::InvalidAddress { .. }),
                "{bad}: {e}"
            );
        }
        assert!(listen_addr("invoke", "127.0.0.1:0", true).is_ok());
        assert!(listen_addr("invoke", "10.0.0.1:8081", true).is_err());
    }

    #[test]
    fn names_must_be_header_safe_file_names() {
        assert!(check_name("extensionDemo.sh").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("extension/extensionDemo.sh").is_err());
        assert!(check_name("extension\u{e9}.sh").is_err());
        assert!(check_name("extension\n.sh").is_err());
    }

    #[test]
    fn stream_names_are_the_wire_names() {
        assert_eq!(Stream::ALL.map(Stream::as_str), TELEMETRY_TYPES);
    }

    #[test]
    fn lenient_parse_accepts_the_documents_trailing_comma() {
        let v: InvokePush = parse_lenient(br#"{"traceId":"t","invokedFunctionUrn":"u",}"#).unwrap();
        assert_eq!(v.trace_id, "t");
        assert!(parse_lenient::<InvokePush>(b"{").is_err());
    }

    #[test]
    fn batches_keep_each_event_text_as_sent() {
        let raw = |body: &str| -> Vec<String> {
            parse_batch(body.as_bytes())
                .unwrap()
                .iter()
                .map(|r| r.get().to_string())
                .collect()
        };
        assert_eq!(
            raw(r#" [ {"b":1, "a":2.0} , {"name":"x",} ] "#),
            [r#"{"b":1, "a":2.0}"#, r#"{"name":"x"}"#]
        );
        assert_eq!(raw(r#" {"name":"one"} "#), [r#"{"name":"one"}"#]);
        assert!(raw("[]").is_empty());
        for bad in ["42", "\"s\"", "nope", "[{"] {
            assert!(parse_batch(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
