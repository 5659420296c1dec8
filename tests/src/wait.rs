//! Polling until something that happens asynchronously has happened.

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `check` every 100 ms until it is true (returns true) or `limit` passes (false).
pub async fn wait_until<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
