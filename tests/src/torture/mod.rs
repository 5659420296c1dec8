//! `make torture`: one sale under every fault at once, against real processes, then every
//! invariant checked and a Markdown report written.
//!
//! Two origins (`seckill-origin serve`) and two consumers (`seckill-origin consume`) run as
//! processes against the test broker, MariaDB and a Redis primary and replica of the run's own
//! (AOF on), reached through a movable address ([`redis_address`]). A seeded burst of valid
//! buys and malformed requests goes to the origins at a steady pace while a schedule injects,
//! at fixed shares of the requests sent: a consumer killed -9 mid-drain (twice), an origin
//! killed -9, the broker restarted, Redis restarted, a failover to a lagging replica, a
//! FLUSHALL. A duplicator
//! sends every order message a second time. Unpaid orders are cancelled 3 s after they are
//! written (the test broker's level 16) and their units sold again, so the sale keeps selling
//! through the faults; a share of buyers pay. Once the queue has drained, the checks run.

pub mod duplicator;
pub mod load;
pub mod plan;
pub mod redis_address;
pub mod redis_cluster;
pub mod redis_server;
pub mod report;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use seckill_origin::broker::lag::group_lag;
use seckill_origin::broker::Messaging;
use seckill_origin::configuration::Settings;
use seckill_origin::startup;
use serde_json::{json, Value};
use sqlx::MySqlPool;

use crate::invariants::ProductState;
use crate::{isolated_settings, services, OriginProcess, ADMIN_TOKEN};
use duplicator::Duplicator;
use load::{Origins, Tally};
use plan::Plan;
use redis_address::RedisAddress;
use redis_server::RedisServer;

/// Adds to `frozen_ms` the time the sale is frozen (MySQL's record), looking every 100 ms,
/// until aborted.
async fn sample_frozen(db: MySqlPool, product: u64, frozen_ms: Arc<AtomicU64>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        let frozen: Option<bool> =
            sqlx::query_scalar("SELECT frozen_since IS NOT NULL FROM tb_seckill_product WHERE id = ?")
                .bind(product)
                .fetch_optional(&db)
                .await
                .ok()
                .flatten();
        if frozen == Some(true) {
            frozen_ms.fetch_add(100, Ordering::Relaxed);
        }
    }
}

/// What the fence did in a run: the sale frozen after a Redis loss, and healed.
#[derive(Debug, Clone, Default)]
pub struct FenceTally {
    /// How long the sale was frozen in all (sampled every 100 ms).
    pub frozen_for: Duration,
    /// Reconcile runs of the sale (each heal is one).
    pub heals: u64,
    /// Orders the writer refused, by reason.
    pub refusals: Vec<(String, i64)>,
    /// Buys answered 503 SALE_FROZEN.
    pub frozen_answers: u64,
}

/// A fault as it was injected.
#[derive(Debug, Clone)]
pub struct Fault {
    /// Since the burst began.
    pub at: Duration,
    /// Requests sent by then.
    pub sent: u64,
    pub what: String,
    /// The state it hit (what was in flight) and how long the service was away.
    pub detail: String,
}

/// One invariant's verdict.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// Orders as MySQL holds them after the drain.
#[derive(Debug, Clone, Default)]
pub struct Orders {
    pub written: u64,
    pub paid: u64,
    pub cancelled: u64,
    pub paid_units: u64,
    pub mysql_stock: i64,
    pub redis_stock: Option<i64>,
}

/// Everything a run saw.
#[derive(Debug)]
pub struct Outcome {
    pub plan: Plan,
    pub id: String,
    pub product: u64,
    pub tally: Tally,
    pub faults: Vec<Fault>,
    pub burst: Duration,
    /// From the last answer to a drained queue (None: it did not drain in time).
    pub drain: Option<Duration>,
    pub orders: Orders,
    /// Order messages the duplicator sent a second time.
    pub duplicated: u64,
    pub checks: Vec<Check>,
    pub fence: FenceTally,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
}

/// The processes and clients of one run.
struct Stack {
    settings: Settings,
    /// The primary the origins use, through `address`.
    redis: RedisServer,
    /// Its replica, until the failover promotes it.
    replica: Option<RedisServer>,
    /// What the origins know Redis by; the failover moves it to the replica.
    address: RedisAddress,
    origins: Vec<OriginProcess>,
    consumers: Vec<OriginProcess>,
    messaging: Messaging,
    db: MySqlPool,
    http: reqwest::Client,
    product: u64,
    /// Reconnects by itself after Redis restarts: for polling.
    watcher: redis::aio::ConnectionManager,
}

impl Stack {
    /// A fresh connection each time: Redis restarts during the run.
    async fn product_state(&self) -> anyhow::Result<ProductState> {
        let redis = seckill_origin::stock::RedisConnection::connect(
            &self.settings.redis.url,
            &self.settings.redis.cluster_urls,
        )
        .await?;
        Ok(ProductState {
            db: self.db.clone(),
            redis,
            key_prefix: self.settings.redis.key_prefix.clone(),
            product: self.product,
        })
    }

    /// (outbox entries, deductions not yet written), or None while Redis is away.
    async fn in_flight(&self) -> Option<(u64, i64)> {
        let state = self.product_state().await.ok()?;
        Some(state.in_flight().await)
    }

    /// Runs `cmd` on the run's Redis, once more if the first try fails: the watcher's
    /// connection hears of a restart only when its next command breaks.
    async fn redis_do<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        match cmd.query_async(&mut self.watcher.clone()).await {
            Ok(reply) => Ok(reply),
            Err(_) => cmd.query_async(&mut self.watcher.clone()).await,
        }
    }

    /// The product's Redis stock (None while Redis is away or does not hold it).
    async fn redis_stock(&self) -> Option<i64> {
        let key = seckill_origin::stock::product_key(&self.settings.redis.key_prefix, self.product, "stock");
        self.redis_do::<Option<i64>>(redis::cmd("GET").arg(key)).await.ok().flatten()
    }

    /// Entries in the product's outbox (None while Redis is away).
    async fn outbox_len(&self) -> Option<u64> {
        let key = seckill_origin::stock::product_key(&self.settings.redis.key_prefix, self.product, "outbox");
        redis::cmd("XLEN").arg(key).query_async(&mut self.watcher.clone()).await.ok()
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<(u16, Value)> {
        let mut request = self.http.request(method, format!("{}{path}", self.origins[0].url)).bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        Ok(crate::read(request.send().await?).await)
    }

    async fn lag(&self, group: &str, topic: Option<&str>) -> Option<u64> {
        group_lag(&self.messaging, group, topic).await.ok()
    }
}

/// Runs the whole torture of `plan`.
pub async fn run(plan: Plan) -> anyhow::Result<Outcome> {
    let (id, mut settings) = isolated_settings();
    // Level 16 is 3 s on the test broker: unpaid orders come back to the sale during the run.
    settings.rocketmq.cancel_delay_level = 16;
    settings.orders.pay_timeout_secs = 3; // what level 16 waits on the test broker
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
    };
    drop(stack);
    Ok(outcome)
}

/// The schedule: at fixed shares of the requests sent, one fault after another.
async fn inject_faults(stack: &mut Stack, total: u64, sent: &AtomicU64, started: Instant) -> Vec<Fault> {
    let mut faults = Vec::new();
    let reached = |share: f64| {
        let target = (total as f64 * share) as u64;
        async move {
            while sent.load(Ordering::SeqCst) < target {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    let mut record = |what: String, detail: String| {
        let fault = Fault { at: started.elapsed(), sent: sent.load(Ordering::SeqCst), what, detail };
        eprintln!("[torture] {:>6.1} s  {}: {}", fault.at.as_secs_f64(), fault.what, fault.detail);
        faults.push(fault);
    };

    reached(0.15).await;
    let detail = kill_consumer(stack, 0).await;
    record("consumer 1 killed -9 mid-drain, restarted 2 s later".into(), detail);

    reached(0.30).await;
    // Mid-burst: once an order sits between its script and the broker (up to 5 s).
    let mut outbox = None;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && outbox.is_none_or(|o: u64| o == 0) {
        outbox = stack.outbox_len().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let at = Instant::now();
    stack.origins[1].kill_9();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stack.origins[1].restart().await;
    record(
        "origin 2 killed -9 mid-burst, restarted".into(),
        format!(
            "{} orders in the outbox at the kill; away {:.1} s",
            outbox.map_or("?".into(), |o| o.to_string()),
            at.elapsed().as_secs_f64()
        ),
    );

    reached(0.45).await;
    let lag = stack.lag(&stack.settings.rocketmq.order_writer_group, Some(&stack.settings.rocketmq.order_topic)).await;
    let at = Instant::now();
    let restarted = tokio::task::spawn_blocking(|| {
        services(&["stop", "broker-test"]);
        services(&["start", "broker", "test"]);
    })
    .await;
    record(
        "broker restarted (SIGTERM, then started again)".into(),
        format!(
            "writer lag {} at the stop; away {:.1} s{}",
            lag.map_or("?".into(), |l| l.to_string()),
            at.elapsed().as_secs_f64(),
            if restarted.is_err() { "; RESTART FAILED" } else { "" }
        ),
    );

    reached(0.65).await;
    let keys_before = dbsize(stack).await;
    let detail = match stack.redis.restart().await {
        Ok(away) => format!(
            "{} keys before, {} after loading the AOF; away {:.1} s",
            keys_before.map_or("?".into(), |k| k.to_string()),
            dbsize(stack).await.map_or("?".into(), |k| k.to_string()),
            away.as_secs_f64()
        ),
        Err(e) => format!("RESTART FAILED: {e:#}"),
    };
    record("Redis restarted (SIGTERM, AOF on)".into(), detail);

    reached(0.70).await;
    let detail = fail_over_to_a_lagging_replica(stack).await.unwrap_or_else(|e| format!("FAILOVER FAILED: {e:#}"));
    record("Redis primary killed -9 after its replica was cut off for 1 s; the replica promoted".into(), detail);

    reached(0.75).await;
    let keys_before = dbsize(stack).await;
    let flushed = stack.redis_do::<()>(&redis::cmd("FLUSHALL")).await;
    record(
        "FLUSHALL mid-sale".into(),
        match flushed {
            Ok(()) => format!("{} keys gone", keys_before.map_or("?".into(), |k| k.to_string())),
            Err(e) => format!("FLUSHALL FAILED: {e}"),
        },
    );

    reached(0.85).await;
    let detail = kill_consumer(stack, 1).await;
    record("consumer 2 killed -9 mid-drain, restarted 2 s later".into(), detail);
    faults
}

/// A failover to a replica one second behind: the replica is cut off from the primary, the
/// sale goes on for a second, the primary is killed -9, the replica is promoted and the address
/// the origins use moves to it (as a virtual IP or a Sentinel-aware proxy would). Says what the
/// replica lost.
async fn fail_over_to_a_lagging_replica(stack: &mut Stack) -> anyhow::Result<String> {
    let mut replica = stack.replica.take().context("no replica left")?;
    replica.wait_in_sync(&stack.redis).await?;
    replica.cut_off_from(&stack.redis).await?;
    let stock_at_cut = stack.redis_stock().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stock_at_crash = stack.redis_stock().await;
    let at = Instant::now();
    stack.redis.kill()?;
    replica.promote().await?;
    stack.address.move_to(&replica.url());
    // The old primary's folder goes with it.
    drop(std::mem::replace(&mut stack.redis, replica));
    Ok(format!(
        "Redis stock {} at the cut, {} at the crash, {} on the promoted replica; away {:.1} s",
        stock_at_cut.map_or("?".into(), |s| s.to_string()),
        stock_at_crash.map_or("?".into(), |s| s.to_string()),
        stack.redis_stock().await.map_or("?".into(), |s| s.to_string()),
        at.elapsed().as_secs_f64()
    ))
}

/// Kills consumer `n` -9 once orders are waiting to be written (up to 5 s), restarts it 2 s
/// later; says what was waiting.
async fn kill_consumer(stack: &mut Stack, n: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut waiting = None;
    while Instant::now() < deadline {
        waiting = stack.in_flight().await;
        if waiting.is_some_and(|(_, unwritten)| unwritten > 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stack.consumers[n].kill_9();
    let lag = stack.lag(&stack.settings.rocketmq.order_writer_group, Some(&stack.settings.rocketmq.order_topic)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stack.consumers[n].restart().await;
    format!(
        "{} orders taken in Redis and not yet in MySQL at the kill; writer lag {} just after",
        waiting.map_or("?".into(), |(_, u)| u.to_string()),
        lag.map_or("?".into(), |l| l.to_string())
    )
}

async fn dbsize(stack: &Stack) -> Option<u64> {
    let mut c =
        redis::Client::open(stack.settings.redis.url.as_str()).ok()?.get_multiplexed_async_connection().await.ok()?;
    redis::cmd("DBSIZE").query_async(&mut c).await.ok()
}

/// Waits until nothing is in flight: outbox empty, every deduction written, no unpaid order
/// left (each is cancelled 3 s after it is written), and the writer, the canceller and the
/// duplicator have consumed everything the broker holds.
async fn wait_drained(stack: &Stack, duplicator_group: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mq = &stack.settings.rocketmq;
    while Instant::now() < deadline {
        let unpaid: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tb_seckill_order WHERE status = 'UNPAID'")
            .fetch_one(&stack.db)
            .await
            .unwrap_or(-1);
        let healed = match stack.product_state().await {
            Ok(state) => state.frozen().await.is_none(),
            Err(_) => false,
        };
        if unpaid == 0 && healed && stack.in_flight().await == Some((0, 0)) {
            let mut lags = 0;
            let groups = [
                (mq.order_writer_group.as_str(), Some(mq.order_topic.as_str())),
                (mq.canceller_group.as_str(), Some(mq.cancel_topic.as_str())),
                (duplicator_group, None),
            ];
            for (group, topic) in groups {
                lags += stack.lag(group, topic).await.unwrap_or(1);
            }
            // The duplicator may just have sent copies: look once more after they were read.
            if lags == 0 && stack.in_flight().await == Some((0, 0)) {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}

/// The checks, after the drain.
async fn check(
    stack: &Stack,
    plan: &Plan,
    tally: &Tally,
    drained: bool,
    copied: &HashSet<String>,
) -> anyhow::Result<(Orders, Vec<Check>)> {
    let db = &stack.db;
    let product = stack.product;
    let initial = i64::from(plan.units);
    let mut checks = Vec::new();
    let mut check = |name: &'static str, problems: Vec<String>, fine: String| {
        let ok = problems.is_empty();
        checks.push(Check { name, ok, detail: if ok { fine } else { problems.join("; ") } });
    };

    check(
        "the queue drained",
        if drained { vec![] } else { vec![format!("not within {} s", plan.drain_limit_secs)] },
        "outbox empty, every deduction written, no unpaid order left, the sale not frozen, writer/canceller/duplicator lag 0".into(),
    );

    let state = stack.product_state().await?;
    check(
        "stock conserved, no oversell, Redis and MySQL agree",
        state.violations(initial).await,
        "Redis stock + sold units = MySQL stock + sold units = initial; deduction log = active orders; buyers = their users; one user record per active order".into(),
    );

    let rows: Vec<(String, u64, String)> =
        sqlx::query_as("SELECT order_no, user_id, status FROM tb_seckill_order WHERE product_id = ?")
            .bind(product)
            .fetch_all(db)
            .await?;
    let by_no: std::collections::HashMap<&str, (u64, &str)> =
        rows.iter().map(|(no, user, status)| (no.as_str(), (*user, status.as_str()))).collect();
    let mut problems = Vec::new();
    let refused_rows: Vec<(String, u64, String)> =
        sqlx::query_as("SELECT order_no, user_id, reason FROM tb_rejected_order WHERE product_id = ?")
            .bind(product)
            .fetch_all(db)
            .await?;
    let refused: std::collections::HashMap<&str, u64> =
        refused_rows.iter().map(|(no, user, _)| (no.as_str(), *user)).collect();
    let missing: Vec<&str> = tally
        .queued
        .iter()
        .filter(|(no, _)| !by_no.contains_key(no.as_str()) && !refused.contains_key(no.as_str()))
        .map(|(no, _)| no.as_str())
        .collect();
    if !missing.is_empty() {
        problems.push(format!(
            "{} answered 200 QUEUED without an order or a refusal, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        ));
    }
    let both = refused.keys().filter(|no| by_no.contains_key(*no)).count();
    if both > 0 {
        problems.push(format!("{both} orders both written and refused"));
    }
    // Each refusal is one its buyer can read.
    let mut unseen = 0;
    for (order_no, user) in refused.iter().take(200) {
        let resp = stack
            .http
            .get(format!("{}/api/orders/{order_no}", stack.origins[0].url))
            .header("x-seckill-edge-secret", crate::EDGE_SECRET)
            .bearer_auth(crate::Tokens::new(&stack.settings).for_user(*user))
            .send()
            .await?;
        let (status, body) = crate::read(resp).await;
        if status != 200 || body["status"] != "REFUSED" || !body["refusal"]["reason"].is_string() {
            unseen += 1;
        }
    }
    if unseen > 0 {
        problems.push(format!("{unseen} refused orders their buyer cannot see as REFUSED"));
    }
    let wrong_user = tally
        .queued
        .iter()
        .chain(&tally.pending)
        .filter(|(no, user)| by_no.get(no.as_str()).is_some_and(|(u, _)| u != user))
        .count();
    if wrong_user > 0 {
        problems.push(format!("{wrong_user} orders belong to another user than the one answered"));
    }
    let pending_written = tally.pending.iter().filter(|(no, _)| by_no.contains_key(no.as_str())).count();
    let queued_refused = tally.queued.iter().filter(|(no, _)| refused.contains_key(no.as_str())).count();
    check(
        "every 200 QUEUED became exactly one order or one refusal its buyer sees",
        problems,
        format!(
            "{} of {} QUEUED have their order and {queued_refused} a refusal shown as REFUSED (order numbers are unique); \
             {} of {} PENDING became orders",
            tally.queued.len() - queued_refused,
            tally.queued.len(),
            pending_written,
            tally.pending.len()
        ),
    );

    let answered: HashSet<&str> = tally.queued.iter().chain(&tally.pending).map(|(no, _)| no.as_str()).collect();
    let unheard = rows.iter().filter(|(no, _, _)| !answered.contains(no.as_str())).count() as u64;
    check(
        "no order that no buyer was told of, beyond the answers lost",
        if unheard <= tally.answer_lost {
            vec![]
        } else {
            vec![format!("{unheard} orders without a 200/202 answer, but only {} answers were lost", tally.answer_lost)]
        },
        format!("{unheard} orders whose answer was lost (of {} answers lost)", tally.answer_lost),
    );

    let (order_logs, cancel_logs, cancelled_without, cancel_of_active, units_out, units_back): (
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
    ) = sqlx::query_as(
        "SELECT \
           (SELECT COUNT(*) FROM tb_stock_log WHERE product_id = ? AND reason = 'ORDER'), \
           (SELECT COUNT(*) FROM tb_stock_log WHERE product_id = ? AND reason = 'CANCEL'), \
           (SELECT COUNT(*) FROM tb_seckill_order o WHERE o.product_id = ? AND o.status = 'CANCELLED' \
              AND NOT EXISTS (SELECT 1 FROM tb_stock_log l WHERE l.order_no = o.order_no AND l.reason = 'CANCEL')), \
           (SELECT COUNT(*) FROM tb_seckill_order o JOIN tb_stock_log l ON l.order_no = o.order_no \
              WHERE o.product_id = ? AND l.reason = 'CANCEL' AND o.status <> 'CANCELLED'), \
           (SELECT CAST(COALESCE(SUM(CAST(before_stock AS SIGNED) - CAST(after_stock AS SIGNED)), 0) AS SIGNED) \
              FROM tb_stock_log WHERE product_id = ? AND reason = 'ORDER'), \
           (SELECT CAST(COALESCE(SUM(CAST(after_stock AS SIGNED) - CAST(before_stock AS SIGNED)), 0) AS SIGNED) \
              FROM tb_stock_log WHERE product_id = ? AND reason = 'CANCEL')",
    )
    .bind(product)
    .bind(product)
    .bind(product)
    .bind(product)
    .bind(product)
    .bind(product)
    .fetch_one(db)
    .await?;
    let cancelled = rows.iter().filter(|(_, _, s)| s == "CANCELLED").count() as i64;
    let paid = rows.iter().filter(|(_, _, s)| s == "PAID").count() as i64;
    let mut problems = Vec::new();
    if order_logs != rows.len() as i64 {
        problems.push(format!("{order_logs} ORDER stock-log rows for {} orders", rows.len()));
    }
    if cancel_logs != cancelled || cancelled_without != 0 || cancel_of_active != 0 {
        problems.push(format!(
            "{cancel_logs} CANCEL stock-log rows for {cancelled} cancelled orders ({cancelled_without} cancelled without one, {cancel_of_active} for orders not cancelled)"
        ));
    }
    check(
        "each order taken once and cancelled at most once",
        problems,
        format!(
            "{order_logs} ORDER and {cancel_logs} CANCEL stock-log rows for {} orders, {cancelled} cancelled",
            rows.len()
        ),
    );

    let (mysql_stock,): (i64,) = sqlx::query_as("SELECT CAST(stock AS SIGNED) FROM tb_seckill_product WHERE id = ?")
        .bind(product)
        .fetch_one(db)
        .await?;
    check(
        "the stock log adds up to MySQL's stock",
        if initial - units_out + units_back == mysql_stock {
            vec![]
        } else {
            vec![format!("{initial} − {units_out} taken + {units_back} given back ≠ MySQL stock {mysql_stock}")]
        },
        format!("{initial} − {units_out} taken + {units_back} given back = {mysql_stock}"),
    );

    let refused: u64 = tally.malformed.iter().filter(|((_, l), _)| l.starts_with('4')).map(|(_, n)| n).sum();
    let not_answered: u64 =
        tally.malformed.iter().filter(|((_, l), _)| l == "answer lost" || l.starts_with("503")).map(|(_, n)| n).sum();
    check(
        "every answer is one the API documents (malformed: a JSON 4xx)",
        tally.wrong.clone(),
        format!(
            "{refused} of {} malformed requests refused with a JSON 4xx ({not_answered} met a restarting service); no 500",
            plan.malformed
        ),
    );

    let (_, letters) = stack.admin(reqwest::Method::GET, "/admin/dead-letters", None).await?;
    let dead = letters["deadLetters"].as_array().map_or(0, Vec::len);
    // Redis losing writes may sell a unit twice (STOCK_SHORTAGE) or let a forgotten buyer buy
    // again (DUPLICATE_ACTIVE_ORDER): refusals the faults explain. Any other is a defect.
    let unexplained: Vec<&(String, u64, String)> = refused_rows
        .iter()
        .filter(|(_, _, reason)| reason != "STOCK_SHORTAGE" && reason != "DUPLICATE_ACTIVE_ORDER")
        .collect();
    check(
        "no dead letters; refusals only of units or buyers a Redis loss duplicated",
        if dead == 0 && unexplained.is_empty() {
            vec![]
        } else {
            vec![format!("{dead} dead letters, refusals the faults do not explain: {unexplained:?}; {letters}")]
        },
        format!("0 dead letters, {} refused orders (STOCK_SHORTAGE or DUPLICATE_ACTIVE_ORDER)", refused_rows.len()),
    );

    let not_paid: Vec<&String> =
        tally.paid.iter().filter(|no| by_no.get(no.as_str()).map(|(_, s)| *s) != Some("PAID")).collect();
    check(
        "every payment answered PAID is a PAID order",
        if not_paid.is_empty() {
            vec![]
        } else {
            vec![format!("{} paid orders are not PAID: {:?}", not_paid.len(), not_paid)]
        },
        format!("{} payments, {} orders PAID", tally.paid.len(), paid),
    );

    let not_copied = rows.iter().filter(|(no, _, _)| !copied.contains(no)).count();
    check(
        "every order message was delivered twice, and written once",
        if not_copied == 0 {
            vec![]
        } else {
            vec![format!("{not_copied} orders whose message the duplicator never copied")]
        },
        format!("{} copies sent for {} orders; order numbers are unique in MySQL", copied.len(), rows.len()),
    );

    let paid_units: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(quantity), 0) AS SIGNED) FROM tb_seckill_order WHERE product_id = ? AND status = 'PAID'",
    )
    .bind(product)
    .fetch_one(db)
    .await?;
    let mut redis = state.redis.clone();
    let redis_stock: Option<i64> = redis::cmd("GET")
        .arg(seckill_origin::stock::product_key(&state.key_prefix, product, "stock"))
        .query_async(&mut redis)
        .await?;
    let orders = Orders {
        written: rows.len() as u64,
        paid: paid as u64,
        cancelled: cancelled as u64,
        paid_units: paid_units as u64,
        mysql_stock,
        redis_stock,
    };
    Ok((orders, checks))
}
