//! Test harness: each [`TestApp`] is a whole origin (HTTP server + order writer) running in the
//! test process against the real Redis, MySQL and RocketMQ, isolated from every other test by
//! its own database, Redis key prefix, topics and consumer groups.
//!
//! Services come from the same settings as the origin (`config/base.toml` + `APP_…`
//! variables); `make test` points them at the test broker.

// Test and bench tooling: its counts, durations and shares are far from their types' limits,
// and a wrong one fails a run rather than a buyer. The origin and the edge convert checked.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    reason = "test and bench tooling; see the comment above"
)]

pub mod invariants;
pub mod redis_faults;
pub mod torture;

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use seckill_origin::broker::sender::{Outgoing, Sender};
use seckill_origin::broker::Messaging;
use seckill_origin::configuration::{self, BuyMode, Settings};
use seckill_origin::startup::{self, Server, Workers};
use seckill_origin::stock::RedisConnection;
use serde_json::{json, Value};
use sqlx::MySqlPool;

pub const ADMIN_TOKEN: &str = "test-admin-token";
pub const EDGE_SECRET: &str = "test-edge-secret";

#[derive(Debug)]
pub struct TestApp {
    pub settings: Settings,
    pub server: Server,
    pub workers: Option<Workers>,
    pub http: reqwest::Client,
    pub db: MySqlPool,
    /// The app's Redis (a server or a cluster), for reading keys as they are.
    pub redis: RedisConnection,
    pub id: String,
    /// The app's Redis, read as the origin reads it.
    pub stock: seckill_origin::stock::StockStore,
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
    s.consumer.port = 0;
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

/// A token for `user_id` signed with `settings`' keys (the first one), living an hour.
pub fn token_for(settings: &Settings, user_id: u64) -> String {
    Tokens::new(settings).for_user(user_id)
}

/// Signs identity tokens as the local login does, for load generators that act as many users.
#[derive(Debug, Clone)]
pub struct Tokens {
    keys: std::sync::Arc<seckill_protocol::token::KeySet>,
    audience: String,
}

impl Tokens {
    pub fn new(settings: &Settings) -> Tokens {
        let keys = seckill_protocol::token::KeySet::parse(&settings.auth.token_keys).expect("the auth keys parse");
        Tokens { keys: std::sync::Arc::new(keys), audience: settings.auth.audience.clone() }
    }

    /// A token for `user_id`, issued now, living an hour.
    pub fn for_user(&self, user_id: u64) -> String {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        self.keys.sign(user_id, &self.audience, now, 3600)
    }
}

impl TestApp {
    /// A fresh database and everything started.
    pub async fn spawn() -> TestApp {
        let (id, settings) = isolated_settings();
        Self::spawn_with(id, settings).await
    }

    /// Like [`TestApp::spawn`], with the production cancel delay level (16; 3 s on the test
    /// broker) and a pay timeout of 3 s: unpaid orders are cancelled 3 s after they are written.
    pub async fn spawn_lifecycle() -> TestApp {
        let (id, mut settings) = isolated_settings();
        settings.rocketmq.cancel_delay_level = 16;
        // Payable for as long as level 16 waits there: the cancel finds the order expired.
        settings.orders.pay_timeout_secs = 3;
        Self::spawn_with(id, settings).await
    }

    /// Like [`TestApp::spawn_with`], on a Redis server of the test's own (which it may flush,
    /// pause or crash without touching other tests), keeping what `persistence` says.
    pub async fn spawn_on_own_redis(
        id: String,
        mut settings: Settings,
        persistence: torture::redis_server::Persistence,
    ) -> (TestApp, torture::redis_server::RedisServer) {
        let dir = std::env::temp_dir().join(format!("seckill-test-redis-{id}"));
        let redis = torture::redis_server::RedisServer::start_with(&dir, &dir.with_extension("log"), persistence)
            .await
            .expect("a Redis server of the test's own");
        settings.redis.url = redis.url();
        settings.redis.cluster_urls = String::new();
        (TestApp::spawn_with(id, settings).await, redis)
    }

    /// Like [`TestApp::spawn_with`], on a Redis Cluster of the test's own (three masters with a
    /// replica each), whose nodes it may pause or kill without touching other tests.
    pub async fn spawn_on_own_cluster(
        id: String,
        mut settings: Settings,
    ) -> (TestApp, torture::redis_cluster::RedisCluster) {
        let dir = std::env::temp_dir().join(format!("seckill-test-cluster-{id}"));
        let cluster = torture::redis_cluster::RedisCluster::start(&dir, &dir.with_extension("log"))
            .await
            .expect("a Redis Cluster of the test's own");
        settings.redis.cluster_urls = cluster.seed_urls();
        (TestApp::spawn_with(id, settings).await, cluster)
    }

    /// Like [`TestApp::spawn`] with the given buy mode.
    pub async fn spawn_in_mode(mode: BuyMode) -> TestApp {
        let (id, mut settings) = isolated_settings();
        settings.buy.mode = mode;
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
        let redis =
            RedisConnection::connect(&settings.redis.url, &settings.redis.cluster_urls).await.expect("connect redis");
        let stock = seckill_origin::stock::StockStore::connect(&settings.redis).await.expect("connect redis");
        let http =
            reqwest::Client::builder().pool_max_idle_per_host(512).timeout(Duration::from_secs(30)).build().unwrap();
        TestApp { settings, server, workers: Some(workers), http, db, redis, id, stock, delivery: Default::default() }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.server.url(), path)
    }

    /// Sends `body` to `topic` (tag, key) as a producer outside the origin would: a redelivery,
    /// a replay or a poison message.
    pub async fn deliver(&self, topic: &str, tag: &str, key: &str, body: Vec<u8>) {
        self.delivery_sender().await.send(topic, tag, key, body, 0).await.expect("deliver a message");
    }

    async fn delivery_sender(&self) -> &Sender {
        let (sender, _) = self
            .delivery
            .get_or_init(|| async {
                let messaging = Messaging::start(&self.settings.rocketmq).expect("rocketmq client");
                let sender = Sender::start(&messaging, &format!("test-deliverer-{}", self.id)).await.expect("producer");
                (sender, messaging)
            })
            .await;
        sender
    }

    /// Sends `messages` (key, body) to `topic` as ONE broker batch: one queue, one pull, so
    /// the writer sees them together.
    pub async fn deliver_batch(&self, topic: &str, tag: &str, messages: Vec<(String, Vec<u8>)>) {
        let outgoing = messages.into_iter().map(|(key, body)| Outgoing { key, body }).collect();
        self.delivery_sender().await.send_batch(topic, tag, outgoing).await.expect("deliver a batch");
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

    /// Order numbers of every order row of `product`.
    pub async fn written_orders(&self, product: u64) -> Vec<String> {
        sqlx::query_scalar("SELECT order_no FROM tb_seckill_order WHERE product_id = ?")
            .bind(product)
            .fetch_all(&self.db)
            .await
            .unwrap()
    }

    /// `GET /admin/products/{id}/stock`.
    pub async fn stock(&self, product_id: u64) -> Value {
        let (status, body) = self.admin_get(&format!("/admin/products/{product_id}/stock")).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// The Redis key `what` (stock, buyers, orders, window, outbox) of `product`, as the
    /// origin names it under this test's prefix.
    pub fn product_key(&self, product: u64, what: &str) -> String {
        seckill_origin::stock::product_key(&self.settings.redis.key_prefix, product, what)
    }

    pub async fn redis_stock(&self, product_id: u64) -> i64 {
        redis::cmd("GET").arg(self.product_key(product_id, "stock")).query_async(&mut self.redis.clone()).await.unwrap()
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

impl TestApp {
    /// Takes stock in Redis for `orders` as the buy path would have before sending them (stock,
    /// buyer, deduction): for tests that hand messages to the writer themselves, so the
    /// invariant checker sees the state a real buy leaves.
    pub async fn take_for(&self, orders: &[&seckill_origin::orders::OrderMessage]) {
        for o in orders {
            let taken = self.server.state.stock().take(o.product_id, o.user_id, o.quantity, &o.order_no).await.unwrap();
            assert!(matches!(taken, seckill_origin::stock::BuyOutcome::Taken { .. }), "{taken:?}");
        }
    }

    /// The invariant checker, run at the end of every end-to-end test: once the queue has
    /// drained, [`TestApp::assert_invariants`] for every product of this test's database that
    /// Redis holds (initial = the product's initial stock), nothing in Redis or MySQL for a
    /// product it does not hold, and no dead letters.
    pub async fn check(&self) {
        self.check_expecting_dead_letters(0).await
    }

    /// [`TestApp::check`] for a test that dead-letters `expected` messages on purpose.
    pub async fn check_expecting_dead_letters(&self, expected: usize) {
        let products: Vec<(u64, i64)> =
            sqlx::query_as("SELECT id, CAST(initial_stock AS SIGNED) FROM tb_seckill_product ORDER BY id")
                .fetch_all(&self.db)
                .await
                .unwrap();
        for (product, initial) in products {
            let stock_key = self.product_key(product, "stock");
            let loaded: bool = redis::cmd("EXISTS").arg(&stock_key).query_async(&mut self.redis.clone()).await.unwrap();
            if loaded {
                self.assert_invariants(product, initial).await;
            } else {
                let orders =
                    self.count(&format!("SELECT COUNT(*) FROM tb_seckill_order WHERE product_id = {product}")).await;
                let deductions: u64 = redis::cmd("HLEN")
                    .arg(self.product_key(product, "orders"))
                    .query_async(&mut self.redis.clone())
                    .await
                    .unwrap();
                assert_eq!((orders, deductions), (0, 0), "product {product} is not in Redis yet has orders");
            }
        }
        let (_, letters) = self.admin_get("/admin/dead-letters").await;
        let listed = letters["deadLetters"].as_array().map_or(0, Vec::len);
        assert_eq!(listed, expected, "dead letters: {letters}");
    }

    /// Waits (up to 60 s) until the product's outbox is empty and every deduction in Redis has
    /// its row in MySQL, then checks the system's invariants for it
    /// ([`invariants::ProductState::violations`]); panics naming every one that does not hold.
    pub async fn assert_invariants(&self, product: u64, initial: i64) {
        let state = self.product_state(product);
        let drained = state.wait_drained(Duration::from_secs(60)).await;
        let broken = state.violations(initial).await;
        assert!(drained && broken.is_empty(), "product {product}: {}", broken.join("; "));
    }

    /// Where `product`'s state lives, for [`invariants`].
    pub fn product_state(&self, product: u64) -> invariants::ProductState {
        invariants::ProductState {
            db: self.db.clone(),
            redis: self.redis.clone(),
            key_prefix: self.settings.redis.key_prefix.clone(),
            product,
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

/// `seckill-origin serve` or `consume` running as its own process (the binary `make up`
/// builds), with the settings of a test app: for tests that kill and restart it.
#[derive(Debug)]
pub struct OriginProcess {
    child: Option<std::process::Child>,
    settings: Settings,
    command: &'static str,
    port: Option<u16>,
    log: PathBuf,
    /// `http://127.0.0.1:<port>` of a `serve` process; empty for `consume`.
    pub url: String,
}

impl OriginProcess {
    /// Starts `seckill-origin serve` on a free port with `settings` and waits for `/livez`.
    pub async fn start(settings: &Settings, log_name: &str) -> OriginProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Self::serve_on(settings, log_name, port).await
    }

    /// Starts `seckill-origin serve` on `port` and waits for `/livez`.
    pub async fn serve_on(settings: &Settings, log_name: &str, port: u16) -> OriginProcess {
        let mut process = Self::new(settings, log_name, "serve", Some(port));
        process.spawn();
        process.wait_live().await;
        process
    }

    /// Starts `seckill-origin consume` (the order writer and the canceller).
    pub fn consume(settings: &Settings, log_name: &str) -> OriginProcess {
        let mut process = Self::new(settings, log_name, "consume", None);
        process.spawn();
        process
    }

    fn new(settings: &Settings, log_name: &str, command: &'static str, port: Option<u16>) -> OriginProcess {
        let logs = std::env::var("SECKILL_LOGS").map(PathBuf::from).unwrap_or_else(|_| std::env::temp_dir());
        OriginProcess {
            child: None,
            settings: settings.clone(),
            command,
            port,
            log: logs.join(format!("{log_name}.log")),
            url: port.map(|p| format!("http://127.0.0.1:{p}")).unwrap_or_default(),
        }
    }

    fn spawn(&mut self) {
        // Appended to: a restarted process continues its predecessor's log.
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("process log file");
        let mut command = origin_command(&self.settings, &[self.command]);
        if let Some(port) = self.port {
            command.env("APP_HTTP__HOST", "127.0.0.1").env("APP_HTTP__PORT", port.to_string());
        }
        let child = command.stdout(log.try_clone().unwrap()).stderr(log).spawn().expect("start an origin process");
        self.child = Some(child);
    }

    async fn wait_live(&self) {
        let http = reqwest::Client::new();
        let url = &self.url;
        let up = wait_until(Duration::from_secs(60), || {
            let probe = http.get(format!("{url}/livez")).send();
            async move { probe.await.is_ok_and(|r| r.status() == 200) }
        })
        .await;
        assert!(up, "the origin process did not answer on {url} (log: {})", self.log.display());
    }

    /// SIGKILL: no shutdown, no flushing, nothing.
    pub fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill -9 an origin process");
            child.wait().expect("reap an origin process");
        }
    }

    /// Starts the process again with the same settings (and port); a `serve` process is
    /// waited for until it answers `/livez`.
    pub async fn restart(&mut self) {
        self.kill_9();
        self.spawn();
        if self.port.is_some() {
            self.wait_live().await;
        }
    }
}

impl Drop for OriginProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `seckill-origin ARGS` (the binary `make up` builds) with the settings of a test app in its
/// environment. The binary: `$SECKILL_ORIGIN_BIN`, else `$CARGO_TARGET_DIR/debug/seckill-origin`.
pub fn origin_command(settings: &Settings, args: &[&str]) -> std::process::Command {
    let bin = std::env::var("SECKILL_ORIGIN_BIN").map(PathBuf::from).unwrap_or_else(|_| {
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
        target.join("debug/seckill-origin")
    });
    assert!(bin.exists(), "no origin binary at {} (make up builds it; or set SECKILL_ORIGIN_BIN)", bin.display());
    let (s, mq) = (settings, &settings.rocketmq);
    let env: Vec<(&str, String)> = vec![
        ("APP_CONFIG_DIR", configuration::config_dir().display().to_string()),
        ("APP_HTTP__ADMIN_TOKEN", s.http.admin_token.clone()),
        ("APP_HTTP__EDGE_SECRET", s.http.edge_secret.clone()),
        ("APP_ENVIRONMENT", s.environment.clone()),
        ("APP_LOG__FORMAT", format!("{:?}", s.log.format).to_lowercase()),
        ("APP_AUTH__TOKEN_KEYS", s.auth.token_keys.clone()),
        ("APP_REDIS__URL", s.redis.url.clone()),
        ("APP_REDIS__CLUSTER_URLS", s.redis.cluster_urls.clone()),
        ("APP_REDIS__KEY_PREFIX", s.redis.key_prefix.clone()),
        ("APP_MYSQL__HOST", s.mysql.host.clone()),
        ("APP_MYSQL__PORT", s.mysql.port.to_string()),
        ("APP_MYSQL__USERNAME", s.mysql.username.clone()),
        ("APP_MYSQL__PASSWORD", s.mysql.password.clone()),
        ("APP_MYSQL__DATABASE", s.mysql.database.clone()),
        ("APP_ROCKETMQ__NAMESRV_ADDR", mq.namesrv_addr.clone()),
        ("APP_ROCKETMQ__ORDER_TOPIC", mq.order_topic.clone()),
        ("APP_ROCKETMQ__CANCEL_TOPIC", mq.cancel_topic.clone()),
        ("APP_ROCKETMQ__EVENT_TOPIC", mq.event_topic.clone()),
        ("APP_ROCKETMQ__PRODUCER_GROUP", format!("{}-process", mq.producer_group)),
        ("APP_ROCKETMQ__ORDER_WRITER_GROUP", mq.order_writer_group.clone()),
        ("APP_ROCKETMQ__CANCELLER_GROUP", mq.canceller_group.clone()),
        ("APP_ROCKETMQ__CANCEL_DELAY_LEVEL", mq.cancel_delay_level.to_string()),
        ("APP_ROCKETMQ__DELAY_LEVELS", mq.delay_levels.clone()),
        ("APP_ORDERS__PAY_TIMEOUT_SECS", s.orders.pay_timeout_secs.to_string()),
        ("APP_ORDERS__BACKSTOP_GRACE_SECS", s.orders.backstop_grace_secs.to_string()),
        ("APP_REDIS__FENCE_AUTO_HEAL", s.redis.fence_auto_heal.to_string()),
        ("APP_BUY__MODE", format!("{:?}", s.buy.mode).to_lowercase()),
        ("APP_BUY__SWEEP_AFTER_MS", s.buy.sweep_after_ms.to_string()),
        ("APP_CONSUMER__PORT", s.consumer.port.to_string()),
        ("RUST_LOG", "info,rocketmq_client_rust=warn,rocketmq_remoting=warn,rocketmq_transport=warn".into()),
    ];
    let mut command = std::process::Command::new(bin);
    command.args(args).envs(env);
    command
}

/// `scripts/services.sh` of this repository, for tests that stop and start services.
pub fn services_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/services.sh")
}

/// The value of `series` (its name with any labels, as written) in a `/metrics` text.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
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

/// A TCP proxy in front of Redis that can lose one reply: armed with a marker, it forwards the
/// first request whose bytes contain the marker, lets Redis run it, then drops that connection
/// without relaying the answer — a command whose outcome the client cannot know. It can also
/// go down (connections refused) and come back on the same port.
#[derive(Debug)]
pub struct LossyRedisProxy {
    /// `redis://127.0.0.1:<port>`: point the origin's `redis.url` here.
    pub url: String,
    addr: std::net::SocketAddr,
    upstream: String,
    armed: std::sync::Arc<std::sync::Mutex<Option<Vec<u8>>>>,
    /// Requests that were cut so far.
    pub cut: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Flipped to true by [`LossyRedisProxy::stop`]: every open connection is closed.
    down: tokio::sync::watch::Sender<bool>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl LossyRedisProxy {
    pub async fn start(upstream: &str) -> LossyRedisProxy {
        let upstream = upstream.trim_start_matches("redis://").trim_end_matches('/').to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let proxy = LossyRedisProxy {
            url: format!("redis://{addr}"),
            addr,
            upstream,
            armed: Default::default(),
            cut: Default::default(),
            down: tokio::sync::watch::channel(false).0,
            task: Default::default(),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let (upstream, armed, cut, down) =
            (self.upstream.clone(), self.armed.clone(), self.cut.clone(), self.down.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else { continue };
                let (armed, cut, mut down) = (armed.clone(), cut.clone(), down.subscribe());
                tokio::spawn(async move {
                    tokio::select! {
                        biased; // once down, nothing more is relayed
                        _ = down.wait_for(|d| *d) => {}
                        _ = Self::pipe(client, server, armed, cut) => {}
                    }
                });
            }
        });
        *self.task.lock().unwrap() = Some(task);
    }

    /// The next request containing `marker` runs in Redis but its answer is lost.
    pub fn lose_the_answer_to(&self, marker: &str) {
        *self.armed.lock().unwrap() = Some(marker.as_bytes().to_vec());
    }

    /// Closes every connection and stops listening: connections are refused until
    /// [`LossyRedisProxy::restart`].
    pub fn stop(&self) {
        if let Some(task) = self.task.lock().unwrap().take() {
            task.abort();
        }
        self.down.send_replace(true);
    }

    /// Listens again on the same port.
    pub async fn restart(&self) {
        self.down.send_replace(false);
        let listener = tokio::net::TcpListener::bind(self.addr).await.expect("rebind the proxy's port");
        self.serve(listener);
    }

    async fn pipe(
        client: tokio::net::TcpStream,
        server: tokio::net::TcpStream,
        armed: std::sync::Arc<std::sync::Mutex<Option<Vec<u8>>>>,
        cut: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = server.into_split();
        let replies = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        });
        let _stop_replies = AbortOnDrop(replies);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let chunk = &buf[..n];
            let hit = {
                let mut armed = armed.lock().unwrap();
                let hit = armed.as_ref().is_some_and(|m| chunk.windows(m.len()).any(|w| w == m.as_slice()));
                if hit {
                    *armed = None;
                }
                hit
            };
            if hit {
                // The reply must not get through: stop relaying before Redis can answer.
                _stop_replies.0.abort();
                let _ = server_write.write_all(chunk).await;
                cut.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                // Long enough for Redis to run it; then the connection dies unanswered.
                tokio::time::sleep(Duration::from_millis(200)).await;
                return; // dropping both halves closes both connections
            }
            if server_write.write_all(chunk).await.is_err() {
                return;
            }
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Drop for LossyRedisProxy {
    fn drop(&mut self) {
        self.stop();
    }
}
