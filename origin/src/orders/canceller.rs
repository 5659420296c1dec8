//! The unpaid-order canceller: the MySQL half of giving an order's stock back.

use sqlx::MySqlPool;

use super::events::{self, OrderEvent};

/// What [`cancel_if_unpaid`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// This call cancelled it: status CANCELLED, stock back in MySQL, user record gone.
    Cancelled { product_id: u64, quantity: u32 },
    /// An earlier delivery cancelled it (Redis may still need its stock back).
    AlreadyCancelled { product_id: u64 },
    /// Paid in time: left alone.
    Paid,
    /// Still UNPAID and its `expire_at` has not passed: it may still be paid, so it is not
    /// cancelled now (a cancel that came early is sent again for later).
    NotYetDue { product_id: u64 },
    /// No such order in MySQL.
    Missing,
}

/// In one transaction: UNPAID → CANCELLED (conditional, so a concurrent pay or an earlier
/// cancel wins cleanly), stock back with a CANCEL stock-log row, the user record deleted,
/// and a CANCELLED event in the outbox.
pub async fn cancel_if_unpaid(pool: &MySqlPool, order_no: &str) -> sqlx::Result<CancelOutcome> {
    let mut tx = pool.begin().await?;
    let cancelled = sqlx::query(
        "UPDATE tb_seckill_order SET status = 'CANCELLED', cancelled_at = ? \
         WHERE order_no = ? AND status = 'UNPAID' AND expire_at <= ?",
    )
    .bind(chrono::Utc::now().naive_utc())
    .bind(order_no)
    .bind(chrono::Utc::now().naive_utc())
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    let row: Option<(u64, u64, u32, String)> =
        sqlx::query_as("SELECT user_id, product_id, quantity, status FROM tb_seckill_order WHERE order_no = ?")
            .bind(order_no)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((user_id, product_id, quantity, status)) = row else {
        tx.rollback().await?;
        return Ok(CancelOutcome::Missing);
    };
    if !cancelled {
        tx.rollback().await?;
        return Ok(match status.as_str() {
            "CANCELLED" => CancelOutcome::AlreadyCancelled { product_id },
            "UNPAID" => CancelOutcome::NotYetDue { product_id },
            _ => CancelOutcome::Paid,
        });
    }

    sqlx::query("UPDATE tb_seckill_product SET stock = stock + ?, version = version + 1 WHERE id = ?")
        .bind(quantity)
        .bind(product_id)
        .execute(&mut *tx)
        .await?;
    let (after,): (u32,) = sqlx::query_as("SELECT stock FROM tb_seckill_product WHERE id = ?")
        .bind(product_id)
        .fetch_one(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO tb_stock_log (order_no, product_id, before_stock, after_stock, reason) VALUES (?, ?, ?, ?, 'CANCEL')",
    )
    .bind(order_no)
    .bind(product_id)
    .bind(after - quantity)
    .bind(after)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM tb_user_seckill WHERE user_id = ? AND product_id = ? AND order_no = ?")
        .bind(user_id)
        .bind(product_id)
        .bind(order_no)
        .execute(&mut *tx)
        .await?;
    events::record(&mut tx, order_no, OrderEvent::Cancelled, user_id, product_id, quantity).await?;
    tx.commit().await?;
    Ok(CancelOutcome::Cancelled { product_id, quantity })
}

/// UNPAID orders whose `expire_at` passed at least `grace` ago, oldest first, at most
/// `limit`: the unpaid-order backstop's work (their delayed cancel was lost, dead-lettered,
/// or is late).
pub async fn overdue(pool: &MySqlPool, grace: std::time::Duration, limit: u32) -> sqlx::Result<Vec<String>> {
    let cutoff = chrono::Utc::now() - chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::zero());
    sqlx::query_scalar(
        "SELECT order_no FROM tb_seckill_order WHERE status = 'UNPAID' AND expire_at <= ? ORDER BY expire_at LIMIT ?",
    )
    .bind(cutoff.naive_utc())
    .bind(limit)
    .fetch_all(pool)
    .await
}
