//! Hot-product sharding against the real services: a sale created with `stockBuckets` K keeps
//! its Redis stock in K buckets (K hash tags), each user in one of them; a bucket that runs dry
//! borrows from the others, so the sale sells out exactly. The 3,000-buy burst on a cluster is
//! in `buy_path.rs`.

use std::collections::HashMap;
use std::time::Duration;

use seckill_e2e::{wait_until, TestApp};
use seckill_origin::stock::{bucket_of, Bucket};
use serde_json::json;

async fn sharded_sale(app: &TestApp, stock: u64, buckets: u32) -> u64 {
    app.create_sale(json!({ "name": "Hot phone", "price": "10.00", "stock": stock, "stockBuckets": buckets })).await
}

/// Users whose buys `bucket` (of `buckets`) decides, from user 1 up.
fn users_of(bucket: u32, buckets: u32, count: usize) -> Vec<u64> {
    (1..).filter(|u| bucket_of(*u, buckets) == bucket).take(count).collect()
}

async fn get<T: redis::FromRedisValue>(app: &TestApp, cmd: &str, key: String) -> T {
    redis::cmd(cmd).arg(key).query_async(&mut app.redis.clone()).await.unwrap()
}

fn key(app: &TestApp, product: u64, index: u32, what: &str) -> String {
    Bucket { product_id: product, index }.key(&app.settings.redis.key_prefix, what)
}

/// Every buyer is in one bucket, which holds 2 of the 10 units: it borrows the other 8 from the
/// other three buckets one loan at a time, and SOLD_OUT comes only after the tenth unit. Once
/// the unpaid orders are cancelled their stock comes back to the buyers' bucket and sells again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dry_bucket_borrows_from_the_others_and_the_sale_sells_out_exactly() {
    let app = TestApp::spawn_lifecycle().await;
    let product = sharded_sale(&app, 10, 4).await;
    let stocks = |app: &TestApp| {
        let keys: Vec<String> = (0..4).map(|b| key(app, product, b, "stock")).collect();
        let app_redis = app.redis.clone();
        async move {
            let mut out = Vec::new();
            for k in keys {
                out.push(redis::cmd("GET").arg(k).query_async::<i64>(&mut app_redis.clone()).await.unwrap());
            }
            out
        }
    };
    assert_eq!(stocks(&app).await, vec![3, 3, 2, 2], "10 units dealt out over 4 buckets");
    assert_eq!(app.stock(product).await["redis"], json!(10), "the stock view adds the buckets up");

    let users = users_of(3, 4, 14);
    let mut orders = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let (status, body) = app.buy(*user, product).await;
        if i < 10 {
            assert_eq!(status, 200, "buy {} of 10 units: {body}", i + 1);
            orders.push(body["orderNo"].as_str().unwrap().to_string());
        } else {
            assert_eq!((status, body["code"].as_str()), (409, Some("SOLD_OUT")), "buy {}: {body}", i + 1);
        }
    }
    assert_eq!(stocks(&app).await, vec![0, 0, 0, 0]);
    for b in 0..4 {
        let pending: u64 = get(&app, "HLEN", key(&app, product, b, "transfers")).await;
        assert_eq!(pending, 0, "bucket {b} has unfinished loans");
    }
    let loans: u64 = get(&app, "SCARD", key(&app, product, 3, "received")).await;
    assert!(loans >= 3, "bucket 3 borrowed from each of the others: {loans} loans");

    // Level 16 is 3 s on the test broker: every unpaid order is cancelled, its unit goes back
    // to bucket 3, and the buyers who heard SOLD_OUT can buy.
    for order in &orders {
        app.wait_order_status(order, "CANCELLED", 30).await;
    }
    assert!(
        wait_until(Duration::from_secs(10), || async { stocks(&app).await == vec![0, 0, 0, 10] }).await,
        "cancelled units are back in the buyers' bucket: {:?}",
        stocks(&app).await
    );
    let mut again = Vec::new();
    for user in &users[10..] {
        again.push(app.buy_queued(*user, product).await);
    }
    for order in &again {
        app.wait_order_status(order, "CANCELLED", 30).await;
    }
    app.check().await;
}

/// A lender killed between lending (its units left its bucket) and the borrower receiving
/// them leaves a pending loan; the sweeper finishes it, once. A loan recorded before the
/// lender's last preload is dropped without moving a unit: the preload counted them again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sweeper_finishes_a_loan_cut_short_and_drops_one_from_before_the_preload() {
    let (id, mut settings) = seckill_e2e::isolated_settings();
    settings.buy.sweep_after_ms = 1_000;
    settings.buy.sweep_interval_ms = 200;
    let app = TestApp::spawn_with(id, settings).await;
    let product = sharded_sale(&app, 8, 2).await;
    let epoch: String = redis::cmd("HGET")
        .arg(key(&app, product, 0, "window"))
        .arg("epoch")
        .query_async(&mut app.redis.clone())
        .await
        .unwrap();
    // What lend.lua leaves: 3 units out of bucket 0, recorded as on their way to bucket 1.
    let mut redis = app.redis.clone();
    let _: () = redis::cmd("DECRBY").arg(key(&app, product, 0, "stock")).arg(3).query_async(&mut redis).await.unwrap();
    let _: () = redis::cmd("HSET")
        .arg(key(&app, product, 0, "transfers"))
        .arg("0-900")
        .arg(format!("1,3,{epoch},1000"))
        .arg("0-901")
        .arg("1,5,an-older-epoch,1000")
        .query_async(&mut redis)
        .await
        .unwrap();
    // Conservation holds meanwhile: the checker counts the loan as stock on its way.
    let state = app.product_state(product);
    assert_eq!(state.units_between_buckets().await, 3);
    assert_eq!(state.violations(8).await, Vec::<String>::new());

    let finished = wait_until(Duration::from_secs(15), || async {
        get::<u64>(&app, "HLEN", key(&app, product, 0, "transfers")).await == 0
    })
    .await;
    assert!(finished, "the sweeper finished the loans");
    let stocks: (i64, i64) = (
        get(&app, "GET", key(&app, product, 0, "stock")).await,
        get(&app, "GET", key(&app, product, 1, "stock")).await,
    );
    assert_eq!(stocks, (1, 7), "the 3 units arrived once; the old loan's 5 moved nowhere");

    // All 8 units sell, to buyers of either bucket.
    let mut by_code: HashMap<String, usize> = HashMap::new();
    for user in users_of(1, 2, 10) {
        let (status, body) = app.buy(user, product).await;
        let code = if status == 200 { "QUEUED".to_string() } else { body["code"].as_str().unwrap().to_string() };
        *by_code.entry(code).or_default() += 1;
    }
    assert_eq!((by_code.get("QUEUED"), by_code.get("SOLD_OUT")), (Some(&8), Some(&2)), "{by_code:?}");
    app.check().await;
}

/// Redis loses one bucket of a live sharded sale. Reconcile deals the stock out again: each
/// bucket gets its own orders back and its share of what is left; buys go on and the
/// invariants hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reconcile_rebuilds_a_lost_bucket_of_a_sharded_sale() {
    // The operator's reconcile, not the origin's own heal (tests/e2e/redis_loss.rs): the
    // fence freezes the sale and leaves it to this run.
    let (id, mut settings) = seckill_e2e::isolated_settings();
    settings.redis.fence_auto_heal = false;
    let app = TestApp::spawn_with(id, settings).await;
    let product = sharded_sale(&app, 40, 4).await;
    for user in 1..=12 {
        app.buy_queued(user, product).await;
    }
    let state = app.product_state(product);
    assert!(state.wait_drained(Duration::from_secs(60)).await, "the 12 orders reach MySQL");
    let mut redis = app.redis.clone();
    for what in ["stock", "buyers", "orders", "window"] {
        let _: () = redis::cmd("DEL").arg(key(&app, product, 2, what)).query_async(&mut redis).await.unwrap();
    }
    let lost_buyers: Vec<u64> = (1..=12).filter(|u| bucket_of(*u, 4) == 2).collect();
    assert!(!lost_buyers.is_empty());

    let frozen = wait_until(Duration::from_secs(5), || async { state.frozen().await.is_some() }).await;
    assert!(frozen, "the fence froze the sale that lost a bucket");
    let (status, report) = app.admin_post(&format!("/admin/products/{product}/reconcile?waitSecs=60"), None).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!((report["redisStock"].as_i64(), report["mysqlStock"].as_i64()), (Some(28), Some(28)), "{report}");
    assert_eq!(report["thawed"], true, "the reconcile lifted the freeze: {report}");
    // Every bucket's stock is dealt out again; only the lost bucket's orders, buyers and
    // window come back.
    let changes = report["changes"].as_array().unwrap();
    assert!(changes.iter().all(|c| c["kind"] == "stock" || c["bucket"] == 2), "{report}");
    assert_eq!(
        changes.iter().filter(|c| c["kind"] == "buyer").count(),
        lost_buyers.len(),
        "the lost bucket's buyers are back: {report}"
    );
    assert_eq!(state.violations(40).await, Vec::<String>::new());

    // A lost buyer still may not buy twice; a new one may buy.
    let (status, body) = app.buy(lost_buyers[0], product).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("ALREADY_BOUGHT")), "{body}");
    app.buy_queued(100, product).await;
    app.check().await;
}

/// `stockBuckets` outside 1..=64 is refused with a message naming it, and nothing is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_bucket_count_is_refused_by_name() {
    let app = TestApp::spawn().await;
    for bad in [json!(0), json!(65), json!("4"), json!(2.5)] {
        let (status, body) = app
            .admin_post("/admin/products", Some(json!({ "name": "x", "price": "1", "stock": 5, "stockBuckets": bad })))
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.to_string().contains("stockBuckets"), "{bad}: {body}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM tb_seckill_product").await, 0);
}
