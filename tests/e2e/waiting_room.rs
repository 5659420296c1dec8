//! A sale's waiting-room settings at the origin: set at creation or later through the admin
//! API, published in the product list (where the edge reads them), turned off; bad settings
//! are 400s (422s for fields that disagree) that change nothing; a revoked user's buys are refused
//! by the buy script until restored. (The room itself runs at the edge: tests/edge/waiting_room.test.mjs.)

use seckill_e2e::{read, TestApp, ADMIN_TOKEN, EDGE_SECRET};
use serde_json::{json, Value};

async fn listed_room(app: &TestApp, product: u64) -> Value {
    let resp =
        app.http.get(app.url("/api/products")).header("x-seckill-edge-secret", EDGE_SECRET).send().await.unwrap();
    let (status, list) = read(resp).await;
    assert_eq!(status, 200, "{list}");
    let product = list["products"].as_array().unwrap().iter().find(|p| p["id"] == product).cloned().unwrap();
    product["waitingRoom"].clone()
}

async fn admin(app: &TestApp, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = app.http.request(method, app.url(path)).bearer_auth(ADMIN_TOKEN);
    if let Some(body) = body {
        req = req.json(&body);
    }
    read(req.send().await.unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_settings_are_set_listed_changed_and_turned_off_and_bad_ones_change_nothing() {
    let app = TestApp::spawn().await;
    let room = json!({ "newUsersPerInterval": 20, "intervalSecs": 2, "maxActiveUsers": 200, "sessionSecs": 300 });
    let with_room =
        app.create_sale(json!({ "name": "Roomed phone", "price": "6999.00", "stock": 5, "waitingRoom": room })).await;
    let without = app.create_product(5).await;
    assert_eq!(listed_room(&app, with_room).await, room);
    assert_eq!(listed_room(&app, without).await, Value::Null, "off by default");

    // A bad room at creation: 400 naming the field, and no product.
    let products_before = app.count("SELECT COUNT(*) FROM tb_seckill_product").await;
    let (status, body) = app
        .admin_post(
            "/admin/products",
            Some(json!({ "name": "Bad room", "price": "1.00", "stock": 1,
                         "waitingRoom": { "newUsersPerInterval": 0, "intervalSecs": 2, "maxActiveUsers": 2, "sessionSecs": 60 } })),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().starts_with("waitingRoom.newUsersPerInterval"), "{body}");
    assert_eq!(app.count("SELECT COUNT(*) FROM tb_seckill_product").await, products_before);

    // Turned on later, changed, read back.
    let path = format!("/admin/products/{without}/waiting-room");
    let (status, body) = admin(&app, reqwest::Method::PUT, &path, Some(room.clone())).await;
    assert_eq!((status, &body), (200, &json!({ "productId": without, "waitingRoom": room })));
    let changed = json!({ "newUsersPerInterval": 5, "intervalSecs": 10, "maxActiveUsers": 50, "sessionSecs": 600 });
    admin(&app, reqwest::Method::PUT, &path, Some(changed.clone())).await;
    assert_eq!(admin(&app, reqwest::Method::GET, &path, None).await.1["waitingRoom"], changed);
    assert_eq!(listed_room(&app, without).await, changed);

    // Bad settings: 400 naming the field (422 for fields that disagree); the room stays as it was.
    let (status, body) = admin(
        &app,
        reqwest::Method::PUT,
        &path,
        Some(json!({ "newUsersPerInterval": 5, "intervalSecs": 10, "maxActiveUsers": 4, "sessionSecs": 600 })),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (422, Some("INVALID_COMBINATION")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("maxActiveUsers"), "{body}");
    for (bad, field) in [
        (
            json!({ "newUsersPerInterval": 5, "intervalSecs": 0, "maxActiveUsers": 50, "sessionSecs": 600 }),
            "intervalSecs",
        ),
        (
            json!({ "newUsersPerInterval": 5, "intervalSecs": 10, "maxActiveUsers": 50, "sessionSecs": 5 }),
            "sessionSecs",
        ),
        (json!({ "newUsersPerInterval": 5, "intervalSecs": 10, "maxActiveUsers": 50 }), "sessionSecs"),
        (json!({ "newUsersPerInterval": -1, "intervalSecs": 10, "maxActiveUsers": 50, "sessionSecs": 600 }), "-1"),
    ] {
        let (status, body) = admin(&app, reqwest::Method::PUT, &path, Some(bad.clone())).await;
        assert_eq!(status, 400, "{bad} → {body}");
        assert!(body["message"].as_str().unwrap().contains(field), "{bad} → {body}");
    }
    assert_eq!(listed_room(&app, without).await, changed);
    let (status, body) = admin(&app, reqwest::Method::PUT, "/admin/products/987654321/waiting-room", Some(room)).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("NO_SUCH_PRODUCT")), "{body}");
    let (status, _) =
        admin(&app, reqwest::Method::PUT, "/admin/products/abc/waiting-room", Some(changed.clone())).await;
    assert_eq!(status, 400);

    // Off.
    let (status, body) = admin(&app, reqwest::Method::DELETE, &path, None).await;
    assert_eq!((status, &body), (200, &json!({ "productId": without, "waitingRoom": null })));
    assert_eq!(listed_room(&app, without).await, Value::Null);
    assert_eq!(listed_room(&app, with_room).await["newUsersPerInterval"], 20, "the other sale keeps its room");
    app.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_user_s_buys_are_refused_by_the_buy_script_until_restored() {
    let app = TestApp::spawn().await;
    // Sharded, so the revoke must reach the user's bucket whichever it is.
    let product =
        app.create_sale(json!({ "name": "Revoked phone", "price": "10.00", "stock": 10, "stockBuckets": 4 })).await;
    let path = |what: &str| format!("/admin/products/{product}/waiting-room/{what}");
    let (status, body) = admin(&app, reqwest::Method::POST, &path("revoke"), Some(json!({ "userId": 5 }))).await;
    assert_eq!((status, body), (200, json!({ "productId": product, "userId": 5, "revoked": true })));

    let (status, body) = app.buy(5, product).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("PASS_REVOKED")), "{body}");
    assert_eq!(app.stock(product).await["redis"], 10, "nothing was taken");
    assert_eq!(app.buy(6, product).await.0, 200, "others buy as before");

    let (status, _) = admin(&app, reqwest::Method::POST, &path("restore"), Some(json!({ "userId": 5 }))).await;
    assert_eq!(status, 200);
    assert_eq!(app.buy(5, product).await.0, 200, "restored");

    for bad in [json!({ "userId": 0 }), json!({}), json!({ "userId": 1, "why": "bot" })] {
        let (status, body) = admin(&app, reqwest::Method::POST, &path("revoke"), Some(bad.clone())).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, _) =
        admin(&app, reqwest::Method::POST, "/admin/products/999999/waiting-room/revoke", Some(json!({ "userId": 1 })))
            .await;
    assert_eq!(status, 404);
    app.assert_invariants(product, 10).await;
}
