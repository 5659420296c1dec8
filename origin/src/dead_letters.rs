//! Dead letters: messages a consumer group gave up on after its max reconsume times. The
//! broker moves them to `%DLQ%<group>`; the keeper copies them into MySQL so operators can
//! list them and replay one to its original topic.

use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::MessageTrait;
use serde::Serialize;
use sqlx::MySqlPool;
use utoipa::ToSchema;

use crate::broker::consumer::last_failure;
use crate::broker::DLQ_PREFIX;

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

/// The newest dead letters, up to `limit`.
pub async fn list(db: &MySqlPool, limit: u32) -> sqlx::Result<Vec<DeadLetter>> {
    let rows: Vec<DeadLetterRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM tb_dead_letter ORDER BY id DESC LIMIT ?"))
            .bind(limit)
            .fetch_all(db)
            .await?;
    Ok(rows.into_iter().map(DeadLetter::from).collect())
}

/// One dead letter, if it exists.
pub async fn find(db: &MySqlPool, id: u64) -> sqlx::Result<Option<DeadLetter>> {
    let row: Option<DeadLetterRow> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM tb_dead_letter WHERE id = ?"))
        .bind(id)
        .fetch_optional(db)
        .await?;
    Ok(row.map(DeadLetter::from))
}

/// Records that `id` was sent again to its topic (a replay; replaying twice sends twice).
pub async fn mark_replayed(db: &MySqlPool, id: u64) -> sqlx::Result<()> {
    sqlx::query("UPDATE tb_dead_letter SET replayed_at = CURRENT_TIMESTAMP(3) WHERE id = ?")
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}
