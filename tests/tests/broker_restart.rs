//! The broker goes away mid-sale: buyers get 503 and nothing is taken from Redis; once it is
//! back, buying works again. Runs in its own test binary (cargo runs binaries one at a time)
//! because it stops the shared test broker.

use std::time::Duration;

use seckill_e2e::{services, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn buys_get_503_and_keep_stock_while_the_broker_is_down_then_work_again() {
    let app = TestApp::spawn().await;
    let product = app.create_product(20).await;
    let first = app.buy_queued(1, product).await;
    app.wait_order_status(&first, "UNPAID", 30).await;

    let (status, health) = seckill_e2e::read(app.http.get(app.url("/health")).send().await.unwrap()).await;
    assert_eq!((status, health["broker"].as_str()), (200, Some("ok")), "{health}");

    services(&["kill-broker", "test"]);
    let result = std::panic::AssertUnwindSafe(async {
        for user in 2..=6 {
            let (status, body) = app.buy(user, product).await;
            assert_eq!(status, 503, "user {user}: {body}");
            assert_eq!(body["code"], "UNAVAILABLE");
        }
        assert_eq!(app.redis_stock(product).await, 19, "a refused buy must not take stock");
        let (status, health) = seckill_e2e::read(app.http.get(app.url("/health")).send().await.unwrap()).await;
        assert_eq!((status, health["broker"].as_str()), (503, Some("down")), "{health}");
    });
    let outcome = futures::FutureExt::catch_unwind(result).await;
    services(&["start", "broker", "test"]);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }

    // The client's circuit breaker may keep failing for ~30 s after the broker is back.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let answer = loop {
        let answer = app.buy(7, product).await;
        if answer.0 == 200 {
            break answer;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "buying did not recover after the broker restarted; last answer {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let order_no = answer.1["orderNo"].as_str().unwrap().to_string();
    app.wait_order_status(&order_no, "UNPAID", 60).await;
    // The test broker cancels unpaid orders 3 s after they are written, so the first order may
    // already be cancelled: every unit is accounted for either way.
    let settled = seckill_e2e::wait_until(Duration::from_secs(10), || async {
        let stock = app.stock(product).await;
        let active = stock["orders"]["unpaid"].as_i64().unwrap() + stock["orders"]["paid"].as_i64().unwrap();
        stock["mysql"].as_i64() == Some(20 - active) && stock["redis"].as_i64() == Some(20 - active)
    })
    .await;
    assert!(settled, "stock is not initial − active orders: {}", app.stock(product).await);
    assert_eq!(app.count("SELECT COUNT(*) FROM tb_seckill_order").await, 2);
}
