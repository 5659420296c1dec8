//! Wiring: connect to Redis, MySQL and RocketMQ, then run the HTTP server (`serve`) or the
//! consumers (`consume`). Decisions live in the concept modules; this file only connects them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use sqlx::mysql::MySqlPoolOptions;
use sqlx::{ConnectOptions, Executor, MySqlPool};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::broker::consumer::Consumer;
use crate::broker::health::BrokerHealth;
use crate::broker::sender::Sender;
use crate::broker::Messaging;
use crate::configuration::{BuyMode, Settings};
use crate::consume::handlers::{Canceller, OrderWriter};
use crate::consume::lag;
use crate::consume::stock_gauges;
use crate::dead_letters;
use crate::fencing::watch::Fence;
use crate::http::state::{AppState, Inner};
use crate::metrics::Metrics;
use crate::orders::events;
use crate::orders::node_lease;
use crate::purchase::batched::{BatchedBuyer, RelayTarget};
use crate::purchase::sold_out::SoldOutMemo;
use crate::purchase::sweeper::Sweeper;
use crate::purchase::transaction::BuyProducer;
use crate::purchase::Buyer;
use crate::stock::StockStore;

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
#[derive(Debug)]
pub struct Server {
    pub addr: SocketAddr,
    pub state: AppState,
    task: JoinHandle<std::io::Result<()>>,
    stop: Arc<tokio::sync::Notify>,
    /// The sweeper and the broker probe: stopped with the server.
    background: Vec<JoinHandle<()>>,
    /// This process's name in the node lease.
    holder: String,
    _messaging: Arc<Messaging>,
}

impl Server {
    /// Connects everything and starts listening on `http.host:http.port` (port 0 picks one).
    pub async fn start(settings: Settings) -> anyhow::Result<Self> {
        // Refused before anything is connected: a public origin with a known secret is worse
        // than none.
        let problems = settings.unsafe_defaults();
        if !problems.is_empty() {
            anyhow::bail!(
                "refusing to serve in environment {:?}:\n  - {}",
                settings.environment,
                problems.join("\n  - ")
            );
        }
        let token_keys = seckill_protocol::token::KeySet::parse(&settings.auth.token_keys)
            .map_err(|e| anyhow::anyhow!("auth.token_keys (APP_AUTH__TOKEN_KEYS): {e}"))?;
        let db = connect_mysql(&settings).await?;
        let stock = StockStore::connect(&settings.redis).await.context("connect to Redis")?;
        // Names this process in the node lease and the sweeper lease.
        let holder = format!("{}-{}-{}", hostname(), std::process::id(), chrono::Utc::now().timestamp_micros());
        let lease_ttl = Duration::from_millis(settings.buy.node_lease_ms.max(1_000));
        let order_nos = node_lease::start(&db, &holder, lease_ttl).await?;
        let node = order_nos.node();
        let messaging = Arc::new(Messaging::start(&settings.rocketmq)?);
        let producer_group = &settings.rocketmq.producer_group;
        let sender = Arc::new(Sender::start(&messaging, &format!("{producer_group}-serve")).await?);
        let broker = Arc::new(BrokerHealth::default());
        let mut background =
            vec![tokio::spawn(node_lease::keep(db.clone(), Arc::clone(&order_nos), holder.clone(), lease_ttl))];
        let buyer = match settings.buy.mode {
            BuyMode::Transaction => Buyer::Transaction(BuyProducer::start(&messaging, stock.clone()).await?),
            BuyMode::Batched => {
                // The relay's producer never retries inside the client: see Sender::start_with_retries.
                let relay_sender =
                    Arc::new(Sender::start_with_retries(&messaging, &format!("{producer_group}-relay"), 0).await?);
                let topic = settings.rocketmq.order_topic.clone();
                let sweeper = Sweeper {
                    db: db.clone(),
                    stock: stock.clone(),
                    sender: Arc::clone(&relay_sender),
                    topic: topic.clone(),
                    settings: settings.buy.clone(),
                    holder: holder.clone(),
                };
                background.push(tokio::spawn(sweeper.run()));
                let (probe_broker, probe_sender) = (Arc::clone(&broker), Arc::clone(&relay_sender));
                let probe_topic = crate::broker::health_topic(&settings.rocketmq);
                background.push(tokio::spawn(async move {
                    probe_broker.probe_while_failing(&probe_sender, &probe_topic, Duration::from_secs(1)).await
                }));
                let target = RelayTarget { sender: relay_sender, topic };
                Buyer::Batched(BatchedBuyer::start(stock.clone(), target, Arc::clone(&broker), &settings.buy))
            }
        };
        let listener = TcpListener::bind((settings.http.host.as_str(), settings.http.port))
            .await
            .with_context(|| format!("bind {}:{}", settings.http.host, settings.http.port))?;
        let addr = listener.local_addr()?;
        let sold_out = SoldOutMemo::new(Duration::from_millis(settings.buy.sold_out_cache_ms));
        let mode = settings.buy.mode;
        let metrics = Arc::new(Metrics::default());
        let loaded_sales = crate::fencing::LoadedIds::default();
        let fence = Fence {
            db: db.clone(),
            stock: stock.clone(),
            messaging: Arc::clone(&messaging),
            rocketmq: settings.rocketmq.clone(),
            redis_name: redis_name(&settings.redis),
            metrics: Arc::clone(&metrics),
            every: Duration::from_millis(settings.redis.fence_check_ms.max(20)),
            auto_heal: settings.redis.fence_auto_heal,
            loaded: Arc::clone(&loaded_sales),
        };
        background.push(tokio::spawn(fence.run()));
        let state = AppState::new(Inner {
            settings,
            db,
            stock,
            buyer,
            sender,
            order_nos: Arc::clone(&order_nos),
            metrics,
            loaded_sales,
            sold_out,
            broker,
            messaging: Arc::clone(&messaging),
            token_keys,
            room_reports: crate::rooms::RoomReports::default(),
            edge_refusals: crate::rooms::EdgeRefusalCounts::default(),
        });
        let app = crate::http::app(state.clone());
        let stop = Arc::new(tokio::sync::Notify::new());
        let stopped = Arc::clone(&stop);
        // Graceful: on stop, no new connections, and requests in flight (a buy whose script
        // already took stock) still get their answer.
        let limits = crate::http::serve::Limits::of(&state.settings().http);
        let task = tokio::spawn(async move {
            crate::http::serve::serve(listener, app, limits, async move { stopped.notified().await }).await;
            Ok::<(), std::io::Error>(())
        });
        tracing::info!(%addr, node, ?mode, "origin listening");
        Ok(Self { addr, state, task, stop, background, holder, _messaging: messaging })
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
        let result = self.wait().await;
        for task in &self.background {
            task.abort();
        }
        // Nothing mints any more: the node can go to the next origin at once.
        let (order_nos, db) = (self.state.order_nos(), self.state.db());
        order_nos.revoke();
        if let Err(e) = node_lease::release(db, order_nos.node(), &self.holder, order_nos.last_minted_unix_ms()).await {
            tracing::warn!(error = %e, "could not release the order-number node lease; it runs out by itself");
        }
        result
    }
}

/// The running consumers of `consume`: order writer, canceller, dead-letter keeper, and the
/// order-event relay; and the process's own listener (`GET /metrics`, `/livez`) with the
/// consumer-lag watch behind its `seckill_consumer_lag_messages` and the stock watch behind
/// `seckill_stock_units`.
#[derive(Debug)]
pub struct Workers {
    pub metrics: Arc<Metrics>,
    /// Where `GET /metrics` and `/livez` of the consumers answer (`consumer.host:port`).
    pub addr: SocketAddr,
    consumers: Vec<Consumer>,
    /// The event relay, the lag watch and the listener: stopped with the consumers.
    background: Vec<JoinHandle<()>>,
    _messaging: Arc<Messaging>,
}

impl Workers {
    pub async fn start(settings: Settings) -> anyhow::Result<Self> {
        if let Some(problem) = settings.cancel_timing_problem() {
            anyhow::bail!("refusing to consume: {problem}");
        }
        let db = connect_mysql(&settings).await?;
        let stock = StockStore::connect(&settings.redis).await.context("connect to Redis")?;
        let messaging = Arc::new(Messaging::start(&settings.rocketmq)?);
        let metrics = Arc::new(Metrics::default());
        let consumer = &settings.consumer;
        let listener = TcpListener::bind((consumer.host.as_str(), consumer.port))
            .await
            .with_context(|| format!("bind {}:{} (consumer.port)", consumer.host, consumer.port))?;
        let addr = listener.local_addr()?;
        // Started first: it provisions the topics, so the consumers find their routes.
        let sender =
            Arc::new(Sender::start(&messaging, &format!("{}-consume", settings.rocketmq.producer_group)).await?);
        let mq = settings.rocketmq.clone();
        // The lag before anything is consumed: a backlog shows from the first scrape on.
        let groups = vec![
            (mq.order_writer_group.clone(), mq.order_topic.clone()),
            (mq.canceller_group.clone(), mq.cancel_topic.clone()),
        ];
        lag::refresh(&messaging, &groups, &metrics).await;

        let writer = OrderWriter {
            db: db.clone(),
            stock: stock.clone(),
            sender: Arc::clone(&sender),
            metrics: Arc::clone(&metrics),
            group: mq.order_writer_group.clone(),
            cancel_topic: mq.cancel_topic.clone(),
            cancel_delay_level: mq.cancel_delay_level,
            pay_timeout: Duration::from_secs(settings.orders.pay_timeout_secs),
        };
        let writer = Consumer::start_batched(
            &messaging,
            &mq.order_writer_group,
            &[mq.order_topic.as_str()],
            mq.writer_batch_max,
            mq.writer_pull_interval_ms,
            writer.handler(),
        )
        .await?;
        let cancel = Arc::new(Canceller {
            db: db.clone(),
            stock: stock.clone(),
            metrics: Arc::clone(&metrics),
            sender: Arc::clone(&sender),
            group: mq.canceller_group.clone(),
            topic: mq.cancel_topic.clone(),
            retry_delay_level: mq.cancel_retry_delay_level,
        });
        let canceller =
            Consumer::start(&messaging, &mq.canceller_group, &mq.cancel_topic, Arc::clone(&cancel).handler()).await?;
        let orders = &settings.orders;
        let backstop = tokio::spawn(cancel.backstop(
            Duration::from_secs(orders.backstop_grace_secs),
            Duration::from_millis(orders.backstop_interval_ms.max(100)),
        ));
        let stock_for_watch = stock;
        let dlq_topics =
            [crate::broker::dlq_topic(&mq.order_writer_group), crate::broker::dlq_topic(&mq.canceller_group)];
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
        let every = Duration::from_millis(consumer.lag_interval_ms.max(100));
        let stocks = tokio::spawn(stock_gauges::watch(db.clone(), stock_for_watch, Arc::clone(&metrics), every));
        let relay = tokio::spawn(events::relay(db, Arc::clone(&sender), mq.event_topic.clone()));
        let lag = tokio::spawn(lag::watch(Arc::clone(&messaging), groups, Arc::clone(&metrics), every));
        // Read at scrape time: the client reports a share only when a rebalance changes it. Not
        // the dead-letter keeper's: its topics have one queue per broker, so all but one or two
        // members of a group hold none of them, and that is fine.
        let shares: Arc<Vec<_>> =
            Arc::new([&writer, &canceller].iter().map(|c| (c.group().to_string(), c.queue_share())).collect());
        let consumers = vec![writer, canceller, keeper];
        let metrics_page = move |State(m): State<Arc<Metrics>>| {
            let shares = Arc::clone(&shares);
            async move {
                for (group, share) in shares.iter() {
                    m.set_queues(group, share.get().0);
                }
                crate::http::operations::exposition(&m)
            }
        };
        let app = axum::Router::new()
            .route("/metrics", axum::routing::get(metrics_page))
            .route("/livez", axum::routing::get(crate::http::operations::livez))
            .with_state(Arc::clone(&metrics));
        let http = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "the consumer's metrics listener stopped");
            }
        });
        tracing::info!(writer = %mq.order_writer_group, canceller = %mq.canceller_group, %addr, "consumers running");
        let background = vec![relay, lag, stocks, http, backstop];
        Ok(Self { metrics, addr, consumers, background, _messaging: messaging })
    }

    /// This process's share of `group`'s queues as (assigned to it, all), if it consumes for
    /// `group`.
    pub fn queue_share(&self, group: &str) -> Option<(usize, usize)> {
        self.consumers.iter().find(|c| c.group() == group).map(|c| c.queue_share().get())
    }

    pub async fn shutdown(&mut self) {
        for task in &self.background {
            task.abort();
        }
        for c in &mut self.consumers {
            c.shutdown().await;
        }
    }
}

/// This host's name, for lease holders (empty if it cannot be read).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default()
}

/// The name the fence records the Redis identity under in `tb_redis_server` (at most 255
/// characters): the server's URL, or a cluster's seed URLs (one record for the whole cluster:
/// its identity lists every master); a longer list is named by its SHA-256.
fn redis_name(redis: &crate::configuration::RedisSettings) -> String {
    let name = match redis.cluster_urls.trim() {
        "" => redis.url.clone(),
        seeds => format!("cluster {seeds}"),
    };
    if name.len() <= 255 {
        return name;
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(name.as_bytes());
    format!("cluster sha256:{}", digest.iter().map(|b| format!("{b:02x}")).collect::<String>())
}
