//! Reconcile after Redis lost data: the runbook "Redis lost its data" of docs/OPERATIONS.md, step by
//! step. Before, the only repair was a forced preload, which copied MySQL while orders were
//! still in the queue: those orders then met a MySQL stock that the new buys had used up, and
//! were refused (a 200 with no order) — a unit sold twice in Redis.

use std::time::Duration;

use seckill_e2e::{isolated_settings, wait_until, TestApp};
use seckill_origin::startup::Workers;
use seckill_origin::stock::{Deduction, Reconciled, RedisChange, SaleSnapshot};
use serde_json::Value;

/// Every key of the test's prefix, gone: what a Redis restart without its data looks like.
async fn flush(app: &TestApp) {
    let mut redis = app.redis.clone();
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{}:*", app.settings.redis.key_prefix)).query_async(&mut redis).await.unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL").arg(&keys).query_async(&mut redis).await.unwrap();
    }
}

/// An app whose origins freeze a sale Redis lost but leave the healing to the operator's
/// reconcile: the runbook's manual path, step by step.
async fn spawn_healed_by_hand() -> TestApp {
    let (id, mut settings) = isolated_settings();
    settings.redis.fence_auto_heal = false;
    TestApp::spawn_with(id, settings).await
}

fn changes_of<'a>(report: &'a Value, kind: &str) -> Vec<&'a Value> {
    report["changes"].as_array().unwrap().iter().filter(|c| c["kind"] == kind).collect()
}

#[tokio::test]
async fn after_redis_lost_everything_reconcile_waits_for_the_queue_then_the_sale_sells_exactly_its_stock() {
    let mut app = spawn_healed_by_hand().await;
    let product = app.create_product(10).await;
    let written = [app.buy_queued(1, product).await, app.buy_queued(2, product).await];
    for order_no in &written {
        app.wait_order_status(order_no, "UNPAID", 30).await;
    }
    // The writer is down: two more orders wait in the queue, known to Redis only.
    app.workers.take().unwrap().shutdown().await;
    let queued = [app.buy_queued(3, product).await, app.buy_queued(4, product).await];

    flush(&app).await;
    // MySQL recorded the sale as loaded: the origin's fence freezes it, and nothing is sold
    // until it is repaired.
    let frozen = wait_until(Duration::from_secs(5), || async {
        let (status, body) = app.buy(5, product).await;
        assert!(matches!(status, 404 | 503), "nothing is sold meanwhile: {status} {body}");
        (status, body["code"].as_str()) == (503, Some("SALE_FROZEN"))
    })
    .await;
    assert!(frozen, "the flushed sale was not frozen");

    let path = format!("/admin/products/{product}/reconcile");
    let (status, dry) = app.admin_post(&format!("{path}?dryRun=true"), None).await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["dryRun"], true);
    assert_eq!(dry["runId"], Value::Null);
    assert!(dry["orderQueueLag"].as_u64().unwrap() >= 2, "the two queued orders are the lag: {dry}");
    // Redis forgot the queued orders, so a repair now would load 8: exactly the old defect.
    assert_eq!((dry["redisStockBefore"].clone(), dry["redisStock"].as_i64()), (Value::Null, Some(8)), "{dry}");
    assert_eq!(app.stock(product).await["redis"], Value::Null, "a dry run changes nothing");

    let (status, body) = app.admin_post(&format!("{path}?waitSecs=1"), None).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("ORDERS_IN_QUEUE")), "{body}");
    assert_eq!(app.stock(product).await["redis"], Value::Null, "a refused reconcile changes nothing");
    assert_eq!(app.count("SELECT COUNT(*) FROM tb_reconcile_run").await, 0);

    // The runbook: let the writer drain the queue, then reconcile.
    app.workers = Some(Workers::start(app.settings.clone()).await.unwrap());
    let (status, report) = app.admin_post(&format!("{path}?waitSecs=60"), None).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["thawed"], true, "the reconcile lifted the freeze: {report}");
    for order_no in &queued {
        app.wait_order_status(order_no, "UNPAID", 30).await;
    }
    assert_eq!(report["orderQueueLag"], 0);
    assert_eq!((report["redisStockBefore"].clone(), report["redisStock"].as_i64()), (Value::Null, Some(6)), "{report}");
    assert_eq!((report["inFlightUnits"].as_i64(), report["mysqlStock"].as_i64()), (Some(0), Some(6)));
    assert_eq!(changes_of(&report, "stock").len(), 1);
    assert_eq!(changes_of(&report, "window").len(), 4, "start, end, limit and price come back");
    assert_eq!(changes_of(&report, "deduction").len(), 4, "{report}");
    assert_eq!(changes_of(&report, "buyer").len(), 4, "{report}");
    assert!(report["changes"].as_array().unwrap().iter().all(|c| c["before"].is_null()), "all added: {report}");
    let run = report["runId"].as_u64().expect("the run is logged");
    let logged = app.count(&format!("SELECT COUNT(*) FROM tb_reconcile_change WHERE run_id = {run}")).await;
    assert_eq!(logged, report["changes"].as_array().unwrap().len() as i64, "every change is in the log");
    let (status, again) = app.admin_post(&path, None).await;
    assert_eq!((status, again["changes"].as_array().map(Vec::len)), (200, Some(0)), "nothing left: {again}");

    // The repaired sale: the four buyers stay buyers, and exactly 6 more units sell.
    assert_eq!(app.buy(3, product).await.1["code"], "ALREADY_BOUGHT");
    let mut sold = Vec::new();
    for user in 10..30 {
        let (status, body) = app.buy(user, product).await;
        match status {
            200 => sold.push(body["orderNo"].as_str().unwrap().to_string()),
            409 => assert_eq!(body["code"], "SOLD_OUT", "{body}"),
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(sold.len(), 6, "the stock that was left, no more");
    for order_no in &sold {
        app.wait_order_status(order_no, "UNPAID", 30).await;
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM tb_rejected_order").await, 0, "every 200 became an order");
    app.check().await;
}

#[tokio::test]
async fn reconcile_keeps_what_redis_knows_is_in_flight_and_drops_what_nobody_holds() {
    let app = spawn_healed_by_hand().await;
    let product = app.create_product(10).await;
    let active = app.buy_queued(1, product).await;
    app.wait_order_status(&active, "UNPAID", 30).await;
    let stock = app.server.state.stock();
    let mut redis = app.redis.clone();
    let key = |what: &str| app.product_key(product, what);
    // Redis's view, partly lost and partly stale: the active order's deduction and its buyer
    // are gone; one order is in flight in the deduction log (its buyer lost too), another only
    // in the outbox; a stray buyer holds nothing.
    let _: () = redis::cmd("HDEL").arg(key("orders")).arg(&active).query_async(&mut redis).await.unwrap();
    let _: () = redis::cmd("HDEL").arg(key("buyers")).arg(1).query_async(&mut redis).await.unwrap();
    let _: () = redis::cmd("HSET").arg(key("orders")).arg("IN-LOG").arg("7,2").query_async(&mut redis).await.unwrap();
    let _: () = redis::cmd("XADD")
        .arg(key("outbox"))
        .arg("*")
        .arg(&["o", "IN-OUTBOX", "u", "8", "q", "3", "p", "9.90", "t", "0"])
        .query_async(&mut redis)
        .await
        .unwrap();
    let _: () = redis::cmd("HSET").arg(key("buyers")).arg(99).arg("STRAY").query_async(&mut redis).await.unwrap();
    let _: () = redis::cmd("SET").arg(key("stock")).arg(42).query_async(&mut redis).await.unwrap();

    let snapshot = SaleSnapshot {
        stock: 9,
        start_ms: 0,
        end_ms: 0,
        per_user_limit: 5,
        price: "9.90".into(),
        buckets: 1,
        orders: vec![(active.clone(), Deduction { user_id: 1, quantity: 1 })],
    };
    // The epoch MySQL recorded: a run under another one would be a load the fence did not expect.
    let epoch = seckill_origin::fencing::load_record(&app.db, product).await.unwrap().unwrap().epoch.unwrap();
    let dry = stock.reconcile(product, &snapshot, true, &epoch).await.unwrap();
    let Reconciled::Repaired { stock_before, stock: after, in_flight_units, in_flight_orders, mut changes } = dry
    else {
        panic!("{dry:?}")
    };
    assert_eq!((stock_before, after, in_flight_units, in_flight_orders), (Some(42), 4, 5, 2));
    changes.retain(|c| c.kind != "window");
    changes.sort_by(|a, b| (&a.kind, &a.item).cmp(&(&b.kind, &b.item)));
    let change = |kind: &str, item: &str, before: Option<&str>, after: Option<&str>| RedisChange {
        bucket: 0,
        kind: kind.into(),
        item: item.into(),
        before: before.map(Into::into),
        after: after.map(Into::into),
    };
    assert_eq!(
        changes,
        vec![
            change("buyer", "1", None, Some(&active)),
            change("buyer", "7", None, Some("IN-LOG")),
            change("buyer", "8", None, Some("IN-OUTBOX")),
            change("buyer", "99", Some("STRAY"), None),
            change("deduction", &active, None, Some("1,1")),
            change("deduction", "IN-OUTBOX", None, Some("8,3")),
            change("stock", "stock", Some("42"), Some("4")),
        ]
    );
    let unchanged: i64 = redis::cmd("GET").arg(key("stock")).query_async(&mut redis).await.unwrap();
    assert_eq!(unchanged, 42, "dry");

    let applied = stock.reconcile(product, &snapshot, false, &epoch).await.unwrap();
    assert!(matches!(applied, Reconciled::Repaired { stock: 4, .. }), "{applied:?}");
    let log: std::collections::HashMap<String, String> =
        redis::cmd("HGETALL").arg(key("orders")).query_async(&mut redis).await.unwrap();
    let records: std::collections::BTreeMap<u64, String> =
        redis::cmd("HGETALL").arg(key("buyers")).query_async(&mut redis).await.unwrap();
    let buyers: Vec<u64> = records.keys().copied().collect();
    assert_eq!(
        (records[&1].as_str(), records[&7].as_str(), records[&8].as_str()),
        (active.as_str(), "IN-LOG", "IN-OUTBOX"),
        "each buyer record names its order"
    );
    assert_eq!(log.len(), 3, "{log:?}");
    assert_eq!((log["IN-LOG"].as_str(), log["IN-OUTBOX"].as_str()), ("7,2", "8,3"));
    assert_eq!(buyers, vec![1, 7, 8]);
    let second = stock.reconcile(product, &snapshot, true, &epoch).await.unwrap();
    assert!(matches!(&second, Reconciled::Repaired { changes, .. } if changes.is_empty()), "{second:?}");

    // More units in flight than MySQL has left: refused, nothing changed.
    let short = SaleSnapshot { stock: 4, ..snapshot.clone() };
    let refused = stock.reconcile(product, &short, false, &epoch).await.unwrap();
    assert_eq!(refused, Reconciled::Inconsistent { stock: -1, in_flight_units: 5 });

    // Put the made-up state back to the true one before the invariant checker looks.
    let _: () = redis::cmd("DEL").arg(key("outbox")).query_async(&mut redis).await.unwrap();
    for order_no in ["IN-LOG", "IN-OUTBOX"] {
        stock.release(product, order_no).await.unwrap();
    }
    let (status, body) = app.admin_post(&format!("/admin/products/{product}/reconcile"), None).await;
    assert_eq!(status, 200, "{body}");
    app.check().await;
}

#[tokio::test]
async fn bad_reconcile_requests_are_400s_naming_the_problem() {
    let app = TestApp::spawn().await;
    let product = app.create_product(3).await;
    for (query, expected) in [
        ("/admin/products/0/reconcile".to_string(), "product id"),
        (format!("/admin/products/{product}/reconcile?dryRun=yes"), "dryRun"),
        (format!("/admin/products/{product}/reconcile?waitSecs=301"), "waitSecs"),
        (format!("/admin/products/{product}/reconcile?waitSecs=-1"), "waitSecs"),
    ] {
        let (status, body) = app.admin_post(&query, None).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body["message"].as_str().unwrap().contains(expected), "{query}: {body}");
    }
    let (status, body) = app.admin_post("/admin/products/999999/reconcile", None).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("NO_SUCH_PRODUCT")), "{body}");
    assert_eq!(app.count("SELECT COUNT(*) FROM tb_reconcile_run").await, 0, "nothing logged");
    app.check().await;
}

#[tokio::test]
async fn the_reconcile_command_repairs_a_flushed_sale_and_prints_its_report() {
    let app = spawn_healed_by_hand().await;
    let product = app.create_product(5).await;
    let order_no = app.buy_queued(1, product).await;
    app.wait_order_status(&order_no, "UNPAID", 30).await;
    flush(&app).await;
    let output = seckill_e2e::origin_command(&app.settings, &["reconcile", &product.to_string(), "--wait-secs", "30"])
        .output()
        .expect("run seckill-origin reconcile");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).expect("a JSON report");
    assert_eq!((report["redisStock"].as_i64(), report["dryRun"].as_bool()), (Some(4), Some(false)), "{report}");
    assert!(wait_until(Duration::from_secs(5), || async { app.buy(1, product).await.0 == 409 }).await);
    let output = seckill_e2e::origin_command(&app.settings, &["reconcile", "0"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("PRODUCT_ID"));
    app.check().await;
}
