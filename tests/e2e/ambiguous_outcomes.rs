//! A buy whose outcome Redis leaves unknown. Before, a script call that failed after it was sent
//! was answered 503 "nothing was bought" although the script may have run: the stock and the
//! outbox entry were taken, and the sweeper later placed the order the buyer was told did not
//! exist. Now only a refused connection (or a deduction log that shows nothing) is a 503; an
//! unknown outcome is 202 PENDING with the order number, and that order is placed.

use seckill_e2e::{isolated_settings, LossyRedisProxy, TestApp};

/// A test app whose origin reaches Redis through `proxy`; the test's own connection (the
/// invariant checker's) goes straight to Redis.
async fn behind(proxy: &LossyRedisProxy, id: String, mut settings: seckill_origin::configuration::Settings) -> TestApp {
    let direct = settings.redis.url.clone();
    settings.redis.url = proxy.url.clone();
    let mut app = TestApp::spawn_with(id, settings).await;
    app.redis = seckill_origin::stock::RedisConnection::connect(&direct, "").await.unwrap();
    app
}

#[tokio::test]
async fn a_buy_whose_script_ran_but_whose_answer_was_lost_is_pending_and_becomes_its_order() {
    let (id, mut settings) = isolated_settings();
    let proxy = LossyRedisProxy::start(&settings.redis.url).await;
    settings.buy.sweep_after_ms = 4_000;
    let app = behind(&proxy, id, settings).await;
    let product = app.create_product(5).await;
    // A first buy loads buy.lua into Redis, so the cut request really runs the script.
    let first = app.buy_queued(1, product).await;

    let marker = "4242424242";
    proxy.lose_the_answer_to(marker);
    let (status, body) = app.buy(4242424242, product).await;
    assert_eq!(proxy.cut.load(std::sync::atomic::Ordering::SeqCst), 1, "the proxy cut the script call");
    assert_eq!((status, body["status"].as_str()), (202, Some("PENDING")), "never 'nothing was taken': {body}");
    let order_no = body["orderNo"].as_str().expect("the buyer can follow the order").to_string();
    let order = app.wait_order_status(&order_no, "UNPAID", 60).await;
    assert_eq!(order["userId"], 4242424242u64, "{order}");
    app.wait_order_status(&first, "UNPAID", 30).await;
    assert_eq!(app.buy(4242424242, product).await.1["code"], "ALREADY_BOUGHT");
    app.check().await;
}

#[tokio::test]
async fn a_buy_that_never_reached_redis_is_a_503_with_nothing_taken() {
    let (id, settings) = isolated_settings();
    let proxy = LossyRedisProxy::start(&settings.redis.url).await;
    let app = behind(&proxy, id, settings).await;
    let product = app.create_product(5).await;
    app.buy_queued(1, product).await;
    // Redis unreachable: connections are refused, so the script surely did not run. A buy
    // racing the proxy's shutdown may still go out on a connection the proxy is closing: its
    // outcome is unknown, so 202 PENDING is the honest answer there (and it becomes its order,
    // which `check` proves). Once the origin sees refusals it must say 503 and take nothing.
    proxy.stop();
    let mut refused = None;
    for user in 2..12 {
        let (status, body) = app.buy(user, product).await;
        match status {
            503 => {
                assert_eq!(body["code"], "UNAVAILABLE", "{body}");
                assert!(body["message"].as_str().unwrap().contains("nothing was bought"), "{body}");
                refused = Some(user);
                break;
            }
            202 => assert_eq!(body["status"], "PENDING", "{body}"),
            _ => panic!("Redis is down, yet the buy got {status} {body}"),
        }
    }
    let refused = refused.expect("a buy while Redis refuses connections is a 503");
    proxy.restart().await;
    let back = seckill_e2e::wait_until(std::time::Duration::from_secs(10), || async {
        app.buy(refused, product).await.0 == 200
    })
    .await;
    assert!(back, "buying works once Redis is reachable again");
    app.check().await;
}

/// Transaction mode: a buy whose script ran but whose answer was lost leaves its half message
/// undecided, and Redis then stays out of reach for longer than the broker's default check-back
/// budget (15 rounds, ~75 s at the test broker's 5 s). Before, the broker discarded the half
/// message after those rounds and the stock the script took had no order. The brokers now ask
/// for up to an hour (`transactionCheckMax` 720 in `scripts/services.sh`): once Redis answers,
/// the check-back finds the deduction and commits, and the order is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transaction_buy_undecided_past_the_brokers_default_check_back_budget_still_becomes_its_order() {
    let (id, mut settings) = isolated_settings();
    settings.buy.mode = seckill_origin::configuration::BuyMode::Transaction;
    let proxy = LossyRedisProxy::start(&settings.redis.url).await;
    let app = behind(&proxy, id, settings).await;
    let product = app.create_product(5).await;
    let first = app.buy_queued(1, product).await;

    // The buy script's "take" call (the local transaction), not its read-only "check" before
    // it; from then on Redis is out of the origin's reach, so the local transaction cannot read
    // the deduction log either and leaves the half message undecided.
    proxy.lose_the_answer_and_go_dark("$4\r\ntake\r\n");
    let (status, body) = app.buy(4343434343, product).await;
    assert_eq!(proxy.cut.load(std::sync::atomic::Ordering::SeqCst), 1, "the proxy cut the script call");
    assert_eq!((status, body["status"].as_str()), (202, Some("PENDING")), "{body}");
    let order_no = body["orderNo"].as_str().expect("the buyer can follow the order").to_string();
    // The script ran: Redis holds the deduction. Every check-back for the next 90 s finds
    // Redis unreachable and answers "unknown".
    let held: Option<String> = redis::cmd("HGET")
        .arg(app.product_key(product, "orders"))
        .arg(&order_no)
        .query_async(&mut app.redis.clone())
        .await
        .unwrap();
    assert!(held.is_some(), "the cut script call took its unit");
    tokio::time::sleep(std::time::Duration::from_secs(90)).await;
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM tb_seckill_order WHERE order_no = '{order_no}'")).await, 0);
    proxy.light_up();
    let order = app.wait_order_status(&order_no, "UNPAID", 60).await;
    assert_eq!(order["userId"], 4343434343u64, "{order}");
    app.wait_order_status(&first, "UNPAID", 30).await;
    app.check().await;
}
