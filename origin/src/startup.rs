//! Wiring: connect to Redis, MySQL and RocketMQ, then run the HTTP server (`serve`) or the
//! consumers (`consume`).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::mysql::MySqlPoolOptions;
use sqlx::{ConnectOptions, Executor, MySqlPool};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::broker::buy::BuyProducer;
use crate::broker::consumer::{Consumer, Handler};
use crate::broker::sender::Sender;
use crate::broker::Messaging;
use crate::configuration::Settings;
use crate::metrics::Metrics;
use crate::orders::order_no::OrderNoGenerator;
use crate::orders::writer::{self, Written};
use crate::orders::OrderMessage;
use crate::stock::StockStore;

/// Shared by every request handler.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    settings: Settings,
    db: MySqlPool,
    stock: StockStore,
    buy: BuyProducer,
    events: Sender,
    order_nos: OrderNoGenerator,
    metrics: Metrics,
}

impl AppState {
    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }
    pub fn db(&self) -> &MySqlPool {
        &self.0.db
    }
    pub fn stock(&self) -> &StockStore {
        &self.0.stock
    }
    pub fn buy_producer(&self) -> &BuyProducer {
        &self.0.buy
    }
    pub fn order_nos(&self) -> &OrderNoGenerator {
        &self.0.order_nos
    }
    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }
    pub fn broker_ok(&self) {
        self.0.metrics.broker_failing_since.store(0, Ordering::Relaxed);
    }
    pub fn broker_failed(&self) {
        let now = chrono::Utc::now().timestamp_millis();
        let _ = self.0.metrics.broker_failing_since.compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
    }
    pub fn broker_failing(&self) -> bool {
        self.0.metrics.broker_failing_since.load(Ordering::Relaxed) != 0
    }

    /// Publishes an order event (tag CREATED / PAID / CANCELLED) on the event topic. Best
    /// effort from the HTTP path: a failure is logged, the state change already committed.
    pub async fn order_event(&self, order_no: &str, tag: &str) {
        let topic = &self.0.settings.rocketmq.event_topic;
        let body = serde_json::json!({ "orderNo": order_no, "event": tag, "at": chrono::Utc::now().timestamp_millis() });
        if let Err(e) = self.0.events.send(topic, tag, order_no, body.to_string().into_bytes(), 0).await {
            tracing::warn!(%order_no, %tag, error = %e, "order event not sent");
        }
    }
}

/// Opens a MySQL pool on the configured database.
pub async fn connect_mysql(settings: &Settings) -> anyhow::Result<MySqlPool> {
    let options = settings.mysql.connect_options().log_statements(tracing::log::LevelFilter::Trace);
    MySqlPoolOptions::new()
        .max_connections(settings.mysql.max_connections)
        .acquire_timeout(Duration::from_secs(3))
        .connect_with(options)
        .await
        .with_context(|| format!("connect to MySQL at {}:{}", settings.mysql.host, settings.mysql.port))
}

/// Creates the database if missing and applies `migrations/`.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let mut server = settings.mysql.server_options().connect().await.context("connect to MySQL")?;
    let name = &settings.mysql.database;
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        anyhow::bail!("database name {name:?} may hold only letters, digits and _");
    }
    server
        .execute(format!("CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4").as_str())
        .await?;
    let pool = connect_mysql(settings).await?;
    sqlx::migrate!("../migrations").run(&pool).await.context("apply migrations")?;
    pool.close().await;
    Ok(())
}

/// A running HTTP server.
pub struct Server {
    pub addr: SocketAddr,
    pub state: AppState,
    task: JoinHandle<std::io::Result<()>>,
    _messaging: Messaging,
}

impl Server {
    /// Connects everything and starts listening on `http.host:http.port` (port 0 picks one).
    pub async fn start(settings: Settings) -> anyhow::Result<Self> {
        let db = connect_mysql(&settings).await?;
        let stock = StockStore::connect(&settings.redis.url, &settings.redis.key_prefix)
            .await
            .context("connect to Redis")?;
        let node = stock.next_sequence("origin-node").await.context("allocate an origin node id")?;
        let messaging = Messaging::start(&settings.rocketmq)?;
        let buy = BuyProducer::start(&messaging, stock.clone()).await?;
        let events = Sender::start(&messaging, &format!("{}-events", settings.rocketmq.producer_group)).await?;
        let listener = TcpListener::bind((settings.http.host.as_str(), settings.http.port))
            .await
            .with_context(|| format!("bind {}:{}", settings.http.host, settings.http.port))?;
        let addr = listener.local_addr()?;
        let state = AppState(Arc::new(Inner {
            settings,
            db,
            stock,
            buy,
            events,
            order_nos: OrderNoGenerator::new(node),
            metrics: Metrics::default(),
        }));
        let app = crate::http::app(state.clone());
        let task = tokio::spawn(async move { axum::serve(listener, app).await });
        tracing::info!(%addr, node, "origin listening");
        Ok(Self { addr, state, task, _messaging: messaging })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Runs until the server stops (it does not on its own).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await??;
        Ok(())
    }

    pub fn abort(&self) {
        self.task.abort();
    }
}

/// The running consumers of `consume`.
pub struct Workers {
    pub metrics: Arc<Metrics>,
    consumers: Vec<Consumer>,
    _messaging: Messaging,
}

impl Workers {
    /// Starts the order writer (group `order_writer_group` on `order_topic`).
    pub async fn start(settings: Settings) -> anyhow::Result<Self> {
        let db = connect_mysql(&settings).await?;
        let messaging = Messaging::start(&settings.rocketmq)?;
        let metrics = Arc::new(Metrics::default());
        // A producer first, so the topics exist before the consumers look up their routes.
        let mut provisioner = Sender::start(&messaging, &format!("{}-consumer", settings.rocketmq.producer_group)).await?;
        provisioner.shutdown().await;

        let group = settings.rocketmq.order_writer_group.clone();
        let pay_timeout = Duration::from_secs(settings.orders.pay_timeout_secs);
        let handler: Handler = {
            let (db, metrics, group) = (db.clone(), Arc::clone(&metrics), group.clone());
            Arc::new(move |msg| {
                let (db, metrics, group) = (db.clone(), Arc::clone(&metrics), group.clone());
                Box::pin(async move {
                    let body = msg.body().unwrap_or_default();
                    let order: OrderMessage = serde_json::from_slice(&body)
                        .map_err(|e| format!("unreadable order message {}: {e}", msg.msg_id()))?;
                    match writer::write(&db, &group, &order, pay_timeout).await {
                        Ok(Written::Created) => Metrics::incr(&metrics.orders_written),
                        Ok(Written::AlreadyWritten) => Metrics::incr(&metrics.orders_redelivered),
                        Err(e) => {
                            Metrics::incr(&metrics.order_write_failures);
                            return Err(e.to_string());
                        }
                    }
                    Ok(())
                })
            })
        };
        let writer = Consumer::start(&messaging, &group, &settings.rocketmq.order_topic, handler).await?;
        tracing::info!(%group, topic = %settings.rocketmq.order_topic, "order writer consuming");
        Ok(Self { metrics, consumers: vec![writer], _messaging: messaging })
    }

    pub async fn shutdown(&mut self) {
        for c in &mut self.consumers {
            c.shutdown().await;
        }
    }
}
