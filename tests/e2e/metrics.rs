//! Prometheus metrics of both processes: `serve` counts buys (by outcome and code, with a
//! latency histogram) and `consume` counts the orders it wrote, the queues it holds and the
//! lag of its groups, each at its own `GET /metrics`, with each live sale's stock in Redis and
//! in MySQL.

use std::time::Duration;

use seckill_e2e::{metric_value, wait_until, TestApp};
use seckill_origin::startup::Workers;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serve_counts_buys_and_consume_counts_the_orders_it_wrote_its_queues_and_its_lag() {
    let (id, mut settings) = seckill_e2e::isolated_settings();
    settings.consumer.lag_interval_ms = 200;
    let mut app = TestApp::spawn_with(id, settings.clone()).await;
    let product = app.create_product(100).await;
    let first = app.buy_queued(1, product).await;
    app.wait_order_status(&first, "UNPAID", 30).await;
    let (status, _) = app.buy(1, product).await;
    assert_eq!(status, 409);
    assert_eq!(app.buy_raw("{").await.status(), 400);

    let serve = app.scrape(&app.server.url()).await;
    assert_eq!(metric_value(&serve, "seckill_buy_requests_total"), Some(3.0), "{serve}");
    assert_eq!(metric_value(&serve, r#"seckill_buys_total{outcome="queued"}"#), Some(1.0), "{serve}");
    assert_eq!(metric_value(&serve, r#"seckill_buys_total{outcome="bad_request"}"#), Some(1.0), "{serve}");
    assert_eq!(metric_value(&serve, r#"seckill_buy_rejections_total{code="ALREADY_BOUGHT"}"#), Some(1.0), "{serve}");
    assert_eq!(metric_value(&serve, "seckill_buy_duration_seconds_count"), Some(3.0), "{serve}");

    // The consumer's own listener: the order it wrote, and its groups' lag.
    let consume_url = format!("http://{}", app.workers().addr);
    let written = r#"seckill_orders_total{event="written"}"#;
    let writer_lag = format!(r#"seckill_consumer_lag_messages{{group="{}"}}"#, settings.rocketmq.order_writer_group);
    let consume = app.scrape(&consume_url).await;
    assert_eq!(metric_value(&consume, written), Some(1.0), "{consume}");
    assert!(metric_value(&consume, "seckill_writer_batch_size_count").is_some_and(|n| n >= 1.0), "{consume}");
    // It wrote an order, so it has been through a rebalance; as its group's only member it
    // holds every queue of the order topic.
    let writer_group = &settings.rocketmq.order_writer_group;
    let (mine, all) = app.workers().queue_share(writer_group).expect("the writer's share");
    assert!(all > 0 && mine == all, "the only member holds {mine} of {all} queues");
    let writer_queues = format!(r#"seckill_consumer_queues{{group="{writer_group}"}}"#);
    assert_eq!(metric_value(&consume, &writer_queues), Some(all as f64), "{consume}");

    // A backlog: the consumers stop, 40 buys queue in the broker, a new consume starts.
    app.workers.take().unwrap().shutdown().await;
    for user in 2..=41 {
        app.buy_queued(user, product).await;
    }
    app.workers = Some(Workers::start(settings.clone()).await.expect("restart the consumers"));
    let consume_url = format!("http://{}", app.workers().addr);
    let at_start = app.scrape(&consume_url).await;
    let lag = metric_value(&at_start, &writer_lag).expect("the writer's lag is exposed");
    assert!(lag >= 1.0, "a backlog of 40 orders shows as lag: {at_start}");
    let drained = wait_until(Duration::from_secs(60), || async {
        let text = app.scrape(&consume_url).await;
        metric_value(&text, &writer_lag) == Some(0.0) && metric_value(&text, written) == Some(40.0)
    })
    .await;
    assert!(drained, "lag back to 0 and 40 orders written: {}", app.scrape(&consume_url).await);

    // The sale's stock in both stores: equal once drained (100 − 41); Redis above MySQL shows.
    let stock = |store: &str| format!(r#"seckill_stock_units{{product_id="{product}",store="{store}"}}"#);
    let both = |redis: f64, mysql: f64| {
        let (app, consume_url, stock) = (&app, &consume_url, &stock);
        async move {
            let text = app.scrape(consume_url).await;
            metric_value(&text, &stock("redis")) == Some(redis) && metric_value(&text, &stock("mysql")) == Some(mysql)
        }
    };
    assert!(wait_until(Duration::from_secs(10), || both(59.0, 59.0)).await, "{}", app.scrape(&consume_url).await);
    let key = app.product_key(product, "stock");
    let _: () = redis::cmd("SET").arg(&key).arg(70).query_async(&mut app.redis.clone()).await.unwrap();
    let seen = wait_until(Duration::from_secs(10), || both(70.0, 59.0)).await;
    let _: () = redis::cmd("SET").arg(&key).arg(59).query_async(&mut app.redis.clone()).await.unwrap();
    assert!(seen, "Redis above MySQL is exposed: {}", app.scrape(&consume_url).await);
    app.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_stores_one_broker_probe_per_interval_however_often_it_is_called() {
    let app = TestApp::spawn().await;
    let probes =
        || async { metric_value(&app.scrape(&app.server.url()).await, "seckill_health_probes_total").unwrap() as u64 };
    let started = std::time::Instant::now();
    let calls = futures::future::join_all((0..20).map(|_| app.http.get(app.url("/health")).send())).await;
    for _ in 0..20 {
        calls.iter().for_each(|c| assert_eq!(c.as_ref().unwrap().status(), 200));
        let resp = app.http.get(app.url("/health")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
    }
    // One probe answers for 2 s: 40 calls cost one probe per 2 s they took, plus the first.
    let allowed = 1 + started.elapsed().as_secs() / 2;
    let after_calls = probes().await;
    assert!((1..=allowed).contains(&after_calls), "{after_calls} probes for 40 calls in {:?}", started.elapsed());
    let before = probes().await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    app.http.get(app.url("/health")).send().await.unwrap();
    assert_eq!(probes().await, before + 1, "a stale result is probed again");
    app.check().await;
}
