//! The scenarios, run in one fixed order so every row of a report comes from the same run:
//! ceilings (Redis running buy.lua, the broker's batch send, the origin's no-I/O route),
//! the origin's buys (accepted per mode, sold out), the writer draining into MySQL, and the
//! edge. A scenario that fails is reported and the run goes on; an interrupt stops the run
//! after the scenario in progress has cleaned up.

pub(crate) mod ceilings;
pub(crate) mod edge;
pub(crate) mod origin;
pub(crate) mod redis_benchmark;
pub(crate) mod writer;

use std::sync::atomic::{AtomicU64, Ordering};

use rust_decimal::Decimal;
use seckill_origin::broker::sender::{Outgoing, Sender};
use seckill_origin::orders::OrderMessage;

use crate::cli::{BuyMode, Cli, Scenario};
use crate::interrupt::{self, Interrupted};
use crate::latency::{self, Percentiles};
use crate::load::{self, Answer, Tally};
use crate::origin_api::PRICE;
use crate::origin_proc::{BenchOrigin, OriginConfig};
use crate::report::{Row, RowKey};
use crate::stack::Stack;

/// User ids per scenario block: no scenario sends more requests than this.
const USER_BLOCK: u64 = 100_000_000;

/// What every scenario needs.
pub(crate) struct Ctx {
    pub cli: Cli,
    pub stack: Stack,
    /// The run's id, `<UTC YYYYmmddHHMMSS>p<pid>` (letters and digits only): part of every key,
    /// topic, group and database name the run creates.
    pub run: String,
    next_user: AtomicU64,
}

impl Ctx {
    pub(crate) fn new(cli: Cli, stack: Stack, run: String, now_secs: u64) -> Self {
        // Below 2^53 (JSON numbers stay exact anywhere) and distinct from earlier runs.
        Self { cli, stack, run, next_user: AtomicU64::new((now_secs % 5_000_000_000) * 1_000_000 + 1) }
    }

    /// The first id of a fresh block of user ids for one scenario.
    pub(crate) fn user_block(&self) -> u64 {
        self.next_user.fetch_add(USER_BLOCK, Ordering::Relaxed)
    }
}

/// What a run produced.
#[derive(Default)]
pub(crate) struct Outcome {
    pub rows: Vec<Row>,
    /// `scenario: why` for each scenario that failed.
    pub failures: Vec<String>,
    pub notes: Vec<String>,
    pub interrupted: bool,
}

impl Outcome {
    /// Files a scenario's result. Returns false if the run should stop (interrupted).
    fn settle(&mut self, what: &str, result: anyhow::Result<Row>) -> bool {
        match result {
            Ok(row) => {
                eprintln!("{}", summary(&row));
                self.rows.push(row);
                true
            }
            Err(e) if e.is::<Interrupted>() || interrupt::is_set() => {
                self.failures.push(format!("{what}: interrupted"));
                self.interrupted = true;
                false
            }
            Err(e) => {
                eprintln!("seckill-bench: {what} failed: {e:#}");
                self.failures.push(format!("{what}: {}", format!("{e:#}").replace('\n', " ")));
                true
            }
        }
    }

    fn note(&mut self, line: impl Into<String>) {
        self.notes.push(line.into());
    }
}

/// Runs every chosen scenario in order.
pub(crate) async fn run_all(ctx: &Ctx) -> Outcome {
    let mut out = Outcome::default();
    let cli = &ctx.cli;
    out.note(
        "HTTP rows: a closed loop of keep-alive connections (each opened before the clock starts with one uncounted \
         GET of a cheap route), each sending its next request as soon as the previous one is answered; a distinct \
         user per buy; latencies from an HDR histogram of every answered request.",
    );

    // The bench's own origins: the ceiling's no-I/O route and the origin scenarios use them.
    let mut origins: Vec<BenchOrigin> = Vec::new();
    let mut bench_products: Vec<u64> = Vec::new();
    if cli.runs(Scenario::Ceilings) || cli.runs(Scenario::Origin) {
        let mut modes = if cli.runs(Scenario::Origin) { cli.modes() } else { cli.modes()[..1].to_vec() };
        if cli.runs(Scenario::Origin) && modes.contains(&BuyMode::Batched) {
            // A second batched origin: the two-origin row spreads the load over both.
            modes.push(BuyMode::Batched);
        }
        match start_origins(ctx, &modes).await {
            Ok(o) => origins = o,
            Err(e) => {
                let _ = out.settle("bench origins", Err(e));
            }
        }
    }
    // On a Redis Cluster (whose masters have replicas: `make up PROFILE=cluster`), one more
    // batched origin waits for a replica before answering: strict durability's cost.
    let on_cluster = !ctx.stack.settings.redis.cluster_urls.trim().is_empty();
    let mut replica_ack_origin: Option<BenchOrigin> = None;
    if on_cluster && cli.runs(Scenario::Origin) && cli.modes().contains(&BuyMode::Batched) && !origins.is_empty() {
        match start_replica_ack_origin(ctx, &origins).await {
            Ok(o) => replica_ack_origin = Some(o),
            Err(e) => {
                let _ = out.settle("bench origin waiting for a replica", Err(e));
            }
        }
    }

    // The ceilings and the origin's buys run in interleaved rounds; each row keeps its median.
    // Nothing has filed a row yet: every row until the merge below comes from the rounds.
    for round in 0..cli.rounds {
        if out.interrupted {
            break;
        }
        if cli.rounds > 1 {
            eprintln!("round {} of {}", round + 1, cli.rounds);
        }
        if cli.runs(Scenario::Ceilings) {
            if !out.settle("ceiling: Redis EVALSHA buy.lua", ceilings::redis(ctx).await) {
                break;
            }
            // The broker ceiling only sets the writer's scale (an info ratio): once is enough.
            if round == 0 && !out.settle("ceiling: broker batch send", ceilings::broker(ctx).await) {
                break;
            }
            if let Some(origin) = origins.first() {
                if !out.settle("ceiling: origin no-I/O route", ceilings::no_io(ctx, origin).await) {
                    break;
                }
            }
        }
        if cli.runs(Scenario::Origin) {
            let batched: Vec<&BenchOrigin> = origins.iter().filter(|o| o.mode == BuyMode::Batched).collect();
            let mut measured = Vec::new();
            for origin in &origins {
                if measured.contains(&origin.mode) {
                    continue; // the second batched origin: only for the two-origin row
                }
                measured.push(origin.mode);
                let what = format!("origin: accepted buys ({})", origin.mode.as_str());
                if !out.settle(&what, origin::accepted(ctx, origin, &mut bench_products).await) {
                    break;
                }
            }
            if batched.len() >= 2 && !out.interrupted {
                let two = origin::accepted_over(ctx, &batched[..2], &mut bench_products).await;
                out.settle("origin: accepted buys over two origins", two);
            }
            if let (Some(origin), false) = (batched.first(), out.interrupted) {
                let sharded = origin::accepted_sharded(ctx, origin, &mut bench_products).await;
                out.settle("origin: accepted buys of a sharded sale", sharded);
            }
            if let (Some(origin), false) = (replica_ack_origin.as_ref(), out.interrupted) {
                let strict = origin::accepted_replica_ack(ctx, origin, &mut bench_products).await;
                out.settle("origin: accepted buys waiting for a replica", strict);
            }
            if let (Some(origin), false) = (origins.first(), out.interrupted) {
                let sold_out = origin::sold_out(ctx, origin, &mut bench_products).await;
                out.settle("origin: sold-out buys", sold_out);
            }
        }
    }
    let measured = std::mem::take(&mut out.rows);
    out.rows = median_rows(measured);
    if cli.rounds > 1 && (cli.runs(Scenario::Ceilings) || cli.runs(Scenario::Origin)) {
        out.note(format!(
            "Rounds: the ceilings (but the broker's, run once) and the origin's buys ran {} times, interleaved \
             (ceilings, accepted per mode, sold-out; again); each of those rows is its round of median rate, with \
             every round's rate in its name. A neighbour's burst of CPU on a shared machine then skews one round \
             of one row instead of a ratio.",
            cli.rounds
        ));
    }
    if cli.runs(Scenario::Ceilings) {
        out.note(format!(
            "Redis ceiling: `redis-benchmark` runs EVALSHA of origin/src/stock/buy.lua in mode `buy`, one buy per \
             call (random user ids and order numbers from `-r`), on a product under `seckill-bench-ceiling-{}`; \
             its p50, p99 and max are redis-benchmark's own, its p90 is read off redis-benchmark's cumulative \
             latency distribution. Keys deleted afterwards.",
            ctx.run
        ));
        out.note(format!(
            "Broker ceiling: `Sender::send_batch` of {} real OrderMessage JSON bodies per batch to the scratch topic \
             `seckill-bench-scratch-{}`, {} batches in flight; its latency is per batch.",
            ceilings::BATCH,
            ctx.run,
            ceilings::IN_FLIGHT
        ));
    }
    if cli.runs(Scenario::Origin) {
        out.note(
            "Bench origins: the release `seckill-origin serve`, one per mode and a second batched one, with the \
             stack's settings but database `seckill_bench`, Redis prefix `seckill-bench`, topic \
             `seckill-bench-order` (not consumed) and their own tokens; logs in \
             $SECKILL_LOGS/bench-origin-<mode>.log. The two-origin row sends half its connections to each batched \
             origin, buying one product, as the edge spreads users over origins. The sharded row buys one sale created \
             with `stockBuckets` 4 on the first batched origin; the origin maps each user to a bucket, and on a Redis \
             Cluster each bucket is a slot of its own.",
        );
        out.note(format!(
            "Redis: {} (`make up PROFILE=cluster` runs the stack, and so the bench origins, on a Redis Cluster).",
            if ctx.stack.settings.redis.cluster_urls.trim().is_empty() {
                format!("one server, {}", ctx.stack.settings.redis.url)
            } else {
                format!("a cluster, seeds {}", ctx.stack.settings.redis.cluster_urls)
            }
        ));
    }

    for origin in origins.drain(..).chain(replica_ack_origin.take()) {
        let mode = origin.mode;
        match origin.stop().await {
            Ok(Some(status)) if !status.success() => {
                out.note(format!("The bench origin ({}) ended with {status}.", mode.as_str()))
            }
            Ok(_) => {}
            Err(e) => out.failures.push(format!("stop the bench origin ({}): {e:#}", mode.as_str())),
        }
    }
    if let Err(e) = origin::delete_keys(ctx, &bench_products).await {
        out.note(format!("Could not delete the bench products' Redis keys: {e:#}"));
    }

    if cli.runs(Scenario::Writer) && !out.interrupted {
        out.settle("writer", writer::run(ctx).await);
        out.note(format!(
            "Writer: {} OrderMessages queued on a fresh topic first, then `Workers::start` on a fresh database; \
             timed from that start (consumer start-up included) until `SELECT COUNT(*) FROM tb_seckill_order` \
             reached the count (polled every 250 ms). The writer's delayed cancels and order events are sent as \
             in production.",
            cli.writer_orders
        ));
    }

    if cli.runs(Scenario::Edge) && !out.interrupted {
        let _ = out.settle("edge: no-I/O route", edge::no_io(ctx).await)
            && out.settle("edge: accepted buys", edge::accepted(ctx).await)
            && out.settle("edge: sold-out buys", edge::sold_out(ctx).await);
        out.note(format!(
            "Edge: local `wrangler dev` at {} (a development server) forwarding to the stack's origin at {} (the \
             build `make up` runs); {} connections; products named \"Bench item\" on the stack's origin.",
            ctx.stack.edge_url,
            ctx.stack.origin_url,
            cli.edge_connections()
        ));
    }
    out
}

/// One row per key, in first-seen order: the round of median rate (the lower middle of an
/// even count). With more than one round, the name lists every round's rate.
fn median_rows(rows: Vec<Row>) -> Vec<Row> {
    let mut groups: Vec<Vec<Row>> = Vec::new();
    for row in rows {
        match groups.iter_mut().find(|g| g[0].key == row.key) {
            Some(group) => group.push(row),
            None => groups.push(vec![row]),
        }
    }
    groups
        .into_iter()
        .map(|mut of_key| {
            let n = of_key.len();
            if n == 1 {
                return of_key.swap_remove(0);
            }
            let rates: Vec<String> = of_key.iter().map(|r| format!("{:.0}", r.rate)).collect();
            of_key.sort_by(|a, b| a.rate.total_cmp(&b.rate));
            let mut median = of_key.swap_remove((n - 1) / 2);
            median.name = format!("{} — median of {n} rounds ({} /s)", median.name, rates.join(", "));
            median
        })
        .collect()
}

/// Migrates the bench database and starts one origin per mode, each on a free port from 18080.
/// What every bench origin of this run shares (its tokens included: each origin must accept
/// the others' admin token).
fn origin_config(ctx: &Ctx) -> anyhow::Result<OriginConfig> {
    Ok(OriginConfig {
        binary: ctx.stack.origin_binary()?,
        logs: ctx.stack.logs.clone(),
        admin_token: format!("bench-admin-{}", ctx.run),
        edge_secret: format!("bench-edge-secret-{}", ctx.run),
    })
}

async fn start_origins(ctx: &Ctx, modes: &[BuyMode]) -> anyhow::Result<Vec<BenchOrigin>> {
    let config = origin_config(ctx)?;
    let migrate = config.clone();
    tokio::task::spawn_blocking(move || migrate.migrate()).await??;
    let mut origins = Vec::new();
    let mut ports = Vec::new();
    for mode in modes {
        let port = crate::origin_proc::free_port(18080, &ports);
        ports.push(port);
        eprintln!("starting the bench origin ({}) on 127.0.0.1:{port}", mode.as_str());
        origins.push(config.start(*mode, port).await?);
    }
    Ok(origins)
}

/// A batched origin like the others but with `redis.replica_acks` = 1, on a port none of
/// `others` uses.
async fn start_replica_ack_origin(ctx: &Ctx, others: &[BenchOrigin]) -> anyhow::Result<BenchOrigin> {
    let config = origin_config(ctx)?;
    let taken: Vec<u16> = others.iter().filter_map(|o| o.url.rsplit(':').next()?.parse().ok()).collect();
    let port = crate::origin_proc::free_port(18080, &taken);
    eprintln!("starting the bench origin (batched, waiting for a Redis replica) on 127.0.0.1:{port}");
    config.start_with(BuyMode::Batched, port, &[("APP_REDIS__REPLICA_ACKS", "1".into())]).await
}

/// A report row from an HTTP or broker load; `expected` names the answer every call should
/// get. HTTP rows carry their percentile curve for the chart.
pub(crate) fn load_row(key: RowKey, name: String, clients: u64, tally: &Tally, expected: &str) -> Row {
    Row {
        key,
        group: key.group(),
        name,
        clients: Some(clients),
        count: tally.units,
        unit: key.unit(),
        rate: tally.rate(),
        elapsed: tally.elapsed,
        latency: Percentiles::of(&tally.histogram),
        answers: tally.answers_text(),
        problem: (tally.unexpected > 0).then(|| format!("{} of {} not {expected}", tally.unexpected, tally.calls)),
        curve: key.is_http().then(|| latency::curve(&tally.histogram)),
    }
}

/// One line per finished scenario on stderr (also when no progress bar is drawn).
fn summary(row: &Row) -> String {
    let lat = row.latency.map(|p| format!(", p50 {:.2} ms, p99 {:.2} ms", p.p50, p.p99)).unwrap_or_default();
    format!(
        "  {}: {}: {} {} in {:.1} s = {:.0}/s{lat}; {}{}",
        row.group,
        row.name,
        row.count,
        row.unit,
        row.elapsed.as_secs_f64(),
        row.rate,
        row.answers,
        row.problem.as_ref().map(|p| format!(" ⚠ {p}")).unwrap_or_default()
    )
}

/// `count` real order messages, numbered from `first`: order_no `<n>-<product>`, a distinct
/// user per order, key = order_no (tag ORDER is given at send).
/// Sends one batch to `topic` and reports it as a load outcome, timed per batch: stored, surely
/// not sent, or outcome unknown (only "stored" is expected).
pub(crate) async fn send_timed(sender: &Sender, topic: &str, batch: Vec<Outgoing>) -> load::Outcome {
    let start = std::time::Instant::now();
    let result = sender.send_batch(topic, "ORDER", batch).await;
    let latency = Some(start.elapsed());
    match result {
        Ok(()) => load::Outcome { answer: Answer::Label("batch stored"), expected: true, latency },
        Err(e) if e.is_not_sent() => load::Outcome { answer: Answer::Label("not sent"), expected: false, latency },
        Err(_) => load::Outcome { answer: Answer::Label("outcome unknown"), expected: false, latency },
    }
}

pub(crate) fn order_batch(first: u64, count: u64, user_base: u64, product: u64) -> Vec<Outgoing> {
    let price: Decimal = PRICE.parse().expect("valid price");
    let now = chrono::Utc::now().timestamp_millis();
    (first..first + count)
        .map(|n| {
            let message = OrderMessage {
                order_no: format!("{n}-{product}"),
                user_id: user_base + n,
                product_id: product,
                quantity: 1,
                price,
                accepted_at: now,
            };
            Outgoing { key: message.order_no.clone(), body: serde_json::to_vec(&message).expect("serializes") }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: RowKey, rate: f64) -> Row {
        Row {
            key,
            group: key.group(),
            name: "r".into(),
            clients: None,
            count: 1,
            unit: key.unit(),
            rate,
            elapsed: std::time::Duration::from_secs(1),
            latency: None,
            answers: String::new(),
            problem: None,
            curve: None,
        }
    }

    #[test]
    fn rounds_keep_each_rows_median_round() {
        let rows = vec![
            row(RowKey::RedisCeiling, 30.0),
            row(RowKey::AcceptedBatched, 10.0),
            row(RowKey::RedisCeiling, 10.0),
            row(RowKey::AcceptedBatched, 30.0),
            row(RowKey::BrokerCeiling, 5.0),
            row(RowKey::RedisCeiling, 20.0),
            row(RowKey::AcceptedBatched, 20.0),
        ];
        let merged = median_rows(rows);
        let got: Vec<(RowKey, f64)> = merged.iter().map(|r| (r.key, r.rate)).collect();
        assert_eq!(
            got,
            vec![(RowKey::RedisCeiling, 20.0), (RowKey::AcceptedBatched, 20.0), (RowKey::BrokerCeiling, 5.0)]
        );
        assert_eq!(merged[0].name, "r — median of 3 rounds (30, 10, 20 /s)");
        assert_eq!(merged[2].name, "r", "a row run once keeps its name");
    }

    #[test]
    fn order_batches_are_real_order_messages() {
        let batch = order_batch(10, 3, 1000, 7);
        assert_eq!(batch.len(), 3);
        assert_eq!(batch[0].key, "10-7");
        let m: OrderMessage = serde_json::from_slice(&batch[2].body).unwrap();
        assert_eq!((m.order_no.as_str(), m.user_id, m.product_id, m.quantity), ("12-7", 1012, 7, 1));
        assert_eq!(m.price.to_string(), "6999.00");
    }
}
