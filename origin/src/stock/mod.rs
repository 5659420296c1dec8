//! Redis stock: the fast, authoritative gate of the buy path.
//!
//! Keys (one hash tag per product, so a product's keys share a Redis Cluster slot):
//! `<prefix>:{P}:stock`, `<prefix>:{P}:buyers`, `<prefix>:{P}:orders` (the deduction log,
//! orderNo → "userId,qty"), `<prefix>:{P}:window` (start, end, limit, price)
//! and `<prefix>:{P}:outbox` (a stream of accepted orders the broker has not stored yet).
//! `buy.lua` and `release.lua` are the only writers of stock during a sale;
//! [`StockStore::preload`] sets everything up before it (`consume::stock_gauges` shows each
//! live sale's stock in both stores to the alert rules). A sale created with several stock
//! buckets keeps one such set of keys per bucket ([`buckets`]).
//!
//! [`StockStore`] is one type whose methods live by job: this file holds the connection, the
//! keys, leases, the servers' identity and replica waits; `buy` (decide, take, check),
//! `release` (give back), `outbox` (send, sweep), `reads` (stock, buyers, the deduction log),
//! `loading` (preload, reconcile, freeze) and [`buckets`] (lend and receive) the rest.

pub mod buckets;
mod buy;
pub mod connection;
mod loading;
mod outbox;
mod reads;
mod release;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use redis::{Script, Value};

use crate::configuration::RedisSettings;
pub use buckets::{bucket_of, Bucket};
pub use buy::{BuyAttempt, BuyOutcome, Decided, ScriptMode};
pub use connection::RedisConnection;
pub use loading::{new_epoch, shares, BucketFence, PreloadOutcome, Reconciled, RedisChange, SaleSnapshot};
pub use outbox::OutboxEntry;
pub use reads::{parse_deduction, Deduction};

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

    /// Redis's clock in ms: the one clock every origin shares (outbox entry and loan ages).
    async fn now_ms(&self) -> redis::RedisResult<i64> {
        let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut self.conn.clone()).await?;
        Ok(secs * 1000 + micros / 1000)
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
