//! A stalled Redis under a stream of buys. Before, the decide and relay queues were unbounded:
//! buys piled up behind a stalled script call and ran minutes later, for buyers who had been
//! told 504 long before. Now a full queue or a buy that waited past `buy.queue_timeout_ms` is
//! answered 503 `BUSY` with nothing taken.

use std::time::Duration;

use seckill_e2e::torture::redis_server::Persistence;
use seckill_e2e::{isolated_settings, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn buys_behind_a_stalled_redis_are_turned_away_busy_and_take_nothing() {
    let (id, mut settings) = isolated_settings();
    settings.buy.batches_in_flight = 1;
    settings.buy.queue_max = 4;
    settings.buy.queue_timeout_ms = 500;
    let (app, _redis) = TestApp::spawn_on_own_redis(id, settings, Persistence::Aof).await;
    let product = app.create_product(100).await;
    // Redis holds every write (each buy script) for 1.5 s: the first buy's call waits, and
    // everything behind it waits for the one slot.
    let _: () =
        redis::cmd("CLIENT").arg("PAUSE").arg(1_500).arg("WRITE").query_async(&mut app.redis.clone()).await.unwrap();
    let first = {
        let url = app.server.url();
        let (client, token) = (app.http.clone(), app.token_for(1));
        tokio::spawn(async move { buy(&client, &url, &token, 1, product).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut rest = tokio::task::JoinSet::new();
    for user in 2..=30u64 {
        let url = app.server.url();
        let (client, token) = (app.http.clone(), app.token_for(user));
        rest.spawn(async move { buy(&client, &url, &token, user, product).await });
    }
    let (status, body) = first.await.unwrap();
    assert_eq!(status, 200, "the first buy waited for Redis and was taken: {body}");
    let mut busy = 0;
    let mut taken = 1;
    while let Some(answer) = rest.join_next().await {
        let (status, body) = answer.unwrap();
        match (status, body["code"].as_str()) {
            (200, _) => taken += 1,
            (503, Some("BUSY")) => busy += 1,
            other => panic!("unexpected answer {other:?}: {body}"),
        }
    }
    eprintln!("stalled Redis: {taken} taken, {busy} busy");
    assert!(busy >= 20, "a full queue and stale buys are turned away: only {busy} of 29 were");
    let deductions: i64 =
        redis::cmd("HLEN").arg(app.product_key(product, "orders")).query_async(&mut app.redis.clone()).await.unwrap();
    assert_eq!(deductions, taken, "a buy answered BUSY took nothing");
    app.check().await;
}

async fn buy(client: &reqwest::Client, url: &str, token: &str, user: u64, product: u64) -> (u16, serde_json::Value) {
    let resp = client
        .post(format!("{url}/api/seckill"))
        .header("x-seckill-edge-secret", seckill_e2e::EDGE_SECRET)
        .bearer_auth(token)
        .json(&serde_json::json!({ "userId": user, "productId": product }))
        .send()
        .await
        .expect("buy");
    seckill_e2e::read(resp).await
}
