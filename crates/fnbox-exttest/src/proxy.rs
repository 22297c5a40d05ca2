//! The recording proxy in front of an extension's listeners. The engine dials the extension's
//! registered addresses through [`fnbox_engine::EngineConfig::listener_redirect`], which points
//! each one at a proxy front (created on first use, `127.0.0.1:<ephemeral>`). The proxy relays
//! each request on a fresh connection to the real listener and records what came back:
//! status, latency, a closed connection, a refused one. A batch's body can be held back
//! after its request head (slow-platform), which is how a slow platform looks to a listener.
//!
//! The listener sees what fnbox would send it (method, path, headers, body), except that every
//! request comes on its own connection (no keep-alive reuse).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::record::{Answered, Exchange, ExchangeKind, Rec, Recorder};

/// Longest a relayed request may wait for its listener (the engine gives up on a batch after
/// 10 s; pushes wait for the invocation's deadline, at most 900 s).
const RELAY_LIMIT: Duration = Duration::from_secs(900);

/// FunctionGraph's invoke push; everything else sent to a listener is a telemetry batch.
const INVOKE_PATH: &str = "/extension/invoke";

/// Proxy fronts by the address they stand for.
pub struct Proxy {
    fronts: Mutex<HashMap<SocketAddr, SocketAddr>>,
    rec: Recorder,
    tracker: TaskTracker,
    cancel: CancellationToken,
    handle: tokio::runtime::Handle,
}

impl Proxy {
    /// A proxy whose tasks are owned by `tracker` and end on `cancel`; call inside a Tokio
    /// runtime.
    pub fn new(rec: Recorder, tracker: TaskTracker, cancel: CancellationToken) -> Arc<Self> {
        Arc::new(Self {
            fronts: Mutex::new(HashMap::new()),
            rec,
            tracker,
            cancel,
            handle: tokio::runtime::Handle::current(),
        })
    }

    /// The redirect to hand the engine.
    pub fn redirect(self: &Arc<Self>) -> fnbox_telemetry::Redirect {
        let me = self.clone();
        Arc::new(move |target| match me.front_for(target) {
            Ok(front) => front,
            Err(e) => {
                tracing::warn!(%target, error = %e, "cannot start a proxy front; connecting directly");
                target
            }
        })
    }

    fn front_for(&self, target: SocketAddr) -> std::io::Result<SocketAddr> {
        let mut fronts = self.fronts.lock().expect("fronts lock");
        if let Some(front) = fronts.get(&target) {
            return Ok(*front);
        }
        // Called synchronously from the engine's connector: a std bind, then handed to Tokio.
        let listener = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        let front = listener.local_addr()?;
        let listener = {
            let _guard = self.handle.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let (rec, tracker, cancel) = (self.rec.clone(), self.tracker.clone(), self.cancel.clone());
        self.tracker.spawn_on(
            accept_loop(listener, target, rec, tracker, cancel),
            &self.handle,
        );
        fronts.insert(target, front);
        Ok(front)
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    target: SocketAddr,
    rec: Recorder,
    tracker: TaskTracker,
    cancel: CancellationToken,
) {
    loop {
        let stream = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::debug!(error = %e, "proxy accept failed");
                    continue;
                }
            },
        };
        let (rec, conn_tracker, cancel) = (rec.clone(), tracker.clone(), cancel.clone());
        tracker.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                relay(target, rec.clone(), conn_tracker.clone(), req)
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = conn => {}
            }
        });
    }
}

/// Why the proxy closes the engine's connection without an answer: the listener did.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Mirrored(String);

async fn relay(
    target: SocketAddr,
    rec: Recorder,
    tracker: TaskTracker,
    req: http::Request<Incoming>,
) -> Result<http::Response<Full<Bytes>>, Mirrored> {
    let started = Instant::now();
    let kind = if req.uri().path() == INVOKE_PATH {
        ExchangeKind::Push
    } else {
        ExchangeKind::Batch
    };
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| Mirrored(e.to_string()))?
        .to_bytes();
    let (records, trace) = match kind {
        ExchangeKind::Batch => (Rec::parse_batch(&body).unwrap_or_default(), None),
        ExchangeKind::Push => (
            Vec::new(),
            serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("traceId").and_then(|t| t.as_str()).map(String::from)),
        ),
    };
    let delay = match kind {
        ExchangeKind::Batch => rec.delays().batch,
        ExchangeKind::Push => Duration::ZERO,
    };
    let at = rec.now();
    // Recorded now as unanswered, completed below: a request the listener never answers still
    // shows up.
    let index = rec.with(|s| {
        s.exchanges.push(Exchange {
            kind,
            at,
            latency: Duration::ZERO,
            answered: Answered::Closed("no answer before the scenario ended".into()),
            records,
            trace,
            done: false,
        });
        s.exchanges.len() - 1
    });
    let outcome = tokio::time::timeout(RELAY_LIMIT, forward(target, parts, body, delay, &tracker))
        .await
        .unwrap_or_else(|_| {
            Err(Answered::Closed(format!(
                "no answer within {RELAY_LIMIT:?}"
            )))
        });
    let latency = started.elapsed().saturating_sub(delay);
    let answered = match &outcome {
        Ok(resp) => Answered::Status(resp.status().as_u16()),
        Err(a) => a.clone(),
    };
    rec.with(|s| {
        if let Some(e) = s.exchanges.get_mut(index) {
            e.latency = latency;
            e.answered = answered;
            e.done = true;
        }
    });
    outcome.map_err(|a| Mirrored(a.describe()))
}

async fn forward(
    target: SocketAddr,
    parts: http::request::Parts,
    body: Bytes,
    delay: Duration,
    tracker: &TaskTracker,
) -> Result<http::Response<Full<Bytes>>, Answered> {
    let stream = tokio::net::TcpStream::connect(target)
        .await
        .map_err(|e| Answered::Refused(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, BoxBody<Bytes, Infallible>>(TokioIo::new(
            stream,
        ))
        .await
        .map_err(|e| Answered::Closed(root_cause(&e)))?;
    tracker.spawn(async move {
        let _ = conn.await;
    });
    let body: BoxBody<Bytes, Infallible> = if delay.is_zero() {
        Full::new(body).boxed()
    } else {
        // The head goes now, the body after `delay`.
        StreamBody::new(futures::stream::once(async move {
            tokio::time::sleep(delay).await;
            Ok::<_, Infallible>(Frame::data(body))
        }))
        .boxed()
    };
    let response = sender
        .send_request(http::Request::from_parts(parts, body))
        .await
        .map_err(|e| Answered::Closed(root_cause(&e)))?;
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| Answered::Closed(root_cause(&e)))?
        .to_bytes();
    Ok(http::Response::from_parts(parts, Full::new(body)))
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
