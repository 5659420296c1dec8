//! Bursts of buys with a broker killed in the middle, for the broker failover tests.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use crate::TestApp;

/// One buy per entry of `buyers` (a user id; a user may come more than once) for `product`, 8
/// at a time, each pausing 5 ms first; a buyer told 503 tries again (up to 120 times, 250 ms
/// apart), as the shop page does. When the `kill_after`-th answer is in, `kill` runs with every
/// other buy held back until it is done (a gate they pass one by one). Returns each answer with
/// whether its buy was sent after the kill.
pub async fn burst_with_a_kill(
    app: &Arc<TestApp>,
    product: u64,
    buyers: Vec<u64>,
    kill_after: usize,
    kill: &'static (dyn Fn() + Send + Sync),
) -> Vec<(u16, serde_json::Value, bool)> {
    let killed = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::RwLock::new(()));
    futures::stream::iter(buyers)
        .map(|user| {
            let (app, killed, answered, gate) =
                (Arc::clone(app), Arc::clone(&killed), Arc::clone(&answered), Arc::clone(&gate));
            async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                let mut answer = (503, serde_json::Value::Null, true);
                for _ in 0..120 {
                    let passing = gate.read().await;
                    let after_kill = killed.load(Ordering::SeqCst);
                    let (status, body) = app.buy(user, product).await;
                    drop(passing);
                    if status != 503 {
                        answer = (status, body, after_kill);
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                if answered.fetch_add(1, Ordering::SeqCst) + 1 == kill_after {
                    // Waits for the buys in flight, and holds new ones back, until killed.
                    let _closed = gate.write().await;
                    tokio::task::spawn_blocking(kill).await.unwrap();
                    killed.store(true, Ordering::SeqCst);
                }
                answer
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
}
