//! The pair's two masters, each with a synchronous slave (`scripts/services.sh start mq pair`,
//! which `make test` runs): the topics' queues are on both masters. Master a is killed -9 in the
//! middle of a burst; the relay's sends go to the other one and buying goes on. Once the killed broker is back with
//! what it had stored, every 200 QUEUED (and every 202 PENDING) is exactly one order. A module
//! of its own (`make test` runs one module at a time): it kills a broker, though one only this
//! test uses.

use std::sync::Arc;

use seckill_e2e::{accepted_orders, assert_exactly_the_accepted_orders, burst_with_a_kill, services, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn a_broker_killed_mid_burst_sends_go_to_the_other_and_every_queued_buy_becomes_one_order() {
    services(&["start", "mq", "pair"]);
    let (id, mut settings) = seckill_e2e::isolated_settings();
    settings.rocketmq.namesrv_addr = seckill_e2e::pair_namesrv_addr();
    let app = Arc::new(TestApp::spawn_with(id, settings).await);
    let initial = 1000;
    let product = app.create_product(initial).await;
    let first = app.buy_queued(1, product).await;
    app.wait_order_status(&first, "UNPAID", 60).await;

    // 1,500 buyers; the buyer whose answer is the 100th kills broker a (about 900 units are
    // left then), holding every other buy back until the broker is dead.
    let answers =
        burst_with_a_kill(&app, product, (2..=1501u64).collect(), 100, &|| services(&["kill-broker", "pair"])).await;
    let (mut accepted, by_status) = accepted_orders(&answers, &["SOLD_OUT"]);
    accepted.insert(first);
    println!("answers (status, sent after the kill): {by_status:?}");
    let queued_after_kill = by_status.get(&(200, true)).copied().unwrap_or(0);
    assert!(
        queued_after_kill >= 500,
        "with broker a dead, broker b must take the orders: {queued_after_kill} QUEUED after the kill ({by_status:?})"
    );
    assert_eq!(accepted.len(), initial as usize, "the burst sells the whole stock: {by_status:?}");

    // Broker a comes back with what it stored before it died; the writer drains both brokers.
    services(&["start", "broker", "pair"]);
    app.assert_invariants(product, initial as i64).await;
    assert_exactly_the_accepted_orders(&app, product, &accepted).await;
    app.check().await;
}
