//! What Redis holds of a sale: stock, buyers and the deduction log (an order accepted and not
//! written yet is found there).

use redis::AsyncCommands;

use super::{Bucket, StockStore};

/// One deduction-log entry: who holds the stock an order took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deduction {
    pub user_id: u64,
    pub quantity: u32,
}

/// A deduction-log entry as `buy.lua` writes it: `"userId,quantity"`.
pub fn parse_deduction(entry: &str) -> Option<Deduction> {
    let (user, qty) = entry.split_once(',')?;
    Some(Deduction { user_id: user.parse().ok()?, quantity: qty.parse().ok()? })
}

impl StockStore {
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

    /// The order `user_id`'s buyer record (in the user's bucket) names: the active order they
    /// hold of `product_id`, in MySQL or still in flight; `None` if they hold none.
    pub async fn order_of_buyer(&self, product_id: u64, user_id: u64) -> redis::RedisResult<Option<String>> {
        let bucket = self.bucket_for(product_id, user_id).await?;
        self.conn.clone().hget(self.bucket_key(bucket, "buyers"), user_id).await
    }
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
