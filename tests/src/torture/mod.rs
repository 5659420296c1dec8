//! `make torture`: one sale under every fault at once, against real processes, then every
//! invariant checked and a Markdown report written.
//!
//! Two origins (`seckill-origin serve`) and two consumers (`seckill-origin consume`) run as
//! processes against the pair profile's brokers (two masters, each with a synchronous slave:
//! `scripts/services.sh start mq pair`), MariaDB and a Redis primary and replica of the run's
//! own (AOF on), reached through a movable address ([`redis_address`]). A seeded burst of valid
//! buys and malformed requests goes to the origins at a steady pace while a schedule injects,
//! at fixed shares of the requests sent: a consumer killed -9 mid-drain (twice), an origin
//! killed -9, broker master a restarted, broker master b killed -9 and brought back, Redis
//! restarted, a failover to a lagging replica, a FLUSHALL. A duplicator sends every order
//! message a second time. Unpaid orders are cancelled 3 s after they are written (level 16 on
//! the test brokers) and their units sold again, so the sale keeps selling through the faults;
//! a share of buyers pay. Once the queue has drained, the checks run, and the brokers say how
//! many messages their slaves served.
//!
//! [`run`] sets a run up and carries it out; the rest has a module each: the processes and
//! clients (`stack`), the fault schedule (`faults`), watching the sale (`watch`), the checks
//! after the drain (`checks`), what the run saw ([`Outcome`]) and its [`report`].

mod checks;
pub mod duplicator;
mod faults;
pub mod load;
mod outcome;
pub mod plan;
pub mod redis_address;
pub mod redis_cluster;
pub mod redis_server;
pub mod report;
mod stack;
mod watch;

pub use outcome::{BrokerTally, Check, Fault, FenceTally, Orders, Outcome};

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use seckill_origin::broker::cluster::{describe, BrokerStatus};
use seckill_origin::broker::Messaging;
use seckill_origin::startup;
use serde_json::json;

use crate::{isolated_settings, OriginProcess};
use checks::check;
use duplicator::Duplicator;
use faults::inject_faults;
use load::Origins;
use plan::Plan;
use redis_address::RedisAddress;
use redis_server::RedisServer;
use stack::Stack;
use watch::{sample_frozen, wait_drained};

/// Runs the whole torture of `plan`.
pub async fn run(plan: Plan) -> anyhow::Result<Outcome> {
    let (id, mut settings) = isolated_settings();
    settings.rocketmq.namesrv_addr = crate::pair_namesrv_addr();
    // Level 16 is 3 s on the test brokers: unpaid orders come back to the sale during the run.
    settings.rocketmq.cancel_delay_level = 16;
    settings.orders.pay_timeout_secs = 3; // what level 16 waits on the test brokers
                                          // An origin killed -9 leaves orders in its outbox; the survivor's sweeper sends them.
    settings.buy.sweep_after_ms = 4_000;
    let run_dir = std::env::var("SECKILL_DATA").map(PathBuf::from).unwrap_or_else(|_| std::env::temp_dir());
    let logs = std::env::var("SECKILL_LOGS").map(PathBuf::from).unwrap_or_else(|_| std::env::temp_dir());
    let redis =
        RedisServer::start(&run_dir.join(format!("torture-redis-{id}")), &logs.join(format!("torture-{id}-redis.log")))
            .await?;
    let replica_dir = run_dir.join(format!("torture-redis-replica-{id}"));
    let replica =
        RedisServer::start_replica(&replica_dir, &logs.join(format!("torture-{id}-redis-replica.log")), &redis).await?;
    let address = RedisAddress::start(&redis.url()).await?;
    settings.redis.url = address.url.clone();
    eprintln!(
        "[torture] run {id}: seed {}, Redis {} (primary {}, replica {}), database {}",
        plan.seed,
        address.url,
        redis.url(),
        replica.url(),
        settings.mysql.database
    );

    startup::migrate(&settings).await.context("migrate the run's database")?;
    let db = startup::connect_mysql(&settings).await?;
    let consumers = (1..=2).map(|n| OriginProcess::consume(&settings, &format!("torture-{id}-consumer-{n}"))).collect();
    let mut origins = Vec::new();
    for n in 1..=2 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        origins.push(OriginProcess::serve_on(&settings, &format!("torture-{id}-origin-{n}"), port).await);
    }
    let messaging = Messaging::start(&settings.rocketmq)?;
    let read_by_slaves_before = slave_reads(&messaging).await?;
    let duplicator =
        Duplicator::start(&messaging, &format!("seckill-torture-dup-{id}"), &settings.rocketmq.order_topic).await?;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let watcher = redis::Client::open(address.url.as_str())?.get_connection_manager().await?;
    let mut stack = Stack {
        settings,
        redis,
        replica: Some(replica),
        address,
        origins,
        consumers,
        messaging,
        db,
        http,
        product: 0,
        watcher,
    };

    let (status, created) = stack
        .admin(
            reqwest::Method::POST,
            "/admin/products",
            Some(json!({ "name": "Torture phone", "price": "4999.00", "stock": plan.units, "perUserLimit": 3 })),
        )
        .await?;
    anyhow::ensure!(status == 201, "creating the sale answered {status}: {created}");
    stack.product = created["id"].as_u64().context("no product id")?;
    let (status, loaded) =
        stack.admin(reqwest::Method::POST, &format!("/admin/products/{}/preload", stack.product), None).await?;
    anyhow::ensure!(status == 200, "preloading the sale answered {status}: {loaded}");

    let requests = load::requests(&plan, stack.product, 1);
    let total = requests.len() as u64;
    let sent = Arc::new(AtomicU64::new(0));
    let origins =
        Origins::new(stack.origins.iter().map(|o| o.url.clone()).collect(), crate::Tokens::new(&stack.settings));
    eprintln!("[torture] {total} requests to {} origins at {} req/s", stack.origins.len(), plan.rate);
    let started = Instant::now();
    let burst = tokio::spawn({
        let (plan, sent) = (plan.clone(), sent.clone());
        let product = stack.product;
        async move { load::burst(&plan, product, requests, origins, sent).await }
    });
    let frozen_time = Arc::new(AtomicU64::new(0));
    let sampler = tokio::spawn(sample_frozen(stack.db.clone(), stack.product, Arc::clone(&frozen_time)));
    let faults = inject_faults(&mut stack, total, &sent, started).await;
    let tally = burst.await.context("the burst panicked")?;
    let burst_took = started.elapsed();
    eprintln!("[torture] burst done in {:.1} s; waiting for the queue to drain", burst_took.as_secs_f64());

    let drained_at = Instant::now();
    let drained = wait_drained(&stack, &duplicator.group, Duration::from_secs(plan.drain_limit_secs)).await;
    let drain = drained.then(|| drained_at.elapsed());
    sampler.abort();
    let frozen_for = Duration::from_millis(frozen_time.load(Ordering::Relaxed));
    let duplicated = duplicator.copied.lock().unwrap().len() as u64;
    let copied: HashSet<String> = duplicator.copied.lock().unwrap().clone();
    duplicator.shutdown().await;

    let (orders, checks) = check(&stack, &plan, &tally, drained, &copied).await?;
    let brokers = describe(&stack.messaging).await?;
    let read_from_slaves = slave_reads_since(&brokers, &read_by_slaves_before);
    let read_from_masters = brokers.iter().filter(|b| b.broker_id == 0).map(|b| b.messages_read).sum();
    let brokers =
        BrokerTally { table: seckill_origin::broker::cluster::table(&brokers), read_from_slaves, read_from_masters };
    let state = stack.product_state().await?;
    let fence = FenceTally {
        frozen_for,
        heals: sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM tb_reconcile_run WHERE product_id = ?")
            .bind(stack.product)
            .fetch_one(&stack.db)
            .await? as u64,
        refusals: state.refusals().await,
        frozen_answers: tally.buys.iter().filter(|(label, _)| label.contains("SALE_FROZEN")).map(|(_, n)| n).sum(),
    };
    let outcome = Outcome {
        plan,
        id,
        product: stack.product,
        tally,
        faults,
        burst: burst_took,
        drain,
        orders,
        duplicated,
        checks,
        fence,
        brokers,
    };
    drop(stack);
    Ok(outcome)
}

/// Messages each slave (by address) has served since it started.
async fn slave_reads(messaging: &Messaging) -> anyhow::Result<HashMap<String, u64>> {
    let brokers = describe(messaging).await?;
    Ok(brokers.into_iter().filter(|b| b.broker_id > 0).filter_map(|b| Some((b.address, b.messages_read?))).collect())
}

/// Messages the slaves served since `before` was read; None if a slave did not say (or was
/// not there before: a restarted slave counts afresh).
fn slave_reads_since(brokers: &[BrokerStatus], before: &HashMap<String, u64>) -> Option<u64> {
    let slaves: Vec<&BrokerStatus> = brokers.iter().filter(|b| b.broker_id > 0).collect();
    if slaves.is_empty() {
        return None;
    }
    slaves.iter().map(|b| b.messages_read?.checked_sub(*before.get(&b.address)?)).sum()
}
