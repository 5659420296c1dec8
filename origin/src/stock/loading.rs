//! Putting a sale into Redis and keeping it fenced: preload and reconcile (one script per bucket,
//! under a fresh epoch), freezing and the fence's view of each bucket.

use std::collections::HashMap;

use redis::{AsyncCommands, Script};

use super::reads::{parse_deduction, Deduction};
use super::{bucket_of, Bucket, StockStore};

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

impl StockStore {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_keep_each_buckets_units_in_flight_and_split_the_rest_evenly() {
        assert_eq!(shares(10, &[0, 0, 0, 0]), Some(vec![3, 3, 2, 2]));
        assert_eq!(shares(10, &[4, 0, 1, 0]), Some(vec![6, 1, 2, 1]));
        assert_eq!(shares(3, &[2, 2]), None);
        assert_eq!(shares(0, &[0, 0]), Some(vec![0, 0]));
    }
}
