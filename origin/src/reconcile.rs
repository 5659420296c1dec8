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
use crate::error::ApiError;
use crate::products;
use crate::stock::{Reconciled, RedisChange, StockStore};

/// The longest a caller may ask reconcile to wait for the order queue to drain.
pub const MAX_QUEUE_WAIT: Duration = Duration::from_secs(300);

/// What reconcile needs.
pub struct Reconciler<'a> {
    pub db: &'a MySqlPool,
    pub stock: &'a StockStore,
    pub messaging: &'a Messaging,
    /// The order writer's consumer group: its lag is the order queue's.
    pub writer_group: &'a str,
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
}

impl Reconciler<'_> {
    /// Repairs product `id`'s Redis state (or, `dry_run`, says what it would change). A real
    /// run waits up to `queue_wait` for the order queue to read empty and is refused (409
    /// `ORDERS_IN_QUEUE`) if it never does.
    ///
    /// Killed between the Redis repair and the log insert, the repair stands unlogged; a
    /// second run finds nothing left to change. A cancel that lands between the MySQL
    /// snapshot and the script keeps its unit taken (undersold, never oversold); a second run
    /// gives it back.
    pub async fn run(&self, id: u64, dry_run: bool, queue_wait: Duration) -> Result<Report, ApiError> {
        let lag = if dry_run { self.lag().await? } else { self.wait_for_empty_queue(queue_wait).await? };
        let (product, snapshot) = products::sale_snapshot(self.db, id)
            .await?
            .ok_or_else(|| ApiError::not_found("NO_SUCH_PRODUCT", format!("no product {id}")))?;
        let (redis_stock_before, stock, in_flight_units, in_flight_orders, changes) =
            match self.stock.reconcile(id, &snapshot, dry_run).await? {
                Reconciled::Repaired { stock_before, stock, in_flight_units, in_flight_orders, changes } => {
                    (stock_before, stock, in_flight_units, in_flight_orders, changes)
                }
                Reconciled::Inconsistent { stock, in_flight_units } => {
                    return Err(ApiError::conflict(
                        "INCONSISTENT",
                        format!(
                            "Redis holds {in_flight_units} units of product {id} in flight but MySQL has only {} \
                             left (would set {stock}); nothing was changed",
                            product.stock
                        ),
                    ))
                }
            };
        let mut report = Report {
            product_id: id,
            dry_run,
            run_id: None,
            order_queue_lag: lag,
            redis_stock_before,
            redis_stock: stock,
            mysql_stock: product.stock as i64,
            in_flight_units,
            in_flight_orders,
            changes,
        };
        if !dry_run {
            report.run_id = Some(log(self.db, &report).await?);
            tracing::warn!(product_id = id, changes = report.changes.len(), stock, "reconciled Redis with MySQL");
        }
        Ok(report)
    }

    async fn lag(&self) -> Result<u64, ApiError> {
        // Boxed: the admin client's future is deep enough to overflow the compiler's layout
        // recursion limit when inlined into a handler's future.
        Box::pin(group_lag(self.messaging, self.writer_group)).await.map_err(|e| {
            tracing::warn!(error = %e, "cannot read the order queue's lag");
            ApiError::Unavailable("the order queue cannot say how far behind it is; try again shortly".into())
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
                    "ORDERS_IN_QUEUE",
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
    .bind(report.changes.len() as u32)
    .execute(&mut *tx)
    .await?
    .last_insert_id();
    for chunk in report.changes.chunks(1000) {
        let mut insert: QueryBuilder<MySql> = QueryBuilder::new(
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
