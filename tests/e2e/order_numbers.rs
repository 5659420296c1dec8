//! Order numbers stay unique across any number of origin starts: the node id inside them is
//! leased from MySQL (`tb_origin_node`), not counted in Redis. Before, a second origin started
//! after Redis lost its counter took the first one's node id, and both minted the same numbers
//! in the same millisecond: the second order overwrote the first's deduction and was dropped as
//! a duplicate — a 200 with no order.

use std::collections::HashSet;
use std::time::Duration;

use seckill_e2e::{wait_until, TestApp};
use seckill_origin::startup::Server;

/// The live leases, node id → holder.
async fn leases(app: &TestApp) -> Vec<(u16, String)> {
    sqlx::query_as("SELECT node_id, holder FROM tb_origin_node WHERE lease_until > NOW(3) ORDER BY node_id")
        .fetch_all(&app.db)
        .await
        .unwrap()
}

/// Leases every node id but `except` to someone else, for an hour.
async fn lease_all_others(app: &TestApp, except: &[u64]) {
    let mut values = Vec::new();
    for node in 0..1024u64 {
        if !except.contains(&node) {
            values.push(format!("({node}, 'elsewhere', NOW(3) + INTERVAL 1 HOUR, NOW(3))"));
        }
    }
    sqlx::query(&format!(
        "INSERT INTO tb_origin_node (node_id, holder, lease_until, claimed_at) VALUES {} \
         ON DUPLICATE KEY UPDATE holder = VALUES(holder), lease_until = VALUES(lease_until)",
        values.join(",")
    ))
    .execute(&app.db)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_second_origin_never_shares_a_node_id_even_after_redis_forgets_everything() {
    let app = TestApp::spawn().await;
    // What Redis knew about node ids is gone (a flush, a failover to an empty replica).
    let mut redis = app.redis.clone();
    let pattern = format!("{}:*", app.settings.redis.key_prefix);
    let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query_async(&mut redis).await.unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL").arg(&keys).query_async(&mut redis).await.unwrap();
    }
    let second = Server::start(app.settings.clone()).await.expect("a second origin starts");
    let (a, b) = (app.server.state.order_nos().node(), second.state.order_nos().node());
    assert_ne!(a, b, "two live origins must not share a node id");
    assert_eq!(leases(&app).await.len(), 2, "one live lease per origin");

    // Both origins sell the same product at once: every answer's number is distinct and
    // becomes exactly one order.
    let product = app.create_product(400).await;
    let second_url = format!("{}/api/seckill", second.url());
    let mut buys = tokio::task::JoinSet::new();
    for user in 1..=400u64 {
        let url = if user % 2 == 0 { app.url("/api/seckill") } else { second_url.clone() };
        let http = app.http.clone();
        let token = app.token_for(user);
        buys.spawn(async move {
            let resp = http
                .post(url)
                .header("x-seckill-edge-secret", seckill_e2e::EDGE_SECRET)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(format!(r#"{{"userId":{user},"productId":{product}}}"#))
                .send()
                .await
                .unwrap();
            seckill_e2e::read(resp).await
        });
    }
    let mut numbers = HashSet::new();
    while let Some(answer) = buys.join_next().await {
        let (status, body) = answer.unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(numbers.insert(body["orderNo"].as_str().unwrap().to_string()), "a number was minted twice");
    }
    app.assert_invariants(product, 400).await;
    let written: HashSet<String> = app.written_orders(product).await.into_iter().collect();
    assert_eq!(written, numbers, "every QUEUED answer became its own order");
    second.shutdown().await.unwrap();
    assert_eq!(leases(&app).await.len(), 1, "a clean stop gives its node back at once");
    app.check().await;
}

#[tokio::test]
async fn with_every_node_id_leased_a_start_is_refused_and_a_lapsed_one_is_taken_over_after_its_end() {
    let app = TestApp::spawn().await;
    let own = app.server.state.order_nos().node();
    lease_all_others(&app, &[own]).await;
    let refused = Server::start(app.settings.clone()).await.expect_err("no node id is free");
    let message = format!("{refused:#}");
    assert!(message.contains("tb_origin_node") && message.contains("1024"), "{message}");

    // One holder died: its lease ends (MySQL clock), far ahead of this process's clock, so a
    // taker must not mint a millisecond the dead one might still have used.
    let lapsed = (own + 500) % 1024;
    sqlx::query("UPDATE tb_origin_node SET lease_until = NOW(3) - INTERVAL 1 SECOND WHERE node_id = ?")
        .bind(lapsed)
        .execute(&app.db)
        .await
        .unwrap();
    let ended_ms: i64 = sqlx::query_scalar(
        "SELECT CAST(UNIX_TIMESTAMP(lease_until) * 1000 AS SIGNED) FROM tb_origin_node WHERE node_id = ?",
    )
    .bind(lapsed)
    .fetch_one(&app.db)
    .await
    .unwrap();
    let taker = Server::start(app.settings.clone()).await.expect("the lapsed node id is free");
    assert_eq!(taker.state.order_nos().node(), lapsed);
    let number = taker.state.order_nos().next(1).unwrap();
    let flake: u64 = number.split('-').next().unwrap().parse().unwrap();
    let minted_ms = (flake >> 22) as i64 + 1_704_067_200_000;
    assert!(minted_ms > ended_ms, "minted at {minted_ms} ms, the previous lease ended at {ended_ms} ms");
    taker.shutdown().await.unwrap();
    app.check().await;
}

#[tokio::test]
async fn an_origin_that_loses_its_node_lease_takes_no_buys_until_it_holds_another() {
    let (id, mut settings) = seckill_e2e::isolated_settings();
    settings.buy.node_lease_ms = 1_500;
    let app = TestApp::spawn_with(id, settings).await;
    let product = app.create_product(10).await;
    app.buy_queued(1, product).await;
    let own = app.server.state.order_nos().node();

    // Another process took the node over (our lease looked lapsed to it) and every other node
    // id is held: nothing is left to claim.
    lease_all_others(&app, &[]).await;
    let refused = wait_until(Duration::from_secs(10), || async {
        let (status, _) = app.buy(2, product).await;
        status == 503
    })
    .await;
    assert!(refused, "buys must stop once the lease on node {own} is lost");
    let before = app.redis_stock(product).await;
    let (status, body) = app.buy(3, product).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.to_string().contains("order numbers"), "{body}");
    assert_eq!(app.redis_stock(product).await, before, "a refused buy takes nothing");

    // A node id frees up: the origin claims it and sells again.
    sqlx::query("UPDATE tb_origin_node SET lease_until = NOW(3) - INTERVAL 1 SECOND WHERE node_id = 77")
        .execute(&app.db)
        .await
        .unwrap();
    let back = wait_until(Duration::from_secs(10), || async { app.server.state.order_nos().node() == 77 }).await;
    assert!(back, "the origin must claim the freed node id");
    let order_no = app.buy_queued(4, product).await;
    app.wait_order_status(&order_no, "UNPAID", 30).await;
    app.assert_invariants(product, 10).await;
    app.check().await;
}

/// A graceful handover of a node id from an origin whose clock runs ahead of MySQL's (by 800
/// ms, within the allowed margin): the old holder's numbers carry its clock, the lease's end
/// MySQL's. Before, the next holder minted from the lease's end and, once its clock reached the
/// old holder's last milliseconds, repeated their numbers (the writer's dedupe then dropped a
/// QUEUED order). Now the release records the last minted ms and the next holder mints after
/// it plus the margin.
#[tokio::test]
async fn a_graceful_handover_from_an_origin_whose_clock_is_ahead_repeats_no_number() {
    use seckill_origin::orders::node_lease;
    use seckill_origin::orders::order_no::OrderNoGenerator;
    let app = TestApp::spawn().await;
    // Every node id but 900 is taken (900's lease ran out), so both holders get that one.
    let ours = app.server.state.order_nos().node();
    lease_all_others(&app, &[900, ours]).await;
    sqlx::query("INSERT INTO tb_origin_node (node_id, holder, lease_until, claimed_at) VALUES (900, 'gone', NOW(3) - INTERVAL 1 SECOND, NOW(3))")
        .execute(&app.db)
        .await
        .unwrap();
    let ttl = Duration::from_secs(30);
    let first = node_lease::claim(&app.db, "ahead", ttl).await.unwrap();
    assert_eq!(first.node, 900);
    let now_ms = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    // The clock 800 ms ahead: its numbers start 800 ms in MySQL's future.
    let ahead = OrderNoGenerator::leased(900, now_ms() + 800);
    ahead.extend_until(std::time::Instant::now() + ttl);
    let mut seen: HashSet<String> = (0..2_000).map(|_| ahead.next(1).unwrap()).collect();
    ahead.revoke();
    node_lease::release(&app.db, 900, "ahead", ahead.last_minted_unix_ms()).await.unwrap();
    // The lease ended at NOW(3); a claim takes leases that ended before its own NOW(3).
    tokio::time::sleep(Duration::from_millis(5)).await;

    let second = node_lease::claim(&app.db, "next", ttl).await.unwrap();
    assert_eq!(second.node, 900, "the released node is reused at once");
    let next = OrderNoGenerator::leased(900, second.floor_unix_ms);
    next.extend_until(std::time::Instant::now() + ttl);
    let until = std::time::Instant::now() + Duration::from_millis(1_200);
    let mut minted = 0;
    while std::time::Instant::now() < until {
        let number = next.next(1).unwrap();
        assert!(seen.insert(number.clone()), "order number {number} minted twice across the handover");
        minted += 1;
    }
    assert!(minted > 1_000, "the next holder minted {minted} numbers");
    app.check().await;
}
