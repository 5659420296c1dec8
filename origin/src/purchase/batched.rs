//! Buy mode `batched`: two group-commit stages between the HTTP handlers and the broker.
//!
//! 1. The decider hands every buy that arrived while its previous script calls were running
//!    to one `buy.lua` call per product (per bucket of a sharded sale): stock, buyer, deduction
//!    log and an outbox entry, all atomic in Redis. Rejections are answered at once; a sharded
//!    sale's buys that found their bucket dry are decided again once it is refilled.
//! 2. The relay sends every taken buy that arrived while its previous batches were in flight
//!    as one batch to the order topic. SEND_OK → the buyers hear QUEUED and the entries leave
//!    the outbox. Nothing waits for a timer: at low load a batch is one order.
//!
//! Failure rules (the outbox makes every one of them safe):
//! - broker surely did not store a batch (even on the sender's second try, which goes to
//!   another broker when the topic has queues on several) → each buy is given back (stock,
//!   buyer, deduction, outbox entry) if its entry is still young, and answered 503; else it
//!   stays for the sweeper;
//! - the outcome of a send is unknown → nothing is given back; the buyer hears PENDING with
//!   the order number, and the sweeper re-sends the entry (the writer drops a duplicate);
//! - Redis failed and the script may have run → the deduction log decides (one read per
//!   bucket for the whole call, within 2 s); if even that cannot be read, PENDING;
//! - a give-back whose outcome is unknown → the deduction log decides: gone means nothing is
//!   held (503), present means the order stands (PENDING);
//! - strict durability (`redis.replica_acks` > 0) and the replicas did not confirm a call's
//!   writes in time → its taken buys are answered PENDING and left in the outbox: the sweeper
//!   sends each one only once a replica holds it, so a failover forgets no QUEUED order;
//! - more than `buy.queue_max` buys waiting, or a buy that waited `buy.queue_timeout_ms` for its
//!   turn → 503 `BUSY`, nothing taken: a stalled Redis does not pile up work that would run
//!   long after its buyers stopped waiting.

use std::collections::HashMap;
use std::sync::Arc;

use rust_decimal::Decimal;
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::{Buy, BuyFailure, Placed};
use crate::broker::health::BrokerHealth;
use crate::broker::sender::{Outgoing, SendError, Sender};
use crate::configuration::BuySettings;
use crate::orders::OrderMessage;
use crate::stock::{bucket_of, Bucket, BuyAttempt, BuyOutcome, ScriptMode, StockStore};

type Reply = oneshot::Sender<Result<Placed, BuyFailure>>;

/// The answer to a buy that Redis could not decide and that surely took nothing.
const STOCK_UNAVAILABLE: &str = "the stock service is unavailable; nothing was bought, try again shortly";
/// The answer to a buy turned away before its script ran: too many waiting, or waited too long.
const BUSY: &str = "the shop is too busy to take this buy now; nothing was bought, try again shortly";
/// How long the deduction log may take to settle a failed script call's buys: long enough
/// for a restarted Redis to answer again, short enough to hold a decider slot only briefly.
const SETTLE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);

struct DecideJob {
    product_id: u64,
    attempt: BuyAttempt,
    reply: Reply,
    /// When the buy arrived: one that waited past `queue_timeout` is not run.
    arrived: std::time::Instant,
}

struct RelayJob {
    bucket: Bucket,
    entry_id: String,
    message: OrderMessage,
    reply: Reply,
}

/// The batched buy path of one origin. Cheap to share; its stages run as background tasks
/// until it is dropped.
#[derive(Debug)]
pub struct BatchedBuyer {
    decide: mpsc::Sender<DecideJob>,
    broker: Arc<BrokerHealth>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// What the relay needs to reach the broker.
#[derive(Debug)]
pub struct RelayTarget {
    pub sender: Arc<Sender>,
    pub topic: String,
}

impl BatchedBuyer {
    pub fn start(stock: StockStore, target: RelayTarget, broker: Arc<BrokerHealth>, settings: &BuySettings) -> Self {
        let (decide_tx, decide_rx) = mpsc::channel(settings.queue_max.max(1));
        // Taken buys wait for the relay here: bounded too, so a slow broker holds the decider
        // back and new buys meet a full decide queue (503 BUSY) instead of taking stock.
        let (relay_tx, relay_rx) = mpsc::channel(settings.queue_max.max(1));
        let decider = Decider {
            stock: stock.clone(),
            relay: relay_tx,
            batch_max: settings.batch_max.max(1),
            queue_timeout: std::time::Duration::from_millis(settings.queue_timeout_ms.max(1)),
        };
        let relay = Relay {
            stock,
            target: Arc::new(target),
            broker: Arc::clone(&broker),
            batch_max: settings.batch_max.max(1),
            sweep_after_ms: settings.sweep_after_ms,
        };
        let in_flight = settings.batches_in_flight.max(1);
        let tasks = vec![tokio::spawn(decider.run(decide_rx, in_flight)), tokio::spawn(relay.run(relay_rx, in_flight))];
        Self { decide: decide_tx, broker, tasks }
    }

    /// Takes stock for `request` under `order_no` and queues the order.
    pub async fn buy(&self, request: &Buy, order_no: String) -> Result<Placed, BuyFailure> {
        // While the relay cannot reach the broker nothing is taken: taking stock only to give
        // it back (or, worse, to leave it pending) helps nobody. A probe clears this.
        if self.broker.is_failing() {
            return Err(BuyFailure::Unavailable(
                "the order queue is unavailable; nothing was bought, try again shortly",
            ));
        }
        let (reply, answer) = oneshot::channel();
        let attempt = BuyAttempt { user_id: request.user_id, quantity: request.quantity, order_no: order_no.clone() };
        let job = DecideJob { product_id: request.product_id, attempt, reply, arrived: std::time::Instant::now() };
        match self.decide.try_send(job) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => return Err(BuyFailure::Busy(BUSY)),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                return Err(BuyFailure::Unavailable("the origin is shutting down; nothing was bought"))
            }
        }
        // A dropped reply means a stage task died after taking the job: the outcome is unknown.
        answer.await.unwrap_or(Ok(Placed::Pending(order_no)))
    }
}

impl Drop for BatchedBuyer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Group commit: takes whatever jobs are waiting (at most `batch_max`) as one batch as soon as
/// one of `in_flight` slots is free, and hands it to `work`. Jobs that arrive while every slot
/// is busy wait and join the next batch, so batches grow with load and no job ever waits for a
/// timer. Runs until every sender of `jobs` is gone.
async fn group_commit<J, W, F>(mut jobs: mpsc::Receiver<J>, in_flight: usize, batch_max: usize, work: W)
where
    J: Send + 'static,
    W: Fn(Vec<J>) -> F,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(in_flight));
    while let Some(first) = jobs.recv().await {
        // Wait for a free slot first: whatever arrives meanwhile joins this batch.
        let slot = Arc::clone(&slots).acquire_owned().await.expect("never closed");
        let mut batch = vec![first];
        while batch.len() < batch_max {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let done = work(batch);
        tokio::spawn(async move {
            done.await;
            drop(slot);
        });
    }
}

struct Decider {
    stock: StockStore,
    relay: mpsc::Sender<RelayJob>,
    batch_max: usize,
    queue_timeout: std::time::Duration,
}

impl Decider {
    async fn run(self, jobs: mpsc::Receiver<DecideJob>, in_flight: usize) {
        let this = Arc::new(self);
        let batch_max = this.batch_max;
        group_commit(jobs, in_flight, batch_max, move |batch: Vec<DecideJob>| {
            let this = Arc::clone(&this);
            async move {
                let mut by_product: HashMap<u64, Vec<DecideJob>> = HashMap::new();
                for job in batch {
                    if job.arrived.elapsed() >= this.queue_timeout {
                        let _ = job.reply.send(Err(BuyFailure::Busy(BUSY)));
                        continue;
                    }
                    by_product.entry(job.product_id).or_default().push(job);
                }
                futures::future::join_all(by_product.into_iter().map(|(p, jobs)| this.decide_product(p, jobs))).await;
            }
        })
        .await
    }

    /// One script call per bucket the buyers belong to (one, unless the sale is sharded).
    async fn decide_product(&self, product_id: u64, jobs: Vec<DecideJob>) {
        let buckets = match self.stock.bucket_count(product_id).await {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(product_id, error = %e, "cannot read the sale's buckets");
                for job in jobs {
                    let _ = job.reply.send(Err(BuyFailure::Unavailable(STOCK_UNAVAILABLE)));
                }
                return;
            }
        };
        let mut by_bucket: HashMap<u32, Vec<DecideJob>> = HashMap::new();
        for job in jobs {
            by_bucket.entry(bucket_of(job.attempt.user_id, buckets)).or_default().push(job);
        }
        let sharded = buckets > 1;
        futures::future::join_all(
            by_bucket.into_iter().map(|(index, jobs)| self.decide(Bucket { product_id, index }, jobs, sharded)),
        )
        .await;
    }

    /// Decides `jobs` in `bucket`. With `refill`, buys that found the bucket dry wait for
    /// [`StockStore::refill`] and are decided again; SOLD_OUT only once no other bucket can
    /// lend.
    async fn decide(&self, bucket: Bucket, jobs: Vec<DecideJob>, refill: bool) {
        let product_id = bucket.product_id;
        let attempts: Vec<BuyAttempt> = jobs.iter().map(|j| j.attempt.clone()).collect();
        let decided = match self.stock.decide(bucket, ScriptMode::Buy, &attempts).await {
            Ok(decided) => decided,
            Err(e) => return self.settle_after_redis_error(bucket, jobs, e).await,
        };
        let price: Option<Decimal> = decided.price.parse().ok();
        // Strict durability: a taken buy is relayed (and answered QUEUED) only once a replica
        // holds its deduction, so a failover cannot forget an order the broker has. Not
        // confirmed in time, it is answered PENDING and stays in the outbox: the sweeper sends
        // it if the write survived, and nothing was sold if it did not.
        let replicated = !decided.outcomes.iter().any(|(o, _)| matches!(o, BuyOutcome::Taken { .. }))
            || self.stock.replicated(bucket).await;
        let mut dry = Vec::new();
        for (job, (outcome, entry_id)) in jobs.into_iter().zip(decided.outcomes) {
            match (outcome, entry_id, price) {
                (BuyOutcome::Taken { .. }, Some(_), Some(_)) if !replicated => {
                    let _ = job.reply.send(Ok(Placed::Pending(job.attempt.order_no)));
                }
                (BuyOutcome::Taken { .. }, Some(entry_id), Some(price)) => {
                    let message = OrderMessage {
                        order_no: job.attempt.order_no,
                        user_id: job.attempt.user_id,
                        product_id,
                        quantity: job.attempt.quantity,
                        price,
                        accepted_at: decided.now_ms,
                    };
                    let relay_job = RelayJob { bucket, entry_id, message, reply: job.reply };
                    if let Err(mpsc::error::SendError(lost)) = self.relay.send(relay_job).await {
                        // Shutting down: the entry stays in the outbox for the sweeper.
                        let _ = lost.reply.send(Ok(Placed::Pending(lost.message.order_no)));
                    }
                }
                (BuyOutcome::Taken { .. }, _, _) => {
                    tracing::error!(product_id, price = %decided.price, "stock taken but the product has no valid price; the outbox keeps the order");
                    let _ = job.reply.send(Ok(Placed::Pending(job.attempt.order_no)));
                }
                (BuyOutcome::SoldOut { stock_left }, _, _) if refill => dry.push((job, stock_left)),
                (rejected, _, _) => {
                    let _ = job.reply.send(Err(BuyFailure::Rejected(rejected)));
                }
            }
        }
        if dry.is_empty() {
            return;
        }
        let need = dry.iter().map(|(job, _)| u64::from(job.attempt.quantity)).sum();
        match self.stock.refill(bucket, need).await {
            Ok(0) => {
                for (job, stock_left) in dry {
                    let _ = job.reply.send(Err(BuyFailure::Rejected(BuyOutcome::SoldOut { stock_left })));
                }
            }
            // Boxed: the future would otherwise contain itself.
            Ok(_) => Box::pin(self.decide(bucket, dry.into_iter().map(|(job, _)| job).collect(), true)).await,
            Err(e) => {
                // A dry bucket's buys took nothing, and a loan cut short is finished by the sweeper.
                tracing::warn!(product_id, bucket = bucket.index, error = %e, "cannot refill a dry bucket");
                for (job, _) in dry {
                    let _ = job.reply.send(Err(BuyFailure::Unavailable(STOCK_UNAVAILABLE)));
                }
            }
        }
    }

    /// The script call failed. If Redis refused the connection, the script surely did not run.
    /// Otherwise it may have: Redis answers a connection in order, so one read of the bucket's
    /// deduction log settles the whole call — an order in the log has its outbox entry, which
    /// the sweeper will send; one not in it took nothing. Only if Redis cannot say within
    /// [`SETTLE_DEADLINE`] is the answer PENDING.
    async fn settle_after_redis_error(&self, bucket: Bucket, jobs: Vec<DecideJob>, error: redis::RedisError) {
        tracing::warn!(product_id = bucket.product_id, %error, buys = jobs.len(), "buy script failed");
        let found = if error.is_connection_refusal() {
            Some(vec![false; jobs.len()])
        } else {
            let order_nos: Vec<String> = jobs.iter().map(|j| j.attempt.order_no.clone()).collect();
            self.stock.settle_deductions(bucket, &order_nos, SETTLE_DEADLINE).await
        };
        for (i, job) in jobs.into_iter().enumerate() {
            let answer = match found.as_ref().map(|f| f[i]) {
                Some(false) => Err(BuyFailure::Unavailable(STOCK_UNAVAILABLE)),
                Some(true) | None => Ok(Placed::Pending(job.attempt.order_no)),
            };
            let _ = job.reply.send(answer);
        }
    }
}

struct Relay {
    stock: StockStore,
    target: Arc<RelayTarget>,
    broker: Arc<BrokerHealth>,
    batch_max: usize,
    sweep_after_ms: u64,
}

impl Relay {
    async fn run(self, jobs: mpsc::Receiver<RelayJob>, in_flight: usize) {
        let this = Arc::new(self);
        let batch_max = this.batch_max;
        group_commit(jobs, in_flight, batch_max, move |batch: Vec<RelayJob>| {
            let this = Arc::clone(&this);
            async move { this.send(batch).await }
        })
        .await
    }

    async fn send(&self, batch: Vec<RelayJob>) {
        let outgoing = batch
            .iter()
            .map(|j| Outgoing {
                key: j.message.order_no.clone(),
                body: serde_json::to_vec(&j.message).expect("order message serializes"),
            })
            .collect();
        match self.target.sender.send_batch(&self.target.topic, "ORDER", outgoing).await {
            Ok(()) => {
                self.broker.ok();
                // The broker holds the orders: that is all a QUEUED answer promises, so the
                // buyers hear it before the outbox is cleaned, a Redis round trip sooner.
                let mut by_bucket: HashMap<Bucket, Vec<String>> = HashMap::new();
                for job in batch {
                    by_bucket.entry(job.bucket).or_default().push(job.entry_id);
                    let _ = job.reply.send(Ok(Placed::Queued(job.message.order_no)));
                }
                for (bucket, ids) in by_bucket {
                    // Left behind (Redis error, or this process dies first), an entry is
                    // re-sent by the sweeper and dropped by the writer as a duplicate.
                    if let Err(e) = self.stock.ack_sent(bucket, &ids).await {
                        tracing::warn!(product_id = bucket.product_id, error = %e, "sent orders stay in the outbox until the sweeper");
                    }
                }
            }
            Err(SendError::NotSent(reason)) => {
                self.broker.failed();
                tracing::warn!(%reason, orders = batch.len(), "the broker refused a batch; giving its stock back");
                let not_bought = "the order queue is unavailable; nothing was bought, try again shortly";
                // A give-back whose answer was lost may have run: the deduction log says whether
                // anything is still held (release.lua removes entry and deduction together),
                // read once per bucket for all of them, not once per buy.
                let mut unsure: HashMap<Bucket, Vec<RelayJob>> = HashMap::new();
                for job in batch {
                    let given_back = self
                        .stock
                        .release_unsent(job.bucket, &job.message.order_no, &job.entry_id, self.sweep_after_ms)
                        .await;
                    let answer = match given_back {
                        Ok(Some(_)) => Err(BuyFailure::Unavailable(not_bought)),
                        // Too late: the entry was sent or is the sweeper's; the order stands.
                        Ok(None) => Ok(Placed::Pending(job.message.order_no)),
                        Err(_) => {
                            unsure.entry(job.bucket).or_default().push(job);
                            continue;
                        }
                    };
                    let _ = job.reply.send(answer);
                }
                for (bucket, jobs) in unsure {
                    let order_nos: Vec<String> = jobs.iter().map(|j| j.message.order_no.clone()).collect();
                    let held = self.stock.settle_deductions(bucket, &order_nos, SETTLE_DEADLINE).await;
                    for (i, job) in jobs.into_iter().enumerate() {
                        let answer = match held.as_ref().map(|h| h[i]) {
                            Some(false) => Err(BuyFailure::Unavailable(not_bought)),
                            Some(true) | None => Ok(Placed::Pending(job.message.order_no)),
                        };
                        let _ = job.reply.send(answer);
                    }
                }
            }
            Err(SendError::Unknown(reason)) => {
                self.broker.failed();
                tracing::warn!(%reason, orders = batch.len(), "batch outcome unknown; the sweeper will re-send it");
                for job in batch {
                    let _ = job.reply.send(Ok(Placed::Pending(job.message.order_no)));
                }
            }
        }
    }
}
