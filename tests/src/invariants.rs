//! The system's invariants for one product, read from Redis and MySQL once the queue has
//! drained. One definition, used after every end-to-end test ([`crate::TestApp::check`]) and
//! at the end of `make torture`: each broken invariant comes back as a sentence, so a test
//! panics with all of them and the torture report lists them.

use std::collections::HashMap;
use std::time::Duration;

use seckill_origin::stock::product_key;
use seckill_origin::stock::RedisConnection;
use sqlx::MySqlPool;

use crate::wait_until;

/// Where one product's state lives.
#[derive(Clone)]
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
    fn key(&self, what: &str) -> String {
        product_key(&self.key_prefix, self.product, what)
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
        let mut redis = self.redis.clone();
        let outbox: u64 =
            redis::cmd("XLEN").arg(self.key("outbox")).query_async(&mut redis).await.expect("XLEN outbox");
        let deductions: i64 = redis::cmd("HLEN").arg(self.key("orders")).query_async(&mut redis).await.expect("HLEN");
        (outbox, deductions - self.active_orders().await.len() as i64)
    }

    /// Polls until the outbox is empty and every deduction in Redis has its active order in
    /// MySQL; false if that does not happen within `limit`.
    pub async fn wait_drained(&self, limit: Duration) -> bool {
        wait_until(limit, || async { self.in_flight().await == (0, 0) }).await
    }

    /// Every invariant that does not hold, as a sentence (empty = all hold), for a drained
    /// product whose initial stock was `initial` units:
    /// - conservation: Redis stock + units of active orders = `initial`, and MySQL stock =
    ///   `initial` − units of active orders (nothing is in flight once drained);
    /// - no oversell: active units ≤ `initial`;
    /// - the deduction log holds exactly the active orders, the buyers set exactly their
    ///   users, `tb_user_seckill` exactly one row per active order, and no user holds two
    ///   active orders.
    pub async fn violations(&self, initial: i64) -> Vec<String> {
        let mut redis = self.redis.clone();
        let mut broken = Vec::new();
        let active = self.active_orders().await;
        let (outbox, unwritten) = self.in_flight().await;
        if (outbox, unwritten) != (0, 0) {
            broken
                .push(format!("not drained: {outbox} outbox entries, {unwritten} deductions without an active order"));
        }
        let units: i64 = active.iter().map(|(_, _, q)| *q as i64).sum();
        let redis_stock: Option<i64> = redis::cmd("GET").arg(self.key("stock")).query_async(&mut redis).await.unwrap();
        let mysql_stock: i64 = sqlx::query_scalar("SELECT CAST(stock AS SIGNED) FROM tb_seckill_product WHERE id = ?")
            .bind(self.product)
            .fetch_one(&self.db)
            .await
            .expect("read the product's stock");
        if units > initial {
            broken.push(format!("oversold: {units} active units of {initial}"));
        }
        match redis_stock {
            None => broken.push("Redis holds no stock for the product".into()),
            Some(stock) if stock + units != initial => {
                broken.push(format!("Redis stock {stock} + active units {units} ≠ initial {initial}"))
            }
            Some(_) => {}
        }
        if mysql_stock + units != initial {
            broken.push(format!("MySQL stock {mysql_stock} + active units {units} ≠ initial {initial}"));
        }
        let deductions: HashMap<String, String> =
            redis::cmd("HGETALL").arg(self.key("orders")).query_async(&mut redis).await.unwrap();
        let expected: HashMap<String, String> =
            active.iter().map(|(no, user, q)| (no.clone(), format!("{user},{q}"))).collect();
        if deductions != expected {
            let extra = deductions.iter().filter(|(k, v)| expected.get(*k) != Some(v)).count();
            let missing = expected.iter().filter(|(k, v)| deductions.get(*k) != Some(v)).count();
            broken.push(format!(
                "the deduction log must hold exactly the active orders: {extra} entries without their active order, {missing} active orders without their entry"
            ));
        }
        let mut buyers: Vec<u64> =
            redis::cmd("SMEMBERS").arg(self.key("buyers")).query_async(&mut redis).await.unwrap();
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
                "the buyers set must hold exactly the users with active orders: {} buyers, {} such users",
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
