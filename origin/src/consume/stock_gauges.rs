//! Each live sale's stock as Redis and as MySQL hold it, for `seckill_stock_units`: the
//! alert rules compare them. MySQL's stock minus Redis's is the units in flight (taken in
//! Redis, not written yet), which drains to 0 with the queue; Redis above MySQL means a unit
//! could be sold twice (config/prometheus/rules.yml, docs/OPERATIONS.md "Metrics and alerts").

use std::sync::Arc;
use std::time::Duration;

use sqlx::MySqlPool;

use crate::metrics::Metrics;
use crate::products;
use crate::stock::StockStore;

/// A sale that ended this long ago is no longer watched.
const ENDED_SALES_KEPT_MS: i64 = 3_600_000;

/// Reads the stock of every sale that has not ended (or ended within the hour) from both
/// stores and replaces `seckill_stock_units` with it. A product Redis does not hold (not
/// preloaded, or lost) has only its MySQL series.
pub async fn refresh(db: &MySqlPool, stock: &StockStore, metrics: &Metrics) -> anyhow::Result<()> {
    let now = chrono::Utc::now().timestamp_millis();
    let live: Vec<_> = products::all(db)
        .await?
        .into_iter()
        .filter(|p| p.end_ms().is_none_or(|end| now - end < ENDED_SALES_KEPT_MS))
        .collect();
    let ids: Vec<u64> = live.iter().map(|p| p.id).collect();
    let in_redis = stock.stocks(&ids).await?;
    metrics.set_stocks(live.iter().zip(in_redis).map(|(p, redis)| (p.id, i64::from(p.stock), redis)));
    Ok(())
}

/// [`refresh`] every `every`, for as long as the task runs; a failed read keeps the last values.
pub async fn watch(db: MySqlPool, stock: StockStore, metrics: Arc<Metrics>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = refresh(&db, &stock, &metrics).await {
            tracing::debug!(error = %e, "stock gauges not read");
        }
    }
}
