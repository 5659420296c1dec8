//! The fence: every `serve` process watches the Redis it sells from, freezes what may have
//! regressed and heals what is frozen.
//!
//! Each check (every `redis.fence_check_ms`):
//! 1. The server's identity (run id and replication id, [`StockStore::server_identity`]; on a
//!    cluster, those of every master) against the one MySQL last saw under its name: a
//!    restart or failover since means writes it acknowledged may be gone (AOF `everysec` loses
//!    up to a second, a promoted replica what it had not received), so every loaded sale is
//!    frozen. A master that cannot be read fails the check, which is tried again.
//! 2. Every loaded sale not in a preload or reconcile (and not ended over an hour ago, unless
//!    frozen: [`super::watched_sales`]): each bucket must hold the epoch MySQL
//!    recorded ([`super::judge`]); one that does not (lost, older, left frozen) freezes the
//!    sale. A sale frozen in MySQL is frozen in every bucket of Redis (after a flush that
//!    writes a window holding only the freeze).
//!
//! A failed buy script call (the first thing a restart or a failover shows this process: the
//! cluster's script connection follows no redirect) holds every buy of this process as
//! SALE_FROZEN until the next check has read the identity again ([`StockStore::decide`]).
//! A loss that shows no error here (a FLUSHALL, another process's failover seen by a sale this
//! process did not sell) is seen by the next check; buys in between may land on the regressed
//! state, and an order Redis sold from units MySQL does not have is refused by the writer
//! (`STOCK_SHORTAGE`, visible to its buyer) and freezes the sale too: never an oversell.
//!
//! Each heal round (every second) reconciles every frozen sale whose order queue has drained
//! (lag 0, its retry topic included), under the sale's operation lease; a sale whose queue has
//! not drained is looked at again next round, one whose reconcile failed after a growing pause
//! (at most a minute).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::MySqlPool;

use super::reconcile::Reconciler;
use super::{judge, watched_sales, LoadedSale};
use crate::broker::Messaging;
use crate::configuration::RocketMqSettings;
use crate::error::{ApiError, ErrorCode};
use crate::metrics::Metrics;
use crate::products;
use crate::stock::{Bucket, StockStore};

/// How often frozen sales are looked at for healing.
const HEAL_EVERY: Duration = Duration::from_secs(1);
/// The longest pause between two heal attempts of one sale.
const MAX_HEAL_BACKOFF: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct Fence {
    pub db: MySqlPool,
    pub stock: StockStore,
    pub messaging: Arc<Messaging>,
    /// The order topic and its writer's group: their lag says whether orders may still be in
    /// the queue.
    pub rocketmq: RocketMqSettings,
    /// The Redis server's name in `tb_redis_server` (its URL, or the cluster's seed URLs).
    pub redis_name: String,
    pub metrics: Arc<Metrics>,
    pub every: Duration,
    /// Heal frozen sales (else an operator reconciles them).
    pub auto_heal: bool,
    /// Updated at every check.
    pub loaded: super::LoadedIds,
}

impl Fence {
    /// Checks every `every` and heals every second; runs until dropped.
    pub async fn run(self) {
        let mut last_heal = Instant::now();
        let mut backoff: HashMap<u64, (Instant, Duration)> = HashMap::new();
        loop {
            tokio::time::sleep(self.every).await;
            let frozen = match self.check_once().await {
                Ok(frozen) => frozen,
                Err(e) => {
                    tracing::warn!(error = %e, "fence check failed; trying again");
                    continue;
                }
            };
            if self.auto_heal && last_heal.elapsed() >= HEAL_EVERY {
                last_heal = Instant::now();
                self.heal_round(frozen, &mut backoff).await;
            }
        }
    }

    /// One check (see the module doc); returns the sales frozen now.
    pub async fn check_once(&self) -> anyhow::Result<Vec<LoadedSale>> {
        let suspicion = self.stock.suspicion_mark();
        let identity = self.stock.server_identity().await?;
        if let Some(before) = super::redis_server_changed(&self.db, &self.redis_name, &identity).await? {
            let reason = format!("the Redis server restarted or failed over ({before} → {identity})");
            let frozen = super::freeze_all(&self.db, &reason).await?;
            self.metrics.sales_frozen.inc_by(frozen);
            tracing::error!(frozen, %reason, "Redis may have lost acknowledged writes: sales frozen");
        }
        let mut frozen = Vec::new();
        let sales = watched_sales(&self.db).await?;
        *self.loaded.write().expect("loaded sales lock") = sales.iter().map(|s| s.product_id).collect();
        for mut sale in sales {
            if sale.in_operation {
                if sale.frozen.is_some() {
                    frozen.push(sale);
                }
                continue;
            }
            let fences = self.stock.fence_states(sale.product_id, sale.buckets).await?;
            if sale.frozen.is_none() {
                let Some(reason) = judge(&sale.epoch, &fences) else { continue };
                if super::freeze(&self.db, sale.product_id, &reason).await? {
                    self.metrics.sales_frozen.inc();
                    tracing::error!(product_id = sale.product_id, %reason, "sale frozen: Redis does not hold what MySQL recorded");
                }
                sale.frozen = Some(reason);
            }
            let open: Vec<Bucket> = fences.iter().filter(|f| f.frozen.is_none()).map(|f| f.bucket).collect();
            if !open.is_empty() {
                self.stock.freeze_buckets(&open, sale.frozen.as_deref().unwrap_or("frozen")).await?;
            }
            frozen.push(sale);
        }
        self.metrics.frozen_sales.set(i64::try_from(frozen.len()).unwrap_or(i64::MAX));
        // Whatever made a buy script fail before this check is answered for, and every sale it
        // froze is frozen in Redis too: buys run again (on the sales that are not frozen).
        self.stock.clear_suspicion(suspicion);
        Ok(frozen)
    }

    /// Heals `frozen` (the sales the check just found frozen), each once its pause is over.
    async fn heal_round(&self, frozen: Vec<LoadedSale>, backoff: &mut HashMap<u64, (Instant, Duration)>) {
        let frozen: Vec<LoadedSale> = frozen.into_iter().filter(|s| !s.in_operation).collect();
        backoff.retain(|id, _| frozen.iter().any(|s| s.product_id == *id));
        for sale in frozen {
            if backoff.get(&sale.product_id).is_some_and(|(next, _)| Instant::now() < *next) {
                continue;
            }
            match self.heal(&sale).await {
                Ok(()) => {
                    backoff.remove(&sale.product_id);
                }
                Err(e) => {
                    self.metrics.heals_deferred.inc();
                    let pause = match &e {
                        ApiError::Conflict { code: ErrorCode::OrdersInQueue, .. } => HEAL_EVERY,
                        _ => backoff.get(&sale.product_id).map_or(HEAL_EVERY, |(_, p)| (*p * 2).min(MAX_HEAL_BACKOFF)),
                    };
                    backoff.insert(sale.product_id, (Instant::now() + pause, pause));
                    tracing::info!(product_id = sale.product_id, error = %e, retry_in_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX), "frozen sale not healed yet");
                }
            }
        }
    }

    /// Reconciles one frozen sale if the order queue has drained.
    pub async fn heal(&self, sale: &LoadedSale) -> Result<(), ApiError> {
        let reconciler =
            Reconciler { db: &self.db, stock: &self.stock, messaging: &self.messaging, rocketmq: &self.rocketmq };
        let lag = reconciler.lag().await?;
        if lag > 0 {
            return Err(ApiError::conflict(
                ErrorCode::OrdersInQueue,
                format!("{lag} order message(s) not written yet"),
            ));
        }
        let snapshot = products::sale_snapshot(&self.db, sale.product_id)
            .await?
            .ok_or_else(|| ApiError::not_found(ErrorCode::NoSuchProduct, format!("no product {}", sale.product_id)))?;
        let report = reconciler.repair(sale.product_id, snapshot, 0).await?;
        if report.thawed {
            self.metrics.sales_healed.inc();
        }
        tracing::warn!(
            product_id = sale.product_id,
            reason = sale.frozen.as_deref().unwrap_or(""),
            run_id = report.run_id,
            changes = report.changes.len(),
            thawed = report.thawed,
            "frozen sale healed by reconcile"
        );
        Ok(())
    }
}
