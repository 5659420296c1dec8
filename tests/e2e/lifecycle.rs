//! The order's whole life on a test broker whose delay level 16 is 3 s (and every retry level
//! about 1 s): the code still sends level 16.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use seckill_e2e::{isolated_settings, wait_until, TestApp};
use seckill_origin::orders::writer;
use seckill_origin::orders::CancelMessage;
use seckill_origin::orders::OrderMessage;
use seckill_origin::stock::StockStore;
use serde_json::json;

async fn is_buyer(app: &TestApp, product: u64, user: u64) -> bool {
    redis::cmd("HEXISTS")
        .arg(app.product_key(product, "buyers"))
        .arg(user)
        .query_async(&mut app.redis.clone())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unpaid_order_is_cancelled_and_its_stock_and_buyer_come_back_so_the_user_can_buy_again() {
    let app = TestApp::spawn_lifecycle().await;
    let product = app.create_product(5).await;
    let first = app.buy_queued(1, product).await;
    app.wait_order_status(&first, "UNPAID", 30).await;
    assert!(is_buyer(&app, product, 1).await);

    app.wait_order_status(&first, "CANCELLED", 30).await;
    let back = wait_until(Duration::from_secs(10), || async { app.redis_stock(product).await == 5 }).await;
    assert!(back, "Redis stock did not come back");
    let stock = app.stock(product).await;
    assert_eq!((stock["mysql"].as_i64(), stock["inFlight"].as_i64()), (Some(5), Some(0)), "{stock}");
    assert_eq!(stock["orders"]["cancelled"], 1);
    assert!(!is_buyer(&app, product, 1).await, "the buyer record still holds the user");
    assert_eq!(app.count("SELECT COUNT(*) FROM tb_user_seckill").await, 0);
    let (before, after): (u32, u32) =
        sqlx::query_as("SELECT before_stock, after_stock FROM tb_stock_log WHERE order_no = ? AND reason = 'CANCEL'")
            .bind(&first)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!((before, after), (4, 5));
    let (status, body) = app.pay(&first, 1).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("ORDER_CANCELLED")), "{body}");

    // Same user, same product: a new order.
    let second = app.buy_queued(1, product).await;
    assert_ne!(first, second);
    app.wait_order_status(&second, "UNPAID", 30).await;

    // Every state change was published: CREATED, CANCELLED (first), CREATED (second).
    let published = wait_until(Duration::from_secs(10), || async {
        app.count("SELECT COUNT(*) FROM tb_order_event WHERE sent_at IS NOT NULL").await >= 3
    })
    .await;
    assert!(published, "order events were not relayed to the broker");
    let events: Vec<(String, String)> =
        sqlx::query_as("SELECT order_no, event FROM tb_order_event ORDER BY id").fetch_all(&app.db).await.unwrap();
    assert_eq!(
        events,
        vec![
            (first.clone(), "CREATED".into()),
            (first.clone(), "CANCELLED".into()),
            (second.clone(), "CREATED".into())
        ]
    );
    app.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paid_order_is_never_cancelled_and_keeps_its_stock() {
    let app = TestApp::spawn_lifecycle().await;
    let product = app.create_product(5).await;
    let order_no = app.buy_queued(2, product).await;
    app.wait_order_status(&order_no, "UNPAID", 30).await;

    let (status, body) = app.pay(&order_no, 3).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("NO_SUCH_ORDER")), "another user's order: {body}");
    let (status, body) = app.pay(&order_no, 2).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("PAID")), "{body}");
    let (status, body) = app.pay(&order_no, 2).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("PAID")), "paying twice answers PAID again: {body}");
    for bad in [json!([2]), json!({ "userId": 0 }), json!({ "userId": "2" })] {
        let resp = app
            .http
            .post(app.url(&format!("/api/orders/{order_no}/pay")))
            .header("x-seckill-edge-secret", seckill_e2e::EDGE_SECRET)
            .bearer_auth(app.token_for(2))
            .json(&bad)
            .send()
            .await
            .unwrap();
        let (status, body) = seckill_e2e::read(resp).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("BAD_REQUEST")), "{bad} → {body}");
    }

    let metrics = &app.workers().metrics;
    let skipped = wait_until(Duration::from_secs(30), || async { metrics.cancels_skipped.get() >= 1 }).await;
    assert!(skipped, "the cancel for the paid order was never delivered");
    assert_eq!(app.order(&order_no).await.1["status"], "PAID");
    let stock = app.stock(product).await;
    assert_eq!((stock["redis"].as_i64(), stock["mysql"].as_i64()), (Some(4), Some(4)), "{stock}");
    assert!(is_buyer(&app, product, 2).await);
    assert_eq!(app.count("SELECT COUNT(*) FROM tb_stock_log WHERE reason = 'CANCEL'").await, 0);
    app.check().await;
}

/// 200 orders, each paid at about the moment it expires and its cancel fires.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pay_racing_cancel_ends_every_order_paid_xor_cancelled_with_stock_conserved() {
    let app = Arc::new(TestApp::spawn_lifecycle().await);
    let initial = 300;
    let product = app.create_product(initial).await;
    let mut orders = Vec::new();
    for user in 1..=200u64 {
        orders.push((user, app.buy_queued(user, product).await));
    }
    // Learn when each order was written: its cancel fires 3 s (level 16 here) after that.
    let mut written_at = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while written_at.len() < orders.len() {
        for (_, order_no) in &orders {
            if !written_at.contains_key(order_no) && app.order(order_no).await.1["status"] == "UNPAID" {
                written_at.insert(order_no.clone(), Instant::now());
            }
        }
        assert!(Instant::now() < deadline, "orders were not written within 60 s");
    }
    let delay = Duration::from_secs(3);
    let tasks: Vec<_> = orders
        .iter()
        .enumerate()
        .map(|(i, (user, order_no))| {
            let app = Arc::clone(&app);
            let (user, order_no) = (*user, order_no.clone());
            // Spread the pays from 300 ms before to 300 ms after the expected cancel.
            let at = written_at[&order_no] + delay - Duration::from_millis(300)
                + Duration::from_millis((i as u64 * 3) % 600);
            tokio::spawn(async move {
                tokio::time::sleep_until(at.into()).await;
                (order_no.clone(), app.pay(&order_no, user).await)
            })
        })
        .collect();
    let mut paid_answers = 0;
    let mut answers = HashMap::new();
    for t in tasks {
        let (order_no, (status, body)) = t.await.unwrap();
        match (status, body["code"].as_str(), body["status"].as_str()) {
            (200, _, Some("PAID")) => paid_answers += 1,
            // Past its expireAt: not payable, and the cancel (due now) takes it.
            (409, Some("ORDER_CANCELLED" | "ORDER_EXPIRED"), _) => {}
            other => panic!("unexpected pay answer for {order_no}: {other:?} {body}"),
        }
        answers.insert(order_no, status);
    }

    // Wait until every cancel has been handled: no UNPAID left.
    let settled = wait_until(Duration::from_secs(60), || async {
        app.count(&format!("SELECT COUNT(*) FROM tb_seckill_order WHERE product_id = {product} AND status = 'UNPAID'"))
            .await
            == 0
    })
    .await;
    assert!(settled, "some orders are still UNPAID");
    let statuses: HashMap<String, String> =
        sqlx::query_as::<_, (String, String)>("SELECT order_no, status FROM tb_seckill_order WHERE product_id = ?")
            .bind(product)
            .fetch_all(&app.db)
            .await
            .unwrap()
            .into_iter()
            .collect();
    assert_eq!(statuses.len(), 200);
    for (order_no, status) in &answers {
        let expected = if *status == 200 { "PAID" } else { "CANCELLED" };
        assert_eq!(statuses[order_no], expected, "{order_no}: pay answered {status}");
    }
    let paid = statuses.values().filter(|s| *s == "PAID").count() as i64;
    let cancelled = statuses.values().filter(|s| *s == "CANCELLED").count() as i64;
    assert_eq!(paid + cancelled, 200);
    assert_eq!(paid, paid_answers);
    assert_eq!(app.count("SELECT COUNT(*) FROM tb_stock_log WHERE reason = 'CANCEL'").await, cancelled);
    let back =
        wait_until(Duration::from_secs(10), || async { app.redis_stock(product).await == initial as i64 - paid }).await;
    let stock = app.stock(product).await;
    assert!(back, "Redis stock should be initial − PAID: {stock}");
    assert_eq!(stock["mysql"].as_i64(), Some(initial as i64 - paid), "{stock}");
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM tb_user_seckill WHERE product_id = {product}")).await, paid);
    println!("pay/cancel race: {paid} paid, {cancelled} cancelled");
    app.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancel_delivered_twice_changes_nothing_the_second_time() {
    let app = TestApp::spawn_lifecycle().await;
    let product = app.create_product(10).await;
    let mut orders = Vec::new();
    for user in 1..=5 {
        orders.push(app.buy_queued(user, product).await);
    }
    for order_no in &orders {
        app.wait_order_status(order_no, "CANCELLED", 40).await;
    }
    let back = wait_until(Duration::from_secs(10), || async { app.redis_stock(product).await == 10 }).await;
    assert!(back);

    for order_no in &orders {
        let body = serde_json::to_vec(&CancelMessage::of(vec![order_no.clone()])).unwrap();
        for _ in 0..2 {
            app.deliver(&app.settings.rocketmq.cancel_topic, "CANCEL", order_no, body.clone()).await;
        }
    }
    let metrics = &app.workers().metrics;
    let seen = wait_until(Duration::from_secs(30), || async { metrics.cancels_repeated.get() >= 10 }).await;
    assert!(seen, "the repeated cancels were not delivered");
    let stock = app.stock(product).await;
    assert_eq!((stock["redis"].as_i64(), stock["mysql"].as_i64()), (Some(10), Some(10)), "{stock}");
    assert_eq!(app.count("SELECT COUNT(*) FROM tb_stock_log WHERE reason = 'CANCEL'").await, 5);
    assert_eq!(app.count("SELECT COUNT(*) FROM tb_order_event WHERE event = 'CANCELLED'").await, 5);

    // release.lua acts once: a third release of a released order gives nothing back.
    let stock_store = StockStore::connect(&app.settings.redis).await.unwrap();
    assert_eq!(stock_store.release(product, &orders[0]).await.unwrap(), 0);
    assert_eq!(app.redis_stock(product).await, 10);
    app.check().await;
}

/// The writer committed the order and died before sending the cancel: the broker redelivers
/// the order message, and that delivery sends the cancel.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_writer_that_died_after_its_commit_still_gets_the_cancel_sent_on_redelivery() {
    let app = TestApp::spawn_lifecycle().await;
    let product = app.create_product(3).await;
    let stock = StockStore::connect(&app.settings.redis).await.unwrap();
    let order = OrderMessage {
        order_no: format!("{}-{product}", 1_000_000 + product),
        user_id: 9,
        product_id: product,
        quantity: 1,
        price: "6999.00".parse().unwrap(),
        accepted_at: 0,
    };
    // What happened before the crash: Redis took the stock, the writer committed.
    stock.take(product, order.user_id, 1, &order.order_no).await.unwrap();
    let pay_timeout = Duration::from_secs(app.settings.orders.pay_timeout_secs);
    writer::write(&app.db, &app.settings.rocketmq.order_writer_group, &order, pay_timeout).await.unwrap();
    assert_eq!(app.order(&order.order_no).await.1["status"], "UNPAID");

    // The redelivery.
    app.deliver(&app.settings.rocketmq.order_topic, "ORDER", &order.order_no, serde_json::to_vec(&order).unwrap())
        .await;
    app.wait_order_status(&order.order_no, "CANCELLED", 40).await;
    let back = wait_until(Duration::from_secs(10), || async { app.redis_stock(product).await == 3 }).await;
    assert!(back, "Redis stock did not come back");
    assert_eq!(app.count("SELECT CAST(stock AS SIGNED) FROM tb_seckill_product").await, 3);
    app.check().await;
}

/// A message that keeps failing for a cause an operator must fix (here a table renamed away)
/// lands in the dead-letter list after max reconsume times, and a replay after the fix writes
/// it. (An order that can never be written, such as one of a product MySQL does not have, is
/// a refusal instead: `tests/e2e/redis_loss.rs`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_that_always_fails_is_dead_lettered_and_can_be_replayed() {
    let (id, mut settings) = isolated_settings();
    settings.rocketmq.cancel_delay_level = 16;
    settings.orders.pay_timeout_secs = 3;
    settings.rocketmq.max_reconsume_times = 2;
    let app = TestApp::spawn_with(id, settings).await;
    let product = app.create_product(3).await;
    let order = OrderMessage {
        order_no: format!("77-{product}"),
        user_id: 4,
        product_id: product,
        quantity: 1,
        price: "6999.00".parse().unwrap(),
        accepted_at: 0,
    };
    app.take_for(&[&order]).await;
    sqlx::query("RENAME TABLE tb_user_seckill TO tb_user_seckill_away").execute(&app.db).await.unwrap();
    app.deliver(&app.settings.rocketmq.order_topic, "ORDER", &order.order_no, serde_json::to_vec(&order).unwrap())
        .await;

    let letters = app.wait_dead_letters().await;
    let letter = &letters[0];
    assert_eq!(letter["group"], app.settings.rocketmq.order_writer_group.as_str(), "{letter}");
    assert_eq!(letter["topic"], app.settings.rocketmq.order_topic.as_str(), "{letter}");
    assert_eq!(letter["key"], order.order_no.as_str(), "{letter}");
    assert!(letter["reason"].as_str().unwrap().contains("tb_user_seckill"), "{letter}");
    assert!(letter["times"].as_i64().unwrap() >= 2, "{letter}");
    assert_eq!(app.count("SELECT COUNT(*) FROM tb_seckill_order").await, 0);

    // Fix the cause (the table is back), then replay.
    sqlx::query("RENAME TABLE tb_user_seckill_away TO tb_user_seckill").execute(&app.db).await.unwrap();
    let (status, body) = app.admin_post(&format!("/admin/dead-letters/{}/replay", letter["id"]), None).await;
    assert_eq!(status, 200, "{body}");
    app.wait_order_status(&order.order_no, "UNPAID", 30).await;
    let (status, body) = app.admin_post("/admin/dead-letters/99999/replay", None).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("NO_SUCH_DEAD_LETTER")));
    let (status, _) = app.admin_post("/admin/dead-letters/x/replay", None).await;
    assert_eq!(status, 400);
    app.check_expecting_dead_letters(1).await;
}

/// The delayed cancel of an unpaid order never comes (lost, dead-lettered; here its level
/// waits 2 h): the backstop in `consume` cancels it through the same path once it is past its
/// `expireAt` and the grace, stock and buyer come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unpaid_order_whose_cancel_never_comes_is_cancelled_by_the_backstop() {
    let (id, mut settings) = isolated_settings();
    settings.orders.pay_timeout_secs = 1;
    settings.orders.backstop_grace_secs = 1;
    settings.orders.backstop_interval_ms = 200;
    let app = TestApp::spawn_with(id, settings).await;
    let product = app.create_product(3).await;
    let order_no = app.buy_queued(1, product).await;
    app.wait_order_status(&order_no, "UNPAID", 30).await;
    app.wait_order_status(&order_no, "CANCELLED", 20).await;
    let back = wait_until(Duration::from_secs(10), || async { app.redis_stock(product).await == 3 }).await;
    assert!(back, "Redis stock did not come back");
    assert!(!is_buyer(&app, product, 1).await, "the buyer may buy again");
    let consume = app.scrape(&format!("http://{}", app.workers().addr)).await;
    assert!(
        consume.lines().any(|l| l == "seckill_orders_total{event=\"backstop_cancelled\"} 1"),
        "the backstop counted its cancel:\n{consume}"
    );
    app.check().await;
}

/// One cancel message for two orders, the first still payable (its cancel came early), the
/// second overdue: the second is cancelled at once, the first is sent again and cancelled
/// once it is due. Neither holds the other back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_order_of_a_cancel_message_is_cancelled_on_its_own_and_an_early_one_waits_for_its_expiry() {
    let app = TestApp::spawn().await;
    let product = app.create_product(5).await;
    let early = app.buy_queued(1, product).await;
    let due = app.buy_queued(2, product).await;
    app.wait_order_status(&early, "UNPAID", 30).await;
    app.wait_order_status(&due, "UNPAID", 30).await;
    let set_expiry = |order_no: &str, secs_from_now: i64| {
        let at = chrono::Utc::now().naive_utc() + chrono::Duration::seconds(secs_from_now);
        sqlx::query("UPDATE tb_seckill_order SET expire_at = ? WHERE order_no = ?").bind(at).bind(order_no.to_string())
    };
    set_expiry(&early, 4).execute(&app.db).await.unwrap();
    set_expiry(&due, -1).execute(&app.db).await.unwrap();
    let body = serde_json::to_vec(&CancelMessage::of(vec![early.clone(), due.clone()])).unwrap();
    app.deliver(&app.settings.rocketmq.cancel_topic, "CANCEL", &early, body).await;

    app.wait_order_status(&due, "CANCELLED", 20).await;
    let (_, body) = app.order(&early).await;
    assert_eq!(body["status"], "UNPAID", "not cancelled before its expireAt: {body}");
    app.wait_order_status(&early, "CANCELLED", 30).await;
    let back = wait_until(Duration::from_secs(10), || async { app.redis_stock(product).await == 5 }).await;
    assert!(back, "both units came back once");
    app.check().await;
}
