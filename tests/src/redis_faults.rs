//! What the tests of a Redis that lost writes share: buyers arriving while a sale may be
//! frozen, waiting for the heal, and settling every answer a buyer was given.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;

use crate::{wait_until, TestApp};

/// Waits until the fence has healed the sale (a reconcile run is logged for it and it is no
/// longer frozen); panics after `secs`.
pub async fn wait_healed(app: &TestApp, product: u64, secs: u64) {
    let state = app.product_state(product);
    let runs = format!("SELECT COUNT(*) FROM tb_reconcile_run WHERE product_id = {product}");
    let healed = wait_until(Duration::from_secs(secs), || async {
        app.count(&runs).await > 0 && state.frozen().await.is_none()
    })
    .await;
    assert!(healed, "product {product} still frozen after {secs} s: {:?}", state.frozen().await);
}

/// Each of `users` buys once: QUEUED (its order number is added to `queued`) or SOLD_OUT.
pub async fn sell_to(app: &TestApp, product: u64, users: std::ops::Range<u64>, queued: &mut Vec<String>) {
    for user in users {
        let (status, body) = app.buy(user, product).await;
        match status {
            200 => queued.push(body["orderNo"].as_str().unwrap().to_string()),
            409 => assert_eq!(body["code"], "SOLD_OUT", "{body}"),
            other => panic!("user {user}: {other} {body}"),
        }
    }
}

/// Every 200 QUEUED answer became exactly one order, or a refusal its buyer can read at
/// `GET /api/orders/{orderNo}`; returns (orders, refusals).
pub async fn every_queued_answer_is_an_order_or_a_visible_refusal(app: &TestApp, queued: &[String]) -> (usize, usize) {
    let (mut orders, mut refusals) = (0, 0);
    for order_no in queued {
        let settled = wait_until(Duration::from_secs(60), || async {
            let (status, body) = app.order(order_no).await;
            status == 200 && body["status"] != "QUEUED"
        })
        .await;
        let (status, body) = app.order(order_no).await;
        assert!(settled && status == 200, "order {order_no} never settled: {status} {body}");
        match body["status"].as_str() {
            Some("UNPAID") => orders += 1,
            Some("REFUSED") => {
                assert!(body["refusal"]["reason"].is_string() && body["refusal"]["message"].is_string(), "{body}");
                refusals += 1;
            }
            other => panic!("order {order_no}: unexpected status {other:?}: {body}"),
        }
    }
    let distinct: HashSet<&String> = queued.iter().collect();
    assert_eq!(distinct.len(), queued.len(), "no order number answered twice");
    let written = app.count("SELECT COUNT(*) FROM tb_seckill_order").await as usize;
    let refused = app.count("SELECT COUNT(*) FROM tb_rejected_order").await as usize;
    assert_eq!(written + refused, queued.len(), "every 200 is one order or one refusal, nothing else");
    (orders, refusals)
}

/// What buyers arriving at a sale that may be frozen were told.
#[derive(Debug, Default)]
pub struct Arrivals {
    /// Order numbers answered 200 QUEUED.
    pub queued: Vec<String>,
    /// Order numbers answered 202 PENDING (the outcome was unknown when answered).
    pub pending: Vec<String>,
    /// Answers 503 SALE_FROZEN.
    pub frozen: usize,
}

/// Each of `users` buys at once, and again (up to three tries, 0.7 s apart) while told
/// SALE_FROZEN or 503; every answer must be 200, 202, 409 or 503.
pub async fn buyers_arrive(app: &TestApp, product: u64, users: impl Iterator<Item = u64>) -> Arrivals {
    let mut buys = tokio::task::JoinSet::new();
    for user in users {
        let app_url = app.server.url();
        let client = app.http.clone();
        let token = app.token_for(user);
        buys.spawn(async move {
            let mut answers = Vec::new();
            for _ in 0..3 {
                let resp = client
                    .post(format!("{app_url}/api/seckill"))
                    .header("x-seckill-edge-secret", crate::EDGE_SECRET)
                    .bearer_auth(&token)
                    .json(&json!({ "userId": user, "productId": product }))
                    .send()
                    .await
                    .expect("buy");
                let (status, body) = crate::read(resp).await;
                assert!(matches!(status, 200 | 202 | 409 | 503), "user {user}: {status} {body}");
                let again = status == 503;
                answers.push((status, body));
                if !again {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(700)).await;
            }
            answers
        });
    }
    let mut arrivals = Arrivals::default();
    while let Some(answers) = buys.join_next().await {
        for (status, body) in answers.unwrap() {
            match status {
                200 => arrivals.queued.push(body["orderNo"].as_str().unwrap().to_string()),
                202 => arrivals.pending.push(body["orderNo"].as_str().unwrap().to_string()),
                _ => {}
            }
            arrivals.frozen += usize::from(body["code"] == "SALE_FROZEN");
        }
    }
    arrivals
}

/// What 202 PENDING answers became, once the queue has drained (after a heal): the order
/// numbers that are an order or a refusal, and how many are nothing (no order, no refusal,
/// no deduction: the buy did not survive, and `GET /api/orders/{no}` says 404).
pub async fn pending_answers_settled(app: &TestApp, pending: &[String]) -> (Vec<String>, usize) {
    let (mut placed, mut nothing) = (Vec::new(), 0);
    for order_no in pending {
        let settled = wait_until(Duration::from_secs(60), || async {
            let (status, body) = app.order(order_no).await;
            status == 404 || (status == 200 && body["status"] != "QUEUED")
        })
        .await;
        let (status, body) = app.order(order_no).await;
        assert!(settled, "pending order {order_no} never settled: {status} {body}");
        match status {
            404 => nothing += 1,
            200 => placed.push(order_no.clone()),
            other => panic!("pending order {order_no}: {other} {body}"),
        }
    }
    (placed, nothing)
}
