//! Hot-product sharding: a sale's Redis stock split into K buckets.
//!
//! One product's keys share one hash tag, so one Redis core decides every buy of it. A sale
//! created with `stockBuckets` K > 1 keeps K full sets of keys instead, bucket `b` under a tag
//! of its own ([`Bucket::tag`]): K slots, chosen evenly round the cluster's slot ring so that a
//! Redis Cluster puts them on different masters.
//! Each user belongs to one bucket ([`bucket_of`]), so one-per-user still holds inside one
//! script, and every script still touches one slot.
//!
//! A bucket that runs dry borrows from the others ([`StockStore::refill`]): `lend.lua` takes
//! units from a lender and records a pending transfer, `receive.lua` adds them to the
//! borrower once, and the lender then deletes the record. Killed in between, the record
//! stays and the sweeper finishes the loan ([`StockStore::finish_stale_transfers`]). A buy
//! hears SOLD_OUT only when no other bucket had a unit to lend and none was on its way, so
//! the product sells out exactly: never early, never twice.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use redis::AsyncCommands;

use super::StockStore;

/// One bucket of a product's stock: the unit one Redis script works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Bucket {
    pub product_id: u64,
    pub index: u32,
}

impl Bucket {
    /// The first (for an unsharded sale, the only) bucket of `product_id`.
    pub fn first(product_id: u64) -> Bucket {
        Bucket { product_id, index: 0 }
    }

    /// The `buckets` buckets of `product_id` (at least one), in index order.
    pub fn all(product_id: u64, buckets: u32) -> Vec<Bucket> {
        (0..buckets.max(1)).map(|index| Bucket { product_id, index }).collect()
    }

    /// The Redis key `what` of this bucket under `prefix`. The braces hold the hash tag.
    pub fn key(&self, prefix: &str, what: &str) -> String {
        format!("{prefix}:{{{}}}:{what}", self.tag())
    }

    /// This bucket's hash tag. Bucket 0 keeps the product's own, `P`, so an unsharded sale's
    /// keys are the product's. Bucket b ≥ 1 is `P.b.n`, with the smallest n whose slot lies
    /// just past the bucket's target slot: slot(`P`) plus the b-th fraction of the van der
    /// Corput sequence (½, ¼, ¾, ⅛, ⅝, …) of the ring of 16,384 slots.
    ///
    /// Why: tags `P.b` would land on slots at random, and four random slots leave one of
    /// three masters with two or more buckets more often than not. The first K targets of
    /// that sequence split the ring evenly for K a power of two, and leave no gap wider than
    /// 2/K of it for any K, so a cluster whose masters each own one run of slots (as `redis-cli
    /// --cluster create` deals them) gives every master a bucket once that gap is narrower
    /// than a master's run: a 4-bucket sale uses all three masters of a three-master cluster.
    /// The tag is a pure function of (P, b), so every origin computes the same one; it is
    /// searched for once per process and remembered.
    pub fn tag(&self) -> String {
        match self.index {
            0 => self.product_id.to_string(),
            b => format!("{}.{b}.{}", self.product_id, spread_suffix(self.product_id, b)),
        }
    }
}

/// Slots of a Redis Cluster.
const SLOTS: u32 = 16384;
/// How far past its target slot a bucket's slot may lie: ¼ of the gap between the targets of
/// the largest sale (64 buckets), so the spread holds for every K. About 256 tries find one.
const SLOT_WINDOW: u32 = 64;

/// The Redis Cluster slot of hash tag `tag` (CRC16/XMODEM mod 16,384, as the cluster hashes).
pub fn slot_of_tag(tag: &str) -> u32 {
    u32::from(crc16::State::<crc16::XMODEM>::calculate(tag.as_bytes())) % SLOTS
}

/// Bucket `index`'s target on the slot ring, as an offset from the product's own slot: the
/// `index`-th van der Corput fraction (bits of `index` mirrored behind the binary point).
fn target_offset(index: u32) -> u32 {
    let fraction = u64::from(index.reverse_bits()); // index / 2^32 mirrored, as a 0.32 fixed point
    ((fraction * u64::from(SLOTS)) >> 32) as u32
}

/// The n of bucket `index`'s tag `P.index.n` (see [`Bucket::tag`]).
fn spread_suffix(product_id: u64, index: u32) -> u32 {
    static FOUND: LazyLock<Mutex<HashMap<(u64, u32), u32>>> = LazyLock::new(Default::default);
    let mut found = FOUND.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    *found.entry((product_id, index)).or_insert_with(|| {
        let target = (slot_of_tag(&product_id.to_string()) + target_offset(index)) % SLOTS;
        // CRC16 of distinct suffixes hits any window of 64 slots within a few thousand tries;
        // the bound only keeps a pathological case from spinning (it then takes n = 0).
        (0..1_000_000u32)
            .find(|n| (slot_of_tag(&format!("{product_id}.{index}.{n}")) + SLOTS - target) % SLOTS < SLOT_WINDOW)
            .unwrap_or(0)
    })
}

/// The bucket (0..`buckets`) of `user_id`. Every origin maps a user the same way, so a user's
/// buys of a sharded sale always meet the same buyers set.
pub fn bucket_of(user_id: u64, buckets: u32) -> u32 {
    if buckets <= 1 {
        return 0;
    }
    // splitmix64's finalizer: user ids are often sequential or strided; their buckets must
    // still be even.
    let mut z = user_id.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    u32::try_from(z % u64::from(buckets)).expect("a remainder of a u32 divisor fits a u32")
}

/// How long a buy waits in all for loans already on their way before it hears SOLD_OUT.
const TRANSIT_WAITS: u32 = 20;
const TRANSIT_WAIT: Duration = Duration::from_millis(5);

/// A pending loan, as `lend.lua` records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    pub id: String,
    pub from: Bucket,
    pub to: Bucket,
    pub units: u64,
    pub epoch: String,
    pub born_ms: i64,
}

impl Transfer {
    /// The loan `id` out of `from`, from its record in the lender's `transfers` hash.
    pub fn parse(from: Bucket, id: String, record: &str) -> Option<Transfer> {
        let mut parts = record.splitn(4, ',');
        let to = parts.next()?.parse().ok()?;
        let units = parts.next()?.parse().ok()?;
        let epoch = parts.next()?.to_string();
        let born_ms = parts.next()?.parse().ok()?;
        Some(Transfer { id, from, to: Bucket { product_id: from.product_id, index: to }, units, epoch, born_ms })
    }
}

impl StockStore {
    /// Moves stock into the dry bucket `to` from the product's other buckets: at least `need`
    /// units if they have them together. Returns the units moved; 0 means every other bucket
    /// was empty and no loan was on its way, i.e. the product is sold out (for now: a cancel
    /// may bring a unit back). Buckets are asked in turn starting after `to`, so borrowers
    /// spread over lenders.
    pub async fn refill(&self, to: Bucket, need: u64) -> redis::RedisResult<u64> {
        let buckets = self.bucket_count(to.product_id).await?;
        if buckets <= 1 || need == 0 {
            return Ok(0);
        }
        for _ in 0..TRANSIT_WAITS {
            let mut moved = 0;
            let mut in_transit = 0;
            for step in 1..buckets {
                let from = Bucket { product_id: to.product_id, index: (to.index + step) % buckets };
                let (lent, id, epoch, pending): (u64, String, String, u64) = self
                    .lend
                    .key(self.bucket_key(from, "stock"))
                    .key(self.bucket_key(from, "window"))
                    .key(self.bucket_key(from, "transfers"))
                    .key(self.bucket_key(from, "transfer-seq"))
                    .arg(need - moved)
                    .arg(to.index)
                    .arg(from.index)
                    .invoke_async(&mut self.conn.clone())
                    .await
                    .inspect_err(|_| self.script_failed())?;
                in_transit += pending;
                if lent > 0 {
                    // Strict durability: the borrower gets the units only once a failover of
                    // the lender cannot undo the loan (it would then hold them twice). Not
                    // confirmed in time, the loan is in transit and the sweeper finishes it.
                    if !self.replicated(from).await {
                        in_transit += 1;
                        continue;
                    }
                    moved += self.finish_transfer(from, to, &id, lent, &epoch).await?;
                    if moved >= need {
                        return Ok(moved);
                    }
                }
            }
            if moved > 0 || in_transit == 0 {
                return Ok(moved);
            }
            // Every lender is empty but some units are between two buckets: they land in a
            // moment (or the sweeper finishes the loan), so look again before saying sold out.
            tokio::time::sleep(TRANSIT_WAIT).await;
        }
        Ok(0)
    }

    /// Adds a loan to the borrower (once) and deletes the lender's record. Returns the units
    /// the borrower holds now thanks to it (0 if its epoch is not the borrower's: the record
    /// stays, see receive.lua).
    async fn finish_transfer(
        &self,
        from: Bucket,
        to: Bucket,
        id: &str,
        units: u64,
        epoch: &str,
    ) -> redis::RedisResult<u64> {
        let received: i64 = self
            .receive
            .key(self.bucket_key(to, "stock"))
            .key(self.bucket_key(to, "window"))
            .key(self.bucket_key(to, "received"))
            .arg(id)
            .arg(units)
            .arg(epoch)
            .invoke_async(&mut self.conn.clone())
            .await
            .inspect_err(|_| self.script_failed())?;
        if received < 0 {
            return Ok(0);
        }
        self.conn.clone().hdel::<_, _, ()>(self.bucket_key(from, "transfers"), id).await?;
        Ok(units)
    }

    /// Loans recorded in `from` and not finished yet.
    pub async fn pending_transfers(&self, from: Bucket) -> redis::RedisResult<Vec<Transfer>> {
        let records: Vec<(String, String)> = self.conn.clone().hgetall(self.bucket_key(from, "transfers")).await?;
        Ok(records.into_iter().filter_map(|(id, record)| Transfer::parse(from, id, &record)).collect())
    }

    /// Finishes the loans out of `from` older than `min_age_ms` (their lender died or lost
    /// Redis between lending and receiving). A loan of an epoch `from` no longer has belongs
    /// to a sale state a preload or reconcile replaced: it is dropped. Returns the loans
    /// finished or dropped.
    pub async fn finish_stale_transfers(&self, from: Bucket, min_age_ms: u64) -> redis::RedisResult<usize> {
        let transfers = self.pending_transfers(from).await?;
        if transfers.is_empty() {
            return Ok(0);
        }
        let now = self.now_ms().await?;
        let mut conn = self.conn.clone();
        let epoch: Option<String> = conn.hget(self.bucket_key(from, "window"), "epoch").await?;
        let mut done = 0;
        let stale: Vec<Transfer> = transfers
            .into_iter()
            .filter(|t| now - t.born_ms >= i64::try_from(min_age_ms).unwrap_or(i64::MAX))
            .collect();
        // Strict durability: only loans a failover of the lender can no longer undo.
        if stale.is_empty() || !self.replicated_after_read(from).await {
            return Ok(0);
        }
        for t in stale {
            if epoch.as_deref() != Some(t.epoch.as_str()) {
                conn.hdel::<_, _, ()>(self.bucket_key(from, "transfers"), &t.id).await?;
                done += 1;
            } else if self.finish_transfer(t.from, t.to, &t.id, t.units, &t.epoch).await? > 0 {
                done += 1;
            }
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn bucket_zero_keeps_the_products_own_keys() {
        assert_eq!(Bucket::first(7).key("seckill", "stock"), "seckill:{7}:stock");
        let third = Bucket { product_id: 7, index: 3 };
        assert!(third.key("seckill", "stock").starts_with("seckill:{7.3."), "{}", third.key("seckill", "stock"));
        assert_eq!(third.tag(), third.tag(), "a pure function of product and bucket");
    }

    #[test]
    fn slots_are_the_clusters() {
        // CLUSTER KEYSLOT of these tags on a real Redis.
        assert_eq!(slot_of_tag("1"), 9842);
        assert_eq!(slot_of_tag("123456789"), 12739);
    }

    /// The master (0, 1 or 2) owning `slot` when three masters split the ring into even runs,
    /// as `redis-cli --cluster create` does.
    fn master_of(slot: u32) -> u32 {
        match slot {
            0..=5460 => 0,
            5461..=10922 => 1,
            _ => 2,
        }
    }

    #[test]
    fn a_4_bucket_sale_uses_all_three_masters_of_a_three_master_cluster_whatever_its_id() {
        for product in 1..=300 {
            let slots: Vec<u32> = Bucket::all(product, 4).iter().map(|b| slot_of_tag(&b.tag())).collect();
            let masters: HashSet<u32> = slots.iter().map(|s| master_of(*s)).collect();
            assert_eq!(masters.len(), 3, "product {product}: slots {slots:?}");
        }
    }

    #[test]
    fn any_k_buckets_leave_no_gap_wider_than_2_over_k_of_the_ring() {
        for k in [2u32, 3, 5, 8, 13, 64] {
            for product in [1u64, 2, 77, 40_000] {
                let mut slots: Vec<u32> = Bucket::all(product, k).iter().map(|b| slot_of_tag(&b.tag())).collect();
                slots.sort();
                let gaps = slots.windows(2).map(|w| w[1] - w[0]).chain([slots[0] + SLOTS - slots[k as usize - 1]]);
                let widest = gaps.max().unwrap();
                assert!(widest <= 2 * SLOTS / k + SLOT_WINDOW, "K = {k}, product {product}: gap {widest}, {slots:?}");
            }
        }
    }

    #[test]
    fn sequential_users_spread_evenly_over_the_buckets() {
        let mut counts = [0u32; 4];
        for user in 1..=4000 {
            counts[bucket_of(user, 4) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| (900..=1100).contains(&c)), "{counts:?}");
        assert!((1..100).all(|u| bucket_of(u, 1) == 0));
        assert_eq!(bucket_of(42, 4), bucket_of(42, 4));
    }

    #[test]
    fn loan_records_parse_as_lend_lua_writes_them() {
        let t = Transfer::parse(Bucket::first(9), "0-3".into(), "2,125,1700,1699999").unwrap();
        assert_eq!(
            (t.to, t.units, t.epoch.as_str(), t.born_ms),
            (Bucket { product_id: 9, index: 2 }, 125, "1700", 1699999)
        );
        assert_eq!(Transfer::parse(Bucket::first(9), "x".into(), "2,125"), None);
    }
}
