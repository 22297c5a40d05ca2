//! The browser timeline's routes: the page and the API it uses (scripts can use it too).
//!
//! - `GET /ui` (and `/ui/app.js`, `/ui/app.css`): the page, embedded in the binary; it holds no
//!   data, so it is served without the token and asks for one when the API answers 401.
//! - `GET /api/events[?function=]`: Server-Sent Events; each `data:` is a JSON array of
//!   messages: first a `snapshot`, then `record`, `instance` and `stats` updates. EventSource
//!   cannot send headers, so this route (and only this one) also accepts the token as
//!   `?token=`.
//! - `GET /api/invocations[?function=&status=&phase=&limit=]`: recent records, newest first.
//! - `GET /api/instances[?function=]`, `GET /api/stats[?function=]`.
//!
//! Errors use the FunctionGraph shape, like the admin routes.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, Request, State};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::Stream;
use http::header;
use serde_json::Value;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::error::{Fg, FrontError};
use super::AppState;
use crate::registry::Registry;
use crate::timeline::model::STATUS_FILTERS;
use crate::timeline::{Live, Timeline};

const INDEX_HTML: &str = include_str!("../../ui/index.html");
const APP_JS: &str = include_str!("../../ui/app.js");
const APP_CSS: &str = include_str!("../../ui/app.css");

/// Path of the page.
pub const UI: &str = "/ui";
/// Path of the live stream.
pub const EVENTS: &str = "/api/events";
/// Path of the record listing.
pub const INVOCATIONS: &str = "/api/invocations";
/// Path of the instance listing.
pub const INSTANCES: &str = "/api/instances";
/// Path of the per-function figures.
pub const STATS: &str = "/api/stats";

/// Most messages in one write (the timeline sends its changes in bursts, every
/// [`crate::timeline::FLUSH_EVERY`]: one write per burst).
const BATCH_MAX: usize = 512;
/// `limit` when none is given.
const DEFAULT_LIMIT: usize = 100;

/// The page and the API, when the server has a timeline.
pub fn router(state: Arc<AppState>) -> Router<Arc<AppState>> {
    let api = Router::new()
        .route(EVENTS, get(events))
        .route(INVOCATIONS, get(invocations))
        .route(INSTANCES, get(instances))
        .route(STATS, get(stats))
        .route_layer(axum::middleware::from_fn_with_state(state, api_auth));
    Router::new()
        .route(
            UI,
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/ui/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/ui/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/ui/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .merge(api)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The token rule of every route, plus `?token=` on the live stream.
async fn api_auth(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if state.authorized(req.headers())
        || (req.uri().path() == EVENTS && query_token_ok(&state, &req))
    {
        next.run(req).await
    } else {
        Fg(FrontError::Unauthorized).into_response()
    }
}

/// Whether the request's `token` query parameter is the server's token.
fn query_token_ok(state: &AppState, req: &Request) -> bool {
    let Ok(Query(q)) = Query::<HashMap<String, String>>::try_from_uri(req.uri()) else {
        return false;
    };
    let Some(Ok(token)) = q.get("token").map(|t| http::HeaderValue::from_str(t)) else {
        return false;
    };
    let mut h = http::HeaderMap::new();
    h.insert(fnbox_wire::front::headers::AUTH_TOKEN, token);
    state.authorized(&h)
}

fn timeline(state: &AppState) -> Result<&Arc<Timeline>, Fg> {
    state.timeline.get().ok_or_else(|| {
        Fg(FrontError::Internal(
            "this server runs without the timeline".into(),
        ))
    })
}

/// Checks that only `allowed` parameters are given and that `function` names a served one.
fn check_params(
    registry: &Registry,
    q: &HashMap<String, String>,
    allowed: &[&str],
) -> Result<(), Fg> {
    for k in q.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(Fg(FrontError::InvalidParameter(format!(
                "unknown query parameter '{k}' (this route takes: {})",
                allowed.join(", ")
            ))));
        }
    }
    if let Some(f) = q.get("function") {
        if registry.get(f).is_none() {
            return Err(Fg(FrontError::UnknownFunction {
                given: f.clone(),
                serving: registry.names(),
            }));
        }
    }
    Ok(())
}

async fn invocations(
    State(state): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, Fg> {
    let tl = timeline(&state)?;
    check_params(
        &state.registry,
        &q,
        &["function", "status", "phase", "limit"],
    )?;
    if let Some(s) = q.get("status") {
        if !STATUS_FILTERS.contains(&s.as_str()) {
            return Err(Fg(FrontError::InvalidParameter(format!(
                "status '{s}' is not one of {}",
                STATUS_FILTERS.join(", ")
            ))));
        }
    }
    if let Some(p) = q.get("phase") {
        if !["init", "invoke", "restore"].contains(&p.as_str()) {
            return Err(Fg(FrontError::InvalidParameter(format!(
                "phase '{p}' is not one of init, invoke, restore"
            ))));
        }
    }
    let limit = match q.get("limit") {
        None => DEFAULT_LIMIT,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if n >= 1 => n,
            _ => {
                return Err(Fg(FrontError::InvalidParameter(format!(
                    "limit '{l}' is not a whole number of at least 1"
                ))))
            }
        },
    };
    Ok(Json(tl.invocations(
        q.get("function").map(String::as_str),
        q.get("status").map(String::as_str),
        q.get("phase").map(String::as_str),
        limit,
    )))
}

async fn instances(
    State(state): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, Fg> {
    let tl = timeline(&state)?;
    check_params(&state.registry, &q, &["function"])?;
    Ok(Json(tl.instances(
        &state.registry,
        q.get("function").map(String::as_str),
    )))
}

async fn stats(
    State(state): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, Fg> {
    let tl = timeline(&state)?;
    check_params(&state.registry, &q, &["function"])?;
    Ok(Json(tl.stats(
        &state.registry,
        q.get("function").map(String::as_str),
    )))
}

/// One live stream's state.
struct LiveStream {
    timeline: Arc<Timeline>,
    registry: Arc<Registry>,
    function: Option<String>,
    rx: broadcast::Receiver<Arc<Live>>,
    pending: Option<String>,
    closed: CancellationToken,
}

impl LiveStream {
    fn wants(&self, m: &Live) -> bool {
        match (&self.function, &m.function) {
            (Some(want), Some(f)) => **want == **f,
            _ => true,
        }
    }

    /// After falling behind: a fresh receiver and snapshot.
    fn resync(&mut self) -> String {
        let (snapshot, rx) = self
            .timeline
            .subscribe(&self.registry, self.function.as_deref());
        self.rx = rx;
        snapshot
    }
}

fn data(json: String) -> Result<SseEvent, Infallible> {
    Ok(SseEvent::default().data(json))
}

async fn next_batch(mut st: LiveStream) -> Option<(Result<SseEvent, Infallible>, LiveStream)> {
    if let Some(s) = st.pending.take() {
        return Some((data(format!("[{s}]")), st));
    }
    let first = loop {
        tokio::select! {
            _ = st.closed.cancelled() => return None,
            r = st.rx.recv() => match r {
                Ok(m) if st.wants(&m) => break m,
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let s = st.resync();
                    return Some((data(format!("[{s}]")), st));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            },
        }
    };
    let mut out = String::with_capacity(first.json.len() * 4);
    out.push('[');
    out.push_str(&first.json);
    for _ in 1..BATCH_MAX {
        match st.rx.try_recv() {
            Ok(m) if st.wants(&m) => {
                out.push(',');
                out.push_str(&m.json);
            }
            Ok(_) => {}
            Err(broadcast::error::TryRecvError::Lagged(_)) => {
                st.pending = Some(st.resync());
                break;
            }
            Err(_) => break,
        }
    }
    out.push(']');
    Some((data(out), st))
}

async fn events(
    State(state): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, Fg> {
    let tl = timeline(&state)?.clone();
    check_params(&state.registry, &q, &["function", "token"])?;
    let function = q.get("function").cloned();
    let (snapshot, rx) = tl.subscribe(&state.registry, function.as_deref());
    let st = LiveStream {
        closed: tl.streams_closed(),
        timeline: tl,
        registry: state.registry.clone(),
        function,
        rx,
        pending: Some(snapshot),
    };
    Ok(Sse::new(futures::stream::unfold(st, next_batch))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
