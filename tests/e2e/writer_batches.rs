//! The batched order writer: duplicates and poison messages inside one batch, and orders MySQL
//! refuses for good (their stock goes back, nothing is retried for hours).

use std::time::Duration;

use seckill_e2e::{isolated_settings, wait_until, TestApp};
use seckill_origin::orders::writer::{self, BatchWritten};
use seckill_origin::orders::OrderMessage;
use serde_json::json;

fn order(order_no: &str, user_id: u64, product_id: u64) -> OrderMessage {
    OrderMessage {
        order_no: order_no.to_string(),
        user_id,
        product_id,
        quantity: 1,
        price: "10.00".parse().unwrap(),
        accepted_at: 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_carrying_one_message_twice_writes_it_once() {
    let app = TestApp::spawn().await;
    let product = app.create_product(10).await;
    let (a, b, c) = (
        order(&format!("1-{product}"), 1, product),
        order(&format!("2-{product}"), 2, product),
        order(&format!("3-{product}"), 3, product),
    );
    app.take_for(&[&a, &b, &c]).await;
    let group = "writer-under-test";
    let timeout = Duration::from_secs(1800);

    let first = writer::write_batch(&app.db, group, &[a.clone(), b.clone(), a.clone()], timeout).await.unwrap();
    assert_eq!(
        first,
        BatchWritten {
            created: vec![a.order_no.clone(), b.order_no.clone()],
            already_written: vec![a.order_no.clone()]
        }
    );
    // A redelivered batch that also carries a new order: only the new one is written.
    let second = writer::write_batch(&app.db, group, &[a.clone(), c.clone()], timeout).await.unwrap();
    assert_eq!(second, BatchWritten { created: vec![c.order_no.clone()], already_written: vec![a.order_no.clone()] });

    assert_eq!(app.count("SELECT COUNT(*) FROM tb_seckill_order").await, 3);
    assert_eq!(app.count("SELECT COUNT(*) FROM tb_user_seckill").await, 3);
    assert_eq!(app.count("SELECT COUNT(*) FROM tb_order_event WHERE event = 'CREATED'").await, 3);
    assert_eq!(app.count("SELECT CAST(stock AS SIGNED) FROM tb_seckill_product").await, 7);
    // The stock log tells one unit per order, each starting where the previous one ended.
    let log: Vec<(String, u32, u32)> =
        sqlx::query_as("SELECT order_no, before_stock, after_stock FROM tb_stock_log ORDER BY before_stock DESC")
            .fetch_all(&app.db)
            .await
            .unwrap();
    let levels: Vec<(u32, u32)> = log.iter().map(|(_, b, a)| (*b, *a)).collect();
    assert_eq!(levels, vec![(10, 9), (9, 8), (8, 7)], "{log:?}");
    app.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_poison_message_in_a_batch_is_dead_lettered_and_the_rest_are_written_once() {
    let (id, mut settings) = isolated_settings();
    settings.rocketmq.max_reconsume_times = 2;
    let app = TestApp::spawn_with(id, settings).await;
    let product = app.create_product(10).await;
    let good = [order(&format!("11-{product}"), 1, product), order(&format!("12-{product}"), 2, product)];
    app.take_for(&[&good[0], &good[1]]).await;
    let body = |o: &OrderMessage| serde_json::to_vec(o).unwrap();
    let poison_key = format!("13-{product}");
    app.deliver_batch(
        &app.settings.rocketmq.order_topic,
        "ORDER",
        vec![
            (good[0].order_no.clone(), body(&good[0])),
            (good[0].order_no.clone(), body(&good[0])),
            (poison_key.clone(), b"{\"orderNo\": \"13\", this is not an order".to_vec()),
            (good[1].order_no.clone(), body(&good[1])),
        ],
    )
    .await;

    let letters = app.wait_dead_letters().await;
    // Let any stray redelivery of the good ones land before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["key"], poison_key.as_str());
    assert!(letters[0]["reason"].as_str().unwrap().contains("unreadable"), "{:?}", letters[0]);
    assert_eq!(app.count("SELECT COUNT(*) FROM tb_seckill_order").await, 2);
    assert_eq!(app.count("SELECT COUNT(*) FROM tb_stock_log").await, 2);
    assert_eq!(app.count("SELECT CAST(stock AS SIGNED) FROM tb_seckill_product").await, 8);
    app.check_expecting_dead_letters(1).await;
}

/// Redis lost a buyer (the user's first order is already in MySQL), so it took stock for a
/// second order of the same user. MySQL refuses it for good: recorded with its reason, its
/// stock back in Redis, the user still a buyer (of the first order).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_active_order_of_one_user_is_refused_and_its_stock_returns() {
    let app = TestApp::spawn().await;
    let product = app.create_product(10).await;
    let first = app.buy_queued(5, product).await;
    app.wait_order_status(&first, "UNPAID", 30).await;

    let buyers = app.product_key(product, "buyers");
    let _: () = redis::cmd("HDEL").arg(&buyers).arg(5).query_async(&mut app.redis.clone()).await.unwrap();
    let second = app.buy_queued(5, product).await;

    let refused = wait_until(Duration::from_secs(30), || async {
        app.count("SELECT COUNT(*) FROM tb_rejected_order").await == 1 && app.redis_stock(product).await == 9
    })
    .await;
    assert!(refused, "the second order was not refused, or its stock did not come back: {}", app.stock(product).await);
    let (status, listed) = app.admin_get(&format!("/admin/rejected-orders?productId={product}")).await;
    assert_eq!(status, 200, "{listed}");
    let rejected = &listed["rejectedOrders"][0];
    assert_eq!(
        (rejected["orderNo"].as_str(), rejected["reason"].as_str()),
        (Some(second.as_str()), Some("DUPLICATE_ACTIVE_ORDER")),
        "{listed}"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM tb_seckill_order").await, 1);
    let stock = app.stock(product).await;
    assert_eq!((stock["redis"].as_i64(), stock["mysql"].as_i64()), (Some(9), Some(9)), "{stock}");
    // The user holds the first order, so they may not buy again.
    assert_eq!(app.buy(5, product).await.1["code"], "ALREADY_BOUGHT");
    let (_, metrics) = app.admin_get("/admin/metrics").await;
    assert_eq!(metrics["buyQueued"], 2);
    assert_eq!(app.workers().metrics.orders_rejected.get(), 1);
    app.assert_invariants(product, 10).await;
    app.check().await;
}

/// price × quantity beyond DECIMAL(14,2): refused at once (not retried for hours), stock back,
/// buyer freed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_whose_amount_does_not_fit_is_refused_and_its_stock_returns() {
    let app = TestApp::spawn().await;
    let product =
        app.create_sale(json!({ "name": "Gold bar", "price": "1.00", "stock": 5000, "perUserLimit": 1000 })).await;
    // Product creation now refuses a price whose largest order cannot be stored; a sale made
    // before that check (or edited by hand) can still carry one, and the writer must cope.
    sqlx::query("UPDATE tb_seckill_product SET price = 1000000000.00 WHERE id = ?")
        .bind(product)
        .execute(&app.db)
        .await
        .unwrap();
    let window = app.product_key(product, "window");
    let _: () = redis::cmd("HSET")
        .arg(&window)
        .arg("price")
        .arg("1000000000.00")
        .query_async(&mut app.redis.clone())
        .await
        .unwrap();
    let resp = app.buy_raw(json!({ "userId": 8, "productId": product, "quantity": 1000 }).to_string()).await;
    assert_eq!(resp.status(), 200);
    let refused = wait_until(Duration::from_secs(30), || async { app.redis_stock(product).await == 5000 }).await;
    assert!(refused, "stock did not come back: {}", app.stock(product).await);
    let (_, listed) = app.admin_get("/admin/rejected-orders").await;
    assert_eq!(listed["rejectedOrders"][0]["reason"], "AMOUNT_TOO_LARGE", "{listed}");
    assert_eq!(app.count("SELECT COUNT(*) FROM tb_seckill_order").await, 0);
    app.assert_invariants(product, 5000).await;
    // The buyer was freed: a smaller order goes through.
    let order_no = app.buy_queued(8, product).await;
    app.wait_order_status(&order_no, "UNPAID", 30).await;
    app.check().await;
}
