//! Counters the admin API reports. Plain atomics: cheap on the hot path.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

#[derive(Default)]
pub struct Metrics {
    pub buy_requests: AtomicU64,
    pub buy_queued: AtomicU64,
    pub buy_rejected: AtomicU64,
    pub buy_bad_requests: AtomicU64,
    pub buy_unavailable: AtomicU64,
    pub orders_written: AtomicU64,
    pub orders_redelivered: AtomicU64,
    pub order_write_failures: AtomicU64,
    pub orders_paid: AtomicU64,
    pub orders_cancelled: AtomicU64,
    pub cancels_skipped: AtomicU64,
    pub cancels_repeated: AtomicU64,
    pub dead_letters: AtomicU64,
    pub buy_pending: AtomicU64,
    pub orders_rejected: AtomicU64,
    pub order_batches: AtomicU64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSnapshot {
    pub buy_requests: u64,
    pub buy_queued: u64,
    pub buy_rejected: u64,
    pub buy_bad_requests: u64,
    pub buy_unavailable: u64,
    pub orders_written: u64,
    pub orders_redelivered: u64,
    pub order_write_failures: u64,
    pub orders_paid: u64,
    pub orders_cancelled: u64,
    pub cancels_skipped: u64,
    pub cancels_repeated: u64,
    pub dead_letters: u64,
    pub buy_pending: u64,
    pub orders_rejected: u64,
    pub order_batches: u64,
}

impl Metrics {
    pub fn incr(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MetricsSnapshot {
            buy_requests: get(&self.buy_requests),
            buy_queued: get(&self.buy_queued),
            buy_rejected: get(&self.buy_rejected),
            buy_bad_requests: get(&self.buy_bad_requests),
            buy_unavailable: get(&self.buy_unavailable),
            orders_written: get(&self.orders_written),
            orders_redelivered: get(&self.orders_redelivered),
            order_write_failures: get(&self.order_write_failures),
            orders_paid: get(&self.orders_paid),
            orders_cancelled: get(&self.orders_cancelled),
            cancels_skipped: get(&self.cancels_skipped),
            cancels_repeated: get(&self.cancels_repeated),
            dead_letters: get(&self.dead_letters),
            buy_pending: get(&self.buy_pending),
            orders_rejected: get(&self.orders_rejected),
            order_batches: get(&self.order_batches),
        }
    }
}
