//! Orders: numbers, the message the buy path sends, the MySQL writer that turns it into an
//! order row, and lookups.

pub mod canceller;
pub mod events;
pub mod lookup;
pub mod node_lease;
pub mod order_no;
pub mod writer;

use chrono::NaiveDateTime;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::MySqlPool;

/// An order's state. `Queued` exists only in Redis (accepted, not yet written to MySQL);
/// `Refused`: the writer could not place it (`tb_rejected_order`, with the reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Queued,
    Unpaid,
    Paid,
    Cancelled,
    Refused,
}

impl OrderStatus {
    pub fn as_db(self) -> &'static str {
        match self {
            OrderStatus::Queued => "QUEUED",
            OrderStatus::Unpaid => "UNPAID",
            OrderStatus::Paid => "PAID",
            OrderStatus::Cancelled => "CANCELLED",
            OrderStatus::Refused => "REFUSED",
        }
    }

    pub fn from_db(s: &str) -> Option<Self> {
        match s {
            "UNPAID" => Some(OrderStatus::Unpaid),
            "PAID" => Some(OrderStatus::Paid),
            "CANCELLED" => Some(OrderStatus::Cancelled),
            _ => None,
        }
    }
}

/// Body of a `seckill-order` message: an accepted purchase, Redis stock already taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderMessage {
    pub order_no: String,
    pub user_id: u64,
    pub product_id: u64,
    pub quantity: u32,
    pub price: Decimal,
    /// When the origin accepted it, ms since the Unix epoch.
    pub accepted_at: i64,
}

/// Body of a `seckill-cancel` message: the orders to cancel if they are still unpaid.
/// One message per written batch; `orderNo` (one order) is still read from older messages.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelMessage {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub order_nos: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_no: Option<String>,
}

impl CancelMessage {
    pub fn of(order_nos: Vec<String>) -> Self {
        Self { order_nos, order_no: None }
    }

    pub(crate) fn into_order_nos(self) -> Vec<String> {
        let mut all = self.order_nos;
        all.extend(self.order_no);
        all
    }
}

impl OrderMessage {
    /// The message of an order waiting in `product_id`'s outbox (`None` if the entry is
    /// unreadable). The relay and the sweeper build the same message from the same entry.
    pub fn from_outbox(product_id: u64, entry: &crate::stock::OutboxEntry) -> Option<Self> {
        Some(Self {
            order_no: entry.order_no.clone(),
            user_id: entry.user_id,
            product_id,
            quantity: entry.quantity,
            price: entry.price.parse().ok()?,
            accepted_at: entry.accepted_at,
        })
    }
}

/// An order as MySQL holds it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrderRow {
    pub order_no: String,
    pub user_id: u64,
    pub product_id: u64,
    pub quantity: u32,
    pub amount: Decimal,
    pub status: String,
    pub created_at: NaiveDateTime,
    pub expire_at: NaiveDateTime,
    pub paid_at: Option<NaiveDateTime>,
    pub cancelled_at: Option<NaiveDateTime>,
}

pub async fn find(pool: &MySqlPool, order_no: &str) -> sqlx::Result<Option<OrderRow>> {
    sqlx::query_as::<_, OrderRow>(
        "SELECT order_no, user_id, product_id, quantity, amount, status, created_at, expire_at, \
         paid_at, cancelled_at FROM tb_seckill_order WHERE order_no = ?",
    )
    .bind(order_no)
    .fetch_optional(pool)
    .await
}

/// Orders of a product, newest first, optionally of one status.
pub async fn list(
    pool: &MySqlPool,
    product_id: Option<u64>,
    status: Option<OrderStatus>,
    limit: u32,
) -> sqlx::Result<Vec<OrderRow>> {
    sqlx::query_as::<_, OrderRow>(
        "SELECT order_no, user_id, product_id, quantity, amount, status, created_at, expire_at, \
         paid_at, cancelled_at FROM tb_seckill_order \
         WHERE (? IS NULL OR product_id = ?) AND (? IS NULL OR status = ?) \
         ORDER BY id DESC LIMIT ?",
    )
    .bind(product_id)
    .bind(product_id)
    .bind(status.map(OrderStatus::as_db))
    .bind(status.map(OrderStatus::as_db))
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// How many orders of a product MySQL holds in each status.
#[derive(Debug, Clone, Copy, Default, Serialize, utoipa::ToSchema)]
pub struct StatusCounts {
    pub unpaid: u64,
    pub paid: u64,
    pub cancelled: u64,
}

pub async fn count_by_status(pool: &MySqlPool, product_id: u64) -> sqlx::Result<StatusCounts> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, CAST(COUNT(*) AS SIGNED) FROM tb_seckill_order WHERE product_id = ? GROUP BY status",
    )
    .bind(product_id)
    .fetch_all(pool)
    .await?;
    let mut counts = StatusCounts::default();
    for (status, n) in rows {
        match OrderStatus::from_db(&status) {
            Some(OrderStatus::Unpaid) => counts.unpaid = u64::try_from(n).unwrap_or(0),
            Some(OrderStatus::Paid) => counts.paid = u64::try_from(n).unwrap_or(0),
            Some(OrderStatus::Cancelled) => counts.cancelled = u64::try_from(n).unwrap_or(0),
            _ => {}
        }
    }
    Ok(counts)
}

/// Active (UNPAID or PAID) orders of a product: (orderNo, userId, quantity).
pub async fn active<'e, E: sqlx::MySqlExecutor<'e>>(db: E, product_id: u64) -> sqlx::Result<Vec<(String, u64, u32)>> {
    sqlx::query_as(
        "SELECT order_no, user_id, quantity FROM tb_seckill_order \
         WHERE product_id = ? AND status IN ('UNPAID', 'PAID')",
    )
    .bind(product_id)
    .fetch_all(db)
    .await
}

/// An order the writer refused for good (`tb_rejected_order`).
#[derive(Debug, sqlx::FromRow)]
pub struct Rejected {
    pub order_no: String,
    pub user_id: u64,
    pub product_id: u64,
    pub quantity: u32,
    pub reason: String,
    pub detail: String,
    #[sqlx(rename = "created_at")]
    pub rejected_at: NaiveDateTime,
}

/// Refused orders, newest first, of one product or all, up to `limit`.
pub async fn rejected(db: &MySqlPool, product_id: Option<u64>, limit: u32) -> sqlx::Result<Vec<Rejected>> {
    sqlx::query_as(
        "SELECT order_no, user_id, product_id, quantity, reason, detail, created_at FROM tb_rejected_order \
         WHERE (? IS NULL OR product_id = ?) ORDER BY id DESC LIMIT ?",
    )
    .bind(product_id)
    .bind(product_id)
    .bind(limit)
    .fetch_all(db)
    .await
}
