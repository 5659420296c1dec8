//! The order writer draining a backlog: `--writer-orders` real order messages are queued on a
//! fresh topic first, then the origin's own consumers (`Workers::start`) are started on a
//! fresh database, and the clock runs from that start until MySQL holds every order.
//! The database is dropped afterwards; the topics stay on the broker (nothing reads them).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Context};
use rust_decimal::Decimal;
use seckill_origin::broker::sender::Sender;
use seckill_origin::broker::Messaging;
use seckill_origin::configuration::Settings;
use seckill_origin::startup::{self, Workers};
use sqlx::{ConnectOptions, Executor};

use super::batches::{order_batch, send_timed};
use super::ceilings::{BATCH, IN_FLIGHT};
use super::Ctx;
use crate::cli::Stop;
use crate::interrupt;
use crate::load::{self, Load};
use crate::origin_api::{PRICE, PRODUCT_NAME};
use crate::report::{Row, RowKey};

/// How often the drain is checked.
const POLL: Duration = Duration::from_millis(250);

/// Settings of the writer scenario: the stack's, with a database, key prefix, topics and
/// groups of this run only.
pub(crate) fn settings(stack: &Settings, run: &str) -> Settings {
    let mut s = consumers_of_their_own(stack, "writer", run);
    s.mysql.database = format!("seckill_bench_writer_{run}");
    s.redis.key_prefix = format!("seckill-bench-writer-{run}");
    s
}

/// The stack's settings with topics and consumer groups that only the bench's `what` of run
/// `run` uses (`seckill-bench-<what>-<run>`...), and a free port for the consumers' metrics
/// (`make up`'s consumer holds the default one).
pub(crate) fn consumers_of_their_own(stack: &Settings, what: &str, run: &str) -> Settings {
    let mut s = stack.clone();
    s.consumer.port = 0;
    let mq = &mut s.rocketmq;
    mq.order_topic = format!("seckill-bench-{what}-{run}");
    mq.cancel_topic = format!("seckill-bench-{what}-{run}-cancel");
    mq.event_topic = format!("seckill-bench-{what}-{run}-event");
    mq.order_writer_group = format!("seckill-bench-{what}-writer-{run}");
    mq.canceller_group = format!("seckill-bench-{what}-canceller-{run}");
    mq.producer_group = format!("seckill-bench-{what}-producer-{run}");
    s
}

/// How long the drain may take before the scenario gives up: a minute plus 2 ms per order.
pub(crate) fn drain_timeout(orders: u64) -> Duration {
    Duration::from_secs(60) + Duration::from_millis(2 * orders)
}

/// Runs the scenario; the database is dropped whatever happens.
pub(crate) async fn run(ctx: &Ctx) -> anyhow::Result<Row> {
    let settings = settings(&ctx.stack.settings, &ctx.run);
    startup::migrate(&settings).await.with_context(|| format!("create database {}", settings.mysql.database))?;
    let result = drain(ctx, &settings).await;
    let dropped = drop_database(&settings).await;
    let row = result?;
    dropped?;
    Ok(row)
}

async fn drain(ctx: &Ctx, settings: &Settings) -> anyhow::Result<Row> {
    let n = ctx.cli.writer_orders;
    let pool = startup::connect_mysql(settings).await?;
    let price: Decimal = PRICE.parse()?;
    let product = sqlx::query(
        "INSERT INTO tb_seckill_product (name, price, initial_stock, stock, per_user_limit) VALUES (?, ?, ?, ?, 1)",
    )
    .bind(PRODUCT_NAME)
    .bind(price)
    .bind(n)
    .bind(n)
    .execute(&pool)
    .await?
    .last_insert_id();

    queue(ctx, settings, n, product).await?;

    let bar = load::progress_bar("writer: drain into MySQL", Stop::Count(n), Some(n));
    let timeout = drain_timeout(n);
    let start = Instant::now();
    let mut workers = Workers::start(settings.clone()).await?;
    let mut written = 0u64;
    let finished = loop {
        if interrupt::is_set() {
            break None;
        }
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tb_seckill_order").fetch_one(&pool).await?;
        written = count as u64;
        bar.set_position(written.min(n));
        if written >= n {
            break Some(start.elapsed());
        }
        if start.elapsed() >= timeout {
            break None;
        }
        tokio::time::sleep(POLL).await;
    };
    let elapsed = finished.unwrap_or_else(|| start.elapsed());
    bar.finish_and_clear();
    workers.shutdown().await;
    pool.close().await;
    interrupt::check()?;
    Ok(Row {
        key: RowKey::Writer,
        group: RowKey::Writer.group(),
        name: format!("order writer: {n} queued orders into MySQL (time to drain {:.1} s)", elapsed.as_secs_f64()),
        clients: None,
        count: written,
        unit: RowKey::Writer.unit(),
        rate: written as f64 / elapsed.as_secs_f64().max(1e-9),
        elapsed,
        latency: None,
        answers: format!("written {written}/{n}"),
        problem: finished
            .is_none()
            .then(|| format!("gave up after {} s with {written} of {n} written", timeout.as_secs())),
        curve: None,
        cpu: None,
    })
}

/// Sends `n` order messages of `product` to the writer's topic, [`BATCH`] per batch,
/// [`IN_FLIGHT`] batches in flight; every batch must be stored.
async fn queue(ctx: &Ctx, settings: &Settings, n: u64, product: u64) -> anyhow::Result<()> {
    let messaging = Messaging::start(&settings.rocketmq)?;
    let sender = Arc::new(Sender::start(&messaging, &format!("{}-fill", settings.rocketmq.producer_group)).await?);
    let topic = settings.rocketmq.order_topic.clone();
    let users = ctx.user_block();
    let (s, t) = (Arc::clone(&sender), topic.clone());
    let tally = load::closed_loop(
        Load { title: "writer: queue orders", workers: IN_FLIGHT, stop: Stop::Count(n), units_per_call: BATCH },
        move |seq| {
            let first = seq * BATCH;
            let batch = order_batch(first, BATCH.min(n - first), users, product);
            let (s, t) = (Arc::clone(&s), t.clone());
            async move { send_timed(&s, &t, batch).await }
        },
    )
    .await;
    if let Ok(mut sender) = Arc::try_unwrap(sender) {
        sender.shutdown().await;
    }
    let tally = tally?;
    ensure!(
        tally.unexpected == 0,
        "queueing the writer's orders on {topic}: {} (some batches were not stored)",
        tally.answers_text()
    );
    eprintln!(
        "  writer: queued {n} orders on {topic} in {:.1} s ({:.0} msg/s)",
        tally.elapsed.as_secs_f64(),
        n as f64 / tally.elapsed.as_secs_f64().max(1e-9)
    );
    Ok(())
}

/// Drops `settings.mysql.database` if it exists.
pub(super) async fn drop_database(settings: &Settings) -> anyhow::Result<()> {
    let name = &settings.mysql.database;
    let mut conn = settings.mysql.server_options().connect().await.context("connect to MySQL")?;
    conn.execute(format!("DROP DATABASE IF EXISTS `{name}`").as_str())
        .await
        .map_err(|e| anyhow!("drop database {name}: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_never_touches_the_shops_names() {
        let stack = seckill_origin::configuration::load_from(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config"),
            seckill_origin::configuration::LOCAL_ENVIRONMENT,
        )
        .unwrap();
        let s = settings(&stack, "20261124031502p4242");
        assert_eq!(s.mysql.database, "seckill_bench_writer_20261124031502p4242");
        let mq = &s.rocketmq;
        for name in [
            &mq.order_topic,
            &mq.cancel_topic,
            &mq.event_topic,
            &mq.order_writer_group,
            &mq.canceller_group,
            &mq.producer_group,
            &s.redis.key_prefix,
        ] {
            assert!(name.starts_with("seckill-bench-") && name.contains("20261124031502"), "{name}");
        }
        assert_eq!(drain_timeout(100_000), Duration::from_secs(260));
    }
}
