//! Order events (topic `seckill-order-event`, tags CREATED / PAID / CANCELLED) through an
//! outbox: [`record`] writes the event in the transaction of the state change it announces,
//! [`relay`] publishes what is unsent. At least once; consumers dedupe on (orderNo, tag).

use std::time::Duration;

use serde_json::json;
use sqlx::{MySql, MySqlPool, QueryBuilder, Transaction};

use crate::broker::sender::{Outgoing, Sender};

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
    sqlx::query("INSERT INTO tb_order_event (order_no, event, payload) VALUES (?, ?, ?)")
        .bind(order_no)
        .bind(event.tag())
        .bind(payload(order_no, event, user_id, product_id, quantity))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// One event for [`record_many`].
#[derive(Debug)]
pub struct NewEvent<'a> {
    pub order_no: &'a str,
    pub event: OrderEvent,
    pub user_id: u64,
    pub product_id: u64,
    pub quantity: u32,
}

fn payload(order_no: &str, event: OrderEvent, user_id: u64, product_id: u64, quantity: u32) -> String {
    json!({
        "orderNo": order_no,
        "event": event.tag(),
        "userId": user_id,
        "productId": product_id,
        "quantity": quantity,
        "at": chrono::Utc::now().timestamp_millis(),
    })
    .to_string()
}

/// Like [`record`] for many events, in one INSERT.
pub async fn record_many(tx: &mut Transaction<'_, MySql>, events: &[NewEvent<'_>]) -> sqlx::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    QueryBuilder::<MySql>::new("INSERT INTO tb_order_event (order_no, event, payload) ")
        .push_values(events, |mut row, e| {
            row.push_bind(e.order_no).push_bind(e.event.tag()).push_bind(payload(
                e.order_no,
                e.event,
                e.user_id,
                e.product_id,
                e.quantity,
            ));
        })
        .build()
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

/// Sends up to 500 unsent events, one broker batch per tag, and marks what was stored.
async fn relay_batch(db: &MySqlPool, sender: &Sender, topic: &str) -> Result<usize, String> {
    let batch: Vec<(u64, String, String, String)> = sqlx::query_as(
        "SELECT id, order_no, event, payload FROM tb_order_event WHERE sent_at IS NULL ORDER BY id LIMIT 500",
    )
    .fetch_all(db)
    .await
    .map_err(|e| e.to_string())?;
    // Per order the events are CREATED, then PAID or CANCELLED, rows apart in insertion order;
    // sending tag by tag keeps each tag's order, and subscribers dedupe on (orderNo, tag).
    let mut by_tag: std::collections::BTreeMap<&str, Vec<&(u64, String, String, String)>> = Default::default();
    for row in &batch {
        by_tag.entry(row.2.as_str()).or_default().push(row);
    }
    for (tag, rows) in by_tag {
        let outgoing = rows
            .iter()
            .map(|(_, order_no, _, payload)| Outgoing { key: order_no.clone(), body: payload.clone().into_bytes() })
            .collect();
        sender.send_batch(topic, tag, outgoing).await.map_err(|e| e.to_string())?;
        let mut mark =
            QueryBuilder::<MySql>::new("UPDATE tb_order_event SET sent_at = CURRENT_TIMESTAMP(3) WHERE id IN (");
        let mut ids = mark.separated(", ");
        for (id, ..) in &rows {
            ids.push_bind(*id);
        }
        ids.push_unseparated(")");
        mark.build().execute(db).await.map_err(|e| e.to_string())?;
    }
    Ok(batch.len())
}
