//! The writer's fast path: a whole batch of order messages in one transaction ([`write_batch`]).

use std::collections::{BTreeMap, HashSet};

use chrono::NaiveDateTime;
use rust_decimal::Decimal;
use sqlx::{MySql, MySqlPool, QueryBuilder};

use super::{amount_of, take_stock, times, WriteError};
use crate::orders::events::{self, OrderEvent};
use crate::orders::OrderMessage;

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
