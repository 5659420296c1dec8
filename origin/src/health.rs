//! `GET /health`: can this origin reach Redis, MySQL and the broker right now?

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::state::AppState;

/// How long one broker probe answers for: a load balancer polling every origin each second
/// costs the broker one message per origin per interval, not one per call.
const PROBE_FRESH: Duration = Duration::from_secs(2);

pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
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
    (status, Json(json!({ "redis": word(redis), "mysql": word(mysql), "broker": word(broker) })))
}

/// `GET /livez`: the process answers HTTP. No I/O at all, so it is also the origin's
/// ceiling in `make bench` (what axum, the runtime and the network cost on their own).
pub async fn livez() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}
