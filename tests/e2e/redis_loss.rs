//! Redis losing writes it acknowledged: a flush, a crash that loses the last writes, stock
//! Redis should never have had. Before, the origin kept selling on the regressed state: units
//! were sold twice, and the orders MySQL could not hold were retried for hours and then
//! dead-lettered (200 QUEUED answers with no order and no word to the buyer). Now MySQL's
//! record of each load fences Redis: the sale is frozen (503 `SALE_FROZEN`, nothing taken),
//! healed by reconcile once the queue has drained, and an order that cannot be placed is a
//! refusal its buyer sees.

use std::time::Duration;

use seckill_e2e::redis_faults::{
    buyers_arrive, every_queued_answer_is_an_order_or_a_visible_refusal, sell_to, wait_healed,
};
use seckill_e2e::torture::redis_server::{Persistence, RedisServer};
use seckill_e2e::{isolated_settings, wait_until, TestApp};
use seckill_origin::startup::Workers;
use serde_json::json;

/// A test app on a Redis server of its own (the test flushes or crashes it).
async fn app_on_own_redis(persistence: Persistence) -> (TestApp, RedisServer) {
    let (id, settings) = isolated_settings();
    TestApp::spawn_on_own_redis(id, settings, persistence).await
}

async fn redis_cmd(app: &TestApp, args: &[&str]) {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    let _: redis::Value = cmd.query_async(&mut app.redis.clone()).await.expect(args[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flush_with_orders_queued_refuses_a_plain_preload_then_heals_and_sells_nothing_twice() {
    let (mut app, _redis) = app_on_own_redis(Persistence::Aof).await;
    let product = app.create_product(30).await;
    // The writer is down: ten orders wait in the queue, known to Redis only.
    app.workers.take().unwrap().shutdown().await;
    let mut queued = Vec::new();
    for user in 1..=10 {
        queued.push(app.buy_queued(user, product).await);
    }
    redis_cmd(&app, &["FLUSHALL"]).await;

    // MySQL says the sale was loaded: a plain preload would copy MySQL's 30 units while ten
    // are in the queue. Refused, whatever Redis lost.
    let path = format!("/admin/products/{product}/preload");
    let (status, body) = app.admin_post(&path, None).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("REDIS_STATE_LOST")), "{body}");
    // The fence froze it: nothing is sold, not even to the buyers Redis forgot.
    let frozen = wait_until(Duration::from_secs(5), || async {
        let (status, body) = app.buy(1, product).await;
        assert_ne!(status, 200, "a buyer of a queued order bought twice: {body}");
        (status, body["code"].as_str()) == (503, Some("SALE_FROZEN"))
    })
    .await;
    assert!(frozen, "the flushed sale was not frozen");
    let (status, body) = app.buy(100, product).await;
    assert_eq!((status, body["code"].as_str()), (503, Some("SALE_FROZEN")), "{body}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(app.product_state(product).frozen().await.is_some(), "no heal while orders are in the queue");

    // The writer comes back, drains the queue, and the origin heals the sale by itself.
    app.workers = Some(Workers::start(app.settings.clone()).await.unwrap());
    wait_healed(&app, product, 60).await;
    let runs = app.count(&format!("SELECT COUNT(*) FROM tb_reconcile_run WHERE product_id = {product}")).await;
    assert!(runs >= 1, "the heal is a logged reconcile run");
    for user in 1..=10 {
        let (status, body) = app.buy(user, product).await;
        assert_eq!((status, body["code"].as_str()), (409, Some("ALREADY_BOUGHT")), "user {user}: {body}");
    }
    sell_to(&app, product, 100..140, &mut queued).await;
    assert_eq!(queued.len(), 30, "exactly the 20 units left were sold after the heal");
    let (orders, refusals) = every_queued_answer_is_an_order_or_a_visible_refusal(&app, &queued).await;
    assert_eq!((orders, refusals), (30, 0));
    app.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_crash_that_lost_its_last_writes_freezes_the_sale_and_every_200_is_an_order_or_a_refusal() {
    let (app, mut redis) = app_on_own_redis(Persistence::SnapshotOnly).await;
    let product = app.create_product(20).await;
    let mut queued = Vec::new();
    for user in 1..=5 {
        queued.push(app.buy_queued(user, product).await);
    }
    for order_no in &queued {
        app.wait_order_status(order_no, "UNPAID", 30).await;
    }
    redis_cmd(&app, &["SAVE"]).await;
    // Five more orders, written to MySQL, that the crash will take from Redis.
    for user in 6..=10 {
        queued.push(app.buy_queued(user, product).await);
    }
    for order_no in &queued[5..] {
        app.wait_order_status(order_no, "UNPAID", 30).await;
    }
    redis.crash_and_restart().await.unwrap();
    // The test's own connection notices the restart on its first command.
    let _ = redis::cmd("PING").query_async::<String>(&mut app.redis.clone()).await;
    let regressed = app.redis_stock(product).await;
    let healed_already = app.count("SELECT COUNT(*) FROM tb_reconcile_run").await > 0;
    assert!(regressed == 15 || healed_already, "Redis went back to the snapshot (5 units to sell twice): {regressed}");

    // Buyers arrive at once: the ones Redis forgot and new ones. Until the fence sees the new
    // server they may buy from the regressed state; whatever they are told, every 200 ends
    // as one order or a visible refusal, and no unit is sold twice.
    let arrivals = buyers_arrive(&app, product, (6..=10).chain(200..240)).await;
    assert!(arrivals.pending.is_empty(), "a live Redis leaves no outcome unknown: {:?}", arrivals.pending);
    queued.extend(arrivals.queued);
    let frozen_answers = arrivals.frozen;
    wait_healed(&app, product, 60).await;
    let heals = app.count(&format!("SELECT COUNT(*) FROM tb_reconcile_run WHERE product_id = {product}")).await;
    assert!(heals >= 1, "the crash was noticed and healed by a logged reconcile");
    // After the heal, the rest sells exactly.
    sell_to(&app, product, 300..330, &mut queued).await;
    let (orders, refusals) = every_queued_answer_is_an_order_or_a_visible_refusal(&app, &queued).await;
    eprintln!("crash: {orders} orders, {refusals} refusals, {frozen_answers} SALE_FROZEN answers, {heals} heals");
    assert_eq!(orders, 20, "every unit sold once, none twice");
    app.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_redis_sold_from_stock_mysql_lacks_are_refused_visibly_and_the_sale_heals() {
    let app = TestApp::spawn().await;
    let product = app.create_product(5).await;
    // Redis holds three units MySQL does not have (a stale load, a regression the fence could
    // not see): the epoch is the recorded one.
    redis_cmd(&app, &["INCRBY", &app.product_key(product, "stock"), "3"]).await;
    let mut queued = Vec::new();
    for user in 1..=8 {
        queued.push(app.buy_queued(user, product).await);
    }
    let (orders, refusals) = every_queued_answer_is_an_order_or_a_visible_refusal(&app, &queued).await;
    assert_eq!((orders, refusals), (5, 3));
    let refused: Vec<(String, u64, String)> =
        sqlx::query_as("SELECT order_no, user_id, reason FROM tb_rejected_order ORDER BY order_no")
            .fetch_all(&app.db)
            .await
            .unwrap();
    for (order_no, user, reason) in &refused {
        assert_eq!(reason, "STOCK_SHORTAGE");
        let (status, body) = app.order_as(order_no, *user).await;
        assert_eq!((status, body["status"].as_str()), (200, Some("REFUSED")), "{body}");
        assert_eq!(body["refusal"]["reason"], "STOCK_SHORTAGE", "{body}");
        let (status, body) = app.pay(order_no, *user).await;
        assert_eq!((status, body["code"].as_str()), (409, Some("ORDER_REFUSED")), "{body}");
    }
    // The shortage froze the sale; the origin healed it: Redis holds MySQL's 0, and the
    // refused buyers are free (sold out, not "already bought").
    wait_healed(&app, product, 60).await;
    assert_eq!(app.redis_stock(product).await, 0);
    for (_, user, _) in &refused {
        let (status, body) = app.buy(*user, product).await;
        assert_eq!((status, body["code"].as_str()), (409, Some("SOLD_OUT")), "{body}");
    }
    app.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_of_a_product_mysql_lacks_is_refused_at_once_not_dead_lettered() {
    let app = TestApp::spawn().await;
    let order = seckill_origin::orders::OrderMessage {
        order_no: "90-999".into(),
        user_id: 9,
        product_id: 999,
        quantity: 1,
        price: "5.00".parse().unwrap(),
        accepted_at: 0,
    };
    app.deliver(&app.settings.rocketmq.order_topic, "ORDER", &order.order_no, serde_json::to_vec(&order).unwrap())
        .await;
    let refused = wait_until(Duration::from_secs(30), || async {
        app.count("SELECT COUNT(*) FROM tb_rejected_order WHERE reason = 'NO_SUCH_PRODUCT'").await == 1
    })
    .await;
    assert!(refused, "the order was not refused");
    let (status, body) = app.order_as(&order.order_no, 9).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("REFUSED")), "{body}");
    app.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancel_between_reconciles_snapshot_and_its_script_gives_the_unit_and_the_buyer_back() {
    let app = TestApp::spawn().await;
    let product = app.create_product(5).await;
    let order_no = app.buy_queued(1, product).await;
    app.wait_order_status(&order_no, "UNPAID", 30).await;
    let state = &app.server.state;
    // Its payment time is over, so its cancel may run.
    sqlx::query("UPDATE tb_seckill_order SET expire_at = ? WHERE order_no = ?")
        .bind(chrono::Utc::now().naive_utc() - chrono::Duration::seconds(1))
        .bind(&order_no)
        .execute(&app.db)
        .await
        .unwrap();
    let snapshot = seckill_origin::products::sale_snapshot(&app.db, product).await.unwrap().unwrap();
    // The order's cancel lands now, after the snapshot and before the script.
    let cancelled = seckill_origin::orders::canceller::cancel_if_unpaid(&app.db, &order_no).await.unwrap();
    assert!(matches!(cancelled, seckill_origin::orders::canceller::CancelOutcome::Cancelled { .. }));
    assert_eq!(state.stock().release(product, &order_no).await.unwrap(), 1);
    let reconciler = seckill_origin::fencing::reconcile::Reconciler {
        db: state.db(),
        stock: state.stock(),
        messaging: state.messaging(),
        rocketmq: &app.settings.rocketmq,
    };
    let report = reconciler.repair(product, snapshot, 0).await.unwrap();
    assert_eq!(report.cancelled_meanwhile, 1, "{report:?}");
    assert_eq!(app.redis_stock(product).await, 5, "the cancelled unit is on sale again");
    let again = app.buy_queued(1, product).await;
    app.wait_order_status(&again, "UNPAID", 30).await;
    app.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sharded_sale_left_half_reconciled_is_frozen_and_a_rerun_completes_it() {
    let app = TestApp::spawn().await;
    let product =
        app.create_sale(json!({ "name": "Hot phone", "price": "999.00", "stock": 40, "stockBuckets": 4 })).await;
    let mut queued = Vec::new();
    for user in 1..=12 {
        queued.push(app.buy_queued(user, product).await);
    }
    // What a reconcile killed after its second bucket leaves: every bucket frozen by it, two
    // of them on its new epoch, two on the old one.
    let buckets = seckill_origin::stock::Bucket::all(product, 4);
    for bucket in &buckets {
        let window = bucket.key(&app.settings.redis.key_prefix, "window");
        redis_cmd(&app, &["HSET", &window, "frozen", "killed-run"]).await;
        if bucket.index < 2 {
            redis_cmd(&app, &["HSET", &window, "epoch", "killed-run"]).await;
        }
    }
    let (status, body) = app.buy(100, product).await;
    assert_eq!((status, body["code"].as_str()), (503, Some("SALE_FROZEN")), "never sold from a mixed state: {body}");
    // The fence sees the mixed epochs, and the re-run (its heal) completes the sale.
    wait_healed(&app, product, 60).await;
    sell_to(&app, product, 100..160, &mut queued).await;
    let (orders, refusals) = every_queued_answer_is_an_order_or_a_visible_refusal(&app, &queued).await;
    assert_eq!((orders, refusals), (40, 0), "the sale sold out exactly");
    app.check().await;
}
