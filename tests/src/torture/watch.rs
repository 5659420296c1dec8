//! What the run watches the sale for: the time it spends frozen during the burst, and the
//! queue draining after it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::MySqlPool;

use super::stack::Stack;

/// Adds to `frozen_ms` the time the sale is frozen (MySQL's record), looking every 100 ms,
/// until aborted.
pub(super) async fn sample_frozen(db: MySqlPool, product: u64, frozen_ms: Arc<AtomicU64>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        let frozen: Option<bool> =
            sqlx::query_scalar("SELECT frozen_since IS NOT NULL FROM tb_seckill_product WHERE id = ?")
                .bind(product)
                .fetch_optional(&db)
                .await
                .ok()
                .flatten();
        if frozen == Some(true) {
            frozen_ms.fetch_add(100, Ordering::Relaxed);
        }
    }
}

/// Waits until nothing is in flight: outbox empty, every deduction written, no unpaid order
/// left (each is cancelled 3 s after it is written), and the writer, the canceller and the
/// duplicator have consumed everything the broker holds.
pub(super) async fn wait_drained(stack: &Stack, duplicator_group: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mq = &stack.settings.rocketmq;
    while Instant::now() < deadline {
        let unpaid: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tb_seckill_order WHERE status = 'UNPAID'")
            .fetch_one(&stack.db)
            .await
            .unwrap_or(-1);
        let healed = match stack.product_state().await {
            Ok(state) => state.frozen().await.is_none(),
            Err(_) => false,
        };
        if unpaid == 0 && healed && stack.in_flight().await == Some((0, 0)) {
            let mut lags = 0;
            let groups = [
                (mq.order_writer_group.as_str(), Some(mq.order_topic.as_str())),
                (mq.canceller_group.as_str(), Some(mq.cancel_topic.as_str())),
                (duplicator_group, None),
            ];
            for (group, topic) in groups {
                lags += stack.lag(group, topic).await.unwrap_or(1);
            }
            // The duplicator may just have sent copies: look once more after they were read.
            if lags == 0 && stack.in_flight().await == Some((0, 0)) {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}
