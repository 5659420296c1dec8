//! `GET /health`: can this origin reach Redis, MySQL and the broker right now?

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::startup::AppState;

pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let timeout = Duration::from_secs(2);
    let redis = matches!(tokio::time::timeout(timeout, state.stock().ping()).await, Ok(Ok(())));
    let mysql = matches!(tokio::time::timeout(timeout, sqlx::query("SELECT 1").execute(state.db())).await, Ok(Ok(_)));
    // The name server must answer, and the last buy must not have failed to reach a broker.
    let namesrv = &state.settings().rocketmq.namesrv_addr;
    let namesrv_up = matches!(tokio::time::timeout(timeout, tokio::net::TcpStream::connect(namesrv)).await, Ok(Ok(_)));
    let broker = namesrv_up && !state.broker_failing();
    let word = |ok: bool| if ok { "ok" } else { "down" };
    let status = if redis && mysql && broker { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(json!({ "redis": word(redis), "mysql": word(mysql), "broker": word(broker) })))
}
