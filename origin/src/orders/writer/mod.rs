//! The order writer: turns `seckill-order` messages into MySQL rows, exactly once.
//!
//! [`write_batch`] (in `batch.rs`) writes a whole batch in one transaction (the fast path: one
//! guarded stock UPDATE per product, multi-row INSERTs). Whatever makes a batch fail, the caller retries its
//! orders one by one with [`write`], which isolates the one that cannot be written and tells
//! a permanent refusal ([`Refusal`], recorded by [`reject`]) from a transient error.

use chrono::{DateTime, NaiveDateTime, Utc};
use rust_decimal::Decimal;
use sqlx::{MySql, MySqlPool, Transaction};

mod batch;

use super::events::{self, OrderEvent};
use super::OrderMessage;
pub use batch::{write_batch, BatchWritten};

/// What [`write`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Order, stock decrement, stock log and user record committed.
    Created,
    /// The dedupe row was already there: a redelivery; nothing changed.
    AlreadyWritten,
}

/// Why an order can never be written: retrying would fail the same way for hours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The user already holds an active order of the product.
    DuplicateActiveOrder,
    /// price × quantity does not fit `tb_seckill_order.amount` (DECIMAL(14,2)).
    AmountTooLarge,
    /// MySQL has fewer units left than the order takes: Redis sold stock that does not exist
    /// (it lost writes, or was loaded from a stale view). The sale is frozen and healed
    /// (`fencing`); the order's deduction is dropped without giving units back.
    StockShortage,
    /// The order names a product MySQL does not have.
    NoSuchProduct,
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::DuplicateActiveOrder => "DUPLICATE_ACTIVE_ORDER",
            Refusal::AmountTooLarge => "AMOUNT_TOO_LARGE",
            Refusal::StockShortage => "STOCK_SHORTAGE",
            Refusal::NoSuchProduct => "NO_SUCH_PRODUCT",
        }
    }

    /// The refusal whose [`Refusal::code`] is `code`.
    pub fn from_code(code: &str) -> Option<Refusal> {
        [Refusal::DuplicateActiveOrder, Refusal::AmountTooLarge, Refusal::StockShortage, Refusal::NoSuchProduct]
            .into_iter()
            .find(|r| r.code() == code)
    }

    /// Whether the order's units go back on sale in Redis: not when they never existed in
    /// MySQL (the Redis stock that sold them was too high, and reconcile sets it right).
    pub fn gives_units_back(&self) -> bool {
        !matches!(self, Refusal::StockShortage | Refusal::NoSuchProduct)
    }

    /// Whether the user stays a buyer of the product in Redis once this order is given back.
    pub fn user_keeps_another_order(&self) -> bool {
        matches!(self, Refusal::DuplicateActiveOrder)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Transient (connection lost, deadlock, timeout): the broker should redeliver.
    #[error("mysql: {0}")]
    Database(#[from] sqlx::Error),
    /// The order can never be written; see [`reject`].
    #[error("order {order_no} refused for good: {}", refusal.code())]
    Refused { order_no: String, refusal: Refusal, detail: String },
}

/// The largest amount `DECIMAL(14, 2)` holds.
fn max_amount() -> Decimal {
    Decimal::new(99_999_999_999_999, 2)
}

fn amount_of(msg: &OrderMessage) -> Result<Decimal, WriteError> {
    match msg.price.checked_mul(Decimal::from(msg.quantity)) {
        Some(amount) if amount <= max_amount() && amount >= Decimal::ZERO => Ok(amount),
        _ => Err(WriteError::Refused {
            order_no: msg.order_no.clone(),
            refusal: Refusal::AmountTooLarge,
            detail: format!("{} x {} does not fit DECIMAL(14,2)", msg.price, msg.quantity),
        }),
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// Times every order row carries: accepted (created_at) and the payment deadline.
fn times(msg: &OrderMessage, pay_timeout: std::time::Duration) -> (NaiveDateTime, NaiveDateTime) {
    let now = Utc::now();
    let accepted = DateTime::<Utc>::from_timestamp_millis(msg.accepted_at).unwrap_or(now);
    let expire = now + chrono::Duration::from_std(pay_timeout).unwrap_or(chrono::Duration::minutes(30));
    (accepted.naive_utc(), expire.naive_utc())
}

/// Writes one order in one MySQL transaction: dedupe row (`group`, orderNo), guarded stock
/// decrement, order (UNPAID, expiring `pay_timeout` from now), stock log row, user record,
/// CREATED event in the outbox.
/// A message whose dedupe row exists changes nothing and returns [`Written::AlreadyWritten`].
pub async fn write(
    pool: &MySqlPool,
    group: &str,
    msg: &OrderMessage,
    pay_timeout: std::time::Duration,
) -> Result<Written, WriteError> {
    let amount = amount_of(msg)?;
    let mut tx = pool.begin().await?;
    if !claim(&mut tx, group, &msg.order_no).await? {
        tx.rollback().await?;
        return Ok(Written::AlreadyWritten);
    }

    let after = take_stock(&mut tx, msg.product_id, msg.quantity, &msg.order_no).await?;
    let before = after + msg.quantity;
    let (accepted, expire) = times(msg, pay_timeout);
    sqlx::query(
        "INSERT INTO tb_seckill_order (order_no, user_id, product_id, quantity, amount, status, created_at, expire_at) \
         VALUES (?, ?, ?, ?, ?, 'UNPAID', ?, ?)",
    )
    .bind(&msg.order_no)
    .bind(msg.user_id)
    .bind(msg.product_id)
    .bind(msg.quantity)
    .bind(amount)
    .bind(accepted)
    .bind(expire)
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

    let holder = sqlx::query("INSERT INTO tb_user_seckill (user_id, product_id, order_no) VALUES (?, ?, ?)")
        .bind(msg.user_id)
        .bind(msg.product_id)
        .bind(&msg.order_no)
        .execute(&mut *tx)
        .await;
    match holder {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => {
            tx.rollback().await?;
            return Err(WriteError::Refused {
                order_no: msg.order_no.clone(),
                refusal: Refusal::DuplicateActiveOrder,
                detail: format!("user {} already holds an active order of product {}", msg.user_id, msg.product_id),
            });
        }
        Err(e) => return Err(e.into()),
    }
    events::record(&mut tx, &msg.order_no, OrderEvent::Created, msg.user_id, msg.product_id, msg.quantity).await?;

    tx.commit().await?;
    Ok(Written::Created)
}

/// Inserts the dedupe row of message `key` in `group`; false if it exists (handled before).
/// A concurrent duplicate blocks here on the unique key until the first commits, then fails
/// with a duplicate-key error.
async fn claim(tx: &mut Transaction<'_, MySql>, group: &str, key: &str) -> sqlx::Result<bool> {
    let inserted = sqlx::query("INSERT INTO tb_message_dedupe (consumer_group, message_key) VALUES (?, ?)")
        .bind(group)
        .bind(key)
        .execute(&mut **tx)
        .await;
    match inserted {
        Ok(_) => Ok(true),
        Err(e) if is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Guarded decrement of a product's MySQL stock by `quantity`; returns the stock after it.
async fn take_stock(
    tx: &mut Transaction<'_, MySql>,
    product_id: u64,
    quantity: u32,
    order_no: &str,
) -> Result<u32, WriteError> {
    let decremented = sqlx::query(
        "UPDATE tb_seckill_product SET stock = stock - ?, version = version + 1 WHERE id = ? AND stock >= ?",
    )
    .bind(quantity)
    .bind(product_id)
    .bind(quantity)
    .execute(&mut **tx)
    .await?
    .rows_affected()
        == 1;
    if !decremented {
        let exists: Option<(u64,)> = sqlx::query_as("SELECT id FROM tb_seckill_product WHERE id = ?")
            .bind(product_id)
            .fetch_optional(&mut **tx)
            .await?;
        let order_no = order_no.to_string();
        return Err(match exists {
            Some(_) => WriteError::Refused {
                order_no,
                refusal: Refusal::StockShortage,
                detail: format!("product {product_id} has fewer units left in MySQL than the order's {quantity}"),
            },
            None => WriteError::Refused {
                order_no,
                refusal: Refusal::NoSuchProduct,
                detail: format!("MySQL has no product {product_id}"),
            },
        });
    }
    // Our UPDATE holds the row lock, so this reads our own decrement.
    let (after,): (u32,) = sqlx::query_as("SELECT stock FROM tb_seckill_product WHERE id = ?")
        .bind(product_id)
        .fetch_one(&mut **tx)
        .await?;
    Ok(after)
}

/// Records a refused order with its reason, with its dedupe row in the same transaction:
/// [`Written::AlreadyWritten`] if this message was handled before (written or refused).
/// The caller then gives its stock back in Redis (which acts once).
pub async fn reject(
    pool: &MySqlPool,
    group: &str,
    msg: &OrderMessage,
    refusal: &Refusal,
    detail: &str,
) -> Result<Written, sqlx::Error> {
    let mut tx = pool.begin().await?;
    if !claim(&mut tx, group, &msg.order_no).await? {
        tx.rollback().await?;
        return Ok(Written::AlreadyWritten);
    }
    sqlx::query(
        "INSERT INTO tb_rejected_order (order_no, user_id, product_id, quantity, reason, detail) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(&msg.order_no)
    .bind(msg.user_id)
    .bind(msg.product_id)
    .bind(msg.quantity)
    .bind(refusal.code())
    .bind(detail.chars().take(255).collect::<String>())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Written::Created)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(price: &str, quantity: u32) -> OrderMessage {
        OrderMessage {
            order_no: "1-1".into(),
            user_id: 1,
            product_id: 1,
            quantity,
            price: price.parse().unwrap(),
            accepted_at: 0,
        }
    }

    #[test]
    fn an_amount_that_does_not_fit_its_column_is_refused_for_good() {
        assert_eq!(amount_of(&order("999999999999.99", 1)).unwrap(), "999999999999.99".parse().unwrap());
        let err = amount_of(&order("1000000000.00", 1000)).unwrap_err();
        assert!(matches!(err, WriteError::Refused { refusal: Refusal::AmountTooLarge, .. }), "{err}");
    }
}
