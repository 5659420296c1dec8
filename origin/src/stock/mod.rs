//! Redis stock: the fast, authoritative gate of the buy path.
//!
//! Keys (one hash tag per product, so a product's keys share a Redis Cluster slot):
//! `<prefix>:{P}:stock`, `<prefix>:{P}:buyers`, `<prefix>:{P}:orders` (the deduction log,
//! orderNo → "userId,qty"), `<prefix>:{P}:window` (start, end, limit, price)
//! and `<prefix>:{P}:outbox` (a stream of accepted orders the broker has not stored yet).
//! `buy.lua` and `release.lua` are the only writers of stock during a sale;
//! [`StockStore::preload`] sets everything up before it. [`watch`] exposes each live sale's
//! stock in both stores for the alert rules. A sale created with several stock buckets keeps
//! one such set of keys per bucket ([`buckets`]).

pub mod buckets;
pub mod connection;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use redis::{AsyncCommands, Script, Value};

use crate::configuration::RedisSettings;
pub use buckets::{bucket_of, Bucket};
pub use connection::RedisConnection;

/// What the buy script decided for one buy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuyOutcome {
    /// Stock taken, buyer added, deduction log written (in check mode: it would be).
    Taken {
        stock_left: i64,
    },
    /// Not enough stock for the quantity asked (`stock_left` may be > 0 when quantity > 1).
    SoldOut {
        stock_left: i64,
    },
    AlreadyBought,
    NotStarted {
        start_ms: i64,
    },
    Ended {
        end_ms: i64,
    },
    OverLimit {
        limit: i64,
    },
    /// The product was never preloaded into Redis.
    NoSuchProduct,
    /// The sale is frozen (its Redis state may have regressed, or is being reloaded): nothing
    /// is sold until a reconcile heals it (see [`crate::fencing`]).
    Frozen,
    /// A script call failed a moment ago: the server may have restarted or failed over, so this
    /// process sells nothing until its fence has read the servers' identity again (see
    /// [`StockStore::decide`]). Not a verdict on the sale: the stock service is unavailable.
    Held,
}

/// How `buy.lua` runs (see its header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptMode {
    /// Take stock and write an outbox entry per taken buy (batched mode).
    Buy,
    /// Take stock only (transaction mode's local transaction).
    Take,
    /// Decide without writing (transaction mode's pre-check).
    Check,
}

impl ScriptMode {
    fn arg(self) -> &'static str {
        match self {
            ScriptMode::Buy => "buy",
            ScriptMode::Take => "take",
            ScriptMode::Check => "check",
        }
    }
}

/// One buy handed to [`StockStore::decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuyAttempt {
    pub user_id: u64,
    pub quantity: u32,
    pub order_no: String,
}

/// What one `buy.lua` call decided for its buys, in their order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    /// The product's unit price (decimal string), "" if it is not preloaded.
    pub price: String,
    /// Redis's clock when the script ran (ms): the orders' `acceptedAt`.
    pub now_ms: i64,
    /// Per buy: the outcome and, if taken in [`ScriptMode::Buy`], its outbox entry id.
    pub outcomes: Vec<(BuyOutcome, Option<String>)>,
}

/// An accepted order waiting in a product's outbox for the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub id: String,
    pub order_no: String,
    pub user_id: u64,
    pub quantity: u32,
    pub price: String,
    pub accepted_at: i64,
}

/// One deduction-log entry: who holds the stock an order took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deduction {
    pub user_id: u64,
    pub quantity: u32,
}

/// MySQL's view of one product's sale, read in one snapshot: what [`StockStore::preload`]
/// loads and [`StockStore::reconcile`] repairs towards.
#[derive(Debug, Clone)]
pub struct SaleSnapshot {
    pub stock: i64,
    pub start_ms: i64,
    pub end_ms: i64,
    pub per_user_limit: i64,
    /// Unit price as a decimal string, carried into each order message.
    pub price: String,
    /// Redis buckets the stock is split into (1 = not sharded).
    pub buckets: u32,
    /// Active orders (orderNo, deduction) already written to MySQL.
    pub orders: Vec<(String, Deduction)>,
}

/// One bucket's fence as Redis holds it ([`StockStore::fence_states`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketFence {
    pub bucket: Bucket,
    /// The epoch of the preload or reconcile that last wrote it; `None` if Redis lost it.
    pub epoch: Option<String>,
    /// Why it is frozen, if it is.
    pub frozen: Option<String>,
}

/// What [`StockStore::preload`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreloadOutcome {
    /// Loaded: `stock` = MySQL's stock − units Redis took that MySQL does not hold yet.
    Loaded { stock: i64, in_flight_units: i64, in_flight_orders: i64 },
    /// Nothing changed: the loaded sale's window is open (and the load was not forced).
    SaleLive { start_ms: i64, end_ms: i64 },
    /// Nothing changed: Redis holds more units in flight than MySQL has stock.
    Inconsistent { stock: i64, in_flight_units: i64 },
}

/// One key or member [`StockStore::reconcile`] changed (or, dry, would change).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct RedisChange {
    /// The stock bucket it is in (always 0 unless the sale is sharded).
    pub bucket: u32,
    /// `stock`, `window`, `deduction` or `buyer`.
    pub kind: String,
    /// The window field, order number or user id.
    pub item: String,
    /// `None`: it was absent (added).
    pub before: Option<String>,
    /// `None`: it is removed.
    pub after: Option<String>,
}

/// What [`StockStore::reconcile`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reconciled {
    /// The true state (applied unless dry): `stock` = MySQL's stock − units in flight.
    Repaired {
        stock_before: Option<i64>,
        stock: i64,
        in_flight_units: i64,
        in_flight_orders: i64,
        changes: Vec<RedisChange>,
    },
    /// Nothing changed: Redis holds more units in flight than MySQL has stock.
    Inconsistent { stock: i64, in_flight_units: i64 },
}

/// The buy script, for tools that measure it (`make bench`).
pub const BUY_SCRIPT: &str = include_str!("buy.lua");

/// The Redis key `what` (stock, buyers, orders, window, outbox, ...) of `product_id` under
/// `prefix` (of its first bucket, if the sale is sharded). The product id in braces is the
/// hash tag: one product's keys share a cluster slot, so one script may touch them all.
pub fn product_key(prefix: &str, product_id: u64, what: &str) -> String {
    Bucket::first(product_id).key(prefix, what)
}

/// Whether a script that moves stock (a buy, a loan) failed after the fence last read the
/// servers' identity: counts of calls failed, and of those the fence has answered for.
#[derive(Debug, Default)]
struct Suspicion {
    raised: AtomicU64,
    cleared: AtomicU64,
}

impl Suspicion {
    fn raise(&self) {
        self.raised.fetch_add(1, Ordering::SeqCst);
    }

    fn suspect(&self) -> bool {
        self.raised.load(Ordering::SeqCst) > self.cleared.load(Ordering::SeqCst)
    }
}

/// Redis stock of every product, behind one multiplexed connection (to a server or a cluster).
#[derive(Debug, Clone)]
pub struct StockStore {
    conn: RedisConnection,
    prefix: String,
    buy: Script,
    release: Script,
    lease: Script,
    preload: Script,
    reconcile: Script,
    lend: Script,
    receive: Script,
    /// Replicas that must hold a buy's or a loan's write before it counts (0: the master's
    /// word is enough), and how long to wait for them (`redis.replica_acks`).
    replica_acks: u32,
    replica_ack_timeout_ms: u64,
    /// A write on a bucket's master through the scripts' connection (see
    /// [`StockStore::replicated_after_read`]).
    replication_mark: Script,
    /// Raised by a failed script that moves stock, cleared by the fence (see [`StockStore::decide`]).
    suspicion: Arc<Suspicion>,
    /// Buckets per product, as preloaded: fixed for a sale's life, so never stale once read.
    bucket_counts: Arc<RwLock<HashMap<u64, u32>>>,
}

impl StockStore {
    pub async fn connect(settings: &RedisSettings) -> redis::RedisResult<Self> {
        let conn = RedisConnection::connect(&settings.url, &settings.cluster_urls).await?;
        Ok(Self {
            conn,
            prefix: settings.key_prefix.clone(),
            buy: Script::new(BUY_SCRIPT),
            release: Script::new(include_str!("release.lua")),
            lease: Script::new(LEASE_SCRIPT),
            preload: Script::new(include_str!("preload.lua")),
            reconcile: Script::new(include_str!("reconcile.lua")),
            lend: Script::new(include_str!("lend.lua")),
            receive: Script::new(include_str!("receive.lua")),
            suspicion: Arc::default(),
            replication_mark: Script::new("redis.call('SET', KEYS[1], '1', 'PX', 60000) return 1"),
            replica_acks: settings.replica_acks,
            replica_ack_timeout_ms: settings.replica_ack_timeout_ms.max(1),
            bucket_counts: Arc::default(),
        })
    }

    /// Whether the writes this store's scripts made to `bucket`'s master so far are held by
    /// `redis.replica_acks` replicas (always, when that is 0). False on a timeout or an
    /// error: the caller must then treat the write as one a failover may lose.
    pub async fn replicated(&self, bucket: Bucket) -> bool {
        if self.replica_acks == 0 {
            return true;
        }
        let slot = u16::try_from(buckets::slot_of_tag(&bucket.tag())).expect("a cluster slot is below 16384");
        match self.conn.wait_for_replicas(slot, self.replica_acks, self.replica_ack_timeout_ms).await {
            Ok(acks) if acks >= self.replica_acks => true,
            Ok(acks) => {
                tracing::warn!(
                    product_id = bucket.product_id,
                    bucket = bucket.index,
                    acks,
                    wanted = self.replica_acks,
                    "replicas did not confirm a write in time"
                );
                false
            }
            Err(e) => {
                tracing::warn!(product_id = bucket.product_id, bucket = bucket.index, error = %e, "could not wait for replicas");
                false
            }
        }
    }

    /// [`StockStore::replicated`] for writes any process made to `bucket` before this call
    /// (an outbox entry or a loan another origin wrote, which the sweeper is about to act
    /// on). `WAIT` counts only the writes of its own connection, so this first writes a mark
    /// of its own to the bucket's master, after everything it read there.
    pub async fn replicated_after_read(&self, bucket: Bucket) -> bool {
        if self.replica_acks == 0 {
            return true;
        }
        let marked = self
            .replication_mark
            .key(self.bucket_key(bucket, "replication-mark"))
            .invoke_async::<()>(&mut self.conn.clone())
            .await;
        if let Err(e) = marked {
            tracing::warn!(product_id = bucket.product_id, bucket = bucket.index, error = %e, "could not mark the bucket for a replica wait");
            return false;
        }
        self.replicated(bucket).await
    }

    /// The key `what` of `bucket`.
    pub fn bucket_key(&self, bucket: Bucket, what: &str) -> String {
        bucket.key(&self.prefix, what)
    }

    /// How many buckets the product's stock is split into: 1 unless its sale was created
    /// sharded (and 1 for a product that is not preloaded). Read from Redis once per product.
    pub async fn bucket_count(&self, product_id: u64) -> redis::RedisResult<u32> {
        if let Some(k) = self.bucket_counts.read().expect("bucket counts lock").get(&product_id) {
            return Ok(*k);
        }
        let (limit, buckets): (Option<String>, Option<u32>) = redis::cmd("HMGET")
            .arg(self.bucket_key(Bucket::first(product_id), "window"))
            .arg("limit")
            .arg("buckets")
            .query_async(&mut self.conn.clone())
            .await?;
        if limit.is_none() {
            return Ok(1); // not preloaded: its buys hear NO_SUCH_PRODUCT from bucket 0
        }
        let k = buckets.unwrap_or(1).max(1);
        self.bucket_counts.write().expect("bucket counts lock").insert(product_id, k);
        Ok(k)
    }

    /// The bucket that decides `user_id`'s buys of the product.
    pub async fn bucket_for(&self, product_id: u64, user_id: u64) -> redis::RedisResult<Bucket> {
        let k = self.bucket_count(product_id).await?;
        Ok(Bucket { product_id, index: bucket_of(user_id, k) })
    }

    /// Every bucket of the product (one unless its sale is sharded).
    pub async fn buckets(&self, product_id: u64) -> redis::RedisResult<Vec<Bucket>> {
        let k = self.bucket_count(product_id).await?;
        Ok(Bucket::all(product_id, k))
    }
    /// Runs `buy.lua` once for `buys` of one bucket (EVALSHA, falling back to EVAL when Redis
    /// lost the script): every buyer must belong to it ([`StockStore::bucket_for`]). Each buy
    /// is decided in order, as if alone. A sharded sale's SOLD_OUT here means only this bucket
    /// is dry: see [`StockStore::refill`].
    pub async fn decide(&self, bucket: Bucket, mode: ScriptMode, buys: &[BuyAttempt]) -> redis::RedisResult<Decided> {
        let mut invocation = self.buy.prepare_invoke();
        invocation
            .key(self.bucket_key(bucket, "stock"))
            .key(self.bucket_key(bucket, "buyers"))
            .key(self.bucket_key(bucket, "orders"))
            .key(self.bucket_key(bucket, "window"))
            .key(self.bucket_key(bucket, "outbox"))
            .arg(mode.arg());
        for b in buys {
            invocation.arg(b.user_id).arg(b.quantity).arg(&b.order_no);
        }
        // After a failed call the server may have restarted or failed over (a cluster's script
        // connection meets every new master first as an error: it follows no redirect). Until
        // the fence has read the servers' identity again, nothing is sold (the buys are Held),
        // so none lands on a state the fence is about to freeze.
        if self.suspicion.suspect() {
            return Ok(Decided {
                price: String::new(),
                now_ms: 0,
                outcomes: buys.iter().map(|_| (BuyOutcome::Held, None)).collect(),
            });
        }
        let reply: Vec<redis::Value> = match invocation.invoke_async(&mut self.conn.clone()).await {
            Ok(reply) => reply,
            Err(e) => {
                self.script_failed();
                return Err(e);
            }
        };
        parse_decided(&reply, buys.len())
    }

    /// A script that moves stock (a buy, a loan) failed: the server may have restarted or
    /// failed over, so buys wait for the fence (see [`StockStore::decide`]).
    fn script_failed(&self) {
        self.suspicion.raise();
    }

    /// A mark for [`StockStore::clear_suspicion`], read before the servers' identity is.
    pub fn suspicion_mark(&self) -> u64 {
        self.suspicion.raised.load(Ordering::SeqCst)
    }

    /// The fence read the servers' identity after `mark` was taken (and froze what changed):
    /// buys may run again unless a call failed since.
    pub fn clear_suspicion(&self, mark: u64) {
        self.suspicion.cleared.fetch_max(mark, Ordering::SeqCst);
    }

    /// One buy in transaction mode: takes stock (no outbox entry) if every rule allows it,
    /// refilling a dry bucket of a sharded sale first.
    pub async fn take(
        &self,
        product_id: u64,
        user_id: u64,
        quantity: u32,
        order_no: &str,
    ) -> redis::RedisResult<BuyOutcome> {
        let bucket = self.bucket_for(product_id, user_id).await?;
        let buys = [BuyAttempt { user_id, quantity, order_no: order_no.to_string() }];
        loop {
            let outcome = self.decide(bucket, ScriptMode::Take, &buys).await?.outcomes.remove(0).0;
            if !matches!(outcome, BuyOutcome::SoldOut { .. }) || self.refill(bucket, u64::from(quantity)).await? == 0 {
                return Ok(outcome);
            }
        }
    }

    /// What a buy would decide right now, and the product's price, without writing anything.
    /// Not authoritative: only a taking call is. A sharded sale's dry bucket counts as sold
    /// out only if the whole product is.
    pub async fn check(
        &self,
        product_id: u64,
        user_id: u64,
        quantity: u32,
    ) -> redis::RedisResult<(BuyOutcome, String)> {
        let bucket = self.bucket_for(product_id, user_id).await?;
        let buys = [BuyAttempt { user_id, quantity, order_no: String::new() }];
        let mut decided = self.decide(bucket, ScriptMode::Check, &buys).await?;
        let mut outcome = decided.outcomes.remove(0).0;
        if matches!(outcome, BuyOutcome::SoldOut { .. }) && self.bucket_count(product_id).await? > 1 {
            if let Some(total) = self.stock(product_id).await?.filter(|total| *total >= i64::from(quantity)) {
                outcome = BuyOutcome::Taken { stock_left: total };
            }
        }
        Ok((outcome, decided.price))
    }

    async fn run_release(
        &self,
        bucket: Bucket,
        order_no: &str,
        entry: Option<(&str, u64)>,
        keep_buyer: bool,
        give_back: bool,
    ) -> redis::RedisResult<i64> {
        let (id, max_age) = entry.unwrap_or(("", 0));
        self.release
            .key(self.bucket_key(bucket, "stock"))
            .key(self.bucket_key(bucket, "buyers"))
            .key(self.bucket_key(bucket, "orders"))
            .key(self.bucket_key(bucket, "outbox"))
            .arg(order_no)
            .arg(id)
            .arg(max_age)
            .arg(if keep_buyer { "1" } else { "0" })
            .arg(if give_back { "0" } else { "1" })
            .invoke_async(&mut self.conn.clone())
            .await
    }

    /// Runs `release.lua`: gives the order's stock back and frees its buyer, once.
    /// Returns the quantity given back (0 if the order was not in the deduction log).
    pub async fn release(&self, product_id: u64, order_no: &str) -> redis::RedisResult<u32> {
        self.release_rejected(product_id, order_no, false, true).await
    }

    /// Removes the deduction of an order MySQL refused for good, once. `keep_buyer`: the user
    /// holds another order of the product, so they stay a buyer. `give_back`: its units go
    /// back on sale; false when MySQL refused it for want of those units (Redis sold stock it
    /// should not have had, so there is nothing to give back).
    ///
    /// An order's deduction is in exactly one bucket's log and `release.lua` acts only where
    /// it finds it, so trying every bucket gives the stock back once, to the right bucket.
    pub async fn release_rejected(
        &self,
        product_id: u64,
        order_no: &str,
        keep_buyer: bool,
        give_back: bool,
    ) -> redis::RedisResult<u32> {
        for bucket in self.buckets(product_id).await? {
            let given = self.run_release(bucket, order_no, None, keep_buyer, give_back).await?;
            if given > 0 {
                return Ok(u32::try_from(given).unwrap_or(u32::MAX));
            }
        }
        Ok(0)
    }

    /// Gives back a buy whose batch the broker surely did not store, if its outbox entry is
    /// still there and younger than `max_age_ms`. `None`: too late, the entry was sent or
    /// belongs to the sweeper now, so the order stands.
    pub async fn release_unsent(
        &self,
        bucket: Bucket,
        order_no: &str,
        entry_id: &str,
        max_age_ms: u64,
    ) -> redis::RedisResult<Option<u32>> {
        let given = self.run_release(bucket, order_no, Some((entry_id, max_age_ms)), false, true).await?;
        Ok(u32::try_from(given).ok())
    }

    /// Removes outbox entries of `bucket` the broker stored. Missing ones are fine (someone
    /// else acked).
    pub async fn ack_sent(&self, bucket: Bucket, entry_ids: &[String]) -> redis::RedisResult<()> {
        if entry_ids.is_empty() {
            return Ok(());
        }
        redis::cmd("XDEL")
            .arg(self.bucket_key(bucket, "outbox"))
            .arg(entry_ids)
            .query_async::<()>(&mut self.conn.clone())
            .await
    }

    /// Up to `count` outbox entries of a bucket older than `min_age_ms` (Redis clock), oldest first.
    pub async fn outbox_older_than(
        &self,
        bucket: Bucket,
        min_age_ms: u64,
        count: usize,
    ) -> redis::RedisResult<Vec<OutboxEntry>> {
        let until = self.now_ms().await? - i64::try_from(min_age_ms).unwrap_or(i64::MAX);
        if until <= 0 {
            return Ok(Vec::new());
        }
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(self.bucket_key(bucket, "outbox"))
            .arg("-")
            .arg(format!("{until}-18446744073709551615"))
            .arg("COUNT")
            .arg(count)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(reply.ids.iter().filter_map(parse_outbox_entry).collect())
    }

    /// Redis's clock in ms: the one clock every origin shares (outbox entry and loan ages).
    async fn now_ms(&self) -> redis::RedisResult<i64> {
        let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut self.conn.clone()).await?;
        Ok(secs * 1000 + micros / 1000)
    }

    /// Entries in a product's outboxes: accepted orders the broker has not confirmed yet.
    pub async fn outbox_len(&self, product_id: u64) -> redis::RedisResult<u64> {
        let mut total = 0;
        for bucket in self.buckets(product_id).await? {
            total += self.conn.clone().xlen::<_, u64>(self.bucket_key(bucket, "outbox")).await?;
        }
        Ok(total)
    }

    /// Takes or renews the lease `name` for `holder` for `ttl_ms`; true if `holder` holds it.
    pub async fn lease(&self, name: &str, holder: &str, ttl_ms: u64) -> redis::RedisResult<bool> {
        let held: i64 = self
            .lease
            .key(format!("{}:lease:{name}", self.prefix))
            .arg(holder)
            .arg(ttl_ms)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(held == 1)
    }

    /// The deduction-log entry of an order, if Redis took stock for it and still holds it
    /// (in whichever bucket of a sharded sale).
    pub async fn deduction(&self, product_id: u64, order_no: &str) -> redis::RedisResult<Option<Deduction>> {
        for bucket in self.buckets(product_id).await? {
            let entry: Option<String> = self.conn.clone().hget(self.bucket_key(bucket, "orders"), order_no).await?;
            if let Some(found) = entry.and_then(|e| parse_deduction(&e)) {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Which of `order_nos` `bucket`'s deduction log holds: one HMGET, tried again every 150 ms
    /// (a restarting Redis, a connection being made again) until `deadline`. `None` if Redis
    /// cannot say in time.
    pub async fn settle_deductions(
        &self,
        bucket: Bucket,
        order_nos: &[String],
        deadline: std::time::Duration,
    ) -> Option<Vec<bool>> {
        let read = async {
            loop {
                let found: redis::RedisResult<Vec<Option<String>>> = redis::cmd("HMGET")
                    .arg(self.bucket_key(bucket, "orders"))
                    .arg(order_nos)
                    .query_async(&mut self.conn.clone())
                    .await;
                match found {
                    Ok(found) => return found.iter().map(Option::is_some).collect(),
                    Err(e) => {
                        tracing::warn!(product_id = bucket.product_id, error = %e, "cannot read the deduction log yet")
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(150)).await;
            }
        };
        tokio::time::timeout(deadline, read).await.ok()
    }

    /// After an ambiguous Redis error on a taking call: did the script take stock for this
    /// order? Redis answers a connection in order, so a read of the deduction log settles it.
    /// Tries three times, 100 ms apart and growing; `None` if Redis still cannot say.
    pub async fn settle_deduction(&self, product_id: u64, order_no: &str) -> Option<bool> {
        for attempt in 0..3u64 {
            tokio::time::sleep(std::time::Duration::from_millis(100 * attempt)).await;
            match self.deduction(product_id, order_no).await {
                Ok(found) => return Some(found.is_some()),
                Err(e) => tracing::warn!(%order_no, error = %e, "cannot read the deduction log yet"),
            }
        }
        None
    }

    /// Stock left in Redis (a sharded sale's buckets together, leaving out the few units a
    /// loan is moving between two of them); `None` if the product was never preloaded.
    pub async fn stock(&self, product_id: u64) -> redis::RedisResult<Option<i64>> {
        let buckets = self.buckets(product_id).await?;
        let mut total = None;
        for bucket in buckets {
            let left: Option<i64> = self.conn.clone().get(self.bucket_key(bucket, "stock")).await?;
            if let Some(left) = left {
                total = Some(total.unwrap_or(0) + left);
            }
        }
        Ok(total)
    }

    /// Stock left for several products (`None` = not preloaded), as [`StockStore::stock`]:
    /// from one server in one round trip (and one more per sharded sale); on a cluster, where
    /// a pipeline may not span slots, product by product, all at once.
    pub async fn stocks(&self, product_ids: &[u64]) -> redis::RedisResult<Vec<Option<i64>>> {
        if product_ids.is_empty() {
            return Ok(Vec::new());
        }
        if self.conn.is_cluster() {
            return futures::future::try_join_all(product_ids.iter().map(|id| self.stock(*id))).await;
        }
        let mut pipe = redis::pipe();
        for id in product_ids {
            pipe.get(self.bucket_key(Bucket::first(*id), "stock"));
            pipe.hget(self.bucket_key(Bucket::first(*id), "window"), "buckets");
        }
        let replies: Vec<(Option<i64>, Option<u32>)> = pipe.query_async(&mut self.conn.clone()).await?;
        // A sharded sale's other buckets are read on their own; the rest came in the pipeline.
        futures::future::try_join_all(product_ids.iter().zip(replies).map(|(id, (stock, buckets))| async move {
            match buckets {
                Some(k) if k > 1 => self.stock(*id).await,
                _ => Ok(stock),
            }
        }))
        .await
    }

    /// Whether the buyer set (of the user's bucket) holds `user_id`.
    pub async fn is_buyer(&self, product_id: u64, user_id: u64) -> redis::RedisResult<bool> {
        let bucket = self.bucket_for(product_id, user_id).await?;
        self.conn.clone().sismember(self.bucket_key(bucket, "buyers"), user_id).await
    }

    /// A call of `preload.lua` or `reconcile.lua` on one bucket; they share their layout: KEYS
    /// stock, buyers, orders, window, outbox, transfers, received; ARGV the bucket's `share` of
    /// the stock, start, end, limit, price, `flag` (force / dry), buckets, `epoch`, whether to
    /// leave the bucket frozen (a sharded sale's buckets stay frozen until every one of them is
    /// done), then one (orderNo, "userId,qty") pair per active order of `snapshot` whose user
    /// is the bucket's.
    fn snapshot_call<'a>(
        &self,
        script: &'a Script,
        bucket: Bucket,
        snapshot: &SaleSnapshot,
        share: i64,
        flag: bool,
        epoch: &str,
    ) -> redis::ScriptInvocation<'a> {
        let mut call = script.prepare_invoke();
        for what in ["stock", "buyers", "orders", "window", "outbox", "transfers", "received"] {
            call.key(self.bucket_key(bucket, what));
        }
        call.arg(share)
            .arg(snapshot.start_ms)
            .arg(snapshot.end_ms)
            .arg(snapshot.per_user_limit)
            .arg(&snapshot.price)
            .arg(if flag { "1" } else { "0" })
            .arg(snapshot.buckets.max(1))
            .arg(epoch)
            .arg(if snapshot.buckets > 1 { "1" } else { "0" });
        for (order_no, d) in &snapshot.orders {
            if bucket_of(d.user_id, snapshot.buckets) == bucket.index {
                call.arg(order_no).arg(format!("{},{}", d.user_id, d.quantity));
            }
        }
        call
    }

    /// Loads the product's sale from MySQL's view (`state`, one snapshot) in one script per
    /// bucket, so no buy lands between a bucket's check and its write. Orders Redis took that
    /// MySQL does not hold yet stay taken (see `preload.lua`). Refused while the loaded sale is
    /// live unless `force`.
    ///
    /// Every bucket's window takes `epoch` (MySQL's [`crate::fencing`] record names the same).
    ///
    /// A sharded sale is first frozen in every bucket (no buy lands while it is dealt out, so
    /// no bucket is left on an old split next to a new one), then its stock is dealt out: each
    /// bucket gets its units in flight plus an even part of the rest ([`shares`]); each bucket
    /// is loaded frozen and, once every one is, unfrozen. An error or INCONSISTENT half way
    /// leaves the sale frozen (buys answer 503), never mixed; a re-run completes it.
    pub async fn preload(
        &self,
        product_id: u64,
        state: &SaleSnapshot,
        force: bool,
        epoch: &str,
    ) -> redis::RedisResult<PreloadOutcome> {
        let k = state.buckets.max(1);
        let buckets = Bucket::all(product_id, k);
        let shares = if k == 1 {
            vec![state.stock]
        } else {
            if !force {
                if let Some((start_ms, end_ms)) = self.live_window(buckets[0]).await? {
                    return Ok(PreloadOutcome::SaleLive { start_ms, end_ms });
                }
            }
            self.freeze_buckets(&buckets, epoch).await?;
            let active: std::collections::HashSet<&str> = state.orders.iter().map(|(no, _)| no.as_str()).collect();
            let mut in_flight = Vec::with_capacity(buckets.len());
            for bucket in &buckets {
                let log: HashMap<String, String> =
                    self.conn.clone().hgetall(self.bucket_key(*bucket, "orders")).await?;
                in_flight.push(
                    log.iter()
                        .filter(|(no, _)| !active.contains(no.as_str()))
                        .filter_map(|(_, entry)| parse_deduction(entry))
                        .map(|d| i64::from(d.quantity))
                        .sum::<i64>(),
                );
            }
            match shares(state.stock, &in_flight) {
                Some(shares) => shares,
                None => {
                    let units: i64 = in_flight.iter().sum();
                    return Ok(PreloadOutcome::Inconsistent { stock: state.stock - units, in_flight_units: units });
                }
            }
        };
        let (mut stock, mut units, mut orders) = (0, 0, 0);
        for (bucket, share) in buckets.iter().zip(shares) {
            let force = force || k > 1;
            let reply: Vec<redis::Value> = self
                .snapshot_call(&self.preload, *bucket, state, share, force, epoch)
                .invoke_async(&mut self.conn.clone())
                .await?;
            let text = |i: usize| match reply.get(i) {
                Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                Some(redis::Value::SimpleString(s)) => s.clone(),
                _ => String::new(),
            };
            let int = |i: usize| match reply.get(i) {
                Some(redis::Value::Int(n)) => *n,
                _ => 0,
            };
            match text(0).as_str() {
                "OK" => {
                    stock += int(1);
                    units += int(2);
                    orders += int(3);
                }
                "SALE_LIVE" => return Ok(PreloadOutcome::SaleLive { start_ms: int(1), end_ms: int(2) }),
                _ => return Ok(PreloadOutcome::Inconsistent { stock: int(1), in_flight_units: int(2) }),
            }
        }
        self.bucket_counts.write().expect("bucket counts lock").insert(product_id, k);
        if k > 1 {
            self.unfreeze(&buckets, epoch).await?;
        }
        Ok(PreloadOutcome::Loaded { stock, in_flight_units: units, in_flight_orders: orders })
    }

    /// Sets the product's Redis state to the true one (see `reconcile.lua`): MySQL's `snapshot`
    /// plus what Redis knows is in flight (deductions MySQL lacks, outbox entries), in one
    /// script per bucket (a sharded sale's shares as in [`StockStore::preload`], from a dry
    /// pass that counts each bucket's units in flight). `dry`: only says what it would change.
    /// Orders that only the broker holds are invisible to it: call it once the order queue has
    /// drained.
    /// A real run gives every bucket's window `epoch`; a sharded sale is frozen, repaired and
    /// unfrozen as in [`StockStore::preload`].
    pub async fn reconcile(
        &self,
        product_id: u64,
        snapshot: &SaleSnapshot,
        dry: bool,
        epoch: &str,
    ) -> redis::RedisResult<Reconciled> {
        use redis::FromRedisValue;
        let k = snapshot.buckets.max(1);
        let buckets = Bucket::all(product_id, k);
        let all_buckets = buckets.clone();
        if k > 1 && !dry {
            self.freeze_buckets(&buckets, epoch).await?;
        }
        let run = |bucket: Bucket, share: i64, dry: bool| {
            let call = self.snapshot_call(&self.reconcile, bucket, snapshot, share, dry, epoch);
            let mut conn = self.conn.clone();
            async move { call.invoke_async::<Vec<redis::Value>>(&mut conn).await }
        };
        let shares = if k == 1 {
            vec![snapshot.stock]
        } else {
            let mut in_flight = Vec::with_capacity(buckets.len());
            for bucket in &buckets {
                // With the whole stock as its share no bucket is short: the reply counts its
                // units in flight (third value when OK, the second when not).
                let reply = run(*bucket, snapshot.stock, true).await?;
                let at = if matches!(reply.first(), Some(v) if String::from_redis_value(v)? == "OK") { 3 } else { 2 };
                in_flight.push(reply.get(at).map(i64::from_redis_value).transpose()?.unwrap_or(0));
            }
            match shares(snapshot.stock, &in_flight) {
                Some(shares) => shares,
                None => {
                    let units: i64 = in_flight.iter().sum();
                    return Ok(Reconciled::Inconsistent { stock: snapshot.stock - units, in_flight_units: units });
                }
            }
        };
        let mut stock_before: Option<i64> = None;
        let (mut stock, mut units, mut orders) = (0, 0, 0);
        let mut changes = Vec::new();
        for (bucket, share) in buckets.into_iter().zip(shares) {
            let reply = run(bucket, share, dry).await?;
            let text = |i: usize| reply.get(i).map(String::from_redis_value).transpose().map(Option::unwrap_or_default);
            let int = |i: usize| reply.get(i).map(i64::from_redis_value).transpose().map(Option::unwrap_or_default);
            if text(0)? != "OK" {
                return Ok(Reconciled::Inconsistent { stock: int(1)?, in_flight_units: int(2)? });
            }
            let optional = |s: String| (!s.is_empty()).then_some(s);
            if let Some(before) = optional(text(1)?).and_then(|s| s.parse::<i64>().ok()) {
                stock_before = Some(stock_before.unwrap_or(0) + before);
            }
            stock += int(2)?;
            units += int(3)?;
            orders += int(4)?;
            for i in (5..reply.len()).step_by(4) {
                changes.push(RedisChange {
                    bucket: bucket.index,
                    kind: text(i)?,
                    item: text(i + 1)?,
                    before: optional(text(i + 2)?),
                    after: optional(text(i + 3)?),
                });
            }
        }
        if !dry {
            self.bucket_counts.write().expect("bucket counts lock").insert(product_id, k);
            if k > 1 {
                self.unfreeze(&all_buckets, epoch).await?;
            }
        }
        Ok(Reconciled::Repaired { stock_before, stock, in_flight_units: units, in_flight_orders: orders, changes })
    }

    /// The loaded sale's window if it is open now (bucket 0 answers for the sale).
    async fn live_window(&self, bucket: Bucket) -> redis::RedisResult<Option<(i64, i64)>> {
        let (stock, start, end): (Option<i64>, Option<i64>, Option<i64>) = redis::pipe()
            .get(self.bucket_key(bucket, "stock"))
            .hget(self.bucket_key(bucket, "window"), "start")
            .hget(self.bucket_key(bucket, "window"), "end")
            .query_async(&mut self.conn.clone())
            .await?;
        let now = self.now_ms().await?;
        let (start, end) = (start.unwrap_or(0), end.unwrap_or(0));
        let open = stock.is_some() && (start == 0 || now >= start) && (end == 0 || now < end);
        Ok(open.then_some((start, end)))
    }

    /// Freezes `buckets` (each window's `frozen` field = `reason`): their buys answer
    /// SALE_FROZEN until a preload or reconcile unfreezes them. After a flush this writes a
    /// window of its own, holding nothing else.
    pub async fn freeze_buckets(&self, buckets: &[Bucket], reason: &str) -> redis::RedisResult<()> {
        for bucket in buckets {
            self.conn.clone().hset::<_, _, _, ()>(self.bucket_key(*bucket, "window"), "frozen", reason).await?;
        }
        Ok(())
    }

    /// Unfreezes the buckets a sharded preload or reconcile froze with `epoch`; a freeze for
    /// another reason (a regression found meanwhile) stays.
    async fn unfreeze(&self, buckets: &[Bucket], epoch: &str) -> redis::RedisResult<()> {
        let script = Script::new(
            "if redis.call('HGET', KEYS[1], 'frozen') == ARGV[1] then redis.call('HDEL', KEYS[1], 'frozen') end",
        );
        for bucket in buckets {
            script
                .key(self.bucket_key(*bucket, "window"))
                .arg(epoch)
                .invoke_async::<()>(&mut self.conn.clone())
                .await?;
        }
        Ok(())
    }

    /// Each of the product's `buckets` buckets as Redis holds it: (the epoch it was loaded
    /// with, its freeze reason). `(None, None)` for a bucket Redis does not hold.
    pub async fn fence_states(&self, product_id: u64, buckets: u32) -> redis::RedisResult<Vec<BucketFence>> {
        let mut states = Vec::new();
        for bucket in Bucket::all(product_id, buckets.max(1)) {
            let (epoch, frozen): (Option<String>, Option<String>) = redis::cmd("HMGET")
                .arg(self.bucket_key(bucket, "window"))
                .arg("epoch")
                .arg("frozen")
                .query_async(&mut self.conn.clone())
                .await?;
            states.push(BucketFence { bucket, epoch, frozen });
        }
        Ok(states)
    }

    /// Who the Redis server is: its run id (new at every start) and replication id (new when
    /// a replica is promoted), as "run_id=… master_replid=…". On a cluster, that of every
    /// master, by address, in address order: a master restarted or replaced by its replica
    /// changes it. An unreadable master is an error, not a smaller list.
    pub async fn server_identity(&self) -> redis::RedisResult<String> {
        let server: Value = redis::cmd("INFO").arg("server").query_async(&mut self.conn.clone()).await?;
        let replication: Value = redis::cmd("INFO").arg("replication").query_async(&mut self.conn.clone()).await?;
        let by_node = |value: Value| -> redis::RedisResult<BTreeMap<String, String>> {
            match value {
                // A cluster answers each master's INFO by its address.
                Value::Map(nodes) => nodes
                    .into_iter()
                    .map(|(addr, info)| Ok((redis::from_redis_value(&addr)?, redis::from_redis_value(&info)?)))
                    .collect(),
                single => Ok(BTreeMap::from([(String::new(), redis::from_redis_value(&single)?)])),
            }
        };
        let field = |text: &str, name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(':')))
                .map(str::trim)
                .map(String::from)
                .unwrap_or_default()
        };
        let (server, replication) = (by_node(server)?, by_node(replication)?);
        let nodes: Vec<String> = server
            .iter()
            .map(|(addr, info)| {
                let replid = replication.get(addr).map(|r| field(r, "master_replid")).unwrap_or_default();
                let id = format!("run_id={} master_replid={replid}", field(info, "run_id"));
                if addr.is_empty() {
                    id
                } else {
                    format!("{addr} {id}")
                }
            })
            .collect();
        Ok(nodes.join("; "))
    }

    /// Answers PING: for health checks.
    pub async fn ping(&self) -> redis::RedisResult<()> {
        redis::cmd("PING").query_async::<()>(&mut self.conn.clone()).await
    }
}

/// Takes the lease if free, renews it if `holder` has it. KEYS[1] lease, ARGV holder, ttl ms.
const LEASE_SCRIPT: &str = r#"
local current = redis.call('GET', KEYS[1])
if current == false or current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"#;

/// A fresh epoch for a preload or reconcile: loans between buckets made before it are dropped
/// (see receive.lua), and a bucket holding another epoch than MySQL's record is fenced
/// ([`crate::fencing`]). Unique per call: the clock in nanoseconds and a counter.
pub fn new_epoch() -> String {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{nanos:x}.{}", CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// How a sharded sale's `stock` (MySQL's) is dealt out to buckets that hold `in_flight` units
/// each: every bucket keeps room for its own units in flight, and the rest is split evenly
/// (the first buckets get one more when it does not divide). `None` if MySQL holds fewer
/// units than are in flight.
pub fn shares(stock: i64, in_flight: &[i64]) -> Option<Vec<i64>> {
    let k = i64::try_from(in_flight.len().max(1)).unwrap_or(i64::MAX);
    let free = stock - in_flight.iter().sum::<i64>();
    if free < 0 {
        return None;
    }
    Some(
        in_flight
            .iter()
            .enumerate()
            .map(|(i, units)| units + free / k + i64::from(i64::try_from(i).unwrap_or(i64::MAX) < free % k))
            .collect(),
    )
}

fn parse_decided(reply: &[redis::Value], buys: usize) -> redis::RedisResult<Decided> {
    use redis::FromRedisValue;
    let bad = |what: &str| {
        redis::RedisError::from((redis::ErrorKind::TypeError, "unexpected reply from buy.lua", what.to_string()))
    };
    if reply.len() != 2 + 3 * buys {
        return Err(bad(&format!("{} values for {buys} buys", reply.len())));
    }
    let price = String::from_redis_value(&reply[0])?;
    let now_ms = i64::from_redis_value(&reply[1])?;
    let mut outcomes = Vec::with_capacity(buys);
    for chunk in reply[2..].chunks(3) {
        let code = String::from_redis_value(&chunk[0])?;
        let n = i64::from_redis_value(&chunk[1])?;
        let id = String::from_redis_value(&chunk[2])?;
        let outcome = match code.as_str() {
            "OK" => BuyOutcome::Taken { stock_left: n },
            "SOLD_OUT" => BuyOutcome::SoldOut { stock_left: n },
            "ALREADY_BOUGHT" => BuyOutcome::AlreadyBought,
            "NOT_STARTED" => BuyOutcome::NotStarted { start_ms: n },
            "ENDED" => BuyOutcome::Ended { end_ms: n },
            "OVER_LIMIT" => BuyOutcome::OverLimit { limit: n },
            "NO_SUCH_PRODUCT" => BuyOutcome::NoSuchProduct,
            "SALE_FROZEN" => BuyOutcome::Frozen,
            other => return Err(bad(other)),
        };
        outcomes.push((outcome, (!id.is_empty()).then_some(id)));
    }
    Ok(Decided { price, now_ms, outcomes })
}

fn parse_outbox_entry(raw: &redis::streams::StreamId) -> Option<OutboxEntry> {
    let field = |name: &str| raw.get::<String>(name);
    Some(OutboxEntry {
        id: raw.id.clone(),
        order_no: field("o")?,
        user_id: field("u")?.parse().ok()?,
        quantity: field("q")?.parse().ok()?,
        price: field("p")?,
        accepted_at: field("t")?.parse().ok()?,
    })
}

/// A deduction-log entry as `buy.lua` writes it: `"userId,quantity"`.
pub fn parse_deduction(entry: &str) -> Option<Deduction> {
    let (user, qty) = entry.split_once(',')?;
    Some(Deduction { user_id: user.parse().ok()?, quantity: qty.parse().ok()? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deduction_entries_parse_as_written_by_buy_lua() {
        assert_eq!(parse_deduction("42,3"), Some(Deduction { user_id: 42, quantity: 3 }));
        assert_eq!(parse_deduction("42"), None);
        assert_eq!(parse_deduction("x,1"), None);
    }

    #[test]
    fn shares_keep_each_buckets_units_in_flight_and_split_the_rest_evenly() {
        assert_eq!(shares(10, &[0, 0, 0, 0]), Some(vec![3, 3, 2, 2]));
        assert_eq!(shares(10, &[4, 0, 1, 0]), Some(vec![6, 1, 2, 1]));
        assert_eq!(shares(3, &[2, 2]), None);
        assert_eq!(shares(0, &[0, 0]), Some(vec![0, 0]));
    }
}
