//! The order writer: turns `seckill-order` messages into MySQL rows, exactly once.
//!
//! [`write_batch`] writes a whole batch in one transaction (the fast path: one guarded stock
//! UPDATE per product, multi-row INSERTs). Whatever makes a batch fail, the caller retries its
//! orders one by one with [`write`], which isolates the one that cannot be written and tells
//! a permanent refusal ([`Refusal`], recorded by [`reject`]) from a transient error.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, NaiveDateTime, Utc};
use rust_decimal::Decimal;
use sqlx::{MySql, MySqlPool, QueryBuilder, Transaction};

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

/// What [`write_batch`] did, by order number.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchWritten {
    pub created: Vec<String>,
    /// Handled before (a redelivery, or the same message twice in this batch).
    pub already_written: Vec<String>,
}

/// Writes every order of `msgs` in one transaction: dedupe rows, one guarded stock UPDATE per
/// product with the summed quantity, and multi-row INSERTs of orders, stock log (before/after
/// per order), user records and CREATED events. All or nothing: on any error nothing is
/// written and the caller falls back to [`write`] per order.
pub async fn write_batch(
    pool: &MySqlPool,
    group: &str,
    msgs: &[OrderMessage],
    pay_timeout: std::time::Duration,
) -> Result<BatchWritten, WriteError> {
    let mut result = BatchWritten::default();
    let mut seen = HashSet::new();
    let mut unique: Vec<&OrderMessage> = Vec::with_capacity(msgs.len());
    for m in msgs {
        if seen.insert(m.order_no.as_str()) {
            unique.push(m);
        } else {
            result.already_written.push(m.order_no.clone());
        }
    }
    if unique.is_empty() {
        return Ok(result);
    }
    let amounts: Vec<Decimal> = unique.iter().map(|m| amount_of(m)).collect::<Result<_, _>>()?;
    let mut tx = pool.begin().await?;

    let mut known = QueryBuilder::<MySql>::new("SELECT message_key FROM tb_message_dedupe WHERE consumer_group = ");
    known.push_bind(group).push(" AND message_key IN (");
    let mut keys = known.separated(", ");
    for m in &unique {
        keys.push_bind(&m.order_no);
    }
    keys.push_unseparated(")");
    let known: HashSet<String> = known.build_query_scalar::<String>().fetch_all(&mut *tx).await?.into_iter().collect();
    let mut fresh = Vec::with_capacity(unique.len());
    for (m, amount) in unique.into_iter().zip(amounts) {
        if known.contains(&m.order_no) {
            result.already_written.push(m.order_no.clone());
        } else {
            fresh.push((m, amount));
        }
    }
    if fresh.is_empty() {
        tx.rollback().await?;
        return Ok(result);
    }

    // A concurrent writer of one of these messages makes this INSERT fail (after waiting on
    // its commit): the batch falls back to per-order writes, which sort it out.
    QueryBuilder::<MySql>::new("INSERT INTO tb_message_dedupe (consumer_group, message_key) ")
        .push_values(&fresh, |mut row, (m, _)| {
            row.push_bind(group).push_bind(&m.order_no);
        })
        .build()
        .execute(&mut *tx)
        .await?;

    // One UPDATE per product, in id order (so two batches never lock products in opposite
    // orders); each order's before/after follows from the product's stock after the UPDATE.
    let mut by_product: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (i, (m, _)) in fresh.iter().enumerate() {
        by_product.entry(m.product_id).or_default().push(i);
    }
    let mut stock_log = vec![(0u32, 0u32); fresh.len()];
    for (product_id, indexes) in &by_product {
        let total: u32 = indexes.iter().map(|i| fresh[*i].0.quantity).sum();
        let first = &fresh[indexes[0]].0.order_no;
        let mut level = take_stock(&mut tx, *product_id, total, first).await? + total;
        for i in indexes {
            let q = fresh[*i].0.quantity;
            stock_log[*i] = (level, level - q);
            level -= q;
        }
    }

    let rows: Vec<(&OrderMessage, Decimal, NaiveDateTime, NaiveDateTime)> = fresh
        .iter()
        .map(|(m, amount)| {
            let (accepted, expire) = times(m, pay_timeout);
            (*m, *amount, accepted, expire)
        })
        .collect();
    QueryBuilder::<MySql>::new(
        "INSERT INTO tb_seckill_order (order_no, user_id, product_id, quantity, amount, status, created_at, expire_at) ",
    )
    .push_values(&rows, |mut row, (m, amount, accepted, expire)| {
        row.push_bind(&m.order_no)
            .push_bind(m.user_id)
            .push_bind(m.product_id)
            .push_bind(m.quantity)
            .push_bind(*amount)
            .push_bind("UNPAID")
            .push_bind(*accepted)
            .push_bind(*expire);
    })
    .build()
    .execute(&mut *tx)
    .await?;
    QueryBuilder::<MySql>::new("INSERT INTO tb_stock_log (order_no, product_id, before_stock, after_stock, reason) ")
        .push_values(fresh.iter().zip(&stock_log), |mut row, ((m, _), (before, after))| {
            row.push_bind(&m.order_no).push_bind(m.product_id).push_bind(*before).push_bind(*after).push_bind("ORDER");
        })
        .build()
        .execute(&mut *tx)
        .await?;
    // A second active order of one user fails here; the per-order fallback names it.
    QueryBuilder::<MySql>::new("INSERT INTO tb_user_seckill (user_id, product_id, order_no) ")
        .push_values(&fresh, |mut row, (m, _)| {
            row.push_bind(m.user_id).push_bind(m.product_id).push_bind(&m.order_no);
        })
        .build()
        .execute(&mut *tx)
        .await?;
    let created: Vec<events::NewEvent<'_>> = fresh
        .iter()
        .map(|(m, _)| events::NewEvent {
            order_no: &m.order_no,
            event: OrderEvent::Created,
            user_id: m.user_id,
            product_id: m.product_id,
            quantity: m.quantity,
        })
        .collect();
    events::record_many(&mut tx, &created).await?;
    tx.commit().await?;
    result.created = fresh.iter().map(|(m, _)| m.order_no.clone()).collect();
    Ok(result)
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
