//! The order consumers' message handlers: the batched order writer and the canceller, over
//! the domain's writes ([`crate::orders::writer`], [`crate::orders::canceller`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rocketmq_model::common::message::message_ext::MessageExt;
use sqlx::{MySql, MySqlPool, QueryBuilder};

use crate::broker::consumer::{BatchHandled, BatchHandler, Handler};
use crate::broker::sender::Sender;
use crate::metrics::Metrics;
use crate::orders::canceller::{self, CancelOutcome};
use crate::orders::writer::{self, BatchWritten, Refusal, WriteError, Written};
use crate::orders::{CancelMessage, OrderMessage};
use crate::stock::StockStore;

/// What the order writer needs.
#[derive(Debug)]
pub struct OrderWriter {
    pub db: MySqlPool,
    pub stock: StockStore,
    pub sender: Arc<Sender>,
    pub metrics: Arc<Metrics>,
    /// The consumer group: the dedupe table's namespace.
    pub group: String,
    pub cancel_topic: String,
    pub cancel_delay_level: i32,
    pub pay_timeout: Duration,
}

impl OrderWriter {
    pub fn handler(self) -> BatchHandler {
        let this = Arc::new(self);
        Arc::new(move |msgs| {
            let this = Arc::clone(&this);
            Box::pin(async move { this.handle(msgs).await })
        })
    }

    /// Writes a batch of order messages: one transaction for the whole batch; if that fails,
    /// order by order, so one bad message cannot hold the others back. Orders refused for good
    /// are recorded and their Redis stock given back. Then one delayed cancel for every order
    /// found UNPAID, redeliveries included: a writer that died between its commit and its
    /// cancel gets the cancel sent by the redelivery.
    async fn handle(&self, msgs: Vec<MessageExt>) -> BatchHandled {
        Metrics::incr(&self.metrics.order_batches);
        let started = std::time::Instant::now();
        let mut failed = Vec::new();
        let mut orders = Vec::with_capacity(msgs.len());
        let mut index_of = HashMap::new();
        for (i, msg) in msgs.iter().enumerate() {
            match serde_json::from_slice::<OrderMessage>(&msg.body().unwrap_or_default()) {
                Ok(order) => {
                    index_of.insert(order.order_no.clone(), i);
                    orders.push(order);
                }
                // Unreadable now is unreadable on every redelivery: kept for an operator at
                // once (tb_dead_letter, GET /admin/dead-letters), not retried for hours.
                Err(e) => {
                    let reason = format!("unreadable order message: {e}");
                    if let Err(not_kept) =
                        crate::dead_letters::keep_unreadable(&self.db, &self.group, msg, &reason).await
                    {
                        failed.push((i, format!("{reason}; not recorded yet: {not_kept}")));
                    } else {
                        Metrics::incr(&self.metrics.dead_letters);
                    }
                }
            }
        }

        let written = match writer::write_batch(&self.db, &self.group, &orders, self.pay_timeout).await {
            Ok(written) => written,
            Err(e) => {
                tracing::warn!(error = %e, orders = orders.len(), "batch write failed; writing order by order");
                self.write_one_by_one(&orders, &index_of, &mut failed).await
            }
        };
        tracing::debug!(
            messages = msgs.len(),
            created = written.created.len(),
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "order batch written"
        );
        self.metrics.orders_written.inc_by(written.created.len() as u64);
        self.metrics.orders_redelivered.inc_by(written.already_written.len() as u64);

        let result = self.follow_up(&written).await;
        self.metrics.writer_batch_size.observe(msgs.len() as f64);
        self.metrics.writer_batch_seconds.observe(started.elapsed().as_secs_f64());
        if let Err(reason) = result {
            failed.extend((0..msgs.len()).map(|i| (i, reason.clone())));
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed)
        }
    }

    async fn write_one_by_one(
        &self,
        orders: &[OrderMessage],
        index_of: &HashMap<String, usize>,
        failed: &mut Vec<(usize, String)>,
    ) -> BatchWritten {
        let mut written = BatchWritten::default();
        for order in orders {
            let outcome = writer::write(&self.db, &self.group, order, self.pay_timeout).await;
            match outcome {
                Ok(Written::Created) => written.created.push(order.order_no.clone()),
                Ok(Written::AlreadyWritten) => written.already_written.push(order.order_no.clone()),
                Err(WriteError::Refused { refusal, detail, .. }) => {
                    if let Err(e) = self.refuse(order, &refusal, &detail).await {
                        failed.push((index_of[&order.order_no], e));
                    }
                }
                Err(e) => {
                    Metrics::incr(&self.metrics.order_write_failures);
                    failed.push((index_of[&order.order_no], e.to_string()));
                }
            }
        }
        written
    }

    /// Records the refusal (once) and gives the order's stock back in Redis (once).
    async fn refuse(&self, order: &OrderMessage, refusal: &Refusal, detail: &str) -> Result<(), String> {
        let recorded =
            writer::reject(&self.db, &self.group, order, refusal, detail).await.map_err(|e| e.to_string())?;
        if recorded == Written::Created {
            Metrics::incr(&self.metrics.orders_rejected);
            tracing::warn!(order_no = %order.order_no, reason = refusal.code(), %detail, "order refused; its buyer is told");
        }
        if *refusal == Refusal::StockShortage {
            // Redis sold a unit MySQL does not have: its state regressed or was loaded from a
            // stale view. Freeze the sale; the origins' fence heals it by reconcile.
            let reason = format!("order {} found MySQL short: Redis sold stock it should not have had", order.order_no);
            if crate::fencing::freeze(&self.db, order.product_id, &reason).await.map_err(|e| e.to_string())? {
                Metrics::incr(&self.metrics.sales_frozen);
                tracing::error!(product_id = order.product_id, %reason, "sale frozen");
            }
        }
        self.stock
            .release_rejected(
                order.product_id,
                &order.order_no,
                refusal.user_keeps_another_order(),
                refusal.gives_units_back(),
            )
            .await
            .map_err(|e| format!("order {} refused but its Redis stock is not back yet: {e}", order.order_no))?;
        Ok(())
    }

    /// After the writes: finish what a redelivered order may have left undone (a refused
    /// order's Redis release), then send one delayed cancel for every UNPAID order.
    async fn follow_up(&self, written: &BatchWritten) -> Result<(), String> {
        let mut unpaid = written.created.clone();
        if !written.already_written.is_empty() {
            let statuses = statuses(&self.db, &written.already_written).await.map_err(|e| e.to_string())?;
            for (order_no, status, product_id, refusal) in statuses {
                match (status.as_deref(), refusal) {
                    (Some("UNPAID"), _) => unpaid.push(order_no),
                    (None, Some(code)) => {
                        let refusal = Refusal::from_code(&code).unwrap_or(Refusal::StockShortage);
                        let (keep_buyer, give_back) = (refusal.user_keeps_another_order(), refusal.gives_units_back());
                        self.stock.release_rejected(product_id, &order_no, keep_buyer, give_back).await.map_err(
                            |e| format!("order {order_no} refused but its Redis stock is not back yet: {e}"),
                        )?;
                    }
                    _ => {}
                }
            }
        }
        unpaid.sort();
        unpaid.dedup();
        if unpaid.is_empty() {
            return Ok(());
        }
        let body = serde_json::to_vec(&CancelMessage::of(unpaid.clone())).expect("serializes");
        let key = unpaid.first().cloned().unwrap_or_default();
        // A cancel sent twice is harmless (an order is cancelled once, in MySQL), so an unknown
        // outcome is simply tried again, here and soon: a broker killed mid-send times out, and
        // the next try goes to another broker. Failing the message instead would hand it back
        // to the broker it came from, which may be the dead one.
        let mut tries = 0;
        loop {
            tries += 1;
            match self.sender.send(&self.cancel_topic, "CANCEL", &key, body.clone(), self.cancel_delay_level).await {
                Ok(()) => return Ok(()),
                Err(e) if tries < 3 => {
                    tracing::warn!(orders = unpaid.len(), error = %e, "cancel not sent yet; trying again");
                    tokio::time::sleep(std::time::Duration::from_millis(200 * tries)).await;
                }
                Err(e) => return Err(format!("{} orders written but their cancel was not sent: {e}", unpaid.len())),
            }
        }
    }
}

/// For orders handled before: (orderNo, order status if written, product, refusal reason if refused).
async fn statuses(
    db: &MySqlPool,
    order_nos: &[String],
) -> sqlx::Result<Vec<(String, Option<String>, u64, Option<String>)>> {
    let in_list = |sql: &str| {
        let mut q = QueryBuilder::<MySql>::new(sql);
        let mut list = q.separated(", ");
        for no in order_nos {
            list.push_bind(no);
        }
        list.push_unseparated(")");
        q
    };
    let mut written = in_list("SELECT order_no, status, product_id FROM tb_seckill_order WHERE order_no IN (");
    let written: Vec<(String, String, u64)> = written.build_query_as().fetch_all(db).await?;
    let mut refused = in_list("SELECT order_no, reason, product_id FROM tb_rejected_order WHERE order_no IN (");
    let refused: Vec<(String, String, u64)> = refused.build_query_as().fetch_all(db).await?;
    Ok(written
        .into_iter()
        .map(|(no, status, product)| (no, Some(status), product, None))
        .chain(refused.into_iter().map(|(no, reason, product)| (no, None, product, Some(reason))))
        .collect())
}

/// The canceller: UNPAID → CANCELLED in MySQL (stock back, user record gone), then the stock
/// back in Redis with `release.lua`, which acts once. A redelivery after the MySQL commit finds
/// the order CANCELLED and still makes sure Redis got its stock back; a paid order is left alone.
///
/// Each order of a message is handled on its own: the ones that failed (or are not due yet,
/// a cancel that came before `expire_at`) are sent again in a new message at
/// `retry_delay_level`, so one bad order never holds back the others. The backstop
/// ([`Canceller::backstop`]) cancels through the same path whatever a lost message left.
#[derive(Debug)]
pub struct Canceller {
    pub db: MySqlPool,
    pub stock: StockStore,
    pub metrics: Arc<Metrics>,
    pub sender: Arc<Sender>,
    pub group: String,
    pub topic: String,
    pub retry_delay_level: i32,
}

/// What [`Canceller::cancel_one`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// Cancelled (now or before) and its stock is back, or nothing was to be done (paid,
    /// missing).
    Done,
    /// Still payable: not cancelled yet.
    NotYetDue,
}

impl Canceller {
    pub fn handler(self: Arc<Self>) -> Handler {
        Arc::new(move |msg| {
            let this = Arc::clone(&self);
            Box::pin(async move { this.handle(&msg).await })
        })
    }

    async fn handle(&self, msg: &MessageExt) -> Result<(), String> {
        let body = msg.body().unwrap_or_default();
        let cancel: CancelMessage = match serde_json::from_slice(&body) {
            Ok(cancel) => cancel,
            Err(e) => {
                let reason = format!("unreadable cancel message: {e}");
                crate::dead_letters::keep_unreadable(&self.db, &self.group, msg, &reason).await?;
                Metrics::incr(&self.metrics.dead_letters);
                return Ok(());
            }
        };
        let mut again = Vec::new();
        for order_no in cancel.into_order_nos() {
            match self.cancel_one(&order_no).await {
                Ok(Cancelled::Done) => {}
                Ok(Cancelled::NotYetDue) => again.push(order_no),
                Err(e) => {
                    tracing::warn!(%order_no, error = %e, "cancel not finished; sent again for later");
                    again.push(order_no);
                }
            }
        }
        if again.is_empty() {
            return Ok(());
        }
        let key = again.first().cloned().unwrap_or_default();
        let body = serde_json::to_vec(&CancelMessage::of(again)).expect("serializes");
        // Failing here hands the whole message back to the broker: its orders are cancelled
        // once whatever runs them again.
        self.sender.send(&self.topic, "CANCEL", &key, body, self.retry_delay_level).await.map_err(|e| e.to_string())
    }

    /// Cancels one order if it is unpaid and past its `expire_at`, and gives its stock back
    /// in Redis (once).
    pub async fn cancel_one(&self, order_no: &str) -> Result<Cancelled, String> {
        let metrics = &self.metrics;
        let product_id = match canceller::cancel_if_unpaid(&self.db, order_no).await.map_err(|e| e.to_string())? {
            CancelOutcome::Cancelled { product_id, .. } => {
                Metrics::incr(&metrics.orders_cancelled);
                product_id
            }
            CancelOutcome::AlreadyCancelled { product_id } => {
                Metrics::incr(&metrics.cancels_repeated);
                product_id
            }
            CancelOutcome::Paid => {
                Metrics::incr(&metrics.cancels_skipped);
                return Ok(Cancelled::Done);
            }
            CancelOutcome::NotYetDue { .. } => return Ok(Cancelled::NotYetDue),
            CancelOutcome::Missing => {
                tracing::warn!(%order_no, "cancel for an order MySQL does not have; ignored");
                return Ok(Cancelled::Done);
            }
        };
        self.stock
            .release(product_id, order_no)
            .await
            .map_err(|e| format!("order {order_no} cancelled but Redis stock not given back yet: {e}"))?;
        Ok(Cancelled::Done)
    }

    /// The unpaid-order backstop: every `every`, cancels the UNPAID orders more than `grace`
    /// past their `expire_at` through [`Canceller::cancel_one`], so a lost or dead-lettered
    /// cancel message changes nothing but timing. Several processes may run it: a cancel
    /// happens once. Runs until dropped.
    pub async fn backstop(self: Arc<Self>, grace: std::time::Duration, every: std::time::Duration) {
        loop {
            tokio::time::sleep(every).await;
            let overdue = match canceller::overdue(&self.db, grace, 500).await {
                Ok(overdue) => overdue,
                Err(e) => {
                    tracing::warn!(error = %e, "unpaid-order backstop cannot read MySQL");
                    continue;
                }
            };
            let mut cancelled = 0;
            for order_no in &overdue {
                match self.cancel_one(order_no).await {
                    Ok(Cancelled::Done) => cancelled += 1,
                    Ok(Cancelled::NotYetDue) => {}
                    Err(e) => tracing::warn!(%order_no, error = %e, "backstop cancel not finished; next round"),
                }
            }
            if cancelled > 0 {
                self.metrics.backstop_cancels.inc_by(cancelled);
                tracing::warn!(
                    orders = cancelled,
                    "unpaid-order backstop cancelled orders whose cancel message never came"
                );
            }
        }
    }
}
