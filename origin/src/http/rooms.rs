//! `POST /api/rooms/report` (behind the edge secret): a waiting room's Durable Object reports
//! its counters ([`crate::rooms`]); the console and `/metrics` show them.

use axum::extract::State;
use axum::http::StatusCode;
use seckill_protocol::room::RoomReport;

use crate::error::{ApiError, ErrorBody};
use crate::http::extract::JsonBody;
use crate::http::state::AppState;

/// `POST /api/rooms/report`: one shard of a sale's waiting room, as it stands now. 204.
#[utoipa::path(
    post, path = "/api/rooms/report", tag = "edge", security(("edgeSecret" = [])),
    request_body = RoomReport,
    responses(
        (status = 204, description = "Kept"),
        (status = 400, description = "`BAD_REQUEST`: a field is missing, unknown or out of bounds", body = ErrorBody),
        (status = 422, description = "`INVALID_COMBINATION`: shard not below shards", body = ErrorBody),
        (status = 403, description = "`FORBIDDEN`: not from the edge", body = ErrorBody),
    )
)]
pub async fn report(
    State(state): State<AppState>,
    JsonBody(report): JsonBody<RoomReport>,
) -> Result<StatusCode, ApiError> {
    report.validate()?;
    let product_id = report.product_id;
    let activity = state.room_reports().record(report, std::time::Instant::now());
    state.metrics().set_room(product_id, &activity.gauges());
    Ok(StatusCode::NO_CONTENT)
}
