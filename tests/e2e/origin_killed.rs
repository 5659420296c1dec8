//! An origin killed -9 in the middle of a burst: the orders it had taken from Redis but not yet
//! handed to the broker wait in the outbox, and another origin's sweeper sends them. Afterwards
//! every 200 (and every 202) answer has exactly one order row and every deduction its order.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use seckill_e2e::{isolated_settings, OriginProcess, TestApp, EDGE_SECRET};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_origin_killed_mid_burst_loses_no_order_once_the_sweeper_ran() {
    let (id, mut settings) = isolated_settings();
    // Sooner than the default 10 s so the test is quick; still above the 3 s send timeout.
    settings.buy.sweep_after_ms = 4_000;
    // The survivor: an in-process origin (its sweeper holds the lease) and the consumers.
    let app = TestApp::spawn_with(id, settings.clone()).await;
    let product = app.create_product(3000).await;
    let mut victim = OriginProcess::start(&settings, &format!("origin-killed-{}", app.id)).await;

    let http = reqwest::Client::builder().pool_max_idle_per_host(512).timeout(Duration::from_secs(20)).build().unwrap();
    let queued = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (1..=3000u64)
        .map(|user| {
            let (http, url, queued) = (http.clone(), victim.url.clone(), Arc::clone(&queued));
            let token = app.token_for(user);
            tokio::spawn(async move {
                let answer = http
                    .post(format!("{url}/api/seckill"))
                    .header("x-seckill-edge-secret", EDGE_SECRET)
                    .bearer_auth(token)
                    .json(&json!({ "userId": user, "productId": product }))
                    .send()
                    .await;
                let answer = match answer {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        (status, resp.json::<Value>().await.unwrap_or(Value::Null))
                    }
                    Err(_) => (0, Value::Null), // the origin died under this request
                };
                if answer.0 == 200 {
                    queued.fetch_add(1, Ordering::Relaxed);
                }
                answer
            })
        })
        .collect();

    // Kill it once it has confirmed some buys while others sit between script and broker.
    let outbox = app.product_key(product, "outbox");
    let mut redis = app.redis.clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let waiting: u64 = redis::cmd("XLEN").arg(&outbox).query_async(&mut redis).await.unwrap();
        if waiting >= 10 && queued.load(Ordering::Relaxed) >= 100 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the burst never reached the broker");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    victim.kill_9();
    let stranded: redis::streams::StreamRangeReply =
        redis::cmd("XRANGE").arg(&outbox).arg("-").arg("+").query_async(&mut redis).await.unwrap();
    let stranded: Vec<String> = stranded.ids.iter().map(|e| e.get::<String>("o").unwrap()).collect();
    let left = stranded.len();
    assert!(left > 0, "the kill left nothing in the outbox; the test would prove nothing");

    let mut confirmed = HashSet::new();
    let mut cut_off = 0;
    for task in tasks {
        match task.await.unwrap() {
            (200 | 202, body) => {
                confirmed.insert(body["orderNo"].as_str().unwrap().to_string());
            }
            (0, _) => cut_off += 1,
            (409, _) => {}
            (other, body) => panic!("unexpected answer {other}: {body}"),
        }
    }
    println!("killed with {left} orders in the outbox; {} confirmed, {cut_off} cut off", confirmed.len());

    // The sweeper sends the leftovers, the writer writes them: every deduction has its order.
    app.assert_invariants(product, 3000).await;
    let written = app.written_orders(product).await;
    let written_set: HashSet<String> = written.iter().cloned().collect();
    assert_eq!(written.len(), written_set.len(), "an order was written twice");
    let missing: Vec<&String> = confirmed.difference(&written_set).collect();
    assert!(missing.is_empty(), "confirmed orders without a row: {missing:?}");
    let lost: Vec<&String> = stranded.iter().filter(|o| !written_set.contains(*o)).collect();
    assert!(lost.is_empty(), "orders stranded in the outbox by the kill were never written: {lost:?}");
    app.check().await;
}
