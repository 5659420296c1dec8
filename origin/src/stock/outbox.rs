//! The outbox: accepted buys the broker has not stored yet, which the relay sends and the sweeper
//! picks up after a relay died.

use redis::AsyncCommands;

use super::{Bucket, StockStore};

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

impl StockStore {
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

    /// Entries in a product's outboxes: accepted orders the broker has not confirmed yet.
    pub async fn outbox_len(&self, product_id: u64) -> redis::RedisResult<u64> {
        let mut total = 0;
        for bucket in self.buckets(product_id).await? {
            total += self.conn.clone().xlen::<_, u64>(self.bucket_key(bucket, "outbox")).await?;
        }
        Ok(total)
    }
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
