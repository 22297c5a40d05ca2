//! The one HTTP/1 server loop of fnbox: the front door and every instance API serve through
//! [`serve`], which bounds what a hostile client (a caller, or a runtime or extension inside an
//! instance) can hold open.
//!
//! # Limits ([`HttpLimits`])
//! - **header read**: a connection has `header_timeout` from its opening, or from the first byte
//!   of a request on a kept-alive connection, to deliver a complete request head (slowloris);
//! - **body read**: a request body must be complete `body_timeout` after its head; a body still
//!   arriving then fails to read (the handler answers, the connection is closed);
//! - **idle keep-alive**: a connection with no request in service and no bytes moving for
//!   `idle_timeout` is closed; so is one whose response nobody reads for that long (a write
//!   without progress); a request is in service until its response body is sent;
//! - **connections**: at most `max_connections` at once; more wait in the listener's backlog
//!   until one closes (each of the above frees its slot in bounded time).
//!
//! A request in service is never timed out here: a long-poll (`/invocation/next`,
//! `/event/next`) may wait as long as its handler wants; the handler's own deadlines apply.
//!
//! # Design
//! Header and idle timeouts live in the connection's I/O ([`Guarded`]): a read or write that
//! would wait past the current deadline fails with `TimedOut`, and hyper closes the connection.
//! The deadline depends on whether a request is in service, which the service wrapper records
//! in the connection's [`Activity`]. The body timeout wraps each request body ([`TimedBody`]).
//! Shutdown: stop accepting, ask every connection to finish its request in service and close,
//! and wait for them; dropping the [`serve`] future (an aborted drain) aborts them all, as they
//! live in its `JoinSet`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tower_service::Service;

/// What one HTTP server lets a client hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Time to deliver a request head, from the connection's opening or the request's first byte.
    pub header_timeout: Duration,
    /// Time to deliver a request body, from the end of its head.
    pub body_timeout: Duration,
    /// Time a connection may stay open with no request in service and no bytes moving.
    pub idle_timeout: Duration,
    /// Connections served at once; more wait in the backlog.
    pub max_connections: usize,
}

impl HttpLimits {
    /// The front door's defaults (`fnbox serve`): 10 s for a head, 60 s for a 6 MiB body,
    /// 60 s idle keep-alive, 1024 connections.
    pub const FRONT_DOOR: HttpLimits = HttpLimits {
        header_timeout: Duration::from_secs(10),
        body_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(60),
        max_connections: 1024,
    };

    /// The checks every limit passes: each more than zero.
    pub fn check(&self) -> Result<(), String> {
        for (name, d) in [
            ("header_timeout", self.header_timeout),
            ("body_timeout", self.body_timeout),
            ("idle_timeout", self.idle_timeout),
        ] {
            if d.is_zero() {
                return Err(format!("{name} must be more than 0"));
            }
        }
        if self.max_connections == 0 {
            return Err("max_connections must be at least 1".into());
        }
        Ok(())
    }
}

/// The instance API servers' limits (one server per instance; the runtime and extensions are
/// its only clients, so a hostile one can only hold its own instance's sockets).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstanceHttpLimits {
    /// Time to deliver a request head.
    pub header_timeout: Duration,
    /// Idle keep-alive: generous, as an extension may keep a pooled connection for minutes
    /// between calls.
    pub idle_timeout: Duration,
    /// Added to the longest of the function's timeouts to bound a body: no response, even a
    /// streamed one, can usefully take longer than its invocation.
    pub body_slack: Duration,
    /// Connections on top of two per concurrent request (each runtime thread: a long-poll and a
    /// response post) and two per possible extension.
    pub spare_connections: usize,
}

impl Default for InstanceHttpLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            body_slack: Duration::from_secs(10),
            spare_connections: 32,
        }
    }
}

impl InstanceHttpLimits {
    /// The limits of one instance's server: bodies bounded by `longest` (the function's longest
    /// timeout) plus the slack, connections by `concurrency`.
    pub fn for_instance(&self, longest: Duration, concurrency: u32) -> HttpLimits {
        HttpLimits {
            header_timeout: self.header_timeout,
            body_timeout: longest + self.body_slack,
            idle_timeout: self.idle_timeout,
            max_connections: self.spare_connections
                + 2 * concurrency as usize
                + 2 * fnbox_wire::fg::EXTENSION_PORTS.len(),
        }
    }
}

/// What a connection is doing, shared by its I/O and its service.
#[derive(Debug)]
struct Activity {
    /// Requests handed to the router and not yet answered.
    in_service: usize,
    /// When the head being read began (connection opened, or first byte after a response).
    head_since: Option<Instant>,
    /// Last time bytes moved either way, or a request ended.
    last_io: Instant,
}

type SharedActivity = Arc<Mutex<Activity>>;

fn lock(a: &SharedActivity) -> std::sync::MutexGuard<'_, Activity> {
    a.lock().unwrap_or_else(|e| e.into_inner())
}

/// Marks a request in service until dropped (answered, or its future dropped).
struct InService(SharedActivity);

impl InService {
    fn begin(a: &SharedActivity) -> Self {
        let mut s = lock(a);
        s.in_service += 1;
        s.head_since = None;
        drop(s);
        Self(a.clone())
    }
}

impl Drop for InService {
    /// The connection's task is not woken: its timer is already armed no later than the idle
    /// deadline this sets (see [`Guarded::deadline`]). Waking it here woke it from inside its
    /// own poll (the service future ends there), which made tokio reschedule it as a yield and
    /// unpark the other worker: a wasted thread wake-up per request.
    fn drop(&mut self) {
        let mut s = lock(&self.0);
        s.in_service -= 1;
        s.last_io = Instant::now();
    }
}

/// A connection's I/O with the header and idle deadlines.
struct Guarded {
    inner: TcpStream,
    activity: SharedActivity,
    limits: HttpLimits,
    timer: Pin<Box<Sleep>>,
}

/// Which limit a waiting read or write is under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    Header,
    Idle,
    /// No limit now (a read while a request is in service): the timer is only a point at
    /// which to look again.
    LookAgain,
}

impl Guarded {
    fn new(inner: TcpStream, activity: SharedActivity, limits: HttpLimits) -> Self {
        Self {
            inner,
            activity,
            limits,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
        }
    }

    /// Bytes moved: a read's first byte after a response starts a head.
    fn moved(&self, read: bool) {
        let now = Instant::now();
        let mut s = lock(&self.activity);
        s.last_io = now;
        if read && s.in_service == 0 && s.head_since.is_none() {
            s.head_since = Some(now);
        }
    }

    /// The deadline of a read or write that would wait now. While a request is in service a
    /// read may wait for ever (a long-poll), but a write that makes no progress for
    /// `idle_timeout` means nobody reads the response.
    ///
    /// A read in service gets a point to look again instead: the timer as it is when it lies
    /// ahead, else an idle timeout from now. Either is no later than the idle deadline the
    /// request's end will set (`last_io + idle_timeout`, `last_io` being at least now), so the
    /// connection looks again in time without being woken when the request ends.
    fn deadline(&self, write: bool) -> (Instant, Wait) {
        let s = lock(&self.activity);
        if s.in_service > 0 {
            if write {
                return (s.last_io + self.limits.idle_timeout, Wait::Idle);
            }
            let now = Instant::now();
            let armed = self.timer.deadline();
            let at = if armed > now {
                armed
            } else {
                now + self.limits.idle_timeout
            };
            return (at, Wait::LookAgain);
        }
        match s.head_since {
            Some(t) => (t + self.limits.header_timeout, Wait::Header),
            None => (s.last_io + self.limits.idle_timeout, Wait::Idle),
        }
    }

    /// Called when the inner I/O would wait: an error once the deadline passed, else arms the
    /// timer so this task is woken at the deadline (or at a point to look again).
    fn check_deadline(&mut self, cx: &mut Context<'_>, write: bool) -> Poll<io::Error> {
        loop {
            let (at, wait) = self.deadline(write);
            if self.timer.deadline() != at {
                self.timer.as_mut().reset(at);
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let why = match wait {
                // Passed: `deadline` now gives the next point, or the limit that applies.
                Wait::LookAgain => continue,
                Wait::Header => format!(
                    "no complete request head within {:?} (header read timeout)",
                    self.limits.header_timeout
                ),
                Wait::Idle => format!(
                    "connection idle for {:?} (idle timeout)",
                    self.limits.idle_timeout
                ),
            };
            return Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, why));
        }
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.moved(true);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => self.check_deadline(cx, false).map(Err),
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.moved(false);
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => self.check_deadline(cx, true).map(Err),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Pending => self.check_deadline(cx, true).map(Err),
            other => other,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.moved(false);
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => self.check_deadline(cx, true).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The error a body gets when it is not complete within its time.
#[derive(Debug, thiserror::Error)]
#[error("the request body was not complete within {0:?} (body read timeout)")]
pub struct BodyTimeout(pub Duration);

/// A request body that fails once its time is up.
pub struct TimedBody {
    inner: Incoming,
    limit: Duration,
    timer: Pin<Box<Sleep>>,
    ended: bool,
}

impl TimedBody {
    fn new(inner: Incoming, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            timer: Box::pin(tokio::time::sleep(limit)),
            ended: false,
        }
    }
}

impl HttpBody for TimedBody {
    type Data = bytes::Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            if frame.is_none() {
                self.ended = true;
            }
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        }
        ready!(self.timer.as_mut().poll(cx));
        self.ended = true;
        Poll::Ready(Some(Err(BodyTimeout(self.limit).into())))
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that keeps its request in service until it is dropped.
struct ServedBody {
    inner: Body,
    _in_service: InService,
}

impl HttpBody for ServedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `router` on `listener` under `limits` until `shutdown` is cancelled, then lets every
/// connection finish the request it is serving and returns when all are closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut connections = JoinSet::new();
    loop {
        // Reap finished connections so the set stays as small as the open ones.
        while connections.try_join_next().is_some() {}
        let slot = tokio::select! {
            _ = shutdown.cancelled() => break,
            slot = slots.clone().acquire_owned() => slot.expect("never closed"),
        };
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed; retrying in 100 ms");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                    }
                }
            },
        };
        let activity: SharedActivity = Arc::new(Mutex::new(Activity {
            in_service: 0,
            head_since: Some(Instant::now()),
            last_io: Instant::now(),
        }));
        let io = TokioIo::new(Guarded::new(stream, activity.clone(), limits));
        let router = router.clone();
        let body_timeout = limits.body_timeout;
        let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
            let in_service = InService::begin(&activity);
            let req = req.map(|b| Body::new(TimedBody::new(b, body_timeout)));
            let answer = router.clone().call(req);
            async move {
                // In service until the response body is sent (or dropped): a streamed
                // response that is quiet for a while is not an idle connection.
                answer.await.map(|r| {
                    r.map(|body| {
                        Body::new(ServedBody {
                            inner: body,
                            _in_service: in_service,
                        })
                    })
                })
            }
        });
        let stop = shutdown.clone();
        connections.spawn(async move {
            let _slot = slot;
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(io, service);
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection closed");
            }
        });
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}
