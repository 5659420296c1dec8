//! Reconcile: after Redis lost some or all of a product's sale state (a restart without its
//! AOF, a flush, a failover to a lagging replica), set it to the true state again and log
//! every change.
//!
//! The true state is MySQL's (stock, active orders) plus what Redis still knows is in flight
//! (deductions MySQL does not hold yet, outbox entries). Orders that only the broker holds are
//! known to neither, so a run that changes anything first waits for the order writer's
//! queue to drain: once its lag reads 0, every order stored before the loss is in MySQL, and
//! every order taken after it is in Redis's deduction log.

use std::time::Duration;

use serde::Serialize;
use sqlx::{MySql, MySqlPool, QueryBuilder};

use crate::broker::lag::group_lag;
use crate::broker::Messaging;
use crate::configuration::RocketMqSettings;
use crate::error::{ApiError, ErrorCode};
use crate::fencing::{self, Operation};
use crate::products::{self, Product};
use crate::stock::{new_epoch, Reconciled, RedisChange, SaleSnapshot, StockStore};

/// The longest a caller may ask reconcile to wait for the order queue to drain.
pub const MAX_QUEUE_WAIT: Duration = Duration::from_secs(300);

/// What reconcile needs.
#[derive(Debug)]
pub struct Reconciler<'a> {
    pub db: &'a MySqlPool,
    pub stock: &'a StockStore,
    pub messaging: &'a Messaging,
    /// The order topic and its writer's group: their lag is the order queue's.
    pub rocketmq: &'a RocketMqSettings,
}

/// What a run found, and (unless dry) did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub product_id: u64,
    pub dry_run: bool,
    /// The reconcile log's run id (`tb_reconcile_run`); `None` for a dry run.
    pub run_id: Option<u64>,
    /// Order messages the writer had not finished when last read.
    pub order_queue_lag: u64,
    /// `None`: Redis had no stock for the product.
    pub redis_stock_before: Option<i64>,
    pub redis_stock: i64,
    pub mysql_stock: i64,
    pub in_flight_units: i64,
    pub in_flight_orders: i64,
    pub changes: Vec<RedisChange>,
    /// The sale was frozen and this run lifted the freeze.
    pub thawed: bool,
    /// Orders cancelled between the MySQL snapshot and the script, given back after it.
    pub cancelled_meanwhile: u64,
}

impl Reconciler<'_> {
    /// Repairs product `id`'s Redis state (or, `dry_run`, says what it would change). A real
    /// run waits up to `queue_wait` for the order queue to read empty and is refused (409
    /// `ORDERS_IN_QUEUE`) if it never does; then [`Reconciler::repair`].
    pub async fn run(&self, id: u64, dry_run: bool, queue_wait: Duration) -> Result<Report, ApiError> {
        let lag = if dry_run { self.lag().await? } else { self.wait_for_empty_queue(queue_wait).await? };
        let sale = products::sale_snapshot(self.db, id)
            .await?
            .ok_or_else(|| ApiError::not_found(ErrorCode::NoSuchProduct, format!("no product {id}")))?;
        if dry_run {
            let found = self.stock.reconcile(id, &sale.1, true, "").await?;
            return report(id, true, lag, &sale.0, found).map(|(report, _)| report);
        }
        self.repair(id, sale, lag).await
    }

    /// The real run on a snapshot read after the queue drained: under the sale's operation
    /// lease (409 `SALE_BUSY` while another preload or reconcile holds it), records a new load
    /// epoch in MySQL, runs the scripts, lifts a freeze from before it began (the sale is
    /// healed), gives back orders cancelled since the snapshot, and logs the run.
    ///
    /// A failure half way leaves the sale frozen (its buckets or MySQL's record say so), never
    /// on a mix of old and new state; a second run completes it. Killed between the Redis
    /// repair and the log insert, the repair stands unlogged.
    pub async fn repair(&self, id: u64, sale: (Product, SaleSnapshot), lag: u64) -> Result<Report, ApiError> {
        let op = Operation::begin(self.db, id).await?.ok_or_else(|| {
            ApiError::conflict(
                ErrorCode::SaleBusy,
                format!("another preload or reconcile of product {id} is running; try again when it is done"),
            )
        })?;
        let result = self.repair_under(&op, id, sale, lag).await;
        op.end(self.db).await;
        result
    }

    async fn repair_under(
        &self,
        op: &Operation,
        id: u64,
        (product, snapshot): (Product, SaleSnapshot),
        lag: u64,
    ) -> Result<Report, ApiError> {
        let epoch = new_epoch();
        op.record_epoch(self.db, Some(&epoch)).await?;
        let found = match self.stock.reconcile(id, &snapshot, false, &epoch).await {
            Ok(found) => found,
            Err(e) => {
                fencing::freeze(self.db, id, &format!("a reconcile failed half way: {e}")).await?;
                return Err(e.into());
            }
        };
        let (mut report, inconsistent) = report(id, false, lag, &product, found)?;
        if inconsistent {
            fencing::freeze(self.db, id, "reconcile found more units in flight than MySQL has left").await?;
            return Err(ApiError::conflict(
                ErrorCode::Inconsistent,
                format!(
                    "Redis holds {} units of product {id} in flight but MySQL has only {} left (would set {}); \
                     Redis was not changed and the sale stays frozen",
                    report.in_flight_units, product.stock, report.redis_stock
                ),
            ));
        }
        report.thawed = op.thaw(self.db, &epoch).await?;
        report.cancelled_meanwhile = fencing::give_back_cancelled_since(self.db, self.stock, id, &snapshot)
            .await
            .map_err(ApiError::Internal)? as u64;
        report.run_id = Some(log(self.db, &report).await?);
        tracing::warn!(
            product_id = id,
            changes = report.changes.len(),
            stock = report.redis_stock,
            thawed = report.thawed,
            "reconciled Redis with MySQL"
        );
        Ok(report)
    }

    /// The order queue's lag now (its retry topic included).
    pub async fn lag(&self) -> Result<u64, ApiError> {
        // Boxed: the admin client's future is deep enough to overflow the compiler's layout
        // recursion limit when inlined into a handler's future.
        let mq = self.rocketmq;
        Box::pin(group_lag(self.messaging, &mq.order_writer_group, Some(&mq.order_topic))).await.map_err(|e| {
            tracing::warn!(error = %e, "cannot read the order queue's lag");
            ApiError::unavailable("the order queue cannot say how far behind it is; try again shortly")
        })
    }

    async fn wait_for_empty_queue(&self, wait: Duration) -> Result<u64, ApiError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let lag = self.lag().await?;
            if lag == 0 {
                return Ok(0);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ApiError::conflict(
                    ErrorCode::OrdersInQueue,
                    format!(
                        "the order queue still holds {lag} message(s) the writer has not finished, and some may be \
                         orders Redis forgot; nothing was changed. Let the writer drain it (stop the sale if buys \
                         keep it busy) and run reconcile again"
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// The report of what the scripts found; true with it if they refused (INCONSISTENT: nothing
/// changed).
fn report(id: u64, dry_run: bool, lag: u64, product: &Product, found: Reconciled) -> Result<(Report, bool), ApiError> {
    let (redis_stock_before, redis_stock, in_flight_units, in_flight_orders, changes, inconsistent) = match found {
        Reconciled::Repaired { stock_before, stock, in_flight_units, in_flight_orders, changes } => {
            (stock_before, stock, in_flight_units, in_flight_orders, changes, false)
        }
        Reconciled::Inconsistent { stock, in_flight_units } if dry_run => {
            return Err(ApiError::conflict(
                ErrorCode::Inconsistent,
                format!(
                    "Redis holds {in_flight_units} units of product {id} in flight but MySQL has only {} left \
                     (would set {stock}); nothing was changed",
                    product.stock
                ),
            ))
        }
        Reconciled::Inconsistent { stock, in_flight_units } => (None, stock, in_flight_units, 0, Vec::new(), true),
    };
    let report = Report {
        product_id: id,
        dry_run,
        run_id: None,
        order_queue_lag: lag,
        redis_stock_before,
        redis_stock,
        mysql_stock: i64::from(product.stock),
        in_flight_units,
        in_flight_orders,
        changes,
        thawed: false,
        cancelled_meanwhile: 0,
    };
    Ok((report, inconsistent))
}

/// Writes the run and its changes to the reconcile log in one transaction; returns the run id.
async fn log(db: &MySqlPool, report: &Report) -> sqlx::Result<u64> {
    let mut tx = db.begin().await?;
    let run_id = sqlx::query(
        "INSERT INTO tb_reconcile_run (product_id, redis_stock_before, redis_stock_after, mysql_stock, \
         in_flight_units, in_flight_orders, changes) VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(report.product_id)
    .bind(report.redis_stock_before)
    .bind(report.redis_stock)
    .bind(report.mysql_stock)
    .bind(report.in_flight_units)
    .bind(report.in_flight_orders)
    .bind(u32::try_from(report.changes.len()).unwrap_or(u32::MAX))
    .execute(&mut *tx)
    .await?
    .last_insert_id();
    for chunk in report.changes.chunks(1000) {
        let mut insert: QueryBuilder<'_, MySql> = QueryBuilder::new(
            "INSERT INTO tb_reconcile_change (run_id, bucket, kind, item, before_value, after_value) ",
        );
        insert.push_values(chunk, |mut row, c| {
            row.push_bind(run_id)
                .push_bind(c.bucket)
                .push_bind(&c.kind)
                .push_bind(&c.item)
                .push_bind(&c.before)
                .push_bind(&c.after);
        });
        insert.build().execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(run_id)
}
