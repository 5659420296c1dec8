//! Bursts: 3,000 concurrent buys at stock 1,000 sell exactly the stock, once per user, in
//! both buy modes, on a Redis Cluster, on a sale sharded into 4 buckets, and over the whole
//! cluster profile (two origins, two consumers, two brokers) at once; then every invariant.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use seckill_e2e::{metric_value, wait_until, OriginProcess, TestApp};
use seckill_origin::configuration::BuyMode;
use seckill_origin::stock::bucket_of;
use serde_json::json;

/// The issue's burst: 3,000 concurrent buys from 2,000 distinct users (a third of the
/// requests repeat a user) at stock 1,000, in the default buy mode (batched: Redis outbox and
/// group-committed relay).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_3000_buys_sells_exactly_the_stock_once_per_user_in_batched_mode() {
    burst_of_3000(BuyMode::Batched).await;
}

/// The same burst through one RocketMQ transaction message per buy.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_3000_buys_sells_exactly_the_stock_once_per_user_in_transaction_mode() {
    burst_of_3000(BuyMode::Transaction).await;
}

/// The same burst with the origin on a Redis Cluster of three masters (`scripts/services.sh start
/// redis-cluster`, which `make test` runs; its seed nodes in `SECKILL_REDIS_CLUSTER_URLS`).
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn a_burst_of_3000_buys_sells_exactly_the_stock_once_per_user_on_a_redis_cluster() {
    let app = on_the_redis_cluster().await;
    // The products' keys land on different masters: each product is one slot.
    let keys = (1..=8u64).map(|p| app.product_key(p, "stock")).collect();
    let slots = slots_of(&app, keys).await;
    assert!(slots.len() > 1, "products spread over slots: {slots:?}");
    let product = app.create_product(1000).await;
    burst_of_3000_on(app, product, 1..=2000).await;
}

/// Hot-product sharding: the same burst on a sale whose 1,000 units are split into 4 buckets
/// of 250, each its own slot of the Redis Cluster. 1,400 of the buyers belong to bucket 0 and
/// 200 to each other bucket, so the sale sells exactly its stock, one per user, only if
/// bucket 0 borrows the 150 units the others cannot sell.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn a_sale_sharded_into_4_buckets_sells_exactly_its_stock_once_per_user_under_3000_buys_on_a_redis_cluster() {
    let app = on_the_redis_cluster().await;
    let product =
        app.create_sale(json!({ "name": "Hot phone", "price": "6999.00", "stock": 1000, "stockBuckets": 4 })).await;
    let buckets = seckill_origin::stock::Bucket::all(product, 4);
    let keys = buckets.iter().map(|b| b.key(&app.settings.redis.key_prefix, "stock")).collect();
    let slots = slots_of(&app, keys).await;
    assert_eq!(slots.len(), 4, "each bucket is a slot of its own");
    let masters = masters_of(&app, &slots).await;
    assert_eq!(masters.len(), 3, "the 4 buckets use all 3 masters: slots {slots:?} on {masters:?}");
    let of_bucket = |b: u32, n: usize| (1..).filter(move |u| bucket_of(*u, 4) == b).take(n);
    let buyers = of_bucket(0, 1400).chain(of_bucket(1, 200)).chain(of_bucket(2, 200)).chain(of_bucket(3, 200));
    let app = burst_of_3000_on(app, product, buyers).await;
    let key = buckets[0].key(&app.settings.redis.key_prefix, "received");
    let loans: u64 = redis::cmd("SCARD").arg(key).query_async(&mut app.redis.clone()).await.unwrap();
    assert!(loans >= 1, "bucket 0 borrowed");
    println!("loans bucket 0 took in during the burst: {loans}");
}

/// The whole cluster profile at once (what `make up PROFILE=cluster` runs, on loopback): the
/// Redis Cluster of three masters, two brokers under one name server (`scripts/services.sh start
/// mq pair`, which `make test` runs), two origins (`seckill-origin serve` processes: an origin
/// in this process would share its cores with the other tests' bursts and lose every race) and
/// two consumers in the same groups (this test's in-process one and a `seckill-origin consume`).
/// The burst alternates between the origins; both origins sell and both consumers write orders;
/// the same exact-stock checks and every invariant hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn a_burst_of_3000_buys_over_two_origins_two_consumers_two_brokers_and_a_redis_cluster_sells_exactly_the_stock() {
    seckill_e2e::services(&["start", "mq", "pair"]);
    let (id, mut settings) = redis_cluster_settings();
    settings.rocketmq.namesrv_addr = seckill_e2e::pair_namesrv_addr();
    let app = TestApp::spawn_with(id, settings).await;
    assert!(app.redis.is_cluster(), "the test reads the cluster");
    let mut second = app.settings.clone();
    second.consumer.port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let origin_1 = OriginProcess::start(&app.settings, &format!("cluster-profile-serve-1-{}", app.id)).await;
    let origin_2 = OriginProcess::start(&app.settings, &format!("cluster-profile-serve-2-{}", app.id)).await;
    let _consumer_2 = OriginProcess::consume(&second, &format!("cluster-profile-consume-{}", app.id));
    let consumer_2 = format!("http://127.0.0.1:{}", second.consumer.port);
    // A member joins the group at its next rebalance; one that joined after the burst would
    // find every order already written (a clean-clone run saw 1,000 to 0).
    let group = app.settings.rocketmq.order_writer_group.clone();
    let series = format!(r#"seckill_consumer_queues{{group="{group}"}}"#);
    let share = || async {
        let (first, all) = app.workers().queue_share(&group).expect("the in-process consumer writes orders");
        let page = app.http.get(format!("{consumer_2}/metrics")).send().await.ok()?.text().await.ok()?;
        Some((first, metric_value(&page, &series)? as usize, all))
    };
    let shared = wait_until(Duration::from_secs(90), || async {
        matches!(share().await, Some((first, second, all)) if first > 0 && second > 0 && first + second == all)
    })
    .await;
    let split = share().await;
    assert!(shared, "the two consumers split the order topic's queues: (first, second, all) = {split:?}");
    println!("the order topic's queues (first consumer, second, all): {split:?}");

    let product = app.create_product(1000).await;
    let origins = vec![origin_1.url.clone(), origin_2.url.clone()];
    let app = burst_of_3000_over(app, &origins, product, 1..=2000).await;

    let written = r#"seckill_orders_total{event="written"}"#;
    let by_first = app.workers().metrics.orders_written.get();
    let by_second = metric_value(&app.scrape(&consumer_2).await, written).expect("consumer 2 counts what it wrote");
    println!("orders written: {by_first} by the in-process consumer, {by_second} by the consume process");
    assert_eq!(by_first + by_second as u64, 1000, "each order written once, by one of the two");
    assert!(by_first > 0 && by_second > 0.0, "both consumers of the group wrote orders");
    let queued = |text: &str| metric_value(text, r#"seckill_buys_total{outcome="queued"}"#).unwrap_or(0.0);
    let (at_1, at_2) = (queued(&app.scrape(&origins[0]).await), queued(&app.scrape(&origins[1]).await));
    println!("QUEUED answers: {at_1} by origin 1, {at_2} by origin 2");
    assert!(at_1 > 0.0 && at_2 > 0.0, "both origins took buys: {at_1} and {at_2}");
}

/// A test app whose Redis is the test Redis Cluster of three masters (`scripts/services.sh
/// start redis-cluster`, which `make test` runs; its seed nodes in `SECKILL_REDIS_CLUSTER_URLS`).
async fn on_the_redis_cluster() -> TestApp {
    let (id, settings) = redis_cluster_settings();
    let app = TestApp::spawn_with(id, settings).await;
    assert!(app.redis.is_cluster(), "the test reads the cluster");
    app
}

/// Isolated settings whose Redis is the test Redis Cluster.
fn redis_cluster_settings() -> (String, seckill_origin::configuration::Settings) {
    let urls = std::env::var("SECKILL_REDIS_CLUSTER_URLS").expect(
        "SECKILL_REDIS_CLUSTER_URLS names the test Redis Cluster's nodes: `scripts/services.sh start redis-cluster` \
         starts one and `make test` sets it",
    );
    let (id, mut settings) = seckill_e2e::isolated_settings();
    settings.redis.cluster_urls = urls;
    (id, settings)
}

/// The distinct cluster slots of `keys`.
async fn slots_of(app: &TestApp, keys: Vec<String>) -> HashSet<i64> {
    futures::future::join_all(keys.into_iter().map(|key| {
        let mut conn = app.redis.clone();
        async move { redis::cmd("CLUSTER").arg("KEYSLOT").arg(key).query_async::<i64>(&mut conn).await.unwrap() }
    }))
    .await
    .into_iter()
    .collect()
}

/// The masters (host:port) that own `slots`, as `CLUSTER SLOTS` of the app's cluster says.
async fn masters_of(app: &TestApp, slots: &HashSet<i64>) -> HashSet<String> {
    let ranges: Vec<redis::Value> =
        redis::cmd("CLUSTER").arg("SLOTS").query_async(&mut app.redis.clone()).await.unwrap();
    let mut masters = HashSet::new();
    for range in ranges {
        let redis::Value::Array(fields) = range else { panic!("a CLUSTER SLOTS range: {range:?}") };
        let (start, end): (i64, i64) =
            (redis::from_redis_value(&fields[0]).unwrap(), redis::from_redis_value(&fields[1]).unwrap());
        let master: Vec<redis::Value> = redis::from_redis_value(&fields[2]).unwrap();
        let (host, port): (String, i64) =
            (redis::from_redis_value(&master[0]).unwrap(), redis::from_redis_value(&master[1]).unwrap());
        if slots.iter().any(|s| (start..=end).contains(s)) {
            masters.insert(format!("{host}:{port}"));
        }
    }
    masters
}

async fn burst_of_3000(mode: BuyMode) {
    let app = TestApp::spawn_in_mode(mode).await;
    let product = app.create_product(1000).await;
    burst_of_3000_on(app, product, 1..=2000).await;
}

/// [`burst_of_3000_over`] the app's own origin alone.
async fn burst_of_3000_on(app: TestApp, product: u64, buyers: impl Iterator<Item = u64>) -> Arc<TestApp> {
    let origins = vec![app.server.url()];
    burst_of_3000_over(app, &origins, product, buyers).await
}

/// 3,000 concurrent buys (the 2,000 `buyers`, 1,000 of them twice) of `product`'s 1,000 units,
/// spread over `origins` (the i-th request to origin i mod n): exactly 1,000 QUEUED, one per
/// user, each one order; then every invariant.
async fn burst_of_3000_over(
    app: TestApp,
    origins: &[String],
    product: u64,
    buyers: impl Iterator<Item = u64>,
) -> Arc<TestApp> {
    let app = Arc::new(app);

    let buyers: Vec<u64> = buyers.collect();
    assert_eq!(buyers.len(), 2000);
    let mut users = buyers.clone();
    users.extend((1..=1000).map(|i| buyers[(i * 7919) % 2000])); // 1,000 repeats spread over the users
                                                                 // Interleave so repeats race their first request.
    users.sort_by_key(|u| (u * 2654435761) % 3001);

    let tasks: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(i, &user)| {
            let (app, origin) = (Arc::clone(&app), origins[i % origins.len()].clone());
            tokio::spawn(async move { (user, app.buy_at(&origin, user, product).await) })
        })
        .collect();
    let mut by_code: HashMap<String, usize> = HashMap::new();
    let mut queued: HashMap<u64, Vec<String>> = HashMap::new();
    for t in tasks {
        let (user, (status, body)) = t.await.unwrap();
        let code = match status {
            200 => {
                queued.entry(user).or_default().push(body["orderNo"].as_str().unwrap().to_string());
                "QUEUED".to_string()
            }
            409 => body["code"].as_str().unwrap().to_string(),
            other => panic!("unexpected {other}: {body}"),
        };
        *by_code.entry(code).or_default() += 1;
    }
    assert_eq!(by_code.get("QUEUED"), Some(&1000), "{by_code:?}");
    assert_eq!(
        by_code.get("SOLD_OUT").unwrap_or(&0) + by_code.get("ALREADY_BOUGHT").unwrap_or(&0),
        2000,
        "{by_code:?}"
    );
    assert!(queued.values().all(|orders| orders.len() == 1), "a user got two QUEUED answers");

    let drained = wait_until(Duration::from_secs(120), || async {
        app.count(&format!("SELECT COUNT(*) FROM tb_seckill_order WHERE product_id = {product}")).await >= 1000
    })
    .await;
    assert!(drained, "the queue did not drain into MySQL within 120 s");
    // Give a straggling duplicate a moment to show up if there were one.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let p = product;
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM tb_seckill_order WHERE product_id = {p}")).await, 1000);
    assert_eq!(
        app.count(&format!("SELECT COUNT(*) FROM tb_stock_log WHERE product_id = {p} AND reason = 'ORDER'")).await,
        1000
    );
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM tb_user_seckill WHERE product_id = {p}")).await, 1000);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM (SELECT user_id FROM tb_seckill_order WHERE product_id = {p} GROUP BY user_id HAVING COUNT(*) > 1) d"
        ))
        .await,
        0,
        "no user may hold two orders"
    );
    let written: HashSet<String> = sqlx::query_scalar("SELECT order_no FROM tb_seckill_order WHERE product_id = ?")
        .bind(p)
        .fetch_all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let answered: HashSet<String> = queued.values().flatten().cloned().collect();
    assert_eq!(written, answered, "every QUEUED answer is exactly one order row");
    let stock = app.stock(p).await;
    assert_eq!(
        (stock["redis"].as_i64(), stock["mysql"].as_i64(), stock["inFlight"].as_i64(), stock["outbox"].as_i64()),
        (Some(0), Some(0), Some(0), Some(0)),
        "{stock}"
    );
    app.assert_invariants(p, 1000).await;
    app.check().await;
    app
}
