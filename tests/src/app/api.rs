//! The origin's HTTP API as the tests call it: as an admin (the admin token), as a buyer
//! signed in with the app's keys and coming through the edge (the edge secret), and its
//! `/metrics`.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::TestApp;
use crate::{read, token_for, ADMIN_TOKEN, EDGE_SECRET};

impl TestApp {
    /// `POST /admin/products` then preload; returns the product id.
    pub async fn create_sale(&self, body: Value) -> u64 {
        let (status, created) = self.admin_post("/admin/products", Some(body)).await;
        assert_eq!(status, 201, "{created}");
        let id = created["id"].as_u64().unwrap();
        let (status, loaded) = self.admin_post(&format!("/admin/products/{id}/preload"), None).await;
        assert_eq!(status, 200, "{loaded}");
        id
    }

    pub async fn create_product(&self, stock: u64) -> u64 {
        self.create_sale(json!({ "name": "Test phone", "price": "6999.00", "stock": stock })).await
    }

    pub async fn admin_post(&self, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.post(self.url(path)).bearer_auth(ADMIN_TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        read(req.send().await.expect("admin request")).await
    }

    pub async fn admin_get(&self, path: &str) -> (u16, Value) {
        read(self.http.get(self.url(path)).bearer_auth(ADMIN_TOKEN).send().await.expect("admin request")).await
    }

    /// A token signed in as `user_id` with the app's keys, as the local login signs it.
    pub fn token_for(&self, user_id: u64) -> String {
        token_for(&self.settings, user_id)
    }

    /// `POST /api/seckill` with a raw body, as the edge would send it, signed in as the body's
    /// `userId` (user 1 if it has none that is valid: the body is what is being tested).
    pub async fn buy_raw(&self, body: impl Into<reqwest::Body>) -> reqwest::Response {
        let body: reqwest::Body = body.into();
        let user = body
            .as_bytes()
            .and_then(|b| serde_json::from_slice::<Value>(b).ok())
            .and_then(|v| v.get("userId").and_then(Value::as_u64))
            .filter(|u| *u >= 1)
            .unwrap_or(1);
        self.buy_raw_as(user, body).await
    }

    /// `POST /api/seckill` with a raw body, signed in as `user_id`.
    pub async fn buy_raw_as(&self, user_id: u64, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.buy_raw_at(&self.server.url(), user_id, body).await
    }

    /// `POST /api/seckill` with a raw body, signed in as `user_id`, to the origin at `origin`
    /// (`http://host:port`): this app's, or another serving the same sale.
    pub async fn buy_raw_at(&self, origin: &str, user_id: u64, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.http
            .post(format!("{origin}/api/seckill"))
            .header("x-seckill-edge-secret", EDGE_SECRET)
            .bearer_auth(self.token_for(user_id))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("buy request")
    }

    pub async fn buy(&self, user_id: u64, product_id: u64) -> (u16, Value) {
        self.buy_at(&self.server.url(), user_id, product_id).await
    }

    /// A buy sent to the origin at `origin` (`http://host:port`).
    pub async fn buy_at(&self, origin: &str, user_id: u64, product_id: u64) -> (u16, Value) {
        let body = json!({ "userId": user_id, "productId": product_id }).to_string();
        read(self.buy_raw_at(origin, user_id, body).await).await
    }

    /// The text of `GET {url}/metrics` (an origin's or a consumer's listener).
    pub async fn scrape(&self, url: &str) -> String {
        let resp = self.http.get(format!("{url}/metrics")).send().await.expect("scrape /metrics");
        assert_eq!(resp.status(), 200);
        let kind = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(kind.starts_with("application/openmetrics-text"), "content type {kind}");
        resp.text().await.unwrap()
    }

    /// A buy that must be accepted: asserts 200 and returns its order number.
    pub async fn buy_queued(&self, user_id: u64, product_id: u64) -> String {
        let (status, body) = self.buy(user_id, product_id).await;
        assert_eq!(status, 200, "user {user_id}, product {product_id}: {body}");
        body["orderNo"].as_str().expect("orderNo in a QUEUED answer").to_string()
    }

    /// `GET /api/orders/{orderNo}` as its owner (found in MySQL or the deduction log; user 1
    /// for an order that does not exist).
    pub async fn order(&self, order_no: &str) -> (u16, Value) {
        let owner = self.owner_of(order_no).await.unwrap_or(1);
        self.order_as(order_no, owner).await
    }

    /// `GET /api/orders/{orderNo}` signed in as `user_id`.
    pub async fn order_as(&self, order_no: &str, user_id: u64) -> (u16, Value) {
        read(
            self.http
                .get(self.url(&format!("/api/orders/{order_no}")))
                .header("x-seckill-edge-secret", EDGE_SECRET)
                .bearer_auth(self.token_for(user_id))
                .send()
                .await
                .expect("order request"),
        )
        .await
    }

    /// `GET /api/orders?{query}` signed in as `user_id` (the buyer's own orders of a product).
    pub async fn orders_of(&self, user_id: u64, query: &str) -> (u16, Value) {
        read(
            self.http
                .get(self.url(&format!("/api/orders?{query}")))
                .header("x-seckill-edge-secret", EDGE_SECRET)
                .bearer_auth(self.token_for(user_id))
                .send()
                .await
                .expect("order list request"),
        )
        .await
    }

    /// Who placed an order, read behind the API's back (MySQL, else the deduction log).
    async fn owner_of(&self, order_no: &str) -> Option<u64> {
        let row: Option<(u64,)> = sqlx::query_as("SELECT user_id FROM tb_seckill_order WHERE order_no = ?")
            .bind(order_no)
            .fetch_optional(&self.db)
            .await
            .expect("read an order's owner");
        if let Some((user,)) = row {
            return Some(user);
        }
        let refused: Option<(u64,)> = sqlx::query_as("SELECT user_id FROM tb_rejected_order WHERE order_no = ?")
            .bind(order_no)
            .fetch_optional(&self.db)
            .await
            .expect("read a refused order's owner");
        if let Some((user,)) = refused {
            return Some(user);
        }
        let product = seckill_origin::orders::order_no::product_of(order_no)?;
        self.stock.deduction(product, order_no).await.ok().flatten().map(|d| d.user_id)
    }

    /// Pays as `user_id` (the signed-in user; the body repeats it, as the page sends it).
    pub async fn pay(&self, order_no: &str, user_id: u64) -> (u16, Value) {
        read(
            self.http
                .post(self.url(&format!("/api/orders/{order_no}/pay")))
                .header("x-seckill-edge-secret", EDGE_SECRET)
                .bearer_auth(self.token_for(user_id))
                .json(&json!({ "userId": user_id }))
                .send()
                .await
                .expect("pay request"),
        )
        .await
    }

    /// Waits (up to 60 s) until `GET /admin/dead-letters` lists at least one; returns the list.
    pub async fn wait_dead_letters(&self) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (_, body) = self.admin_get("/admin/dead-letters").await;
            if let Some(letters) = body["deadLetters"].as_array().filter(|l| !l.is_empty()) {
                return letters.clone();
            }
            assert!(Instant::now() < deadline, "no message reached the dead-letter list: {body}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `GET /admin/products/{id}/stock`.
    pub async fn stock(&self, product_id: u64) -> Value {
        let (status, body) = self.admin_get(&format!("/admin/products/{product_id}/stock")).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Waits until the order reaches `status` (e.g. "UNPAID"); panics after `secs`.
    pub async fn wait_order_status(&self, order_no: &str, status: &str, secs: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let (code, body) = self.order(order_no).await;
            if code == 200 && body["status"] == status {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "order {order_no} did not become {status} within {secs}s; last answer {code} {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
