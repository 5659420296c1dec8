//! What the edge reports (behind the edge secret; [`crate::rooms`]): `POST /api/rooms/report`,
//! a waiting room's Durable Object's counters, and `POST /api/edge/refusals`, the answers an
//! edge instance decided itself. The console and `/metrics` show them.

use axum::extract::State;
use axum::http::StatusCode;
use seckill_protocol::errors::EdgeRefusals;
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

/// `POST /api/edge/refusals`: the answers one edge instance decided itself since its last
/// report, by sale and code. 204.
#[utoipa::path(
    post, path = "/api/edge/refusals", tag = "edge", security(("edgeSecret" = [])),
    request_body = EdgeRefusals,
    responses(
        (status = 204, description = "Added"),
        (status = 400, description = "`BAD_REQUEST`: an unknown code, a count of 0, too many counts", body = ErrorBody),
        (status = 403, description = "`FORBIDDEN`: not from the edge", body = ErrorBody),
    )
)]
pub async fn refusals(
    State(state): State<AppState>,
    JsonBody(report): JsonBody<EdgeRefusals>,
) -> Result<StatusCode, ApiError> {
    report.validate()?;
    state.edge_refusals().add(&report);
    for c in &report.counts {
        state.metrics().edge_refused(c.product_id, &c.code, c.count);
    }
    Ok(StatusCode::NO_CONTENT)
}
