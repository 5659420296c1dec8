//! Fencing: MySQL's record of what Redis should hold for each sale, so that a Redis that lost
//! writes (a restart that lost its last second, a failover to a replica that had not caught
//! up, a flush) stops selling until it has been set right again.
//!
//! Per sale, MySQL keeps (`tb_seckill_product`):
//! - `load_epoch`: the epoch of its last preload or reconcile, written *before* their scripts
//!   run; every bucket's Redis window carries the epoch it was written with. MySQL saying
//!   "loaded" is what refuses a plain preload after a total Redis loss (409
//!   `REDIS_STATE_LOST`): a registry kept in Redis would be lost with it.
//! - `frozen_since` / `frozen_reason`: the sale is frozen. Redis's copy of the freeze (the
//!   window's `frozen` field) is what `buy.lua` obeys: 503 `SALE_FROZEN`, nothing taken.
//! - an operation lease: one preload or reconcile of a sale at a time.
//!
//! [`watch::Fence`] (in every `serve` process) freezes a sale whose Redis state is not the one
//! MySQL recorded, or every loaded sale when the Redis server restarted or failed over, and
//! heals frozen sales with a reconcile once the order queue has drained.

pub mod reconcile;
pub mod watch;

use std::sync::OnceLock;
use std::time::Duration;

use chrono::NaiveDateTime;
use sqlx::MySqlPool;

use crate::stock::{BucketFence, StockStore};

/// How long an operation lease lasts unless renewed by finishing: longer than any preload or
/// reconcile (their queue wait comes before the lease is taken).
pub const OPERATION_TTL: Duration = Duration::from_secs(60);

/// The ids of the sales MySQL says were loaded, as the fence last read them: a buy that finds
/// no such sale in Redis although MySQL loaded it met a Redis that lost it (503
/// `SALE_FROZEN`, not 404), even before the fence has frozen it.
pub type LoadedIds = std::sync::Arc<std::sync::RwLock<std::collections::HashSet<u64>>>;

/// A sale MySQL says was loaded into Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedSale {
    pub product_id: u64,
    /// Buckets its stock is split into (1 = not sharded).
    pub buckets: u32,
    /// The epoch of its last preload or reconcile.
    pub epoch: String,
    /// Why it is frozen, if it is.
    pub frozen: Option<String>,
    /// A preload or reconcile holds its lease now: its Redis state is changing.
    pub in_operation: bool,
}

/// The sale's load record, `None` if there is no such product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadRecord {
    /// `None`: never preloaded.
    pub epoch: Option<String>,
    pub frozen: Option<String>,
}

type LoadedRow = (u64, u32, String, Option<String>, i64);

/// Every sale MySQL says was loaded: where the sweeper finds outboxes.
pub async fn loaded_sales(db: &MySqlPool) -> sqlx::Result<Vec<LoadedSale>> {
    sales_where(db, "load_epoch IS NOT NULL").await
}

/// The loaded sales the fence watches: those that have not ended, or ended within the hour,
/// and every frozen one (a freeze is healed whenever the sale ended).
pub async fn watched_sales(db: &MySqlPool) -> sqlx::Result<Vec<LoadedSale>> {
    sales_where(
        db,
        "load_epoch IS NOT NULL AND (end_at IS NULL OR end_at > NOW(3) - INTERVAL 1 HOUR OR frozen_since IS NOT NULL)",
    )
    .await
}

async fn sales_where(db: &MySqlPool, condition: &str) -> sqlx::Result<Vec<LoadedSale>> {
    let rows: Vec<LoadedRow> = sqlx::query_as(&format!(
        "SELECT id, stock_buckets, load_epoch, frozen_reason, \
         CAST(operation_until IS NOT NULL AND operation_until > NOW(3) AS SIGNED) \
         FROM tb_seckill_product WHERE {condition} ORDER BY id"
    ))
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(product_id, buckets, epoch, frozen, busy)| LoadedSale {
            product_id,
            buckets: buckets.max(1),
            epoch,
            frozen,
            in_operation: busy != 0,
        })
        .collect())
}

pub async fn load_record(db: &MySqlPool, product_id: u64) -> sqlx::Result<Option<LoadRecord>> {
    let row: Option<(Option<String>, Option<String>)> =
        sqlx::query_as("SELECT load_epoch, frozen_reason FROM tb_seckill_product WHERE id = ?")
            .bind(product_id)
            .fetch_optional(db)
            .await?;
    Ok(row.map(|(epoch, frozen)| LoadRecord { epoch, frozen }))
}

/// Freezes the sale in MySQL with `reason`; true if it was not frozen before (the first
/// reason stays). The fence copies the freeze into Redis.
pub async fn freeze(db: &MySqlPool, product_id: u64, reason: &str) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE tb_seckill_product SET frozen_since = NOW(3), frozen_reason = ? \
         WHERE id = ? AND load_epoch IS NOT NULL AND frozen_since IS NULL",
    )
    .bind(truncate(reason))
    .bind(product_id)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Freezes every loaded sale that is not frozen yet and has not ended over an hour ago (the
/// ones [`watched_sales`] lists); returns how many.
pub async fn freeze_all(db: &MySqlPool, reason: &str) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "UPDATE tb_seckill_product SET frozen_since = NOW(3), frozen_reason = ? \
         WHERE load_epoch IS NOT NULL AND frozen_since IS NULL AND (end_at IS NULL OR end_at > NOW(3) - INTERVAL 1 HOUR)",
    )
    .bind(truncate(reason))
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

fn truncate(reason: &str) -> String {
    reason.chars().take(255).collect()
}

/// Records that the Redis server called `name` now answers as `identity`; returns the identity
/// it answered as before if that differs (it restarted or failed over since), `None` if it is
/// the same or was never seen.
pub async fn redis_server_changed(db: &MySqlPool, name: &str, identity: &str) -> sqlx::Result<Option<String>> {
    let mut tx = db.begin().await?;
    let before: Option<String> = sqlx::query_scalar("SELECT identity FROM tb_redis_server WHERE name = ? FOR UPDATE")
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
    if before.as_deref() != Some(identity) {
        sqlx::query(
            "INSERT INTO tb_redis_server (name, identity, seen_at) VALUES (?, ?, NOW(3)) \
             ON DUPLICATE KEY UPDATE identity = VALUES(identity), seen_at = VALUES(seen_at)",
        )
        .bind(name)
        .bind(identity)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(before.filter(|b| b != identity))
}

/// What is wrong with a sale's Redis state, given the epoch MySQL recorded and each bucket as
/// Redis holds it; `None` if every bucket holds the recorded epoch and none is frozen.
pub fn judge(recorded: &str, buckets: &[BucketFence]) -> Option<String> {
    buckets.iter().find_map(|b| match (&b.epoch, &b.frozen) {
        (None, _) => Some(format!("Redis lost bucket {} of the sale (its window is gone)", b.bucket.index)),
        (Some(epoch), _) if epoch != recorded => Some(format!(
            "Redis bucket {} holds load epoch {epoch}, MySQL recorded {recorded}: Redis went back to an older state",
            b.bucket.index
        )),
        (Some(_), Some(frozen)) => Some(format!("bucket {} was left frozen ({frozen})", b.bucket.index)),
        _ => None,
    })
}

/// This process's name in operation leases.
pub fn this_process() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "origin".into());
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        format!("{host}-{}-{nanos:x}", std::process::id())
    })
}

/// A held operation lease on one sale: the one preload or reconcile changing its Redis state.
#[derive(Debug)]
pub struct Operation {
    product_id: u64,
    holder: String,
    /// MySQL's clock when the lease was taken: a freeze set after it is not this operation's
    /// to lift.
    started: NaiveDateTime,
}

impl Operation {
    /// Takes the sale's lease; `None` if another operation holds it.
    pub async fn begin(db: &MySqlPool, product_id: u64) -> sqlx::Result<Option<Operation>> {
        static OPERATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let holder = format!("{}-{}", this_process(), OPERATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let mut tx = db.begin().await?;
        let started: NaiveDateTime = sqlx::query_scalar("SELECT NOW(3)").fetch_one(&mut *tx).await?;
        let taken = sqlx::query(
            "UPDATE tb_seckill_product SET operation_holder = ?, operation_until = ? + INTERVAL ? MICROSECOND \
             WHERE id = ? AND (operation_until IS NULL OR operation_until < ?)",
        )
        .bind(&holder)
        .bind(started)
        .bind(u64::try_from(OPERATION_TTL.as_micros()).unwrap_or(u64::MAX))
        .bind(product_id)
        .bind(started)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok((taken == 1).then_some(Operation { product_id, holder, started }))
    }

    /// Records `epoch` as the sale's load epoch: before the scripts, so a Redis that never
    /// got them (the process died, Redis failed) holds another epoch and is fenced. An
    /// operation that changed nothing puts the one it replaced back (`None`: never loaded).
    pub async fn record_epoch(&self, db: &MySqlPool, epoch: Option<&str>) -> sqlx::Result<()> {
        sqlx::query("UPDATE tb_seckill_product SET load_epoch = ? WHERE id = ?")
            .bind(epoch)
            .bind(self.product_id)
            .execute(db)
            .await?;
        Ok(())
    }

    /// Lifts the sale's freeze once `epoch` has been written to every bucket (the scripts
    /// unfroze Redis): only a freeze from before this operation began, and only if no later
    /// operation recorded another epoch. Returns whether a freeze was lifted.
    pub async fn thaw(&self, db: &MySqlPool, epoch: &str) -> sqlx::Result<bool> {
        let done = sqlx::query(
            "UPDATE tb_seckill_product SET frozen_since = NULL, frozen_reason = NULL \
             WHERE id = ? AND load_epoch = ? AND frozen_since IS NOT NULL AND frozen_since <= ?",
        )
        .bind(self.product_id)
        .bind(epoch)
        .bind(self.started)
        .execute(db)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives the lease back (it also runs out by itself after [`OPERATION_TTL`]).
    pub async fn end(self, db: &MySqlPool) {
        let released = sqlx::query(
            "UPDATE tb_seckill_product SET operation_holder = NULL, operation_until = NULL \
             WHERE id = ? AND operation_holder = ?",
        )
        .bind(self.product_id)
        .bind(&self.holder)
        .execute(db)
        .await;
        if let Err(e) = released {
            tracing::warn!(product_id = self.product_id, error = %e, "operation lease not released; it runs out by itself");
        }
    }
}

/// After a preload or reconcile wrote a snapshot's active orders back into Redis: an order of
/// the snapshot that is no longer active (cancelled between the snapshot and the script) had
/// its deduction and buyer put back by the script, after its cancel had removed them. Its
/// cancel is done in MySQL, so give it back now (`release.lua` acts once, whichever of the
/// two runs second). Returns how many were given back.
pub async fn give_back_cancelled_since(
    db: &MySqlPool,
    stock: &StockStore,
    product_id: u64,
    snapshot: &crate::stock::SaleSnapshot,
) -> anyhow::Result<usize> {
    if snapshot.orders.is_empty() {
        return Ok(0);
    }
    let still: std::collections::HashSet<String> =
        crate::orders::active(db, product_id).await?.into_iter().map(|(no, _, _)| no).collect();
    let mut given = 0;
    for (order_no, _) in snapshot.orders.iter().filter(|(no, _)| !still.contains(no)) {
        if stock.release(product_id, order_no).await? > 0 {
            given += 1;
            tracing::info!(product_id, %order_no, "order cancelled during the load: its unit given back");
        }
    }
    Ok(given)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stock::Bucket;

    fn bucket(index: u32, epoch: Option<&str>, frozen: Option<&str>) -> BucketFence {
        BucketFence {
            bucket: Bucket { product_id: 7, index },
            epoch: epoch.map(String::from),
            frozen: frozen.map(String::from),
        }
    }

    #[test]
    fn a_sale_whose_buckets_hold_the_recorded_epoch_is_sound() {
        assert_eq!(judge("e2", &[bucket(0, Some("e2"), None), bucket(1, Some("e2"), None)]), None);
    }

    #[test]
    fn a_lost_window_an_older_epoch_or_a_leftover_freeze_is_judged() {
        let lost = judge("e2", &[bucket(0, Some("e2"), None), bucket(1, None, Some("x"))]).unwrap();
        assert!(lost.contains("lost bucket 1"), "{lost}");
        let older = judge("e2", &[bucket(0, Some("e1"), None), bucket(1, Some("e2"), None)]).unwrap();
        assert!(older.contains("epoch e1") && older.contains("e2"), "{older}");
        let left = judge("e2", &[bucket(0, Some("e2"), Some("e2")), bucket(1, Some("e2"), None)]).unwrap();
        assert!(left.contains("left frozen"), "{left}");
    }
}
