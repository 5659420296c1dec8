//! The dead letters of the admin API: list them, replay one ([`crate::dead_letters`]).

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::dead_letters::{self, DeadLetterList};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::http::extract::DeadLetterId;
use crate::http::state::AppState;

/// `GET /admin/dead-letters` (newest first, up to 500).
#[utoipa::path(
    get, path = "/admin/dead-letters", tag = "admin", security(("adminToken" = [])),
    responses(
        (status = 200, description = "Dead letters, newest first", body = DeadLetterList),
        (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
    )
)]
pub(super) async fn list(State(state): State<AppState>) -> Result<Json<DeadLetterList>, ApiError> {
    Ok(Json(DeadLetterList { dead_letters: dead_letters::list(state.db(), 500).await? }))
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Replayed {
    pub id: u64,
    pub topic: String,
    pub replayed: bool,
}

/// `POST /admin/dead-letters/{id}/replay`: sends the message again to its original topic, with
/// its tags and key. Replaying twice sends twice; consumers are idempotent.
#[utoipa::path(
    post, path = "/admin/dead-letters/{id}/replay", tag = "admin", security(("adminToken" = [])),
    params(("id" = u64, Path, minimum = 1, description = "The dead letter")),
    responses(
        (status = 200, description = "Sent again", body = Replayed),
        (status = 400, description = "`BAD_REQUEST`: bad id", body = ErrorBody),
        (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
        (status = 404, description = "`NO_SUCH_DEAD_LETTER`", body = ErrorBody),
        (status = 503, description = "`UNAVAILABLE`: the broker did not take it", body = ErrorBody),
    )
)]
pub(super) async fn replay(
    State(state): State<AppState>,
    DeadLetterId(id): DeadLetterId,
) -> Result<Json<Replayed>, ApiError> {
    let letter = dead_letters::find(state.db(), id)
        .await?
        .ok_or_else(|| ApiError::not_found(ErrorCode::NoSuchDeadLetter, format!("no dead letter {id}")))?;
    let (tags, key) = (letter.tags.as_deref().unwrap_or(""), letter.key.as_deref().unwrap_or(""));
    state
        .sender()
        .send(&letter.topic, tags, key, letter.body.clone().into_bytes(), 0)
        .await
        .map_err(|e| ApiError::unavailable(format!("could not send the message back to {}: {e}", letter.topic)))?;
    dead_letters::mark_replayed(state.db(), id).await?;
    Ok(Json(Replayed { id, topic: letter.topic, replayed: true }))
}
