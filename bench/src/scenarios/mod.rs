//! The scenarios, run in one fixed order so every row of a report comes from the same run:
//! ceilings (Redis running buy.lua, the broker's batch send, the origin's no-I/O route),
//! the origin's buys (accepted per mode, sold out), the writer draining into MySQL, and the
//! edge. A scenario that fails is reported and the run goes on; an interrupt stops the run
//! after the scenario in progress has cleaned up.
//!
//! This module holds the run's context and runs the scenarios in order; [`rows`] turns what a
//! scenario measured into report rows, [`batches`] builds and times the broker scenarios'
//! batches of order messages, and [`bench_origins`] starts the origins the bench loads.

mod batches;
mod bench_origins;
pub(crate) mod ceilings;
pub(crate) mod edge;
pub(crate) mod origin;
pub(crate) mod redis_benchmark;
mod rows;
pub(crate) mod writer;

use std::sync::atomic::{AtomicU64, Ordering};

use self::bench_origins::{start_origins, start_replica_ack_origin};
use self::rows::{median_rows, summary};
use crate::cli::{BuyMode, Cli, Scenario};
use crate::interrupt::{self, Interrupted};
use crate::origin_proc::BenchOrigin;
use crate::report::Row;
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
            && out.settle("edge: sold-out buys", edge::sold_out(ctx).await)
            && match edge::room(ctx).await {
                Ok((joins, polls)) => {
                    out.settle("edge: room joins", Ok(joins)) && out.settle("edge: room polls", Ok(polls))
                }
                Err(e) => out.settle("edge: waiting room", Err(e)),
            };
        out.note(format!(
            "Edge: local `wrangler dev` at {} (a development server) forwarding to the stack's origin at {} (the \
             build `make up` runs); {} connections; products named \"Bench item\" on the stack's origin. The room \
             rows ask one sale's paused room of four Durable Objects: a join is a new user queued, a poll one of \
             500 queued users asking again (each answer 429 QUEUED from the room, the origin never reached).",
            ctx.stack.edge_url,
            ctx.stack.origin_url,
            cli.edge_connections()
        ));
    }
    out
}
