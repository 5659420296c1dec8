//! Invariant 3: every QUEUED answer becomes exactly one order row, whatever is redelivered.

use std::time::Duration;

use seckill_e2e::{wait_until, TestApp};
use seckill_origin::orders::writer::{self, Written};
use seckill_origin::orders::OrderMessage;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_order_message_delivered_again_through_the_broker_changes_nothing() {
    let app = TestApp::spawn().await;
    let product = app.create_product(5).await;
    let order_no = app.buy_queued(11, product).await;
    app.wait_order_status(&order_no, "UNPAID", 30).await;

    // Replay the committed message, byte for byte, as the broker would on a redelivery.
    let row: (u64, u64, u32) =
        sqlx::query_as("SELECT user_id, product_id, quantity FROM tb_seckill_order WHERE order_no = ?")
            .bind(&order_no)
            .fetch_one(&app.db)
            .await
            .unwrap();
    let replay = OrderMessage {
        order_no: order_no.clone(),
        user_id: row.0,
        product_id: row.1,
        quantity: row.2,
        price: "6999.00".parse().unwrap(),
        accepted_at: 0,
    };
    for _ in 0..2 {
        app.deliver(&app.settings.rocketmq.order_topic, "ORDER", &order_no, serde_json::to_vec(&replay).unwrap()).await;
    }
    let metrics = &app.workers().metrics;
    let seen = wait_until(Duration::from_secs(30), || async { metrics.orders_redelivered.get() >= 2 }).await;
    assert!(seen, "the writer did not receive the replayed messages");

    assert_eq!(app.count("SELECT COUNT(*) FROM tb_seckill_order").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM tb_stock_log").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM tb_user_seckill").await, 1);
    let stock = app.stock(product).await;
    assert_eq!((stock["redis"].as_i64(), stock["mysql"].as_i64()), (Some(4), Some(4)));
    app.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_of_one_message_commit_once() {
    let app = TestApp::spawn().await;
    let product = app.create_product(3).await;
    let msg = OrderMessage {
        order_no: format!("1-{product}"),
        user_id: 5,
        product_id: product,
        quantity: 1,
        price: "10.00".parse().unwrap(),
        accepted_at: 1,
    };
    app.take_for(&[&msg]).await;
    let group = "writer-under-test";
    let timeout = Duration::from_secs(1800);
    let (a, b) =
        tokio::join!(writer::write(&app.db, group, &msg, timeout), writer::write(&app.db, group, &msg, timeout));
    let mut outcomes = vec![a.unwrap(), b.unwrap()];
    outcomes.sort_by_key(|w| *w == Written::AlreadyWritten);
    assert_eq!(outcomes, vec![Written::Created, Written::AlreadyWritten]);
    assert_eq!(app.count("SELECT COUNT(*) FROM tb_seckill_order").await, 1);
    assert_eq!(app.count("SELECT CAST(stock AS SIGNED) FROM tb_seckill_product").await, 2);
    app.check().await;
}
