//! Click to order: how long after its `200 QUEUED` answer an order is in MySQL, where
//! `GET /api/orders/{no}` reads it as `UNPAID` and the buyer can pay. Measured on the bench's
//! [`Pipeline`] (a release origin, the origin's own consumers writing the bench database):
//!
//! 1. a **burst**: `--connections` buyers as fast as the origin answers for the row's time; the
//!    row says how long MySQL took to hold every order after the last answer (the drain), and
//!    the writer's pace over the whole burst;
//! 2. a **steady** load at half that pace, paced per buyer; the row's percentiles are each
//!    order's time from its answer to the first look at MySQL that found it.
//!
//! MySQL is looked at every [`LOOK_EVERY`] (the rows written since the last look, by primary
//! key), so a time is at most that much late.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use sqlx::MySqlPool;

use super::bench_origins::Pipeline;
use super::Ctx;
use crate::cli::Stop;
use crate::latency::{self, Percentiles};
use crate::load::{self, Endpoint, Load};
use crate::origin_api::{buy_request, buy_with};
use crate::report::{Row, RowKey};

/// How often MySQL is asked for the sale's new orders.
const LOOK_EVERY: Duration = Duration::from_millis(5);

/// Buyers of the steady load, each paced to its share of the rate.
const STEADY_BUYERS: u64 = 64;

/// How long the steady load waits after the burst's events are out.
const SETTLE: Duration = Duration::from_secs(5);

/// How long the orders may take to arrive once the load ends.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);

/// When each order of `product` was first seen in MySQL, by order number.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<HashMap<String, Instant>>>);

impl Seen {
    fn count(&self) -> usize {
        self.0.lock().expect("not poisoned").len()
    }
}

/// Looks at MySQL every [`LOOK_EVERY`] for `product`'s new orders until dropped.
fn watch(pool: MySqlPool, product: u64, seen: Seen) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // Only rows after the newest one now, by primary key: each look reads the new rows
        // alone, so the watching does not load the MySQL it watches.
        let newest: Option<u64> =
            sqlx::query_scalar("SELECT MAX(id) FROM tb_seckill_order").fetch_one(&pool).await.unwrap_or(None);
        let mut last_id = newest.unwrap_or(0);
        loop {
            let rows: Vec<(u64, u64, String)> = sqlx::query_as(
                "SELECT id, product_id, order_no FROM tb_seckill_order WHERE id > ? ORDER BY id LIMIT 20000",
            )
            .bind(last_id)
            .fetch_all(&pool)
            .await
            .unwrap_or_default();
            let now = Instant::now();
            if let Some((id, _, _)) = rows.last() {
                last_id = *id;
            }
            {
                let mut seen = seen.0.lock().expect("not poisoned");
                for (_, _, order_no) in rows.into_iter().filter(|(_, p, _)| *p == product) {
                    seen.entry(order_no).or_insert(now);
                }
            }
            tokio::time::sleep(LOOK_EVERY).await;
        }
    })
}

/// Waits until `seen` holds `n` orders; returns when the last arrived, or `None` on timeout.
async fn drained(seen: &Seen, n: usize) -> Option<Instant> {
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    while Instant::now() < deadline {
        if seen.count() >= n {
            return seen.0.lock().expect("not poisoned").values().max().copied();
        }
        tokio::time::sleep(LOOK_EVERY).await;
    }
    None
}

/// Waits until the order events' outbox is empty; returns how long that took (`None`: not
/// within [`DRAIN_TIMEOUT`]).
async fn settled(pool: &MySqlPool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < DRAIN_TIMEOUT {
        let unsent: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tb_order_event WHERE sent_at IS NULL")
            .fetch_one(pool)
            .await
            .unwrap_or(1);
        if unsent == 0 {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// The burst row and the steady row.
pub(crate) async fn run(ctx: &Ctx, pipeline: &Pipeline) -> anyhow::Result<(Row, Row)> {
    let pool =
        seckill_origin::startup::connect_mysql(&pipeline.settings).await.context("connect to the bench database")?;
    let origin = &pipeline.origin;
    let buy = Endpoint::parse(&format!("{}/api/seckill", origin.url))?;
    let secret = origin.secret.clone();
    let secs = match ctx.cli.stop() {
        Stop::Duration(d) => d,
        Stop::Count(_) => Duration::from_secs(5),
    };

    // The burst.
    let product = origin.admin.create_product(10_000_000).await?;
    let seen = Seen::default();
    let watcher = watch(pool.clone(), product, seen.clone());
    let users = ctx.user_block();
    let (endpoint, s) = (buy.clone(), secret.clone());
    let started = Instant::now();
    let tally = load::http(
        Load {
            title: "click to order: burst",
            workers: ctx.cli.connections,
            stop: Stop::Duration(secs),
            units_per_call: 1,
        },
        &buy.at("/livez"),
        200,
        move |seq| buy_request(&endpoint, Some(&s), users + seq, product),
    )
    .await?;
    let answered = tally.answers.get(&load::Answer::Status(200)).copied().unwrap_or(0);
    let last_answer = started + tally.elapsed;
    let last_written = drained(&seen, answered as usize).await;
    watcher.abort();
    // What the burst's orders set off after their rows (the order events' outbox relay, the
    // delayed cancels, MariaDB's own purge and page flushing) runs on the same cores and the
    // same MySQL: the steady load starts once the events are out and [`SETTLE`] has passed, so
    // it measures a steady state, not the burst's tail.
    let settled = settled(&pool).await;
    tokio::time::sleep(SETTLE).await;
    let written = seen.count() as u64;
    let whole = last_written.map_or_else(|| started.elapsed(), |t| t.saturating_duration_since(started));
    let drain = last_written.map_or(DRAIN_TIMEOUT, |t| t.saturating_duration_since(last_answer));
    let pace = written as f64 / whole.as_secs_f64().max(1e-9);
    let burst = Row {
        key: RowKey::ClickToOrderBurst,
        group: RowKey::ClickToOrderBurst.group(),
        name: format!(
            "click to order, burst: {answered} QUEUED in {:.1} s at {:.0}/s, all in MySQL {:.2} s after the last answer \
             (writer {pace:.0} orders/s over the burst), their events all sent {} later",
            tally.elapsed.as_secs_f64(),
            tally.rate(),
            drain.as_secs_f64(),
            settled.map_or_else(|| format!("not within {} s", DRAIN_TIMEOUT.as_secs()), |d| format!("{:.1} s", d.as_secs_f64()))
        ),
        clients: Some(ctx.cli.connections),
        count: written,
        unit: RowKey::ClickToOrderBurst.unit(),
        rate: pace,
        elapsed: whole,
        latency: None,
        answers: format!("written {written}/{answered}"),
        problem: last_written.is_none().then(|| format!("{written} of {answered} in MySQL after {} s", DRAIN_TIMEOUT.as_secs())),
        curve: None,
        cpu: None,
    };

    // The steady load, at half the writer's pace.
    let rate = (pace / 2.0).max(1.0);
    let product = origin.admin.create_product(10_000_000).await?;
    let seen = Seen::default();
    let watcher = watch(pool.clone(), product, seen.clone());
    let answers: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let users = ctx.user_block();
    let client = load::client(STEADY_BUYERS as usize)?;
    let every = Duration::from_secs_f64(STEADY_BUYERS as f64 / rate);
    let started = Instant::now();
    let mut buyers = Vec::new();
    for buyer in 0..STEADY_BUYERS {
        let (client, answers, url, secret) =
            (client.clone(), Arc::clone(&answers), format!("{}/api/seckill", origin.url), secret.clone());
        buyers.push(tokio::spawn(async move {
            // Spread over the first period, so the buyers do not send in step.
            let mut next = started + every.mul_f64(buyer as f64 / STEADY_BUYERS as f64);
            let mut n = 0u64;
            while next < started + secs {
                tokio::time::sleep_until(next.into()).await;
                let user = users + buyer + n * STEADY_BUYERS;
                n += 1;
                next += every;
                let Ok((200, body)) = buy_with(&client, &url, Some(&secret), user, product).await else {
                    continue;
                };
                let at = Instant::now();
                let order_no = serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|b| b["orderNo"].as_str().map(str::to_owned));
                if let Some(order_no) = order_no {
                    answers.lock().expect("not poisoned").insert(order_no, at);
                }
            }
        }));
    }
    for buyer in buyers {
        buyer.await?;
    }
    let sent_for = started.elapsed();
    let answers = std::mem::take(&mut *answers.lock().expect("not poisoned"));
    let all_written = drained(&seen, answers.len()).await.is_some();
    watcher.abort();
    let seen = seen.0.lock().expect("not poisoned").clone();
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    for (order_no, answered_at) in &answers {
        if let Some(at) = seen.get(order_no) {
            // An order may be written before its answer is read: that is 0.
            histogram.record(at.saturating_duration_since(*answered_at).as_micros().max(1) as u64)?;
        }
    }
    let n = answers.len() as u64;
    let steady = Row {
        key: RowKey::ClickToOrderSteady,
        group: RowKey::ClickToOrderSteady.group(),
        name: format!(
            "click to order, steady at {rate:.0} buys/s (half the burst's writer pace), QUEUED answer → order in MySQL \
             (looked at every {} ms)",
            LOOK_EVERY.as_millis()
        ),
        clients: Some(STEADY_BUYERS),
        count: histogram.len(),
        unit: RowKey::ClickToOrderSteady.unit(),
        rate: n as f64 / sent_for.as_secs_f64().max(1e-9),
        elapsed: sent_for,
        latency: Percentiles::of(&histogram),
        answers: format!("written {}/{n}", histogram.len()),
        problem: (!all_written)
            .then(|| format!("{} of {n} in MySQL after {} s", histogram.len(), DRAIN_TIMEOUT.as_secs())),
        curve: Some(latency::curve(&histogram)),
        cpu: None,
    };
    pool.close().await;
    Ok((burst, steady))
}
