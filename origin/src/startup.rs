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
use crate::dead_letters;
use crate::metrics::Metrics;
use crate::orders::canceller::{self, CancelOutcome};
use crate::orders::events;
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
    sender: Sender,
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

    /// A plain producer (dead-letter replays, health probes).
    pub fn sender(&self) -> &Sender {
        &self.0.sender
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
    server.execute(format!("CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4").as_str()).await?;
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
    stop: Arc<tokio::sync::Notify>,
    _messaging: Messaging,
}

impl Server {
    /// Connects everything and starts listening on `http.host:http.port` (port 0 picks one).
    pub async fn start(settings: Settings) -> anyhow::Result<Self> {
        let db = connect_mysql(&settings).await?;
        let stock =
            StockStore::connect(&settings.redis.url, &settings.redis.key_prefix).await.context("connect to Redis")?;
        let node = stock.next_sequence("origin-node").await.context("allocate an origin node id")?;
        let messaging = Messaging::start(&settings.rocketmq)?;
        let buy = BuyProducer::start(&messaging, stock.clone()).await?;
        let sender = Sender::start(&messaging, &format!("{}-serve", settings.rocketmq.producer_group)).await?;
        let listener = TcpListener::bind((settings.http.host.as_str(), settings.http.port))
            .await
            .with_context(|| format!("bind {}:{}", settings.http.host, settings.http.port))?;
        let addr = listener.local_addr()?;
        let state = AppState(Arc::new(Inner {
            settings,
            db,
            stock,
            buy,
            sender,
            order_nos: OrderNoGenerator::new(node),
            metrics: Metrics::default(),
        }));
        let app = crate::http::app(state.clone());
        let stop = Arc::new(tokio::sync::Notify::new());
        let stopped = Arc::clone(&stop);
        // Graceful: on stop, no new connections, and requests in flight (a buy whose script
        // already took stock) still get their answer.
        let task = tokio::spawn(async move {
            axum::serve(listener, app).with_graceful_shutdown(async move { stopped.notified().await }).await
        });
        tracing::info!(%addr, node, "origin listening");
        Ok(Self { addr, state, task, stop, _messaging: messaging })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Runs until the server stops (it does not on its own).
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        (&mut self.task).await??;
        Ok(())
    }

    /// Stops accepting connections, lets requests in flight finish, then returns.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.stop.notify_one();
        self.wait().await
    }
}

/// The running consumers of `consume`: order writer, canceller, dead-letter keeper, and the
/// order-event relay.
pub struct Workers {
    pub metrics: Arc<Metrics>,
    consumers: Vec<Consumer>,
    relay: JoinHandle<()>,
    _messaging: Messaging,
}

/// Body of a `seckill-cancel` message.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelMessage {
    pub order_no: String,
}

impl Workers {
    pub async fn start(settings: Settings) -> anyhow::Result<Self> {
        let db = connect_mysql(&settings).await?;
        let stock =
            StockStore::connect(&settings.redis.url, &settings.redis.key_prefix).await.context("connect to Redis")?;
        let messaging = Messaging::start(&settings.rocketmq)?;
        let metrics = Arc::new(Metrics::default());
        // Started first: it provisions the topics, so the consumers find their routes.
        let sender =
            Arc::new(Sender::start(&messaging, &format!("{}-consume", settings.rocketmq.producer_group)).await?);
        let mq = settings.rocketmq.clone();

        let writer = Consumer::start(
            &messaging,
            &mq.order_writer_group,
            &mq.order_topic,
            order_writer(db.clone(), Arc::clone(&sender), Arc::clone(&metrics), &settings),
        )
        .await?;
        let canceller = Consumer::start(
            &messaging,
            &mq.canceller_group,
            &mq.cancel_topic,
            canceller(db.clone(), stock, Arc::clone(&metrics)),
        )
        .await?;
        let dlq_topics =
            [dead_letters::dlq_topic(&mq.order_writer_group), dead_letters::dlq_topic(&mq.canceller_group)];
        let (keeper_db, keeper_metrics) = (db.clone(), Arc::clone(&metrics));
        let keeper = Consumer::start_many(
            &messaging,
            &format!("{}-dead-letter-keeper", mq.producer_group),
            &dlq_topics.iter().map(String::as_str).collect::<Vec<_>>(),
            Arc::new(move |msg| {
                let (db, metrics) = (keeper_db.clone(), Arc::clone(&keeper_metrics));
                Box::pin(async move {
                    dead_letters::keep(&db, &msg).await?;
                    Metrics::incr(&metrics.dead_letters);
                    Ok(())
                })
            }),
        )
        .await?;
        let relay = tokio::spawn(events::relay(db, Arc::clone(&sender), mq.event_topic.clone()));
        tracing::info!(writer = %mq.order_writer_group, canceller = %mq.canceller_group, "consumers running");
        Ok(Self { metrics, consumers: vec![writer, canceller, keeper], relay, _messaging: messaging })
    }

    pub async fn shutdown(&mut self) {
        self.relay.abort();
        for c in &mut self.consumers {
            c.shutdown().await;
        }
    }
}

/// The order writer: one MySQL transaction per order message, then the delayed cancel.
/// The cancel goes out on every delivery that finds the order UNPAID, including redeliveries
/// of an order already written: a writer that died between its commit and the send still gets
/// the cancel sent. A failed send fails the message, so the broker redelivers it.
fn order_writer(db: MySqlPool, sender: Arc<Sender>, metrics: Arc<Metrics>, settings: &Settings) -> Handler {
    let group = settings.rocketmq.order_writer_group.clone();
    let cancel_topic = settings.rocketmq.cancel_topic.clone();
    let delay_level = settings.rocketmq.cancel_delay_level;
    let pay_timeout = Duration::from_secs(settings.orders.pay_timeout_secs);
    Arc::new(move |msg| {
        let (db, sender, metrics) = (db.clone(), Arc::clone(&sender), Arc::clone(&metrics));
        let (group, cancel_topic) = (group.clone(), cancel_topic.clone());
        Box::pin(async move {
            let body = msg.body().unwrap_or_default();
            let order: OrderMessage =
                serde_json::from_slice(&body).map_err(|e| format!("unreadable order message {}: {e}", msg.msg_id()))?;
            let unpaid = match writer::write(&db, &group, &order, pay_timeout).await {
                Ok(Written::Created) => {
                    Metrics::incr(&metrics.orders_written);
                    true
                }
                Ok(Written::AlreadyWritten) => {
                    Metrics::incr(&metrics.orders_redelivered);
                    let status: Option<String> =
                        sqlx::query_scalar("SELECT status FROM tb_seckill_order WHERE order_no = ?")
                            .bind(&order.order_no)
                            .fetch_optional(&db)
                            .await
                            .map_err(|e| e.to_string())?;
                    status.as_deref() == Some("UNPAID")
                }
                Err(e) => {
                    Metrics::incr(&metrics.order_write_failures);
                    return Err(e.to_string());
                }
            };
            if unpaid {
                let cancel =
                    serde_json::to_vec(&CancelMessage { order_no: order.order_no.clone() }).expect("serializes");
                sender
                    .send(&cancel_topic, "CANCEL", &order.order_no, cancel, delay_level)
                    .await
                    .map_err(|e| format!("order {} written but its cancel was not sent: {e}", order.order_no))?;
            }
            Ok(())
        })
    })
}

/// The canceller: UNPAID → CANCELLED in MySQL (stock back, user record gone), then the stock
/// back in Redis with `release.lua`, which acts once. A redelivery after the MySQL commit finds
/// the order CANCELLED and still makes sure Redis got its stock back; a paid order is left alone.
fn canceller(db: MySqlPool, stock: StockStore, metrics: Arc<Metrics>) -> Handler {
    Arc::new(move |msg| {
        let (db, stock, metrics) = (db.clone(), stock.clone(), Arc::clone(&metrics));
        Box::pin(async move {
            let body = msg.body().unwrap_or_default();
            let cancel: CancelMessage = serde_json::from_slice(&body)
                .map_err(|e| format!("unreadable cancel message {}: {e}", msg.msg_id()))?;
            let order_no = cancel.order_no;
            let product_id = match canceller::cancel_if_unpaid(&db, &order_no).await.map_err(|e| e.to_string())? {
                CancelOutcome::Cancelled { product_id, .. } => {
                    Metrics::incr(&metrics.orders_cancelled);
                    product_id
                }
                CancelOutcome::AlreadyCancelled { product_id } => {
                    Metrics::incr(&metrics.cancels_repeated);
                    product_id
                }
                CancelOutcome::Paid => {
                    Metrics::incr(&metrics.cancels_skipped);
                    return Ok(());
                }
                CancelOutcome::Missing => {
                    tracing::warn!(%order_no, "cancel for an order MySQL does not have; ignored");
                    return Ok(());
                }
            };
            stock
                .release(product_id, &order_no)
                .await
                .map_err(|e| format!("order {order_no} cancelled but Redis stock not given back yet: {e}"))?;
            Ok(())
        })
    })
}
