//! What a load balancer and Prometheus ask a process: `GET /health` (can this origin reach
//! Redis, MySQL and the broker right now?), `GET /livez` and `GET /metrics`.

use std::time::Duration;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::http::state::AppState;
use crate::metrics::{Metrics, EXPOSITION_CONTENT_TYPE};

/// How long one broker probe answers for: a load balancer polling every origin each second
/// costs the broker one message per origin per interval, not one per call.
const PROBE_FRESH: Duration = Duration::from_secs(2);

/// Each service as this origin sees it: `ok` or `down`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub redis: &'static str,
    #[schema(example = "ok")]
    pub mysql: &'static str,
    /// `ok` when a probe message was stored within the last 2 s and no buy has failed since.
    #[schema(example = "ok")]
    pub broker: &'static str,
}

/// `GET /health`: 200 when Redis, MySQL and the broker all answer, else 503; the body says which.
#[utoipa::path(
    get, path = "/health", tag = "operations",
    responses(
        (status = 200, description = "Every service answers", body = Health),
        (status = 503, description = "At least one service is down", body = Health),
    )
)]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let timeout = Duration::from_secs(2);
    let redis = matches!(tokio::time::timeout(timeout, state.stock().ping()).await, Ok(Ok(())));
    let mysql = matches!(tokio::time::timeout(timeout, sqlx::query("SELECT 1").execute(state.db())).await, Ok(Ok(_)));
    // A probe the broker stored at most PROBE_FRESH ago, and no failed buy since the last good
    // one (the client keeps failing for a while after a broker comes back).
    let stored = state
        .broker()
        .probe_result(PROBE_FRESH, async {
            let topic = crate::broker::health_topic(&state.settings().rocketmq);
            let probe = state.sender().send(&topic, "PROBE", "health", b"{}".to_vec(), 0);
            state.metrics().health_probes.inc();
            matches!(tokio::time::timeout(timeout, probe).await, Ok(Ok(())))
        })
        .await;
    let broker = stored && !state.broker().is_failing();
    let word = |ok: bool| if ok { "ok" } else { "down" };
    let status = if redis && mysql && broker { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(Health { redis: word(redis), mysql: word(mysql), broker: word(broker) }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Live {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// `GET /livez`: the process answers HTTP. No I/O at all, so it is also the origin's
/// ceiling in `make bench` (what axum, the runtime and the network cost on their own).
#[utoipa::path(
    get, path = "/livez", tag = "operations",
    responses((status = 200, description = "The process answers", body = Live))
)]
pub async fn livez() -> Json<Live> {
    Json(Live { status: "ok" })
}

/// `GET /metrics`: every counter, gauge and histogram of this process in Prometheus' text format.
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text", body = String))
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    exposition(state.metrics())
}

/// [`Metrics::exposition`] as a `/metrics` answer, with its content type (also the consume
/// process's own `/metrics`).
pub fn exposition(metrics: &Metrics) -> Response {
    ([(CONTENT_TYPE, EXPOSITION_CONTENT_TYPE)], metrics.exposition()).into_response()
}
