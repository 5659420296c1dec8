//! Giving a buy back (`release.lua`): a cancel, a refusal, a batch the broker surely did not store.

use super::{Bucket, StockStore};

impl StockStore {
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
}
