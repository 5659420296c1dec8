//! RocketMQ as seed 003 runs it: two name servers, brokers a and b each with a synchronous
//! slave (`scripts/services.sh start mq pair`, which `make test` runs). A slave killed -9 turns
//! the sends to its master into non-OK statuses, which the relay treats as ambiguous, and still
//! nothing is lost. A master killed -9 should have its acknowledged orders read from its slave:
//! that test is ignored, blocked on the broker and client (see its comment). A module of its
//! own (`make test` runs one module at a time): it kills brokers only the pair's tests use.

use std::sync::Arc;
use std::time::Duration;

use seckill_e2e::{accepted_orders, assert_exactly_the_accepted_orders, burst_with_a_kill, services, TestApp};
use seckill_origin::startup::Workers;

/// 3,000 buys from 2,000 users (users 2..=2001; a thousand of them buy twice).
fn three_thousand_buys() -> Vec<u64> {
    (0..3000u64).map(|i| 2 + i % 2000).collect()
}

/// How long the writer may take to drain a dead master's orders from its slave.
const DRAIN_FROM_SLAVE: Duration = Duration::from_secs(120);

/// A test app on the pair, once both slaves hold its topics (they copy them from their
/// masters every ~12 s; a slave serves pulls only for topics it holds).
async fn spawn_on_the_pair() -> TestApp {
    services(&["start", "mq", "pair"]);
    let (id, mut settings) = seckill_e2e::isolated_settings();
    settings.rocketmq.namesrv_addr = seckill_e2e::pair_namesrv_addr();
    let app = TestApp::spawn_with(id, settings).await;
    let rocketmq = &app.settings.rocketmq;
    let topics = [rocketmq.order_topic.as_str(), rocketmq.cancel_topic.as_str(), rocketmq.event_topic.as_str()];
    assert!(
        seckill_e2e::wait_pair_slaves_know(&topics, Duration::from_secs(60)).await,
        "the slaves did not copy the topics {topics:?} from their masters in 60 s"
    );
    app
}

/// Blocked (issue 25): with master a dead, the writer does not drain a's orders from its slave.
/// With `slaveReadEnable = true` 149 of 1,000 stayed unwritten for 300 s; the brokers ship with
/// it off (docs/SCALING.md), so the slave refuses the pulls outright.
/// The slave holds them (the SYNC_MASTER answered SEND_OK only after it had them), but it
/// answers a pull of a queue with nothing new "retry at the master" as long as it believes
/// its master is up (rocketmq-broker 1.0.0 default_pull_message_result_handler.rs, the
/// `min_broker_id() == MASTER_ID` redirect), which only `enableSlaveActingMaster` changes; the
/// client re-pulls at once, exhausts its per-shard pull budget and drops pull requests
/// (rocketmq-client-rust 1.0.0 pull_message_service.rs, "Failed to send sharded pull request:
/// BudgetExhausted"), queues included that have messages. Acting-master mode does not start
/// here (docs/SCALING.md). Run it with `-- --ignored broker_replication::` to see the state.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
#[ignore = "blocked: the Rust broker/client do not read a dead master's queues from its slave (see the doc comment)"]
async fn a_master_killed_mid_burst_has_its_orders_written_from_its_slave_and_none_twice() {
    let mut app = spawn_on_the_pair().await;
    let initial = 1000;
    let product = app.create_product(initial).await;
    let first = app.buy_queued(1, product).await;
    app.wait_order_status(&first, "UNPAID", 60).await;

    // The writer stops: the burst's orders wait in the brokers, spread over a's and b's queues,
    // as behind a writer that lags. Master a dies a third of the way in.
    app.workers.take().unwrap().shutdown().await;
    let app = Arc::new(app);
    let answers =
        burst_with_a_kill(&app, product, three_thousand_buys(), 300, &|| services(&["kill-broker", "pair"])).await;
    let (mut accepted, by_status) = accepted_orders(&answers, &["SOLD_OUT", "ALREADY_BOUGHT"]);
    accepted.insert(first);
    println!("answers (status, sent after the kill): {by_status:?}");
    let before_kill = by_status.get(&(200, false)).copied().unwrap_or(0);
    assert!(before_kill >= 250, "orders were queued on both masters before the kill: {by_status:?}");
    assert_eq!(accepted.len(), initial as usize, "the burst sells the whole stock: {by_status:?}");

    // A writer starts with master a still dead: a's orders can only come from its slave.
    let mut app = Arc::into_inner(app).expect("the burst is over");
    app.workers = Some(Workers::start(app.settings.clone()).await.expect("start the writer"));
    let started = std::time::Instant::now();
    let drained = seckill_e2e::wait_until(DRAIN_FROM_SLAVE, || async {
        app.count(&format!("SELECT COUNT(*) FROM tb_seckill_order WHERE product_id = {product}")).await
            >= initial as i64
    })
    .await;
    println!("orders written with master a dead: drained={drained} after {:?}", started.elapsed());
    app.assert_invariants(product, initial as i64).await;
    assert_exactly_the_accepted_orders(&app, product, &accepted).await;

    // Master a comes back with what it stored; consumer offsets it never saw send some of its
    // orders round again: the writer absorbs them, nothing is written twice.
    services(&["start", "broker", "pair"]);
    tokio::time::sleep(Duration::from_secs(15)).await;
    app.assert_invariants(product, initial as i64).await;
    assert_exactly_the_accepted_orders(&app, product, &accepted).await;
    app.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn a_slave_killed_mid_burst_loses_nothing_and_the_sale_goes_on() {
    let app = spawn_on_the_pair().await;
    let initial = 1000;
    let product = app.create_product(initial).await;
    let first = app.buy_queued(1, product).await;
    app.wait_order_status(&first, "UNPAID", 60).await;

    let app = Arc::new(app);
    let answers =
        burst_with_a_kill(&app, product, three_thousand_buys(), 300, &|| services(&["kill-broker", "pair-s"])).await;
    let (mut accepted, by_status) = accepted_orders(&answers, &["SOLD_OUT", "ALREADY_BOUGHT"]);
    accepted.insert(first);
    println!("answers (status, sent after the kill): {by_status:?}");
    let after_kill =
        by_status.get(&(200, true)).copied().unwrap_or(0) + by_status.get(&(202, true)).copied().unwrap_or(0);
    assert!(after_kill >= 300, "the sale goes on without a's slave: {by_status:?}");
    // Master a stores what it is sent but cannot have it replicated: it answers
    // FLUSH_SLAVE_TIMEOUT, which is not SEND_OK, so those buys are answered 202 PENDING (their
    // outcome unknown to the relay) and the sweeper sees them through.
    assert!(by_status.get(&(202, true)).copied().unwrap_or(0) > 0, "sends on a were not all SEND_OK: {by_status:?}");
    assert_eq!(accepted.len(), initial as usize, "the burst sells the whole stock: {by_status:?}");
    app.assert_invariants(product, initial as i64).await;
    assert_exactly_the_accepted_orders(&app, product, &accepted).await;

    services(&["start", "broker", "pair-s"]);
    // A writer batch whose delayed cancel got no SEND_OK fails and is redelivered; the broker
    // has sent some of those straight to the dead-letter queue on their first failure (see
    // docs/SCALING.md). Their orders are written; an operator's replay sends their cancels.
    let (_, letters) = app.admin_get("/admin/dead-letters").await;
    let letters = letters["deadLetters"].as_array().cloned().unwrap_or_default();
    println!("dead letters after the slave's loss: {}", letters.len());
    for letter in &letters {
        assert_eq!(letter["group"], app.settings.rocketmq.order_writer_group.as_str(), "{letter}");
        assert!(letter["reason"].as_str().is_some_and(|r| r.contains("cancel was not sent")), "{letter}");
        let (status, body) = app.admin_post(&format!("/admin/dead-letters/{}/replay", letter["id"]), None).await;
        assert_eq!(status, 200, "{body}");
    }
    app.check_expecting_dead_letters(letters.len()).await;
}
