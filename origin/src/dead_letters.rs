//! Dead letters: messages a consumer group gave up on after its max reconsume times. The
//! broker moves them to `%DLQ%<group>`; the keeper copies them into MySQL so operators can
//! list them and replay one to its original topic.

use axum::extract::{Path, State};
use axum::Json;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::MessageTrait;
use serde::Serialize;
use sqlx::MySqlPool;
use utoipa::ToSchema;

use crate::broker::consumer::last_failure;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

const DLQ_PREFIX: &str = "%DLQ%";

/// The DLQ topic of a consumer group.
pub fn dlq_topic(group: &str) -> String {
    format!("{DLQ_PREFIX}{group}")
}

/// Stores one message read from a `%DLQ%<group>` topic (idempotent on its message id).
pub async fn keep(db: &MySqlPool, msg: &MessageExt) -> Result<(), String> {
    let dlq_topic = msg.topic().to_string();
    let group = dlq_topic.strip_prefix(DLQ_PREFIX).unwrap_or(&dlq_topic).to_string();
    let prop =
        |name: &'static str| msg.property(&cheetah_string::CheetahString::from_static_str(name)).map(|v| v.to_string());
    // The broker keeps the original topic in RETRY_TOPIC when it moves a message to a DLQ.
    let topic = prop("RETRY_TOPIC").unwrap_or_else(|| dlq_topic.clone());
    let key = msg.get_keys().map(|k| k.to_string());
    let reason = last_failure(&group, msg).unwrap_or_else(|| "failed more than the group's max reconsume times".into());
    let body = msg.body().map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    sqlx::query(
        "INSERT INTO tb_dead_letter (msg_id, consumer_group, topic, tags, message_key, body, reason, reconsume_times) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE msg_id = msg_id",
    )
    .bind(msg.msg_id().to_string())
    .bind(&group)
    .bind(&topic)
    .bind(msg.get_tags().map(|t| t.to_string()))
    .bind(key)
    .bind(body)
    .bind(reason)
    .bind(msg.reconsume_times())
    .execute(db)
    .await
    .map_err(|e| e.to_string())?;
    tracing::warn!(%group, %topic, msg_id = %msg.msg_id(), "message dead-lettered");
    Ok(())
}

/// Stores an order message `group` can never read (it is not an order), as a dead letter with
/// `reason`, at its first delivery: retrying it would fail the same way for hours.
pub async fn keep_unreadable(db: &MySqlPool, group: &str, msg: &MessageExt, reason: &str) -> Result<(), String> {
    let body = msg.body().map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    sqlx::query(
        "INSERT INTO tb_dead_letter (msg_id, consumer_group, topic, tags, message_key, body, reason, reconsume_times) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE msg_id = msg_id",
    )
    .bind(msg.msg_id().to_string())
    .bind(group)
    .bind(msg.topic().to_string())
    .bind(msg.get_tags().map(|t| t.to_string()))
    .bind(msg.get_keys().map(|k| k.to_string()))
    .bind(body)
    .bind(reason.chars().take(512).collect::<String>())
    .bind(msg.reconsume_times())
    .execute(db)
    .await
    .map_err(|e| e.to_string())?;
    tracing::warn!(%group, msg_id = %msg.msg_id(), %reason, "unreadable message kept as a dead letter");
    Ok(())
}

type DeadLetterRow = (
    u64,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    i32,
    chrono::NaiveDateTime,
    Option<chrono::NaiveDateTime>,
);

const COLUMNS: &str =
    "id, consumer_group, topic, tags, message_key, body, reason, reconsume_times, created_at, replayed_at";

/// A message a consumer group gave up on; times are epoch milliseconds.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub id: u64,
    pub group: String,
    /// The topic it was sent to (and a replay sends it to).
    pub topic: String,
    pub tags: Option<String>,
    pub key: Option<String>,
    pub body: String,
    /// The consumer's last failure.
    pub reason: String,
    /// How many times the group tried it.
    pub times: i32,
    pub dead_at: i64,
    pub replayed_at: Option<i64>,
}

impl From<DeadLetterRow> for DeadLetter {
    fn from(r: DeadLetterRow) -> Self {
        DeadLetter {
            id: r.0,
            group: r.1,
            topic: r.2,
            tags: r.3,
            key: r.4,
            body: r.5,
            reason: r.6,
            times: r.7,
            dead_at: r.8.and_utc().timestamp_millis(),
            replayed_at: r.9.map(|t| t.and_utc().timestamp_millis()),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterList {
    pub dead_letters: Vec<DeadLetter>,
}

/// All dead letters and those not replayed yet.
pub async fn counts(db: &MySqlPool) -> sqlx::Result<(u64, u64)> {
    let (total, unreplayed): (i64, i64) = sqlx::query_as(
        "SELECT CAST(COUNT(*) AS SIGNED), CAST(COALESCE(SUM(replayed_at IS NULL), 0) AS SIGNED) FROM tb_dead_letter",
    )
    .fetch_one(db)
    .await?;
    // Counts: never negative.
    Ok((u64::try_from(total).unwrap_or(0), u64::try_from(unreplayed).unwrap_or(0)))
}

/// `GET /admin/dead-letters` (newest first, up to 500).
#[utoipa::path(
    get, path = "/admin/dead-letters", tag = "admin", security(("adminToken" = [])),
    responses(
        (status = 200, description = "Dead letters, newest first", body = DeadLetterList),
        (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
    )
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<DeadLetterList>, ApiError> {
    let rows: Vec<DeadLetterRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM tb_dead_letter ORDER BY id DESC LIMIT 500"))
            .fetch_all(state.db())
            .await?;
    Ok(Json(DeadLetterList { dead_letters: rows.into_iter().map(DeadLetter::from).collect() }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Replayed {
    pub id: u64,
    pub topic: String,
    pub replayed: bool,
}

/// `POST /admin/dead-letters/{id}/replay`: sends the message again to its original topic, with
/// its tags and key. Replaying twice sends twice; consumers are idempotent.
#[utoipa::path(
    post, path = "/admin/dead-letters/{id}/replay", tag = "admin", security(("adminToken" = [])),
    params(("id" = u64, Path, description = "The dead letter")),
    responses(
        (status = 200, description = "Sent again", body = Replayed),
        (status = 400, description = "`BAD_REQUEST`: bad id", body = ErrorBody),
        (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
        (status = 404, description = "`NO_SUCH_DEAD_LETTER`", body = ErrorBody),
        (status = 503, description = "`UNAVAILABLE`: the broker did not take it", body = ErrorBody),
    )
)]
pub async fn replay(State(state): State<AppState>, Path(raw): Path<String>) -> Result<Json<Replayed>, ApiError> {
    let id: u64 = raw
        .parse()
        .ok()
        .filter(|id| *id >= 1)
        .ok_or_else(|| ApiError::BadRequest(format!("dead-letter id must be a positive integer, got {raw:?}")))?;
    let row: DeadLetterRow = sqlx::query_as(&format!("SELECT {COLUMNS} FROM tb_dead_letter WHERE id = ?"))
        .bind(id)
        .fetch_optional(state.db())
        .await?
        .ok_or_else(|| ApiError::not_found("NO_SUCH_DEAD_LETTER", format!("no dead letter {id}")))?;
    let (topic, tags, key, body) = (&row.2, row.3.as_deref().unwrap_or(""), row.4.as_deref().unwrap_or(""), &row.5);
    state
        .sender()
        .send(topic, tags, key, body.clone().into_bytes(), 0)
        .await
        .map_err(|e| ApiError::Unavailable(format!("could not send the message back to {topic}: {e}")))?;
    sqlx::query("UPDATE tb_dead_letter SET replayed_at = CURRENT_TIMESTAMP(3) WHERE id = ?")
        .bind(id)
        .execute(state.db())
        .await?;
    Ok(Json(Replayed { id, topic: topic.clone(), replayed: true }))
}
