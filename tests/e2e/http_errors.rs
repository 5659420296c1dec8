//! Errors the framework answers by itself (a wrong method, a body over the limit) carry the
//! same JSON body as every other error, and change nothing.

use seckill_e2e::{read, TestApp, EDGE_SECRET};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_method_and_an_oversized_body_get_json_errors_and_take_nothing() {
    let app = TestApp::spawn().await;
    let product = app.create_product(10).await;

    let resp = app.http.get(app.url("/api/seckill")).header("x-seckill-edge-secret", EDGE_SECRET).send().await.unwrap();
    let allow = resp.headers().get("allow").map(|v| v.to_str().unwrap().to_string());
    let (status, body) = read(resp).await;
    assert_eq!((status, body["code"].as_str()), (405, Some("METHOD_NOT_ALLOWED")), "{body}");
    assert!(body["message"].is_string(), "{body}");
    assert_eq!(allow.as_deref(), Some("POST"), "the Allow header is kept");

    // 3 MB: over axum's 2 MB default body limit.
    let huge = format!(r#"{{"userId": 1, "productId": {product}, "pad": "{}"}}"#, "x".repeat(3 << 20));
    let resp = app.buy_raw(huge).await;
    let connection = resp.headers().get("connection").map(|v| v.to_str().unwrap().to_string());
    let (status, body) = read(resp).await;
    assert_eq!((status, body["code"].as_str()), (413, Some("PAYLOAD_TOO_LARGE")), "{body}");
    // The server leaves the body unread and closes the connection: it says so, so the next
    // request (below, on the same client) opens a new one instead of being lost.
    assert_eq!(connection.as_deref(), Some("close"), "a 413 closes its connection");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");

    let (status, body) =
        read(app.http.delete(app.url("/admin/products")).bearer_auth(seckill_e2e::ADMIN_TOKEN).send().await.unwrap())
            .await;
    assert_eq!((status, body["code"].as_str()), (405, Some("METHOD_NOT_ALLOWED")), "{body}");

    assert_eq!(app.redis_stock(product).await, 10, "nothing was taken");
    app.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_parameter_a_route_does_not_declare_is_a_400_naming_it_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let product = app.create_product(10).await;
    // The CLI's spelling sent to the API, whose flag is dryRun: refused, no reconcile run.
    let (status, body) = app.admin_post(&format!("/admin/products/{product}/reconcile?dry_run=true"), None).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("BAD_REQUEST")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("dry_run"), "{body}");
    assert!(body["message"].as_str().unwrap().contains("dryRun"), "names what the route takes: {body}");
    assert_eq!(app.count("SELECT COUNT(*) FROM tb_reconcile_run").await, 0, "nothing ran");
    // The declared spelling still works.
    let (status, body) = app.admin_post(&format!("/admin/products/{product}/reconcile?dryRun=true"), None).await;
    assert_eq!(status, 200, "{body}");
    // A route without parameters, an admin read, a shop read, a buy: the same.
    let (status, body) = app.admin_post(&format!("/admin/products/{product}/preload?force=true&now=1"), None).await;
    assert_eq!((status, body["message"].as_str().map(|m| m.contains("now"))), (400, Some(true)), "{body}");
    let (status, body) = app.admin_get("/admin/orders?productid=1").await;
    assert_eq!((status, body["message"].as_str().map(|m| m.contains("productid"))), (400, Some(true)), "{body}");
    let shop = |path: &str| app.http.get(app.url(path)).header("x-seckill-edge-secret", EDGE_SECRET).send();
    let (status, body) = read(shop("/api/products?all=1").await.unwrap()).await;
    assert_eq!((status, body["message"].as_str().map(|m| m.contains("all"))), (400, Some(true)), "{body}");
    let buy = app
        .http
        .post(app.url("/api/seckill?quantity=5"))
        .header("x-seckill-edge-secret", EDGE_SECRET)
        .bearer_auth(app.token_for(1))
        .header("content-type", "application/json")
        .body(format!(r#"{{"productId": {product}}}"#))
        .send()
        .await
        .unwrap();
    let (status, body) = read(buy).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("BAD_REQUEST")), "{body}");
    assert_eq!(app.redis_stock(product).await, 10, "nothing was taken");
    app.check().await;
}
