//! Two brokers under one name server (`scripts/services.sh start mq pair`, which `make test`
//! runs): the topics' queues are on both. One broker is killed -9 in the middle of a burst; the
//! relay's sends go to the other one and buying goes on. Once the killed broker is back with
//! what it had stored, every 200 QUEUED (and every 202 PENDING) is exactly one order. A module
//! of its own (`make test` runs one module at a time): it kills a broker, though one only this
//! test uses.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use seckill_e2e::{services, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn a_broker_killed_mid_burst_sends_go_to_the_other_and_every_queued_buy_becomes_one_order() {
    services(&["start", "mq", "pair"]);
    let (id, mut settings) = seckill_e2e::isolated_settings();
    let port = std::env::var("PAIR_NAMESRV_PORT").unwrap_or_else(|_| "9878".into());
    settings.rocketmq.namesrv_addr = format!("127.0.0.1:{port}");
    let app = Arc::new(TestApp::spawn_with(id, settings).await);
    let initial = 1000;
    let product = app.create_product(initial).await;
    let first = app.buy_queued(1, product).await;
    app.wait_order_status(&first, "UNPAID", 60).await;

    // 1,500 buyers, 8 at a time, each pausing 5 ms before its buy, so the burst lasts a couple
    // of seconds; a buyer told 503 tries again (up to 120 times, 250 ms apart), as the shop page
    // does. The buyer whose answer is the 100th kills broker a, holding every other buy back
    // until the broker is dead (a gate they pass one by one): about 900 units are left then.
    let killed = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::RwLock::new(()));
    let burst = {
        let (app, killed) = (Arc::clone(&app), Arc::clone(&killed));
        tokio::spawn(async move {
            futures::stream::iter(2..=1501u64)
                .map(|user| {
                    let (app, killed, answered, gate) =
                        (Arc::clone(&app), Arc::clone(&killed), Arc::clone(&answered), Arc::clone(&gate));
                    async move {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        let mut answer = (503, serde_json::Value::Null, true);
                        for _ in 0..120 {
                            let passing = gate.read().await;
                            let after_kill = killed.load(Ordering::SeqCst);
                            let (status, body) = app.buy(user, product).await;
                            drop(passing);
                            if status != 503 {
                                answer = (status, body, after_kill);
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(250)).await;
                        }
                        if answered.fetch_add(1, Ordering::SeqCst) + 1 == 100 {
                            // Waits for the buys in flight, and holds new ones back, until killed.
                            let _closed = gate.write().await;
                            tokio::task::spawn_blocking(|| services(&["kill-broker", "pair"])).await.unwrap();
                            killed.store(true, Ordering::SeqCst);
                        }
                        answer
                    }
                })
                .buffer_unordered(8)
                .collect::<Vec<_>>()
                .await
        })
    };
    let answers = burst.await.unwrap();
    let mut by_status: HashMap<(u16, bool), usize> = HashMap::new();
    let mut queued = HashSet::from([first]);
    let mut placed = HashSet::new();
    for (status, body, after_kill) in &answers {
        *by_status.entry((*status, *after_kill)).or_default() += 1;
        match status {
            200 => assert!(queued.insert(body["orderNo"].as_str().unwrap().to_string()), "{body}"),
            202 => assert!(placed.insert(body["orderNo"].as_str().unwrap().to_string()), "{body}"),
            409 => assert_eq!(body["code"], "SOLD_OUT", "{body}"),
            other => panic!("unexpected answer {other}: {body}"),
        }
    }
    println!("answers (status, sent after the kill): {by_status:?}");
    let queued_after_kill = by_status.get(&(200, true)).copied().unwrap_or(0);
    assert!(
        queued_after_kill >= 500,
        "with broker a dead, broker b must take the orders: {queued_after_kill} QUEUED after the kill ({by_status:?})"
    );
    assert_eq!(queued.len() + placed.len(), initial as usize, "the burst sells the whole stock: {by_status:?}");

    // Broker a comes back with what it stored before it died; the writer drains both brokers.
    services(&["start", "broker", "pair"]);
    app.assert_invariants(product, initial as i64).await;
    let written: HashSet<String> = app.written_orders(product).await.into_iter().collect();
    let missing: Vec<&String> = queued.union(&placed).filter(|o| !written.contains(*o)).collect();
    assert!(missing.is_empty(), "accepted orders without a row: {missing:?}");
    assert_eq!(written.len(), queued.len() + placed.len(), "no order without its accepted buy");
    app.check().await;
}
