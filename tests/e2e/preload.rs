//! Preload against a live sale. Before, preload read Redis and MySQL, compared, then rewrote
//! Redis in a separate step: a buy landing in between was erased (its unit sold twice, its
//! message later dead-lettered by the MySQL guard: a 200 with no order). It was also refused
//! for good once anything was in flight, and after Redis lost a product's keys it copied MySQL
//! while orders were still queued.

use std::sync::Arc;
use std::time::Duration;

use seckill_e2e::{isolated_settings, wait_until, TestApp};
use seckill_origin::startup::Workers;

#[tokio::test]
async fn forced_preloads_during_a_burst_never_erase_a_buy() {
    let app = Arc::new(TestApp::spawn().await);
    let product = app.create_product(300).await;
    let reloading = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let reloads = {
        let (app, reloading) = (Arc::clone(&app), Arc::clone(&reloading));
        tokio::spawn(async move {
            let mut loaded = 0;
            while reloading.load(std::sync::atomic::Ordering::Relaxed) {
                let (status, body) =
                    app.admin_post(&format!("/admin/products/{product}/preload?force=true"), None).await;
                assert_eq!(status, 200, "{body}");
                loaded += 1;
            }
            loaded
        })
    };
    // A steady trickle, so that most preloads find a buy landing somewhere in their window.
    let mut buyers = tokio::task::JoinSet::new();
    for lane in 0..8u64 {
        let app = Arc::clone(&app);
        buyers.spawn(async move {
            let mut queued = Vec::new();
            for i in 0..50u64 {
                let (status, body) = app.buy(1 + lane * 1000 + i, product).await;
                match status {
                    200 => queued.push(body["orderNo"].as_str().unwrap().to_string()),
                    409 => assert_eq!(body["code"], "SOLD_OUT", "{body}"),
                    _ => panic!("{status} {body}"),
                }
            }
            queued
        });
    }
    let mut queued = Vec::new();
    while let Some(lane) = buyers.join_next().await {
        queued.extend(lane.unwrap());
    }
    reloading.store(false, std::sync::atomic::Ordering::Relaxed);
    let loaded = reloads.await.unwrap();
    assert!(loaded >= 5, "only {loaded} preloads ran during the burst; the test would prove little");
    assert_eq!(queued.len(), 300, "400 buyers for 300 units: exactly 300 accepted");
    app.assert_invariants(product, 300).await;
    let mut written = app.written_orders(product).await;
    written.sort();
    queued.sort();
    assert_eq!(written, queued, "every QUEUED answer became exactly one order");
    let (_, letters) = app.admin_get("/admin/dead-letters").await;
    assert_eq!(letters["deadLetters"].as_array().map(Vec::len), Some(0), "nothing may be dead-lettered: {letters}");
    app.check().await;
}

#[tokio::test]
async fn a_live_sale_is_reloaded_only_when_forced_and_orders_in_flight_stay_taken() {
    let mut app = TestApp::spawn().await;
    let product = app.create_product(10).await;
    let path = format!("/admin/products/{product}/preload");
    let (status, body) = app.admin_post(&path, None).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("SALE_LIVE")), "{body}");
    let (status, body) = app.admin_post(&format!("{path}?force=maybe"), None).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("force"), "{body}");

    // The writer is down: three orders wait in the queue, known to Redis only.
    app.workers.take().unwrap().shutdown().await;
    let mut queued = Vec::new();
    for user in 1..=3 {
        queued.push(app.buy_queued(user, product).await);
    }
    let (status, body) = app.admin_post(&format!("{path}?force=true"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["stock"].as_i64(), body["mysqlStock"].as_i64(), body["inFlightOrders"].as_i64()),
        (Some(7), Some(10), Some(3)),
        "{body}"
    );
    let (status, body) = app.buy(2, product).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("ALREADY_BOUGHT")), "a buyer in flight stays a buyer");

    // The writer comes back and drains the queue: Redis and MySQL agree.
    app.workers = Some(Workers::start(app.settings.clone()).await.unwrap());
    for order_no in &queued {
        app.wait_order_status(order_no, "UNPAID", 60).await;
    }
    app.assert_invariants(product, 10).await;
    app.check().await;
}

#[tokio::test]
async fn after_redis_loses_a_loaded_sale_a_plain_preload_is_refused_and_the_sale_stays_frozen_until_repaired() {
    let (id, mut settings) = isolated_settings();
    settings.redis.fence_auto_heal = false; // the operator's path: the heal is tests/e2e/redis_loss.rs
    let app = TestApp::spawn_with(id, settings).await;
    let product = app.create_product(5).await;
    let order_no = app.buy_queued(1, product).await;
    app.wait_order_status(&order_no, "UNPAID", 30).await;
    // Redis loses the product's keys.
    let mut redis = app.redis.clone();
    for key in ["stock", "buyers", "orders", "window", "outbox"] {
        let _: () = redis::cmd("DEL").arg(app.product_key(product, key)).query_async(&mut redis).await.unwrap();
    }
    let path = format!("/admin/products/{product}/preload");
    let (status, body) = app.admin_post(&path, None).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("REDIS_STATE_LOST")), "{body}");
    assert_eq!(app.stock(product).await["redis"], serde_json::Value::Null, "a refused preload changes nothing");
    // Frozen is the fence's record in MySQL (what a reconcile thaws), not just any 503: a buy of
    // keys Redis lost may be refused before the fence has written it down.
    let frozen = wait_until(Duration::from_secs(5), || async {
        let (status, body) = app.buy(2, product).await;
        (status, body["code"].as_str()) == (503, Some("SALE_FROZEN"))
            && app.product_state(product).frozen().await.is_some()
    })
    .await;
    assert!(frozen, "the fence froze the sale");
    let (status, body) = app.admin_post(&format!("/admin/products/{product}/reconcile"), None).await;
    assert_eq!((status, body["thawed"].as_bool()), (200, Some(true)), "{body}");
    let (status, body) = app.buy(1, product).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("ALREADY_BOUGHT")),
        "the holder of an order is a buyer again"
    );
    // A forced preload is the operator's word that MySQL's view is right, even on a live sale.
    let (status, body) = app.admin_post(&format!("{path}?force=true"), None).await;
    assert_eq!((status, body["stock"].as_i64()), (200, Some(4)), "{body}");
    app.assert_invariants(product, 5).await;
    app.check().await;
}
