//! Test harness: each [`TestApp`] is a whole origin (HTTP server + order writer) running in the
//! test process against the real Redis, MySQL and RocketMQ, isolated from every other test by
//! its own database, Redis key prefix, topics and consumer groups.
//!
//! Services come from the same settings as the origin (`config/base.toml` + `APP_…`
//! variables); `make test` points them at the test broker.

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use seckill_origin::broker::sender::Sender;
use seckill_origin::broker::Messaging;
use seckill_origin::configuration::{self, Settings};
use seckill_origin::startup::{self, Server, Workers};
use serde_json::{json, Value};
use sqlx::MySqlPool;

pub const ADMIN_TOKEN: &str = "test-admin-token";
pub const EDGE_SECRET: &str = "test-edge-secret";

pub struct TestApp {
    pub settings: Settings,
    pub server: Server,
    pub workers: Option<Workers>,
    pub http: reqwest::Client,
    pub db: MySqlPool,
    pub redis: redis::aio::MultiplexedConnection,
    pub id: String,
    /// A producer of the test's own, for delivering messages by hand (see [`TestApp::deliver`]).
    delivery: tokio::sync::OnceCell<(Sender, Messaging)>,
}

/// Settings for a fresh, isolated app (nothing started yet).
pub fn isolated_settings() -> (String, Settings) {
    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    let mut s = configuration::load().expect("load settings");
    s.http.port = 0;
    s.http.admin_token = ADMIN_TOKEN.into();
    s.http.edge_secret = EDGE_SECRET.into();
    s.mysql.database = format!("seckill_test_{id}");
    s.redis.key_prefix = format!("seckill-test-{id}");
    let mq = &mut s.rocketmq;
    mq.order_topic = format!("seckill-order-{id}");
    mq.cancel_topic = format!("seckill-cancel-{id}");
    mq.event_topic = format!("seckill-order-event-{id}");
    mq.producer_group = format!("seckill-origin-{id}");
    mq.order_writer_group = format!("seckill-order-writer-{id}");
    mq.canceller_group = format!("seckill-order-canceller-{id}");
    mq.queue_nums = 4;
    // On the test broker level 18 is 2 h: orders stay UNPAID while a test looks at them.
    // Tests of the order's life use [`TestApp::spawn_lifecycle`], which sends level 16 (3 s).
    mq.cancel_delay_level = 18;
    (id, s)
}

impl TestApp {
    /// A fresh database and everything started.
    pub async fn spawn() -> TestApp {
        let (id, settings) = isolated_settings();
        Self::spawn_with(id, settings).await
    }

    /// Like [`TestApp::spawn`], with the production cancel delay level (16; 3 s on the test
    /// broker): unpaid orders are cancelled 3 s after they are written.
    pub async fn spawn_lifecycle() -> TestApp {
        let (id, mut settings) = isolated_settings();
        settings.rocketmq.cancel_delay_level = 16;
        Self::spawn_with(id, settings).await
    }

    pub async fn spawn_with(id: String, settings: Settings) -> TestApp {
        // RUST_LOG=seckill_origin=info etc. shows the origin's logs under --nocapture.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        startup::migrate(&settings).await.expect("migrate a fresh test database");
        let workers = Workers::start(settings.clone()).await.expect("start consumers");
        let server = Server::start(settings.clone()).await.expect("start origin");
        let db = startup::connect_mysql(&settings).await.expect("connect test database");
        let redis = redis::Client::open(settings.redis.url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .expect("connect redis");
        let http =
            reqwest::Client::builder().pool_max_idle_per_host(512).timeout(Duration::from_secs(30)).build().unwrap();
        TestApp { settings, server, workers: Some(workers), http, db, redis, id, delivery: Default::default() }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.server.url(), path)
    }

    /// Sends `body` to `topic` (tag, key) as a producer outside the origin would: a redelivery,
    /// a replay or a poison message.
    pub async fn deliver(&self, topic: &str, tag: &str, key: &str, body: Vec<u8>) {
        let (sender, _) = self
            .delivery
            .get_or_init(|| async {
                let messaging = Messaging::start(&self.settings.rocketmq).expect("rocketmq client");
                let sender = Sender::start(&messaging, &format!("test-deliverer-{}", self.id)).await.expect("producer");
                (sender, messaging)
            })
            .await;
        sender.send(topic, tag, key, body, 0).await.expect("deliver a message");
    }

    pub fn workers(&self) -> &Workers {
        self.workers.as_ref().expect("workers running")
    }

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

    /// `POST /api/seckill` with a raw body, as the edge would send it.
    pub async fn buy_raw(&self, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.http
            .post(self.url("/api/seckill"))
            .header("x-seckill-edge-secret", EDGE_SECRET)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("buy request")
    }

    pub async fn buy(&self, user_id: u64, product_id: u64) -> (u16, Value) {
        read(self.buy_raw(json!({ "userId": user_id, "productId": product_id }).to_string()).await).await
    }

    /// A buy that must be accepted: asserts 200 and returns its order number.
    pub async fn buy_queued(&self, user_id: u64, product_id: u64) -> String {
        let (status, body) = self.buy(user_id, product_id).await;
        assert_eq!(status, 200, "user {user_id}, product {product_id}: {body}");
        body["orderNo"].as_str().expect("orderNo in a QUEUED answer").to_string()
    }

    pub async fn order(&self, order_no: &str) -> (u16, Value) {
        read(
            self.http
                .get(self.url(&format!("/api/orders/{order_no}")))
                .header("x-seckill-edge-secret", EDGE_SECRET)
                .send()
                .await
                .expect("order request"),
        )
        .await
    }

    pub async fn pay(&self, order_no: &str, user_id: u64) -> (u16, Value) {
        read(
            self.http
                .post(self.url(&format!("/api/orders/{order_no}/pay")))
                .header("x-seckill-edge-secret", EDGE_SECRET)
                .json(&json!({ "userId": user_id }))
                .send()
                .await
                .expect("pay request"),
        )
        .await
    }

    /// `GET /admin/products/{id}/stock`.
    pub async fn stock(&self, product_id: u64) -> Value {
        let (status, body) = self.admin_get(&format!("/admin/products/{product_id}/stock")).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    pub async fn redis_stock(&self, product_id: u64) -> i64 {
        let key = format!("{}:{{{product_id}}}:stock", self.settings.redis.key_prefix);
        redis::cmd("GET").arg(key).query_async(&mut self.redis.clone()).await.unwrap()
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar::<_, i64>(sql).fetch_one(&self.db).await.unwrap()
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

/// Status and JSON body (Null if the body is not JSON).
pub async fn read(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

/// Polls `check` every 100 ms until it is true (returns true) or `limit` passes (false).
pub async fn wait_until<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `scripts/services.sh` of this repository, for tests that stop and start services.
pub fn services_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/services.sh")
}

/// Runs `scripts/services.sh ARGS`, panicking with its output if it fails.
pub fn services(args: &[&str]) {
    let out = std::process::Command::new("bash").arg(services_script()).args(args).output().expect("run services.sh");
    assert!(
        out.status.success(),
        "services.sh {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
