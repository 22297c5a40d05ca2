//! fnbox's own routes: `GET /health`, `GET /functions`, `GET /functions/{name}/instances`,
//! `GET /instances`, `GET /metrics` (Prometheus). Answers are JSON (text for `/metrics`);
//! errors use the FunctionGraph shape. `/health` needs no token.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use fnbox_engine::InstanceInfo;
use fnbox_wire::front::{paths, FunctionListing};
use serde::Serialize;

use super::error::{Fg, FrontError};
use super::AppState;

/// The admin routes behind the token.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route(paths::FUNCTIONS, get(functions))
        .route(paths::FUNCTION_INSTANCES, get(function_instances))
        .route(paths::INSTANCES, get(instances))
        .route(paths::METRICS, get(metrics))
}

/// `GET /metrics`: the Prometheus exposition (OpenMetrics text) of fnbox's instruments.
async fn metrics(State(state): State<Arc<AppState>>) -> Result<axum::response::Response, Fg> {
    use axum::response::IntoResponse;
    let Some(render) = state.metrics.get() else {
        return Err(Fg(FrontError::RouteNotFound {
            method: "GET".into(),
            path: paths::METRICS.into(),
        }));
    };
    Ok((
        [(
            http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        render(),
    )
        .into_response())
}

/// `GET /health`, the one route answered without the token: it tells nothing but that the
/// front door is up, and liveness/readiness probes (Kubernetes' kubelet) cannot carry a secret.
pub fn health_router() -> Router<Arc<AppState>> {
    Router::new().route(paths::HEALTH, get(health))
}

/// `GET /health`.
#[derive(Serialize)]
struct Health {
    status: &'static str,
}

async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

async fn functions(State(state): State<Arc<AppState>>) -> Json<Vec<FunctionListing>> {
    Json(state.registry.iter().map(|s| s.listing()).collect())
}

async fn function_instances(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Vec<InstanceInfo>>, Fg> {
    let served = state.registry.get(&name).ok_or_else(|| {
        Fg(FrontError::UnknownFunction {
            given: name.clone(),
            serving: state.registry.names(),
        })
    })?;
    Ok(Json(served.pool().instances()))
}

/// One instance in `GET /instances`.
#[derive(Serialize)]
struct InstanceListing {
    /// Function name.
    function: String,
    #[serde(flatten)]
    info: InstanceInfo,
}

async fn instances(State(state): State<Arc<AppState>>) -> Json<Vec<InstanceListing>> {
    Json(
        state
            .registry
            .iter()
            .flat_map(|s| {
                let function = s.name().to_string();
                s.pool()
                    .instances()
                    .into_iter()
                    .map(move |info| InstanceListing {
                        function: function.clone(),
                        info,
                    })
            })
            .collect(),
    )
}
