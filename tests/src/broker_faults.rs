//! Bursts of buys with a broker killed in the middle, and what their answers must come to, for
//! the broker failover tests.

use std::collections::{HashMap, HashSet};
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

/// The accepted orders of a burst's answers (200 QUEUED and 202 PENDING, each its own order
/// number), and the answers counted by (status, sent after the kill); panics on any other
/// answer than those and a 409 whose code is one of `refusals`.
pub fn accepted_orders(
    answers: &[(u16, serde_json::Value, bool)],
    refusals: &[&str],
) -> (HashSet<String>, HashMap<(u16, bool), usize>) {
    let mut by_status: HashMap<(u16, bool), usize> = HashMap::new();
    let mut accepted = HashSet::new();
    for (status, body, after_kill) in answers {
        *by_status.entry((*status, *after_kill)).or_default() += 1;
        match status {
            200 | 202 => assert!(accepted.insert(body["orderNo"].as_str().unwrap().to_string()), "{body}"),
            409 => assert!(body["code"].as_str().is_some_and(|c| refusals.contains(&c)), "{body}"),
            other => panic!("unexpected answer {other}: {body}"),
        }
    }
    (accepted, by_status)
}

/// Every accepted order has exactly one row, and there is no row without an accepted buy.
pub async fn assert_exactly_the_accepted_orders(app: &TestApp, product: u64, accepted: &HashSet<String>) {
    let rows = app.written_orders(product).await;
    let written: HashSet<String> = rows.iter().cloned().collect();
    assert_eq!(rows.len(), written.len(), "no order written twice");
    let missing: Vec<&String> = accepted.iter().filter(|o| !written.contains(*o)).collect();
    assert!(missing.is_empty(), "{} accepted orders without a row: {missing:?}", missing.len());
    assert_eq!(written.len(), accepted.len(), "no order without its accepted buy");
}
