//! The outbox sweeper: sends what a relay left behind.
//!
//! An outbox entry older than `buy.sweep_after_ms` was not acknowledged by the relay that wrote
//! it: that origin died between its script call and its send, or the broker was down or slow.
//! Likewise a loan between two buckets of a sharded sale older than that was cut short by its
//! lender's death; the sweeper finishes it (`stock::buckets`).
//! The sweeper sends such entries to the order topic and removes them only after SEND_OK, so an
//! accepted order is never lost; a duplicate (the relay's send did arrive) is dropped by the
//! order writer's dedupe. One origin sweeps at a time, by a lease in Redis.
//!
//! The relay gives stock back only for entries younger than `sweep_after_ms` (checked inside
//! `release.lua` on Redis's clock) and the sweeper only reads older ones, so an entry is never
//! both given back and sent.

use std::sync::Arc;
use std::time::Duration;

use crate::broker::sender::{Outgoing, Sender};
use crate::configuration::BuySettings;
use crate::orders::OrderMessage;
use crate::stock::{Bucket, StockStore};

/// Name of the lease in Redis (`<prefix>:lease:<name>`).
const LEASE: &str = "outbox-sweeper";

#[derive(Debug)]
pub struct Sweeper {
    /// Where the loaded sales are listed (`fencing::loaded_sales`): MySQL, which a Redis loss
    /// cannot empty.
    pub db: sqlx::MySqlPool,
    pub stock: StockStore,
    pub sender: Arc<Sender>,
    pub topic: String,
    pub settings: BuySettings,
    /// Who holds the lease: unique per origin process.
    pub holder: String,
}

impl Sweeper {
    /// Sweeps every `sweep_interval_ms` while this origin holds the lease; runs until dropped.
    pub async fn run(self) {
        let every = Duration::from_millis(self.settings.sweep_interval_ms.max(50));
        // Lost with its holder (killed): another origin takes over after this long.
        let lease_ms = (self.settings.sweep_interval_ms * 5).max(3_000);
        loop {
            tokio::time::sleep(every).await;
            match self.stock.lease(LEASE, &self.holder, lease_ms).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox sweeper cannot reach Redis");
                    continue;
                }
            }
            match self.sweep_once().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(orders = n, "sweeper sent orders a relay left in the outbox"),
                Err(e) => tracing::warn!(error = %e, "outbox sweep failed; trying again"),
            }
        }
    }

    /// Sends every outbox entry older than `sweep_after_ms`; returns how many were sent.
    pub async fn sweep_once(&self) -> Result<usize, String> {
        let mut sent = 0;
        let batch_max = self.settings.batch_max.max(1);
        // Each bucket, and whether its sale is sharded (only then can it have loans).
        let mut buckets = Vec::new();
        for sale in crate::fencing::loaded_sales(&self.db).await.map_err(|e| e.to_string())? {
            let of_product = Bucket::all(sale.product_id, sale.buckets);
            let sharded = of_product.len() > 1;
            buckets.extend(of_product.into_iter().map(|bucket| (bucket, sharded)));
        }
        for (bucket, sharded) in buckets {
            let product_id = bucket.product_id;
            if sharded {
                let finished = self
                    .stock
                    .finish_stale_transfers(bucket, self.settings.sweep_after_ms)
                    .await
                    .map_err(|e| e.to_string())?;
                if finished > 0 {
                    tracing::info!(
                        product_id,
                        bucket = bucket.index,
                        loans = finished,
                        "sweeper finished loans between buckets"
                    );
                }
            }
            loop {
                let entries = self
                    .stock
                    .outbox_older_than(bucket, self.settings.sweep_after_ms, batch_max)
                    .await
                    .map_err(|e| e.to_string())?;
                let mut ids = Vec::with_capacity(entries.len());
                let mut outgoing = Vec::with_capacity(entries.len());
                for entry in &entries {
                    match OrderMessage::from_outbox(product_id, entry) {
                        Some(message) => {
                            ids.push(entry.id.clone());
                            outgoing.push(Outgoing {
                                key: message.order_no.clone(),
                                body: serde_json::to_vec(&message).expect("order message serializes"),
                            });
                        }
                        None => tracing::error!(product_id, entry = ?entry, "unreadable outbox entry left in place"),
                    }
                }
                if outgoing.is_empty() {
                    break;
                }
                // Strict durability: send only orders whose deduction a failover can no longer
                // undo; the others wait for the next round.
                if !self.stock.replicated_after_read(bucket).await {
                    break;
                }
                self.sender.send_batch(&self.topic, "ORDER", outgoing).await.map_err(|e| e.to_string())?;
                self.stock.ack_sent(bucket, &ids).await.map_err(|e| e.to_string())?;
                sent += ids.len();
                if entries.len() < batch_max {
                    break;
                }
            }
        }
        Ok(sent)
    }
}
