//! The system's invariants for one product, read from Redis and MySQL once the queue has
//! drained. One definition, used after every end-to-end test ([`crate::TestApp::check`]) and
//! at the end of `make torture`: each broken invariant comes back as a sentence, so a test
//! panics with all of them and the torture report lists them.

use std::collections::HashMap;
use std::time::Duration;

use seckill_origin::stock::buckets::Transfer;
use seckill_origin::stock::{bucket_of, parse_deduction, Bucket, RedisConnection};
use sqlx::MySqlPool;

use crate::wait_until;

/// Where one product's state lives.
#[derive(Debug, Clone)]
pub struct ProductState {
    pub db: MySqlPool,
    pub redis: RedisConnection,
    /// The origin's `redis.key_prefix`.
    pub key_prefix: String,
    pub product: u64,
}

/// (order number, user, quantity) of every UNPAID or PAID order of the product.
type ActiveOrder = (String, u64, u32);

impl ProductState {
    /// Every bucket of the product's stock (one unless its sale is sharded), as preloaded.
    async fn buckets(&self) -> Vec<Bucket> {
        let k: Option<u32> = redis::cmd("HGET")
            .arg(Bucket::first(self.product).key(&self.key_prefix, "window"))
            .arg("buckets")
            .query_async(&mut self.redis.clone())
            .await
            .expect("HGET window buckets");
        Bucket::all(self.product, k.unwrap_or(1))
    }

    /// Reads `what` of every bucket with `cmd` (HLEN, XLEN, GET, ...), one reply per bucket.
    async fn per_bucket<T: redis::FromRedisValue>(&self, cmd: &str, what: &str) -> Vec<T> {
        let mut replies = Vec::new();
        for bucket in self.buckets().await {
            let key = bucket.key(&self.key_prefix, what);
            replies.push(redis::cmd(cmd).arg(&key).query_async(&mut self.redis.clone()).await.expect(cmd));
        }
        replies
    }

    /// Units lent by one bucket of a sharded sale and not yet received by another: stock on
    /// its way, in neither bucket's count. A loan from before the lender's last preload or
    /// reconcile does not count: those recounted its units.
    pub async fn units_between_buckets(&self) -> i64 {
        let mut units = 0;
        for from in self.buckets().await {
            let epoch: Option<String> = redis::cmd("HGET")
                .arg(from.key(&self.key_prefix, "window"))
                .arg("epoch")
                .query_async(&mut self.redis.clone())
                .await
                .unwrap();
            let loans: HashMap<String, String> = redis::cmd("HGETALL")
                .arg(from.key(&self.key_prefix, "transfers"))
                .query_async(&mut self.redis.clone())
                .await
                .unwrap();
            for (id, record) in loans {
                let loan = Transfer::parse(from, id, &record).expect("a loan record as lend.lua writes it");
                if epoch.as_deref() != Some(loan.epoch.as_str()) {
                    continue;
                }
                let received: bool = redis::cmd("SISMEMBER")
                    .arg(loan.to.key(&self.key_prefix, "received"))
                    .arg(&loan.id)
                    .query_async(&mut self.redis.clone())
                    .await
                    .unwrap();
                if !received {
                    units += loan.units as i64;
                }
            }
        }
        units
    }

    async fn active_orders(&self) -> Vec<ActiveOrder> {
        sqlx::query_as(
            "SELECT order_no, user_id, quantity FROM tb_seckill_order WHERE product_id = ? AND status IN ('UNPAID', 'PAID')",
        )
        .bind(self.product)
        .fetch_all(&self.db)
        .await
        .expect("read active orders")
    }

    /// Outbox entries and deductions in Redis that MySQL has no active order for yet: 0 and 0
    /// once everything accepted has been written (or given back).
    pub async fn in_flight(&self) -> (u64, i64) {
        let outbox: u64 = self.per_bucket::<u64>("XLEN", "outbox").await.iter().sum();
        let deductions: i64 = self.per_bucket::<i64>("HLEN", "orders").await.iter().sum();
        (outbox, deductions - self.active_orders().await.len() as i64)
    }

    /// Why the sale is frozen (MySQL's record, `fencing`), if it is.
    pub async fn frozen(&self) -> Option<String> {
        sqlx::query_scalar::<_, Option<String>>("SELECT frozen_reason FROM tb_seckill_product WHERE id = ?")
            .bind(self.product)
            .fetch_optional(&self.db)
            .await
            .expect("read the sale's freeze")
            .flatten()
    }

    /// Refused orders of the product by reason (`tb_rejected_order`), most frequent first.
    pub async fn refusals(&self) -> Vec<(String, i64)> {
        sqlx::query_as(
            "SELECT reason, COUNT(*) AS n FROM tb_rejected_order WHERE product_id = ? GROUP BY reason ORDER BY n DESC, reason",
        )
        .bind(self.product)
        .fetch_all(&self.db)
        .await
        .expect("read refused orders")
    }

    /// Polls until the outbox is empty, every deduction in Redis has its active order in
    /// MySQL and the sale is not frozen (healed); false if that does not happen within `limit`.
    pub async fn wait_drained(&self, limit: Duration) -> bool {
        wait_until(limit, || async { self.in_flight().await == (0, 0) && self.frozen().await.is_none() }).await
    }

    /// Every invariant that does not hold, as a sentence (empty = all hold), for a drained
    /// product whose initial stock was `initial` units:
    /// - conservation: Redis stock (a sharded sale's buckets and the loans between them) +
    ///   units of active orders = `initial`, and MySQL stock = `initial` − units of active
    ///   orders (nothing is in flight once drained);
    /// - no oversell: active units ≤ `initial`;
    /// - the deduction log holds exactly the active orders (no deduction without its order),
    ///   the buyer records exactly their users, each naming that user's active order (no buyer
    ///   without an active order, none naming another order, no refused order's buyer still
    ///   blocked), `tb_user_seckill` exactly one row per active order, and
    ///   no user holds two active orders;
    /// - the sale is not frozen (a regressed Redis was healed).
    pub async fn violations(&self, initial: i64) -> Vec<String> {
        let mut broken = Vec::new();
        let active = self.active_orders().await;
        let (outbox, unwritten) = self.in_flight().await;
        if (outbox, unwritten) != (0, 0) {
            broken
                .push(format!("not drained: {outbox} outbox entries, {unwritten} deductions without an active order"));
        }
        let units: i64 = active.iter().map(|(_, _, q)| i64::from(*q)).sum();
        let stocks: Vec<Option<i64>> = self.per_bucket("GET", "stock").await;
        let redis_stock: Option<i64> = match stocks.iter().all(Option::is_some) {
            true => Some(stocks.iter().flatten().sum::<i64>() + self.units_between_buckets().await),
            false => None,
        };
        let mysql_stock: i64 = sqlx::query_scalar("SELECT CAST(stock AS SIGNED) FROM tb_seckill_product WHERE id = ?")
            .bind(self.product)
            .fetch_one(&self.db)
            .await
            .expect("read the product's stock");
        if units > initial {
            broken.push(format!("oversold: {units} active units of {initial}"));
        }
        match redis_stock {
            None => broken.push(format!("Redis holds no stock for the product (buckets: {stocks:?})")),
            Some(stock) if stock + units != initial => {
                broken.push(format!("Redis stock {stock} + active units {units} ≠ initial {initial}"))
            }
            Some(_) => {}
        }
        if mysql_stock + units != initial {
            broken.push(format!("MySQL stock {mysql_stock} + active units {units} ≠ initial {initial}"));
        }
        let logs: Vec<HashMap<String, String>> = self.per_bucket("HGETALL", "orders").await;
        let mut deductions: HashMap<String, String> = HashMap::new();
        let mut misplaced = 0;
        for (index, log) in logs.into_iter().enumerate() {
            for (order_no, entry) in log {
                let user = parse_deduction(&entry).map_or(0, |d| d.user_id);
                if bucket_of(user, stocks.len() as u32) != index as u32 {
                    misplaced += 1;
                }
                deductions.insert(order_no, entry);
            }
        }
        if misplaced > 0 {
            broken.push(format!("{misplaced} deductions are in another bucket than their user's"));
        }
        let expected: HashMap<String, String> =
            active.iter().map(|(no, user, q)| (no.clone(), format!("{user},{q}"))).collect();
        if deductions != expected {
            let extra = deductions.iter().filter(|(k, v)| expected.get(*k) != Some(v)).count();
            let missing = expected.iter().filter(|(k, v)| deductions.get(*k) != Some(v)).count();
            broken.push(format!(
                "the deduction log must hold exactly the active orders: {extra} entries without their active order, {missing} active orders without their entry"
            ));
        }
        let records: Vec<(u64, String)> = self
            .per_bucket::<std::collections::HashMap<u64, String>>("HGETALL", "buyers")
            .await
            .into_iter()
            .flatten()
            .collect();
        let order_of_holder: std::collections::HashMap<u64, &String> =
            active.iter().map(|(no, user, _)| (*user, no)).collect();
        let misnamed =
            records.iter().filter(|(user, no)| order_of_holder.get(user).is_some_and(|held| *held != no)).count();
        if misnamed > 0 {
            broken.push(format!("{misnamed} buyer records name an order other than their user's active one"));
        }
        let mut buyers: Vec<u64> = records.into_iter().map(|(user, _)| user).collect();
        let holders_of_active: std::collections::HashSet<u64> = active.iter().map(|(_, u, _)| *u).collect();
        let idle_buyers = buyers.iter().filter(|b| !holders_of_active.contains(b)).count();
        if idle_buyers > 0 {
            broken.push(format!("{idle_buyers} buyers in Redis hold no active order (they cannot buy again)"));
        }
        let refused: Vec<(String, u64)> =
            sqlx::query_as("SELECT order_no, user_id FROM tb_rejected_order WHERE product_id = ?")
                .bind(self.product)
                .fetch_all(&self.db)
                .await
                .expect("read refused orders");
        let blocked = refused
            .iter()
            .filter(|(no, user)| {
                deductions.contains_key(no) || (buyers.contains(user) && !holders_of_active.contains(user))
            })
            .count();
        if blocked > 0 {
            broken.push(format!("{blocked} refused orders still hold their deduction or block their buyer"));
        }
        if let Some(reason) = self.frozen().await {
            broken.push(format!("the sale is still frozen: {reason}"));
        }
        let mut users: Vec<u64> = active.iter().map(|(_, u, _)| *u).collect();
        buyers.sort_unstable();
        users.sort_unstable();
        let mut distinct = users.clone();
        distinct.dedup();
        if users != distinct {
            broken.push(format!("{} users hold two active orders", users.len() - distinct.len()));
        }
        if buyers != distinct {
            broken.push(format!(
                "the buyer records must be exactly the users with active orders: {} buyers, {} such users",
                buyers.len(),
                distinct.len()
            ));
        }
        let holders: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tb_user_seckill WHERE product_id = ?")
            .bind(self.product)
            .fetch_one(&self.db)
            .await
            .unwrap();
        if holders != active.len() as i64 {
            broken.push(format!("{holders} user records for {} active orders", active.len()));
        }
        broken
    }
}
