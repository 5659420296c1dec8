//! Whether this process's sends to the broker are failing, as its buy path last saw them.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use super::sender::Sender;

/// Set by the buy path when a send fails, cleared when one succeeds (or a probe does).
#[derive(Debug, Default)]
pub struct BrokerHealth {
    /// Unix ms of the first failure since the last success; 0 = not failing.
    failing_since: AtomicI64,
    /// When `/health` last stored a probe, and whether the broker took it. Held across the
    /// probe, so concurrent health checks wait for one probe instead of each sending their own.
    last_probe: tokio::sync::Mutex<Option<(std::time::Instant, bool)>>,
}

impl BrokerHealth {
    pub fn ok(&self) {
        self.failing_since.store(0, Ordering::Relaxed);
    }

    pub fn failed(&self) {
        let now = chrono::Utc::now().timestamp_millis();
        let _ = self.failing_since.compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
    }

    pub fn is_failing(&self) -> bool {
        self.failing_since.load(Ordering::Relaxed) != 0
    }

    /// Whether the broker stored a probe within `fresh`: the last probe's result if it is that
    /// recent, else `probe()` runs (once, however many callers ask at the same time). Keeps a
    /// public `/health` from storing a broker message per call.
    pub async fn probe_result<F>(&self, fresh: Duration, probe: F) -> bool
    where
        F: std::future::Future<Output = bool>,
    {
        let mut last = self.last_probe.lock().await;
        if let Some((at, stored)) = *last {
            if at.elapsed() < fresh {
                return stored;
            }
        }
        let stored = probe.await;
        *last = Some((std::time::Instant::now(), stored));
        stored
    }

    /// While failing, sends a probe to `topic` every `every` and clears the failure once the
    /// broker stores one: the batched buy path refuses buys while failing, so without probes it
    /// would never learn that the broker is back. Runs until the task is dropped.
    pub async fn probe_while_failing(&self, sender: &Sender, topic: &str, every: Duration) {
        loop {
            tokio::time::sleep(every).await;
            if self.is_failing() && sender.send(topic, "PROBE", "buy-path", b"{}".to_vec(), 0).await.is_ok() {
                tracing::info!("the broker stores messages again; buying resumes");
                self.ok();
            }
        }
    }
}
