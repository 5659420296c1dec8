//! The ceilings the buy path is measured against: Redis running the real buy script (one buy
//! per call), the broker storing batches of real order messages, and the origin answering a
//! route that does no I/O at all.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use redis::AsyncCommands;
use seckill_origin::broker::sender::Sender;
use seckill_origin::broker::Messaging;

use super::batches::{order_batch, send_timed};
use super::rows::load_row;
use super::{redis_benchmark, Ctx};
use crate::cli::Stop;
use crate::latency::Percentiles;
use crate::load::{self, Load};
use crate::origin_api::PRICE;
use crate::origin_proc::BenchOrigin;
use crate::report::{Row, RowKey};

/// Order messages per broker batch.
pub(crate) const BATCH: u64 = 100;
/// Broker batches in flight at once.
pub(crate) const IN_FLIGHT: u64 = 8;
/// The origin's buy script, exactly as the origin runs it.
const BUY_LUA: &str = include_str!("../../../origin/src/stock/buy.lua");
/// Stock of the ceiling's product: never runs out.
const CEILING_STOCK: i64 = 1_000_000_000_000;
/// redis-benchmark makes at least this many calls, so the ceiling runs a few seconds.
const REDIS_MIN_CALLS: u64 = 100_000;

/// Redis running buy.lua (EVALSHA, mode `buy`, one buy per call, distinct users and order
/// numbers) from `--connections` clients of `redis-benchmark`, on a product under the key
/// prefix `seckill-bench-ceiling-<run>`; the keys are deleted afterwards.
pub(crate) async fn redis(ctx: &Ctx) -> anyhow::Result<Row> {
    let client = redis::Client::open(ctx.stack.settings.redis.url.as_str())?;
    let (host, port) = match &client.get_connection_info().addr {
        redis::ConnectionAddr::Tcp(host, port) => (host.clone(), *port),
        other => anyhow::bail!("the Redis ceiling needs a TCP address, not {other:?}"),
    };
    let mut conn = client.get_multiplexed_async_connection().await.context("connect to Redis")?;
    let prefix = format!("seckill-bench-ceiling-{}", ctx.run);
    let keys: Vec<String> = ["stock", "buyers", "orders", "window", "outbox", "revoked"]
        .iter()
        .map(|k| format!("{prefix}:{{1}}:{k}"))
        .collect();
    let _: () = conn.set(&keys[0], CEILING_STOCK).await?;
    let _: () = conn.hset_multiple(&keys[3], &[("start", "0"), ("end", "0"), ("limit", "1"), ("price", PRICE)]).await?;
    let sha: String = redis::cmd("SCRIPT").arg("LOAD").arg(BUY_LUA).query_async(&mut conn).await?;

    let mut command = vec!["EVALSHA".to_string(), sha, keys.len().to_string()];
    command.extend(keys.iter().cloned());
    command.extend(["buy", "__rand_int__", "1", "__rand_int__-1"].map(String::from));
    let clients = ctx.cli.connections;
    let measured = async {
        let calls = match ctx.cli.stop() {
            Stop::Count(n) => n.max(REDIS_MIN_CALLS),
            Stop::Duration(d) => {
                // redis-benchmark counts calls, not time: a short run finds the rate first.
                let bar = load::progress_bar("ceiling: Redis (calibrating)", Stop::Count(20_000), Some(20_000));
                let probe = redis_benchmark::run(&host, port, clients, 20_000, &command, &bar).await;
                bar.finish_and_clear();
                ((probe?.rps * d.as_secs_f64()) as u64).max(1_000)
            }
        };
        let stock = |v: Option<i64>| v.context("the ceiling's stock key vanished during the run");
        let before = stock(conn.clone().get(&keys[0]).await?)?;
        let bar = load::progress_bar("ceiling: Redis EVALSHA buy.lua", Stop::Count(calls), Some(calls));
        let m = redis_benchmark::run(&host, port, clients, calls, &command, &bar).await;
        bar.finish_and_clear();
        let after = stock(conn.clone().get(&keys[0]).await?)?;
        anyhow::Ok((m?, (before - after).max(0) as u64))
    }
    .await;
    let deleted: redis::RedisResult<()> = conn.del(&keys).await;
    let (m, taken) = measured?;
    deleted.context("delete the ceiling's keys")?;
    let other = m.requests.saturating_sub(taken);
    Ok(Row {
        key: RowKey::RedisCeiling,
        group: RowKey::RedisCeiling.group(),
        name: "Redis EVALSHA buy.lua (mode buy, 1 buy/call), redis-benchmark".into(),
        clients: Some(clients),
        count: m.requests,
        unit: RowKey::RedisCeiling.unit(),
        rate: m.rps,
        elapsed: Duration::from_secs_f64(m.seconds),
        latency: Some(Percentiles { p50: m.p50, p90: m.p90, p99: m.p99, max: m.max }),
        answers: format!("took stock×{taken} other×{other}"),
        // A few random user ids repeat (ALREADY_BOUGHT); more than 1% means something else.
        problem: (other * 100 > m.requests).then(|| format!("{other} of {} calls took no stock", m.requests)),
        curve: None,
        cpu: None,
    })
}

/// The broker storing batches of [`BATCH`] real order messages to a scratch topic, with
/// [`IN_FLIGHT`] batches in flight: `--writer-orders` messages (or `--duration`).
pub(crate) async fn broker(ctx: &Ctx) -> anyhow::Result<Row> {
    let mut settings = ctx.stack.settings.rocketmq.clone();
    let topic = format!("seckill-bench-scratch-{}", ctx.run);
    // The producer provisions the order topic of its settings: that makes the scratch topic.
    settings.order_topic = topic.clone();
    let messaging = Messaging::start(&settings)?;
    let sender = Arc::new(Sender::start(&messaging, &format!("seckill-bench-ceiling-{}", ctx.run)).await?);
    let users = ctx.user_block();
    // Route lookup and connection before the clock starts.
    sender
        .send_batch(&topic, "ORDER", order_batch(0, BATCH, users, 1))
        .await
        .map_err(|e| anyhow!("first batch to {topic}: {e}"))?;
    let stop = match ctx.cli.stop() {
        Stop::Count(_) => Stop::Count(ctx.cli.writer_orders.max(BATCH * IN_FLIGHT)),
        duration => duration,
    };
    let (s, t) = (Arc::clone(&sender), topic.clone());
    let tally = load::closed_loop(
        Load { title: "ceiling: broker batch send", workers: IN_FLIGHT, stop, units_per_call: BATCH },
        move |seq| {
            let batch = order_batch((seq + 1) * BATCH, BATCH, users, 1);
            let (s, t) = (Arc::clone(&s), t.clone());
            async move { send_timed(&s, &t, batch).await }
        },
    )
    .await;
    if let Ok(mut sender) = Arc::try_unwrap(sender) {
        sender.shutdown().await;
    }
    let tally = tally?;
    Ok(load_row(
        RowKey::BrokerCeiling,
        format!("broker send_batch, {BATCH} orders/batch (latency per batch)"),
        IN_FLIGHT,
        &tally,
        "stored",
    ))
}

/// `GET /livez` on a bench origin: no I/O, so what axum, the runtime and the loopback cost.
pub(crate) async fn no_io(ctx: &Ctx, origin: &BenchOrigin) -> anyhow::Result<Row> {
    let livez = load::Endpoint::parse(&format!("{}/livez", origin.url))?;
    let clients = ctx.cli.connections;
    let tally = load::http(
        Load { title: "ceiling: origin GET /livez", workers: clients, stop: ctx.cli.stop(), units_per_call: 1 },
        &livez.clone(),
        200,
        move |_| livez.get(),
    )
    .await?;
    Ok(load_row(
        RowKey::OriginNoIo,
        format!("origin GET /livez (no I/O; {} origin)", origin.mode.as_str()),
        clients,
        &tally,
        "200",
    ))
}
