//! Order events (topic `seckill-order-event`, tags CREATED / PAID / CANCELLED) through an
//! outbox: [`record`] writes the event in the transaction of the state change it announces,
//! [`relay`] publishes what is unsent. At least once; consumers dedupe on (orderNo, tag).

use std::time::Duration;

use serde_json::json;
use sqlx::{MySql, MySqlPool, Transaction};

use crate::broker::sender::Sender;

/// The events an order's life produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderEvent {
    Created,
    Paid,
    Cancelled,
}

impl OrderEvent {
    pub fn tag(self) -> &'static str {
        match self {
            OrderEvent::Created => "CREATED",
            OrderEvent::Paid => "PAID",
            OrderEvent::Cancelled => "CANCELLED",
        }
    }
}

/// Writes `event` for the order into the outbox, inside the caller's transaction.
/// Body: `{"orderNo","event","userId","productId","quantity","at"}` (at = ms since epoch).
pub async fn record(
    tx: &mut Transaction<'_, MySql>,
    order_no: &str,
    event: OrderEvent,
    user_id: u64,
    product_id: u64,
    quantity: u32,
) -> sqlx::Result<()> {
    let payload = json!({
        "orderNo": order_no,
        "event": event.tag(),
        "userId": user_id,
        "productId": product_id,
        "quantity": quantity,
        "at": chrono::Utc::now().timestamp_millis(),
    });
    sqlx::query("INSERT INTO tb_order_event (order_no, event, payload) VALUES (?, ?, ?)")
        .bind(order_no)
        .bind(event.tag())
        .bind(payload.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Publishes unsent events in insertion order until the task is dropped. Errors are logged
/// and retried after a pause; nothing is marked sent unless the broker stored it.
pub async fn relay(db: MySqlPool, sender: std::sync::Arc<Sender>, topic: String) {
    loop {
        match relay_batch(&db, &sender, &topic).await {
            Ok(0) => tokio::time::sleep(Duration::from_millis(200)).await,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "order event relay failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn relay_batch(db: &MySqlPool, sender: &Sender, topic: &str) -> Result<usize, String> {
    let batch: Vec<(u64, String, String, String)> = sqlx::query_as(
        "SELECT id, order_no, event, payload FROM tb_order_event WHERE sent_at IS NULL ORDER BY id LIMIT 200",
    )
    .fetch_all(db)
    .await
    .map_err(|e| e.to_string())?;
    for (id, order_no, event, payload) in &batch {
        sender.send(topic, event, order_no, payload.clone().into_bytes(), 0).await.map_err(|e| e.to_string())?;
        sqlx::query("UPDATE tb_order_event SET sent_at = CURRENT_TIMESTAMP(3) WHERE id = ?")
            .bind(id)
            .execute(db)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(batch.len())
}
