//! The buy path end to end, one buy at a time: HTTP → Redis Lua (stock and an outbox entry) →
//! the relay's batched send to RocketMQ → order writer → MySQL, against the real services; and
//! every way a buy or an admin call is refused. Bursts of thousands are in `bursts`.

use seckill_e2e::{read, TestApp};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_queued_buy_becomes_an_unpaid_order_with_its_stock_log_and_user_record() {
    let app = TestApp::spawn().await;
    let product = app.create_product(10).await;

    let resp = app.buy_raw(json!({ "userId": 42, "productId": product, "quantity": 1 }).to_string()).await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers().get("x-seckill-flag-ttl").is_some(),
        "QUEUED tells the edge how long to trust the buyer flag"
    );
    let (_, body) = read(resp).await;
    assert_eq!(body["status"], "QUEUED");
    let order_no = body["orderNo"].as_str().unwrap().to_string();
    assert!(order_no.ends_with(&format!("-{product}")), "{order_no}");

    let order = app.wait_order_status(&order_no, "UNPAID", 30).await;
    assert_eq!(order["userId"], 42);
    assert_eq!(order["productId"], product);
    assert_eq!(order["quantity"], 1);
    assert_eq!(order["amount"], "6999.00");

    let (before, after, reason): (u32, u32, String) =
        sqlx::query_as("SELECT before_stock, after_stock, reason FROM tb_stock_log WHERE order_no = ?")
            .bind(&order_no)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!((before, after, reason.as_str()), (10, 9, "ORDER"));
    let holder: String =
        sqlx::query_scalar("SELECT order_no FROM tb_user_seckill WHERE user_id = 42 AND product_id = ?")
            .bind(product)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(holder, order_no);
    let stock = app.stock(product).await;
    assert_eq!(
        (stock["redis"].as_i64(), stock["mysql"].as_i64(), stock["inFlight"].as_i64()),
        (Some(9), Some(9), Some(0))
    );
    assert_eq!(stock["orders"]["unpaid"], 1);

    let (status, listed) = app.admin_get(&format!("/admin/orders?productId={product}&status=UNPAID")).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["orders"].as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed["orders"][0]["orderNo"], order_no.as_str());
    let (status, listed) = app.admin_get("/admin/orders?status=PAID").await;
    assert_eq!((status, listed["orders"].as_array().map(Vec::len)), (200, Some(0)), "{listed}");
    for bad in ["status=SHIPPED", "limit=0", "limit=x", "productId=-1"] {
        let (status, body) = app.admin_get(&format!("/admin/orders?{bad}")).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("BAD_REQUEST")), "{bad}: {body}");
    }
    app.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_who_bought_is_told_already_bought_and_the_edge_may_cache_it() {
    let app = TestApp::spawn().await;
    let product = app.create_product(10).await;
    assert_eq!(app.buy(7, product).await.0, 200);
    let resp = app.buy_raw(json!({ "userId": 7, "productId": product }).to_string()).await;
    assert_eq!(resp.status(), 409);
    assert!(resp.headers().get("x-seckill-flag-ttl").is_some());
    assert_eq!(read(resp).await.1["code"], "ALREADY_BOUGHT");
    assert_eq!(app.redis_stock(product).await, 9);
    app.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sold_out_sale_windows_and_unknown_products_are_refused_without_taking_stock() {
    let app = TestApp::spawn().await;
    let one = app.create_product(1).await;
    assert_eq!(app.buy(1, one).await.0, 200);
    let resp = app.buy_raw(json!({ "userId": 2, "productId": one }).to_string()).await;
    assert_eq!(resp.status(), 409);
    assert_eq!(resp.headers()["x-seckill-flag-ttl"], app.settings.http.sold_out_flag_ttl_secs.to_string().as_str());
    assert_eq!(read(resp).await.1["code"], "SOLD_OUT");

    let now = chrono_ms();
    let later =
        app.create_sale(json!({ "name": "Later", "price": "1.00", "stock": 5, "startAt": now + 3_600_000 })).await;
    let (status, body) = app.buy(1, later).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("NOT_STARTED")), "{body}");
    let over = app
        .create_sale(json!({ "name": "Over", "price": "1.00", "stock": 5, "startAt": now - 7_200_000, "endAt": now - 3_600_000 }))
        .await;
    let (status, body) = app.buy(1, over).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("ENDED")), "{body}");
    assert_eq!((app.redis_stock(later).await, app.redis_stock(over).await), (5, 5));

    let (status, body) = app.buy(1, 999_999).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("NO_SUCH_PRODUCT")), "{body}");
    // Created in MySQL but never preloaded: not on sale either.
    let (_, created) =
        app.admin_post("/admin/products", Some(json!({ "name": "Draft", "price": "2.50", "stock": 3 }))).await;
    let (status, body) = app.buy(1, created["id"].as_u64().unwrap()).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("NO_SUCH_PRODUCT")), "{body}");
    app.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_bad_buy_request_is_refused_naming_the_problem_and_moves_no_stock() {
    let app = TestApp::spawn().await;
    let product = app.create_sale(json!({ "name": "Limited", "price": "10.00", "stock": 50, "perUserLimit": 2 })).await;
    let cases: Vec<(String, &str)> = vec![
        ("{not json".into(), "JSON"),
        ("".into(), "JSON"),
        ("[1,2]".into(), "object"),
        (json!({ "userId": 0, "productId": product }).to_string(), "userId must be a positive integer"),
        (json!({ "userId": 5 }).to_string(), "productId is required"),
        (json!({ "userId": 5, "productId": 0 }).to_string(), "productId must be a positive integer"),
        (json!({ "userId": 5, "productId": product, "quantity": 0 }).to_string(), "quantity must be at least 1"),
        (
            json!({ "userId": 5, "productId": product, "quantity": -1 }).to_string(),
            "quantity must be a positive integer",
        ),
    ];
    for (body, expected) in &cases {
        let (status, answer) = read(app.buy_raw(body.clone()).await).await;
        assert_eq!(status, 400, "{body:?} → {answer}");
        assert_eq!(answer["code"], "BAD_REQUEST", "{body:?}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.contains(expected), "{body:?}: message {message:?} should mention {expected:?}");
    }
    // Within every bound, over the sale's limit: 422, and nothing bought either.
    let over = json!({ "userId": 5, "productId": product, "quantity": 3 }).to_string();
    let (status, answer) = read(app.buy_raw(over).await).await;
    assert_eq!((status, answer["code"].as_str()), (422, Some("OVER_LIMIT")), "{answer}");
    assert!(answer["message"].as_str().unwrap_or_default().contains("per-user limit of 2"), "{answer}");
    // Integers as JSON Schema writes them are read as integers: this one is bought.
    let body = format!(r#"{{"userId": 6.0, "productId": {product}.0, "quantity": 2e0}}"#);
    let (status, answer) = read(app.buy_raw_as(6, body).await).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("QUEUED")), "{answer}");
    app.wait_order_status(answer["orderNo"].as_str().unwrap(), "UNPAID", 30).await;
    assert_eq!(app.redis_stock(product).await, 48);
    let stock = app.stock(product).await;
    assert_eq!((stock["mysql"].as_i64(), stock["inFlight"].as_i64()), (Some(48), Some(0)));
    let (_, metrics) = app.admin_get("/admin/metrics").await;
    assert_eq!(metrics["buyBadRequests"].as_u64(), Some(cases.len() as u64 + 1));
    assert_eq!(metrics["buyQueued"], 1, "only the buy written with 6.0 and 2e0");

    // Two units within the limit are fine.
    let (status, _) =
        read(app.buy_raw(json!({ "userId": 5, "productId": product, "quantity": 2 }).to_string()).await).await;
    assert_eq!(status, 200);
    assert_eq!(app.redis_stock(product).await, 46);
    app.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_api_refuses_callers_without_the_edge_secret_or_admin_token() {
    let app = TestApp::spawn().await;
    let product = app.create_product(3).await;
    let resp = app
        .http
        .post(app.url("/api/seckill"))
        .json(&json!({ "userId": 1, "productId": product }))
        .send()
        .await
        .unwrap();
    let (status, body) = read(resp).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("FORBIDDEN")));
    let resp = app.http.post(app.url("/admin/products")).json(&json!({})).send().await.unwrap();
    let (status, body) = read(resp).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("UNAUTHORIZED")));
    let resp = app.http.get(app.url("/admin/metrics")).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(app.redis_stock(product).await, 3);

    let (status, body) = app.order("123-1").await;
    assert_eq!((status, body["code"].as_str()), (404, Some("NO_SUCH_ORDER")));
    let (status, _) = app.order("not-an-order").await;
    assert_eq!(status, 404);
    app.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_admin_input_is_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    // Within every bound, but the fields disagree: 422 INVALID_COMBINATION.
    for (body, field) in [
        (json!({ "name": "x", "price": "1.00", "stock": 1, "startAt": 2000, "endAt": 1000 }), "endAt"),
        // An order of 1,000 × 1e9 would not fit the order's DECIMAL(14,2) amount.
        (json!({ "name": "x", "price": "1000000000", "stock": 1, "perUserLimit": 1000 }), "perUserLimit"),
        (
            json!({ "name": "x", "price": "1.00", "stock": 1,
                    "waitingRoom": { "newUsersPerInterval": 10, "intervalSecs": 1, "maxActiveUsers": 9, "sessionSecs": 60 } }),
            "waitingRoom.maxActiveUsers",
        ),
    ] {
        let (status, answer) = app.admin_post("/admin/products", Some(body.clone())).await;
        assert_eq!((status, answer["code"].as_str()), (422, Some("INVALID_COMBINATION")), "{body} → {answer}");
        assert!(answer["message"].as_str().unwrap().contains(field), "{body} → {answer}");
    }
    // One field out of its bounds or malformed: 400 BAD_REQUEST.
    for (body, field) in [
        (json!({ "name": "", "price": "1.00", "stock": 1 }), "name"),
        (json!({ "name": "x", "price": "0", "stock": 1 }), "price"),
        (json!({ "name": "x", "price": "1.001", "stock": 1 }), "price"),
        (json!({ "name": "x", "price": 1.5, "stock": 1 }), "price"),
        (json!({ "name": "x", "price": "01.00", "stock": 1 }), "price"),
        (json!({ "name": "x", "price": "1.00", "stock": -5 }), "stock"),
        (json!({ "name": "x", "price": "1.00" }), "stock"),
        (json!({ "name": "x", "price": "1.00", "stock": 1, "colour": "red" }), "colour"),
        // Past what a MySQL DATETIME holds: was a 500 from the INSERT.
        (json!({ "name": "x", "price": "1.00", "stock": 1, "startAt": 300_000_000_000_000i64 }), "startAt"),
        (json!({ "name": "x", "price": "1.00", "stock": 1, "endAt": 9_000_000_000_000_000i64 }), "endAt"),
    ] {
        let (status, answer) = app.admin_post("/admin/products", Some(body.clone())).await;
        assert_eq!((status, answer["code"].as_str()), (400, Some("BAD_REQUEST")), "{body} → {answer}");
        assert!(answer["message"].as_str().unwrap().contains(field), "{body} → {answer}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM tb_seckill_product").await, 0);
    let (status, answer) = app.admin_post("/admin/products/abc/preload", None).await;
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = app.admin_post("/admin/products/77/preload", None).await;
    assert_eq!((status, answer["code"].as_str()), (404, Some("NO_SUCH_PRODUCT")));
    app.check().await;
}

fn chrono_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}
