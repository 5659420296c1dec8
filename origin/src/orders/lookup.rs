//! An order as its buyer sees it, wherever it is: written (MySQL), refused for good
//! (`tb_rejected_order`), or accepted and not written yet (its product's deduction log in
//! Redis: `QUEUED`); and paying it.

use serde::Serialize;
use sqlx::MySqlPool;

use super::events::{self, OrderEvent};
use super::{order_no, OrderStatus};
use crate::error::ApiError;
use crate::stock::StockStore;

/// An order as its owner sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderView {
    pub order_no: String,
    pub user_id: u64,
    pub product_id: u64,
    pub quantity: u32,
    /// `QUEUED` while only Redis knows it (accepted, not written to MySQL yet).
    pub status: OrderStatus,
    /// Absent while `QUEUED`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "6999.00")]
    pub amount: Option<String>,
    /// When an unpaid order is cancelled (epoch milliseconds); absent while `QUEUED`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expire_at: Option<i64>,
    /// Why a `REFUSED` order could not be placed: its reason code (`STOCK_SHORTAGE`,
    /// `DUPLICATE_ACTIVE_ORDER`, `NO_SUCH_PRODUCT`, `AMOUNT_TOO_LARGE`) and what it means.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<RefusalView>,
}

/// Why an order was refused, as its buyer sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefusalView {
    #[schema(example = "STOCK_SHORTAGE")]
    pub reason: String,
    pub message: String,
}

/// What a refusal reason means to the buyer.
fn refusal_message(reason: &str) -> &'static str {
    match reason {
        "STOCK_SHORTAGE" => "the last units were sold twice during a stock-service failure; this order could not be placed and nothing is owed",
        "DUPLICATE_ACTIVE_ORDER" => "you already hold an order of this product; this second one was not placed",
        "NO_SUCH_PRODUCT" => "the product is no longer sold; this order could not be placed",
        "AMOUNT_TOO_LARGE" => "the order's amount is too large to record; it was not placed",
        _ => "this order could not be placed",
    }
}

/// Finds an order in MySQL, or, if it is not written yet, in its product's Redis deduction log
/// (status QUEUED).
pub async fn lookup(db: &MySqlPool, stock: &StockStore, order_no: &str) -> Result<Option<OrderView>, ApiError> {
    let Some(product_id) = order_no::product_of(order_no) else {
        return Ok(None);
    };
    if let Some(row) = super::find(db, order_no).await? {
        let status = OrderStatus::from_db(&row.status)
            .ok_or_else(|| anyhow::anyhow!("order {order_no} has unknown status {}", row.status))?;
        return Ok(Some(OrderView {
            order_no: row.order_no,
            user_id: row.user_id,
            product_id: row.product_id,
            quantity: row.quantity,
            status,
            amount: Some(row.amount.round_dp(2).to_string()),
            expire_at: Some(row.expire_at.and_utc().timestamp_millis()),
            refusal: None,
        }));
    }
    let refused: Option<(u64, u64, u32, String)> =
        sqlx::query_as("SELECT user_id, product_id, quantity, reason FROM tb_rejected_order WHERE order_no = ?")
            .bind(order_no)
            .fetch_optional(db)
            .await?;
    if let Some((user_id, product_id, quantity, reason)) = refused {
        return Ok(Some(OrderView {
            order_no: order_no.to_string(),
            user_id,
            product_id,
            quantity,
            status: OrderStatus::Refused,
            amount: None,
            expire_at: None,
            refusal: Some(RefusalView { message: refusal_message(&reason).to_string(), reason }),
        }));
    }
    Ok(stock.deduction(product_id, order_no).await?.map(|d| OrderView {
        order_no: order_no.to_string(),
        user_id: d.user_id,
        product_id,
        quantity: d.quantity,
        status: OrderStatus::Queued,
        amount: None,
        expire_at: None,
        refusal: None,
    }))
}

/// At most this many of a user's orders of one product are listed (one is active at a time;
/// the rest were cancelled or refused).
pub const MAX_LISTED: u32 = 50;

/// The orders `user_id` placed of `product_id`, newest first: those MySQL holds, those refused
/// for good, and the one their Redis buyer record names if it is not written yet (`QUEUED`).
/// A buyer whose answer was lost (a timeout, a dropped connection) finds their order here.
pub async fn orders_of_buyer(
    db: &MySqlPool,
    stock: &StockStore,
    user_id: u64,
    product_id: u64,
) -> Result<Vec<OrderView>, ApiError> {
    let mut numbers: Vec<String> = sqlx::query_scalar(
        "(SELECT order_no FROM tb_seckill_order WHERE user_id = ? AND product_id = ? ORDER BY id DESC LIMIT ?) \
         UNION (SELECT order_no FROM tb_rejected_order WHERE user_id = ? AND product_id = ? ORDER BY id DESC LIMIT ?)",
    )
    .bind(user_id)
    .bind(product_id)
    .bind(MAX_LISTED)
    .bind(user_id)
    .bind(product_id)
    .bind(MAX_LISTED)
    .fetch_all(db)
    .await?;
    numbers.extend(stock.order_of_buyer(product_id, user_id).await?);
    // An order number's leading flake is time-ordered: newest first is the largest flake.
    let flake = |no: &String| no.split('-').next().and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    numbers.sort_unstable_by(|a, b| flake(b).cmp(&flake(a)).then_with(|| b.cmp(a)));
    numbers.dedup();
    numbers.truncate(MAX_LISTED as usize);
    let mut orders = Vec::with_capacity(numbers.len());
    for order_no in numbers {
        if let Some(order) = lookup(db, stock, &order_no).await?.filter(|o| o.user_id == user_id) {
            orders.push(order);
        }
    }
    Ok(orders)
}

/// UNPAID → PAID for the order's own user before its `expire_at`, with a PAID event, in one
/// transaction. False if the order is not UNPAID, has expired, or is not this user's.
pub async fn mark_paid(db: &MySqlPool, order_no: &str, user_id: u64) -> Result<bool, ApiError> {
    let mut tx = db.begin().await?;
    let now = chrono::Utc::now().naive_utc();
    let paid = sqlx::query(
        "UPDATE tb_seckill_order SET status = 'PAID', paid_at = ? \
         WHERE order_no = ? AND user_id = ? AND status = 'UNPAID' AND expire_at > ?",
    )
    .bind(now)
    .bind(order_no)
    .bind(user_id)
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !paid {
        tx.rollback().await?;
        return Ok(false);
    }
    let (product_id, quantity): (u64, u32) =
        sqlx::query_as("SELECT product_id, quantity FROM tb_seckill_order WHERE order_no = ?")
            .bind(order_no)
            .fetch_one(&mut *tx)
            .await?;
    events::record(&mut tx, order_no, OrderEvent::Paid, user_id, product_id, quantity).await?;
    tx.commit().await?;
    Ok(true)
}
