//! Who is buying, checked at the origin as well as at the edge (defence in depth): the buyer
//! is the signed token's user, orders are their owner's alone, an expired order cannot be paid,
//! and an origin outside the local environment refuses to start with the public defaults, short
//! secrets or the local login; one that names no environment does not start.

use std::time::Duration;

use seckill_e2e::{isolated_settings, origin_command, read, TestApp, EDGE_SECRET};
use seckill_protocol::token::KeySet;
use serde_json::{json, Value};

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// `POST /api/seckill` through the front door with the given `Authorization` (or none).
async fn buy_with(app: &TestApp, authorization: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = app
        .http
        .post(app.url("/api/seckill"))
        .header("x-seckill-edge-secret", EDGE_SECRET)
        .header("content-type", "application/json");
    if let Some(auth) = authorization {
        req = req.header("authorization", auth);
    }
    read(req.body(body.to_string()).send().await.unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_valid_token_nothing_is_bought_read_or_paid() {
    let app = TestApp::spawn().await;
    let product = app.create_product(10).await;
    let order_no = app.buy_queued(5, product).await;
    app.wait_order_status(&order_no, "UNPAID", 30).await;

    let keys = KeySet::parse(&app.settings.auth.token_keys).unwrap();
    let aud = app.settings.auth.audience.clone();
    let now = now_secs();
    let expired = keys.sign(6, &aud, now - 3000, 600);
    let wrong_audience = keys.sign(6, "another-service", now, 600);
    let mut tampered = app.token_for(6);
    tampered.push('A');
    let stranger = KeySet::parse("k:not-our-key-0123456789abcdef0123456789").unwrap().sign(6, &aud, now, 600);
    let cases = [
        (None, "sign in first"),
        (Some("Bearer".to_string()), "sign in first"),
        (Some("Basic dXNlcjpwdw==".to_string()), "sign in first"),
        (Some("Bearer not.a.token".to_string()), "malformed"),
        (Some(format!("Bearer {expired}")), "expired"),
        (Some(format!("Bearer {wrong_audience}")), "not meant for this service"),
        (Some(format!("Bearer {tampered}")), "token"), // malformed or a wrong signature, by length
        (Some(format!("Bearer {stranger}")), "not known"),
    ];
    for (auth, why) in &cases {
        let (status, body) = buy_with(&app, auth.as_deref(), json!({ "userId": 6, "productId": product })).await;
        assert_eq!((status, body["code"].as_str()), (401, Some("UNAUTHENTICATED")), "{auth:?}: {body}");
        assert!(body["message"].as_str().unwrap().contains(why), "{auth:?}: {body} should say {why:?}");
        let order =
            app.http.get(app.url(&format!("/api/orders/{order_no}"))).header("x-seckill-edge-secret", EDGE_SECRET);
        let order = order.header("authorization", auth.clone().unwrap_or_default());
        assert_eq!(read(order.send().await.unwrap()).await.0, 401, "{auth:?}: order lookup");
        let pay = app
            .http
            .post(app.url(&format!("/api/orders/{order_no}/pay")))
            .header("x-seckill-edge-secret", EDGE_SECRET)
            .header("authorization", auth.clone().unwrap_or_default());
        assert_eq!(read(pay.send().await.unwrap()).await.0, 401, "{auth:?}: pay");
    }
    // A signature made for user 6's claims does not cover user 7's.
    let six = app.token_for(6);
    let parts: Vec<&str> = six.split('.').collect();
    let seven = app.token_for(7);
    let forged = format!("{}.{}.{}", parts[0], seven.split('.').nth(1).unwrap(), parts[2]);
    let (status, body) = buy_with(&app, Some(&format!("Bearer {forged}")), json!({ "productId": product })).await;
    assert_eq!((status, body["message"].as_str().map(|m| m.contains("signature"))), (401, Some(true)), "{body}");

    assert_eq!(app.order(&order_no).await.1["status"], "UNPAID", "nobody paid it");
    assert_eq!(app.redis_stock(product).await, 9, "only user 5's buy took stock");
    app.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_buyer_is_the_token_s_user_and_a_body_naming_another_is_403() {
    let app = TestApp::spawn().await;
    let product = app.create_product(10).await;
    let token = format!("Bearer {}", app.token_for(21));

    let (status, body) = buy_with(&app, Some(&token), json!({ "userId": 22, "productId": product })).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("FORBIDDEN")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("userId 22 is not the signed-in user"), "{body}");
    assert_eq!(app.redis_stock(product).await, 10, "a refused buy takes nothing");

    // No userId in the body: the buyer is the token's user.
    let (status, body) = buy_with(&app, Some(&token), json!({ "productId": product })).await;
    assert_eq!(status, 200, "{body}");
    let order = app.wait_order_status(body["orderNo"].as_str().unwrap(), "UNPAID", 30).await;
    assert_eq!(order["userId"], 21);
    let (status, body) = buy_with(&app, Some(&token), json!({ "userId": 21, "productId": product })).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("ALREADY_BOUGHT")), "{body}");
    app.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_cannot_see_or_pay_another_user_s_order() {
    let app = TestApp::spawn().await;
    let product = app.create_product(10).await;
    let a_order = app.buy_queued(31, product).await;
    app.wait_order_status(&a_order, "UNPAID", 30).await;

    let (status, body) = app.order_as(&a_order, 32).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("NO_SUCH_ORDER")), "B reads A's order: {body}");
    assert!(body.get("userId").is_none());
    // B pays A's order, with or without naming A in the body: 404 and 403, never paid.
    let pay_as_b = |body: Value| {
        app.http
            .post(app.url(&format!("/api/orders/{a_order}/pay")))
            .header("x-seckill-edge-secret", EDGE_SECRET)
            .bearer_auth(app.token_for(32))
            .json(&body)
            .send()
    };
    let (status, body) = read(pay_as_b(json!({})).await.unwrap()).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("NO_SUCH_ORDER")), "{body}");
    let (status, body) = read(pay_as_b(json!({ "userId": 31 })).await.unwrap()).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("FORBIDDEN")), "{body}");

    let (status, body) = app.order_as(&a_order, 31).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("UNPAID")), "A still sees it unpaid: {body}");
    let (status, body) = app.pay(&a_order, 31).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("PAID")), "{body}");
    app.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_past_its_expire_at_cannot_be_paid_even_before_the_cancel() {
    let (id, mut settings) = isolated_settings();
    // Payable for 2 s; the cancel stays 2 h away (level 18 on the test broker).
    settings.orders.pay_timeout_secs = 2;
    let app = TestApp::spawn_with(id, settings).await;
    let product = app.create_product(10).await;
    let order_no = app.buy_queued(41, product).await;
    let order = app.wait_order_status(&order_no, "UNPAID", 30).await;
    let expire_at = order["expireAt"].as_i64().unwrap();
    let wait_ms = expire_at - chrono::Utc::now().timestamp_millis() + 200;
    tokio::time::sleep(Duration::from_millis(wait_ms.max(0) as u64)).await;

    let (status, body) = app.pay(&order_no, 41).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("ORDER_EXPIRED")), "{body}");
    assert_eq!(app.order(&order_no).await.1["status"], "UNPAID", "left for the cancel");
    assert_eq!(app.count("SELECT COUNT(*) FROM tb_order_event WHERE event = 'PAID'").await, 0);
    app.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_login_signs_a_token_and_a_cookie_the_api_accepts() {
    let app = TestApp::spawn().await;
    let product = app.create_product(10).await;
    let login = |body: &str| {
        app.http
            .post(app.url("/api/login"))
            .header("x-seckill-edge-secret", EDGE_SECRET)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let resp = login(r#"{"userId": 51}"#).await.unwrap();
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    let (status, body) = read(resp).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["userId"], 51);
    let token = body["token"].as_str().unwrap();
    let expires_at = body["expiresAt"].as_u64().unwrap();
    let in_an_hour = (now_secs() + 3600) * 1000;
    assert!(expires_at <= in_an_hour && expires_at + 60_000 > in_an_hour, "expiresAt {expires_at}");
    assert!(cookie.starts_with(&format!("seckill_token={token};")), "{cookie}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=3600"] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
    // The cookie alone signs a buy in.
    let resp = app
        .http
        .post(app.url("/api/seckill"))
        .header("x-seckill-edge-secret", EDGE_SECRET)
        .header("cookie", format!("theme=dark; seckill_token={token}"))
        .json(&json!({ "productId": product }))
        .send()
        .await
        .unwrap();
    let (status, body) = read(resp).await;
    assert_eq!(status, 200, "{body}");

    for (bad, why) in [("{}", "userId is required"), (r#"{"userId": 0}"#, "positive integer"), ("[", "JSON")] {
        let (status, body) = read(login(bad).await.unwrap()).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("BAD_REQUEST")), "{bad}: {body}");
        assert!(body["message"].as_str().unwrap().contains(why), "{bad}: {body}");
    }
    let no_secret = app.http.post(app.url("/api/login")).json(&json!({ "userId": 51 })).send().await.unwrap();
    assert_eq!(read(no_secret).await.0, 403, "the login is behind the edge too");
    app.check().await;
}

/// `POST /api/login` for `user_id`, through the edge's secret: its status and body.
async fn local_login(app: &TestApp, user_id: u64) -> (u16, Value) {
    let resp = app
        .http
        .post(app.url("/api/login"))
        .header("x-seckill-edge-secret", EDGE_SECRET)
        .json(&json!({ "userId": user_id }))
        .send()
        .await
        .unwrap();
    read(resp).await
}

/// What `serve` printed when it refused to start. One still serving after 30 s is stopped: its
/// output lacks the refusal the caller looks for, so that is a failed assertion, not a hung test.
fn refusal(command: &mut std::process::Command) -> std::process::Output {
    let mut child = command.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    child.wait_with_output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_the_local_environment_there_is_no_login_and_the_defaults_are_refused() {
    // The public defaults: the binary refuses to serve and names each one.
    let (_, mut settings) = isolated_settings();
    settings.environment = "production".into();
    settings.http.admin_token = "dev-admin-token".into();
    settings.http.edge_secret = "dev-edge-secret".into();
    settings.auth.token_keys = seckill_protocol::token::DEV_KEYS.into();
    let out = refusal(&mut origin_command(&settings, &["serve"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "it served with the defaults: {stderr}");
    for named in ["http.admin_token", "http.edge_secret", "auth.token_keys", "\"production\""] {
        assert!(stderr.contains(named), "the refusal should name {named}: {stderr}");
    }
    // A deployment that does not name its environment does not start (it ran as local).
    let out = refusal(origin_command(&settings, &["serve"]).env_remove("APP_ENVIRONMENT"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("APP_ENVIRONMENT is not set"), "{stderr}");
    // Outside local: secrets under 32 bytes and the local login are refused, each by name.
    settings.http.admin_token = "a-short-admin-token".into();
    settings.http.edge_secret = "a-short-edge-secret".into();
    settings.auth.token_keys = "prod-1:a-production-signing-key-0123456789abcdef".into();
    settings.auth.local_login = true;
    let out = refusal(&mut origin_command(&settings, &["serve"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "it served with short secrets: {stderr}");
    for named in ["http.admin_token", "http.edge_secret", "at least 32", "auth.local_login"] {
        assert!(stderr.contains(named), "the refusal should name {named}: {stderr}");
    }
    settings.auth.local_login = false;
    // An empty edge secret is refused in every environment, local included.
    settings.environment = "local".into();
    settings.http.edge_secret = String::new();
    let out = refusal(&mut origin_command(&settings, &["serve"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("http.edge_secret"), "{stderr}");

    // Safe settings in production: it serves, and there is no login.
    let (id, mut settings) = isolated_settings();
    settings.environment = "production".into();
    settings.auth.local_login = false;
    settings.auth.token_keys = "prod-1:a-production-signing-key-0123456789abcdef".into();
    let app = TestApp::spawn_with(id, settings).await;
    assert_eq!(local_login(&app, 1).await.0, 404, "no login outside the local environment");
    let product = app.create_product(3).await;
    app.buy_queued(1, product).await; // tokens from the configured identity provider's key work
    app.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_login_answers_only_when_switched_on() {
    let (id, mut settings) = isolated_settings();
    settings.auth.local_login = false;
    let app = TestApp::spawn_with(id, settings).await;
    let (status, body) = local_login(&app, 1).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("NOT_FOUND")), "{body}");
    app.check().await;
}
