//! The buy script (`buy.lua`): one call decides a batch of buys of one bucket ([`StockStore::decide`]),
//! and transaction mode's take and read-only check.

use super::{Bucket, StockStore};

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
    /// The user holds an active order of this product, named by `order_no` (their buyer
    /// record's), so a buyer whose first answer was lost can still find and pay it.
    AlreadyBought {
        order_no: String,
    },
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
    /// The operator revoked this user's place in the sale (see [`StockStore::revoke`]).
    Revoked,
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

impl StockStore {
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
            .key(self.bucket_key(bucket, "revoked"))
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
}

impl StockStore {
    /// Revokes (`true`) or restores `user_id`'s place in `product_id`'s sale: a revoked user's
    /// buys are refused (`REVOKED`) by the buy script itself, whatever pass they hold. Kept in
    /// each bucket's `revoked` set, beside the keys the script reads; a preload or reconcile
    /// leaves it alone (a Redis that lost its data loses it too).
    pub async fn revoke(&self, product_id: u64, user_id: u64, revoked: bool) -> redis::RedisResult<()> {
        use redis::AsyncCommands;
        for bucket in self.buckets(product_id).await? {
            let key = self.bucket_key(bucket, "revoked");
            if revoked {
                let _: () = self.conn.clone().sadd(key, user_id).await?;
            } else {
                let _: () = self.conn.clone().srem(key, user_id).await?;
            }
        }
        Ok(())
    }
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
        // The third value is the outbox entry of a taken buy, or the order an ALREADY_BOUGHT holds.
        let id = String::from_redis_value(&chunk[2])?;
        let entry = || (!id.is_empty()).then(|| id.clone());
        outcomes.push(match code.as_str() {
            "OK" => (BuyOutcome::Taken { stock_left: n }, entry()),
            "SOLD_OUT" => (BuyOutcome::SoldOut { stock_left: n }, None),
            "ALREADY_BOUGHT" => (BuyOutcome::AlreadyBought { order_no: id.clone() }, None),
            "NOT_STARTED" => (BuyOutcome::NotStarted { start_ms: n }, None),
            "ENDED" => (BuyOutcome::Ended { end_ms: n }, None),
            "OVER_LIMIT" => (BuyOutcome::OverLimit { limit: n }, None),
            "NO_SUCH_PRODUCT" => (BuyOutcome::NoSuchProduct, None),
            "SALE_FROZEN" => (BuyOutcome::Frozen, None),
            "REVOKED" => (BuyOutcome::Revoked, None),
            other => return Err(bad(other)),
        });
    }
    Ok(Decided { price, now_ms, outcomes })
}
