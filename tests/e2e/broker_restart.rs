//! The broker goes away in the middle of a burst: buyers get 503 (nothing taken) or, for a
//! batch whose fate is unknown, 202 PENDING with their order number; no stock leaks; once the
//! broker is back, buying works again and every 200/202 becomes exactly one order. A module of
//! its own (`make test` runs one module at a time) because it stops the shared test broker.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use seckill_e2e::{services, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_stopped_mid_burst_leaks_no_stock_and_buying_works_again() {
    let app = Arc::new(TestApp::spawn().await);
    let initial = 3000;
    let product = app.create_product(initial as u64).await;
    let first = app.buy_queued(1, product).await;
    app.wait_order_status(&first, "UNPAID", 30).await;
    let (status, health) = seckill_e2e::read(app.http.get(app.url("/health")).send().await.unwrap()).await;
    assert_eq!((status, health["broker"].as_str()), (200, Some("ok")), "{health}");

    // A steady burst, 32 in flight; the broker is killed once 300 buys were answered.
    let burst = {
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            futures::stream::iter(2..=2001u64)
                .map(|user| {
                    let app = Arc::clone(&app);
                    async move { app.buy(user, product).await }
                })
                .buffer_unordered(32)
                .collect::<Vec<_>>()
                .await
        })
    };
    let answered_before_kill = seckill_e2e::wait_until(Duration::from_secs(60), || async {
        let (_, metrics) = app.admin_get("/admin/metrics").await;
        metrics["buyRequests"].as_u64().unwrap_or(0) >= 300
    })
    .await;
    assert!(answered_before_kill, "the burst did not get going");
    services(&["kill-broker", "test"]);

    let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(async {
        let answers = burst.await.unwrap();
        // While the broker is known down, buys are refused before anything is taken.
        let stock_before = app.redis_stock(product).await;
        for user in 5001..=5005 {
            let (status, body) = app.buy(user, product).await;
            assert_eq!((status, body["code"].as_str()), (503, Some("UNAVAILABLE")), "user {user}: {body}");
        }
        assert_eq!(app.redis_stock(product).await, stock_before, "a refused buy must not take stock");
        let (status, health) = seckill_e2e::read(app.http.get(app.url("/health")).send().await.unwrap()).await;
        assert_eq!((status, health["broker"].as_str()), (503, Some("down")), "{health}");
        answers
    }))
    .await;
    services(&["start", "broker", "test"]);
    let answers = match outcome {
        Ok(answers) => answers,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    let mut by_status: HashMap<u16, usize> = HashMap::new();
    let mut placed = HashSet::from([first]);
    for (status, body) in &answers {
        *by_status.entry(*status).or_default() += 1;
        match status {
            200 | 202 => {
                placed.insert(body["orderNo"].as_str().unwrap().to_string());
            }
            503 => assert_eq!(body["code"], "UNAVAILABLE", "{body}"),
            other => panic!("unexpected answer {other}: {body}"),
        }
    }
    println!("answers during the outage: {by_status:?}");
    assert!(by_status.get(&503).copied().unwrap_or(0) > 0, "the outage never showed: {by_status:?}");

    // The client's circuit breaker may keep failing for ~30 s after the broker is back.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let order_no = loop {
        let (status, body) = app.buy(9001, product).await;
        if status == 200 {
            break body["orderNo"].as_str().unwrap().to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "buying did not recover after the broker restarted: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    placed.insert(order_no.clone());
    app.wait_order_status(&order_no, "UNPAID", 60).await;

    // Pending orders are re-sent by the sweeper; nothing taken is left without its order.
    app.assert_invariants(product, initial).await;
    let written: HashSet<String> = app.written_orders(product).await.into_iter().collect();
    let missing: Vec<&String> = placed.difference(&written).collect();
    assert!(missing.is_empty(), "accepted orders without a row: {missing:?}");
    app.check().await;
}
