//! [`TestApp`]: a whole origin (HTTP server + order writer) in the test process, isolated
//! from every other test. Starting it, handing it messages as a producer would, and reading
//! its Redis and MySQL behind its back; its HTTP API is in `api`, the invariant checker that
//! ends every test in `checks`.

mod api;
mod checks;

use std::time::Duration;

use seckill_origin::broker::sender::{Outgoing, Sender};
use seckill_origin::broker::Messaging;
use seckill_origin::configuration::{BuyMode, Settings};
use seckill_origin::startup::{self, Server, Workers};
use seckill_origin::stock::RedisConnection;
use sqlx::MySqlPool;

use crate::{isolated_settings, torture};

/// A whole origin running in the test process against the real Redis, MySQL and RocketMQ, with
/// a database, Redis key prefix, topics and consumer groups of its own ([`isolated_settings`]).
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

    /// Order numbers of every order row of `product`.
    pub async fn written_orders(&self, product: u64) -> Vec<String> {
        sqlx::query_scalar("SELECT order_no FROM tb_seckill_order WHERE product_id = ?")
            .bind(product)
            .fetch_all(&self.db)
            .await
            .unwrap()
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
}
