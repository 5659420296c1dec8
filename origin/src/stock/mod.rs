//! Redis stock: the fast, authoritative gate of the buy path.
//!
//! Keys (one hash tag per product, so a product's keys share a Redis Cluster slot):
//! `<prefix>:{P}:stock`, `<prefix>:{P}:buyers`, `<prefix>:{P}:orders` (the deduction log,
//! orderNo → "userId,qty") and `<prefix>:{P}:window` (start, end, limit).
//! `buy.lua` and `release.lua` are the only writers during a sale; [`StockStore::preload`]
//! sets everything up before it.

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};

/// What the buy script decided.
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
}

/// One deduction-log entry: who holds the stock an order took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deduction {
    pub user_id: u64,
    pub quantity: u32,
}

/// Everything [`StockStore::preload`] writes for one product.
#[derive(Debug, Clone)]
pub struct PreloadState {
    pub stock: i64,
    pub start_ms: i64,
    pub end_ms: i64,
    pub per_user_limit: i64,
    /// Unit price as a decimal string, carried into each order message.
    pub price: String,
    /// Active orders (orderNo, deduction) already written to MySQL.
    pub orders: Vec<(String, Deduction)>,
}

/// Redis stock of every product, behind one multiplexed connection.
#[derive(Clone)]
pub struct StockStore {
    conn: ConnectionManager,
    prefix: String,
    buy: Script,
    release: Script,
}

impl StockStore {
    pub async fn connect(url: &str, prefix: &str) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(std::time::Duration::from_secs(2))
            .set_response_timeout(std::time::Duration::from_secs(2))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_with_config(client, config).await?;
        Ok(Self {
            conn,
            prefix: prefix.to_string(),
            buy: Script::new(include_str!("buy.lua")),
            release: Script::new(include_str!("release.lua")),
        })
    }

    fn key(&self, product_id: u64, what: &str) -> String {
        format!("{}:{{{}}}:{}", self.prefix, product_id, what)
    }

    pub fn stock_key(&self, product_id: u64) -> String {
        self.key(product_id, "stock")
    }
    pub fn buyers_key(&self, product_id: u64) -> String {
        self.key(product_id, "buyers")
    }
    pub fn orders_key(&self, product_id: u64) -> String {
        self.key(product_id, "orders")
    }
    pub fn window_key(&self, product_id: u64) -> String {
        self.key(product_id, "window")
    }

    /// Runs `buy.lua` (EVALSHA, falling back to EVAL when Redis lost the script): takes stock
    /// if every rule allows it.
    pub async fn buy(
        &self,
        product_id: u64,
        user_id: u64,
        quantity: u32,
        order_no: &str,
    ) -> redis::RedisResult<BuyOutcome> {
        Ok(self.run_buy(product_id, user_id, quantity, order_no, false).await?.0)
    }

    /// Runs `buy.lua` in check mode: what a buy would decide right now, and the product's
    /// price, without writing anything. Not authoritative: only [`StockStore::buy`] is.
    pub async fn check(
        &self,
        product_id: u64,
        user_id: u64,
        quantity: u32,
    ) -> redis::RedisResult<(BuyOutcome, String)> {
        self.run_buy(product_id, user_id, quantity, "", true).await
    }

    async fn run_buy(
        &self,
        product_id: u64,
        user_id: u64,
        quantity: u32,
        order_no: &str,
        check: bool,
    ) -> redis::RedisResult<(BuyOutcome, String)> {
        let (code, n, price): (String, i64, String) = self
            .buy
            .key(self.stock_key(product_id))
            .key(self.buyers_key(product_id))
            .key(self.orders_key(product_id))
            .key(self.window_key(product_id))
            .arg(user_id)
            .arg(quantity)
            .arg(order_no)
            .arg(if check { "check" } else { "buy" })
            .invoke_async(&mut self.conn.clone())
            .await?;
        let outcome = match code.as_str() {
            "OK" => BuyOutcome::Taken { stock_left: n },
            "SOLD_OUT" => BuyOutcome::SoldOut { stock_left: n },
            "ALREADY_BOUGHT" => BuyOutcome::AlreadyBought,
            "NOT_STARTED" => BuyOutcome::NotStarted { start_ms: n },
            "ENDED" => BuyOutcome::Ended { end_ms: n },
            "OVER_LIMIT" => BuyOutcome::OverLimit { limit: n },
            "NO_SUCH_PRODUCT" => BuyOutcome::NoSuchProduct,
            other => {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::TypeError,
                    "buy.lua returned an unknown code",
                    other.to_string(),
                )))
            }
        };
        Ok((outcome, price))
    }

    /// Runs `release.lua`: gives the order's stock back and frees its buyer, once.
    /// Returns the quantity given back (0 if the order was not in the deduction log).
    pub async fn release(&self, product_id: u64, order_no: &str) -> redis::RedisResult<u32> {
        self.release
            .key(self.stock_key(product_id))
            .key(self.buyers_key(product_id))
            .key(self.orders_key(product_id))
            .arg(order_no)
            .invoke_async(&mut self.conn.clone())
            .await
    }

    /// The deduction-log entry of an order, if Redis took stock for it and still holds it.
    pub async fn deduction(&self, product_id: u64, order_no: &str) -> redis::RedisResult<Option<Deduction>> {
        let entry: Option<String> = self.conn.clone().hget(self.orders_key(product_id), order_no).await?;
        Ok(entry.and_then(|e| parse_deduction(&e)))
    }

    /// Stock left in Redis; `None` if the product was never preloaded.
    pub async fn stock(&self, product_id: u64) -> redis::RedisResult<Option<i64>> {
        self.conn.clone().get(self.stock_key(product_id)).await
    }

    /// Stock left for several products in one round trip (`None` = not preloaded).
    pub async fn stocks(&self, product_ids: &[u64]) -> redis::RedisResult<Vec<Option<i64>>> {
        if product_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in product_ids {
            pipe.get(self.stock_key(*id));
        }
        pipe.query_async(&mut self.conn.clone()).await
    }

    /// Number of orders in the deduction log.
    pub async fn deduction_count(&self, product_id: u64) -> redis::RedisResult<u64> {
        self.conn.clone().hlen(self.orders_key(product_id)).await
    }

    /// Whether the buyer set holds `user_id`.
    pub async fn is_buyer(&self, product_id: u64, user_id: u64) -> redis::RedisResult<bool> {
        self.conn.clone().sismember(self.buyers_key(product_id), user_id).await
    }

    /// Replaces the product's whole Redis state in one MULTI/EXEC: stock, window, and buyers
    /// and deduction log rebuilt from the active orders in MySQL.
    pub async fn preload(&self, product_id: u64, state: &PreloadState) -> redis::RedisResult<()> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .del(self.buyers_key(product_id))
            .del(self.orders_key(product_id))
            .del(self.window_key(product_id))
            .set(self.stock_key(product_id), state.stock)
            .hset_multiple(
                self.window_key(product_id),
                &[("start", state.start_ms), ("end", state.end_ms), ("limit", state.per_user_limit)],
            )
            .hset(self.window_key(product_id), "price", &state.price);
        for (order_no, d) in &state.orders {
            pipe.sadd(self.buyers_key(product_id), d.user_id);
            pipe.hset(self.orders_key(product_id), order_no, format!("{},{}", d.user_id, d.quantity));
        }
        pipe.query_async::<()>(&mut self.conn.clone()).await
    }

    /// Answers PING: for health checks.
    pub async fn ping(&self) -> redis::RedisResult<()> {
        redis::cmd("PING").query_async::<()>(&mut self.conn.clone()).await
    }

    /// A fresh number from a Redis counter (used to give each origin instance a node id).
    pub async fn next_sequence(&self, name: &str) -> redis::RedisResult<u64> {
        self.conn.clone().incr(format!("{}:seq:{}", self.prefix, name), 1).await
    }
}

fn parse_deduction(entry: &str) -> Option<Deduction> {
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
}
