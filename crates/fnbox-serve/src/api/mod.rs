//! The front door's HTTP surface: one router per API, each built by a function so tests can
//! drive it directly.
//!
//! # Layout
//! - [`fg`]: FunctionGraph's invoke paths.
//! - [`lambda`]: Lambda's `Invoke` path.
//! - [`admin`]: health and listings.
//! - [`async_invoke`]: asynchronous invocations (enqueue, status, list).
//! - [`ui`]: the browser timeline (`/ui`) and its API (`/api/*`).
//! - [`error`]: [`error::FrontError`] and the one mapping to HTTP per dialect shape.
//! - `render`: what the two result renderers share (status, headers, log tail).
//!
//! Every route but `GET /health` sits behind the token check when a token is set (CONTRACT §6):
//! a refusal is answered in the shape of the route's API.
//!
//! Bodies are read with [`fnbox_engine::http_util::read_body`] and
//! [`Oversize::RefuseEarly`]: a declared `Content-Length` over the limit is refused before
//! anything is read.
//!
//! [`Oversize::RefuseEarly`]: fnbox_engine::http_util::Oversize::RefuseEarly

pub mod admin;
pub mod async_invoke;
pub mod error;
pub mod fg;
pub mod lambda;
mod render;
pub mod ui;

use std::sync::{Arc, OnceLock};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use fnbox_async::AsyncStore;
use fnbox_wire::front::headers;
use http::HeaderMap;

use crate::registry::Registry;
use error::{Fg, FrontError, Lambda};

/// What every handler shares.
pub struct AppState {
    /// The served functions.
    pub registry: Arc<Registry>,
    /// `--token`.
    token: Option<String>,
    /// The durable asynchronous queue, when the server has one (`fnbox serve` always does;
    /// without it the async routes answer 501).
    pub queue: OnceLock<AsyncStore>,
    /// The live timeline, when the server has one (`fnbox serve` unless `--no-ui`).
    pub timeline: OnceLock<Arc<crate::timeline::Timeline>>,
    /// `GET /metrics`'s renderer (Prometheus text), when the server has one.
    pub metrics: OnceLock<Arc<dyn Fn() -> String + Send + Sync>>,
}

impl AppState {
    /// State over a registry, with an optional token.
    pub fn new(registry: Arc<Registry>, token: Option<String>) -> Self {
        Self {
            registry,
            token,
            queue: OnceLock::new(),
            timeline: OnceLock::new(),
            metrics: OnceLock::new(),
        }
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        // Exactly one token: with two, which one a proxy or fnbox looked at would be a guess.
        let mut given = headers.get_all(headers::AUTH_TOKEN).iter();
        let (Some(given), None) = (given.next(), given.next()) else {
            return false;
        };
        // Length-independent comparison of the bytes.
        let (a, b) = (given.as_bytes(), token.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

async fn fg_auth(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if state.authorized(req.headers()) {
        next.run(req).await
    } else {
        Fg(FrontError::Unauthorized).into_response()
    }
}

async fn lambda_auth(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if state.authorized(req.headers()) {
        next.run(req).await
    } else {
        Lambda(FrontError::Unauthorized).into_response()
    }
}

/// An unknown route: 401 without the token (a caller without it learns nothing about which
/// routes exist), else the FunctionGraph-shaped 404.
async fn not_found(State(state): State<Arc<AppState>>, req: Request) -> Fg {
    if !state.authorized(req.headers()) {
        return Fg(FrontError::Unauthorized);
    }
    Fg(FrontError::RouteNotFound {
        method: req.method().to_string(),
        path: req.uri().path().to_string(),
    })
}

/// The whole front door: FunctionGraph and admin routes (FunctionGraph error shape), Lambda
/// routes (Lambda's shape), a FunctionGraph-shaped 404 for anything else.
pub fn router(state: Arc<AppState>) -> Router {
    let fg = fg::router()
        .merge(admin::router())
        .layer(axum::middleware::from_fn_with_state(state.clone(), fg_auth));
    let lambda = lambda::router().layer(axum::middleware::from_fn_with_state(
        state.clone(),
        lambda_auth,
    ));
    let mut all = fg.merge(lambda).merge(admin::health_router());
    if state.timeline.get().is_some() {
        all = all.merge(ui::router(state.clone()));
    }
    all.fallback(not_found).with_state(state)
}
