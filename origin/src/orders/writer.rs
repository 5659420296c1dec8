//! The order writer: turns one `seckill-order` message into MySQL rows, exactly once.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::MySqlPool;

use super::events::{self, OrderEvent};
use super::OrderMessage;

/// What [`write`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Order, stock decrement, stock log and user record committed.
    Created,
    /// The dedupe row was already there: a redelivery; nothing changed.
    AlreadyWritten,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Transient (connection lost, deadlock, timeout): the broker should redeliver.
    #[error("mysql: {0}")]
    Database(#[from] sqlx::Error),
    /// Redis took stock MySQL does not have: Redis and MySQL disagree (e.g. a preload from
    /// stale data). Retried, then dead-lettered for an operator; never silently dropped.
    #[error("product {product_id} has less stock in MySQL than order {order_no} takes")]
    StockShortage { product_id: u64, order_no: String },
    #[error("order {order_no} names product {product_id}, which MySQL does not have")]
    NoSuchProduct { product_id: u64, order_no: String },
}

/// Writes the order in one MySQL transaction: dedupe row (`group`, orderNo), guarded stock
/// decrement, order (UNPAID, expiring `pay_timeout` from now), stock log row, user record,
/// CREATED event in the outbox.
/// A message whose dedupe row exists changes nothing and returns [`Written::AlreadyWritten`].
pub async fn write(
    pool: &MySqlPool,
    group: &str,
    msg: &OrderMessage,
    pay_timeout: std::time::Duration,
) -> Result<Written, WriteError> {
    let mut tx = pool.begin().await?;

    // A concurrent duplicate blocks here on the unique key until the first commits, then
    // fails with a duplicate-key error: the message was already written.
    let dedupe = sqlx::query("INSERT INTO tb_message_dedupe (consumer_group, message_key) VALUES (?, ?)")
        .bind(group)
        .bind(&msg.order_no)
        .execute(&mut *tx)
        .await;
    match dedupe {
        Ok(_) => {}
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            tx.rollback().await?;
            return Ok(Written::AlreadyWritten);
        }
        Err(e) => return Err(e.into()),
    }

    let decremented = sqlx::query(
        "UPDATE tb_seckill_product SET stock = stock - ?, version = version + 1 WHERE id = ? AND stock >= ?",
    )
    .bind(msg.quantity)
    .bind(msg.product_id)
    .bind(msg.quantity)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !decremented {
        let exists: Option<(u64,)> = sqlx::query_as("SELECT id FROM tb_seckill_product WHERE id = ?")
            .bind(msg.product_id)
            .fetch_optional(&mut *tx)
            .await?;
        tx.rollback().await?;
        let (product_id, order_no) = (msg.product_id, msg.order_no.clone());
        return Err(match exists {
            Some(_) => WriteError::StockShortage { product_id, order_no },
            None => WriteError::NoSuchProduct { product_id, order_no },
        });
    }
    // Our UPDATE holds the row lock, so this reads our own decrement.
    let (after,): (u32,) = sqlx::query_as("SELECT stock FROM tb_seckill_product WHERE id = ?")
        .bind(msg.product_id)
        .fetch_one(&mut *tx)
        .await?;
    let before = after + msg.quantity;

    let now = Utc::now();
    let accepted = DateTime::<Utc>::from_timestamp_millis(msg.accepted_at).unwrap_or(now);
    let expire = now + chrono::Duration::from_std(pay_timeout).unwrap_or(chrono::Duration::minutes(30));
    let amount = msg.price * Decimal::from(msg.quantity);
    sqlx::query(
        "INSERT INTO tb_seckill_order (order_no, user_id, product_id, quantity, amount, status, created_at, expire_at) \
         VALUES (?, ?, ?, ?, ?, 'UNPAID', ?, ?)",
    )
    .bind(&msg.order_no)
    .bind(msg.user_id)
    .bind(msg.product_id)
    .bind(msg.quantity)
    .bind(amount)
    .bind(accepted.naive_utc())
    .bind(expire.naive_utc())
    .execute(&mut *tx)
    .await?;

    sqlx::query(
        "INSERT INTO tb_stock_log (order_no, product_id, before_stock, after_stock, reason) VALUES (?, ?, ?, ?, 'ORDER')",
    )
    .bind(&msg.order_no)
    .bind(msg.product_id)
    .bind(before)
    .bind(after)
    .execute(&mut *tx)
    .await?;

    sqlx::query("INSERT INTO tb_user_seckill (user_id, product_id, order_no) VALUES (?, ?, ?)")
        .bind(msg.user_id)
        .bind(msg.product_id)
        .bind(&msg.order_no)
        .execute(&mut *tx)
        .await?;
    events::record(&mut tx, &msg.order_no, OrderEvent::Created, msg.user_id, msg.product_id, msg.quantity).await?;

    tx.commit().await?;
    Ok(Written::Created)
}
