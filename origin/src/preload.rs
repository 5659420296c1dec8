//! Preload: puts a sale on sale in Redis from MySQL's view.
//!
//! A sale MySQL says was loaded (`tb_seckill_product.load_epoch`) is preloaded again only if
//! Redis still holds exactly what MySQL recorded, or when forced: after a restart, failover or
//! flush, orders may still sit in the queue, invisible to both stores, and copying MySQL's
//! stock would sell their units again. That case is 409 `REDIS_STATE_LOST`; the fence freezes
//! such a sale and heals it by reconcile once the queue drains ([`crate::fencing`]).

use serde::Serialize;
use sqlx::MySqlPool;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorCode};
use crate::fencing::{self, Operation};
use crate::products;
use crate::stock::{new_epoch, PreloadOutcome, StockStore};

/// What a preload put into Redis.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Preloaded {
    /// Units on sale in Redis now: MySQL's stock less the units in flight.
    pub stock: i64,
    pub mysql_stock: u32,
    /// Units (and orders) Redis took that MySQL has not written yet; they stay taken.
    pub in_flight_units: i64,
    pub in_flight_orders: i64,
}

/// Loads product `id`'s sale into Redis (see `preload.lua`), under the sale's operation lease.
/// Refused with 409 `SALE_LIVE` while the loaded sale's window is open, `REDIS_STATE_LOST`
/// when Redis does not hold what MySQL recorded (or the sale is frozen), `INCONSISTENT` when
/// more is in flight than MySQL has, `SALE_BUSY` during another preload or reconcile; `force`
/// skips the first two.
pub async fn preload(db: &MySqlPool, stock: &StockStore, id: u64, force: bool) -> Result<Preloaded, ApiError> {
    let (product, snapshot) = products::sale_snapshot(db, id)
        .await?
        .ok_or_else(|| ApiError::not_found(ErrorCode::NoSuchProduct, format!("no product {id}")))?;
    let op = Operation::begin(db, id).await?.ok_or_else(|| {
        ApiError::conflict(ErrorCode::SaleBusy, format!("another preload or reconcile of product {id} is running"))
    })?;
    let result = async {
        let record = fencing::load_record(db, id).await?.unwrap_or(fencing::LoadRecord { epoch: None, frozen: None });
        if let (false, Some(epoch)) = (force, record.epoch.as_deref()) {
            let fences = stock.fence_states(id, snapshot.buckets).await?;
            if let Some(why) = record.frozen.clone().or_else(|| fencing::judge(epoch, &fences)) {
                return Err(ApiError::conflict(
                    ErrorCode::RedisStateLost,
                    format!(
                        "Redis no longer holds what MySQL recorded for product {id}'s sale ({why}); orders may still \
                         be in the queue. The sale is frozen and heals itself once the queue drains; POST \
                         /admin/products/{id}/reconcile repairs it now"
                    ),
                ));
            }
        }
        let epoch = new_epoch();
        op.record_epoch(db, Some(&epoch)).await?;
        let outcome = match stock.preload(id, &snapshot, force, &epoch).await {
            Ok(outcome) => outcome,
            Err(e) => {
                fencing::freeze(db, id, &format!("a preload failed half way: {e}")).await?;
                return Err(e.into());
            }
        };
        match outcome {
            PreloadOutcome::Loaded { stock: left, in_flight_units, in_flight_orders } => {
                if op.thaw(db, &epoch).await? {
                    tracing::warn!(product_id = id, "a forced preload lifted the sale's freeze");
                }
                fencing::give_back_cancelled_since(db, stock, id, &snapshot).await.map_err(ApiError::Internal)?;
                Ok(Preloaded { stock: left, mysql_stock: product.stock, in_flight_units, in_flight_orders })
            }
            PreloadOutcome::SaleLive { .. } => {
                op.record_epoch(db, record.epoch.as_deref()).await?;
                Err(ApiError::conflict(
                    ErrorCode::SaleLive,
                    format!("product {id}'s sale is live; preloading it now needs ?force=true"),
                ))
            }
            PreloadOutcome::Inconsistent { stock: would, in_flight_units } => {
                let changed = if snapshot.buckets > 1 {
                    // Its buckets were frozen before the split was found short: they stay so.
                    fencing::freeze(db, id, "a preload found more units in flight than MySQL has left").await?;
                    "the sale stays frozen"
                } else {
                    op.record_epoch(db, record.epoch.as_deref()).await?;
                    "nothing was changed"
                };
                Err(ApiError::conflict(
                    ErrorCode::Inconsistent,
                    format!(
                        "Redis holds {in_flight_units} units of product {id} in flight but MySQL has only {} left \
                         (would load {would}); {changed}",
                        product.stock
                    ),
                ))
            }
        }
    }
    .await;
    op.end(db).await;
    result
}
