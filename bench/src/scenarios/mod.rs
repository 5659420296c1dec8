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
mod bench_edges;
mod bench_origins;
pub(crate) mod ceilings;
mod click_to_order;
pub(crate) mod edge;
pub(crate) mod origin;
pub(crate) mod redis_benchmark;
mod rows;
mod stub_origin;
pub(crate) mod writer;

use std::sync::atomic::{AtomicU64, Ordering};

use self::bench_origins::{start_origins, start_pipeline, start_replica_ack_origin, Pipeline};
use self::edge::Runner;
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

    if cli.runs(Scenario::Ceilings)
        || cli.runs(Scenario::Origin)
        || cli.runs(Scenario::Edge)
        || cli.runs(Scenario::Order)
    {
        if let Err(e) = bench_origins::start_afresh(ctx).await {
            out.note(format!("Could not clear the bench origins' database and Redis keys before the run: {e:#}"));
        }
    }
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
    // On broker masters that wait for their slaves (`make up PROFILE=cluster`), one more batched
    // origin on the bench profile's brokers, whose masters do not: synchronous replication's cost.
    let mut unreplicated_origin: Option<BenchOrigin> = None;
    if cli.runs(Scenario::Origin) && cli.modes().contains(&BuyMode::Batched) && !origins.is_empty() {
        match bench_origins::stack_brokers_replicate(ctx).await {
            Ok(false) => {}
            Ok(true) => match bench_origins::start_unreplicated_origin(ctx, &origins).await {
                Ok(o) => unreplicated_origin = Some(o),
                Err(e) => {
                    let _ = out.settle("bench origin on masters not waiting for their slaves", Err(e));
                }
            },
            Err(e) => {
                let _ = out.settle("the stack's broker roles", Err(e));
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
            if let (Some(origin), false) = (unreplicated_origin.as_ref(), out.interrupted) {
                let unwaited = origin::accepted_unreplicated(ctx, origin, &mut bench_products).await;
                out.settle("origin: accepted buys on masters not waiting for their slaves", unwaited);
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

    if unreplicated_origin.is_some() {
        out.note(format!(
            "Broker replication: the stack's masters are SYNC_MASTERs (inSyncReplicas {}: SEND_OK once the slave \
             holds the batch); the row on masters not waiting for their slaves runs one more batched origin against \
             the bench profile's brokers (`scripts/services.sh start mq bench`: the same two masters and two \
             slaves on the same machine, inSyncReplicas 1), started by the bench and left running.",
            std::env::var("BROKER_IN_SYNC_REPLICAS").unwrap_or_else(|_| "2".into())
        ));
    }
    for origin in origins.drain(..).chain(replica_ack_origin.take()).chain(unreplicated_origin.take()) {
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

    if (cli.runs(Scenario::Edge) || cli.runs(Scenario::Order)) && !out.interrupted {
        match start_pipeline(ctx).await {
            Ok(pipeline) => {
                if cli.runs(Scenario::Edge) {
                    edge_rows(ctx, &pipeline, &mut out).await;
                }
                if cli.runs(Scenario::Order) && !out.interrupted {
                    match click_to_order::run(ctx, &pipeline).await {
                        Ok((burst, steady)) => {
                            let _ = out.settle("click to order: burst", Ok(burst))
                                && out.settle("click to order: steady", Ok(steady));
                        }
                        Err(e) => {
                            let _ = out.settle("click to order", Err(e));
                        }
                    }
                    out.note(format!(
                        "Click to order: on the pipeline (below), straight to its origin. The burst sends buys on \
                         {} connections for the row's time and waits until MySQL holds every order; its rate is the \
                         writer's pace over the whole burst. The steady row then buys at half that pace ({} buyers, \
                         each paced) and times each order from its QUEUED answer to the first look at MySQL that \
                         found it (every 5 ms, the rows written since the last look, by primary key), which is when GET /api/orders/{{no}} \
                         reads it as UNPAID.",
                        cli.connections, 64
                    ));
                }
                let Pipeline { origin, mut workers, .. } = pipeline;
                workers.shutdown().await;
                if let Err(e) = origin.stop().await {
                    out.failures.push(format!("stop the pipeline's origin: {e:#}"));
                }
                out.note(format!(
                    "Pipeline: a release `seckill-origin serve` (batched) with the bench origins' database and Redis \
                     prefix but topics and groups of this run (`seckill-bench-pipeline-{}`), and the origin's own \
                     consumers (`Workers::start`) in the bench process writing its orders to MySQL: the bench's \
                     CPU includes them.",
                    ctx.run
                ));
            }
            Err(e) => {
                let _ = out.settle("the bench pipeline", Err(e));
            }
        }
    }
    out
}

/// The edge rows: the two bench edges started, the rows in interleaved rounds (each keeps its
/// median round), the room rows once.
async fn edge_rows(ctx: &Ctx, pipeline: &Pipeline, out: &mut Outcome) {
    let edges = match edge::start(ctx, pipeline).await {
        Ok(edges) => edges,
        Err(e) => {
            let _ = out.settle("edge: start the bench edges", Err(e));
            return;
        }
    };
    let admin = &pipeline.origin.admin;
    let before = out.rows.len();
    for round in 0..ctx.cli.rounds {
        if ctx.cli.rounds > 1 {
            eprintln!("edge round {} of {}", round + 1, ctx.cli.rounds);
        }
        let go = out.settle("edge: no-I/O route", edge::no_io(ctx, &edges, Runner::Wrangler).await)
            && out.settle("edge: product list", edge::product_list(ctx, &edges).await)
            && out.settle("edge: sold-out buys", edge::sold_out(ctx, &edges, admin, Runner::Wrangler).await)
            && match edge::accepted(ctx, &edges, admin, Runner::Wrangler).await {
                Ok((row, bought)) => {
                    out.settle("edge: accepted buys", Ok(row))
                        && out.settle("edge: repeat buys", edge::repeat(ctx, &edges, &bought).await)
                }
                Err(e) => out.settle("edge: accepted buys", Err(e)),
            }
            && out.settle("edge: accepted buys (stub origin)", edge::stub_accepted(ctx, &edges).await)
            && out.settle("direct edge: no-I/O route", edge::no_io(ctx, &edges, Runner::Direct).await)
            && out.settle("direct edge: sold-out buys", edge::sold_out(ctx, &edges, admin, Runner::Direct).await)
            && match edge::accepted(ctx, &edges, admin, Runner::Direct).await {
                Ok((row, _)) => out.settle("direct edge: accepted buys", Ok(row)),
                Err(e) => out.settle("direct edge: accepted buys", Err(e)),
            };
        if !go || out.interrupted {
            break;
        }
    }
    let measured = out.rows.split_off(before);
    out.rows.extend(median_rows(measured));
    if !out.interrupted {
        match edge::room(ctx, &edges, admin).await {
            Ok((joins, polls)) => {
                let _ = out.settle("edge: room joins", Ok(joins)) && out.settle("edge: room polls", Ok(polls));
            }
            Err(e) => {
                let _ = out.settle("edge: waiting room", Err(e));
            }
        }
    }
    out.note(format!(
        "Edge: three bench instances of the edge (`scripts/edge.sh start`, the build `make up` made) on wrangler's \
         dev server: `edge-bench` forwarding to the pipeline's origin, `edge-bench-stub` to a no-I/O stub origin in the \
         bench process, and `edge-bench-direct` (to the pipeline) run without wrangler's proxy process \
         (`edge/dev-server.mjs --direct`: the same Worker on the same workerd); {} connections; {} interleaved rounds \
         (no-I/O, product list, sold-out, accepted, repeat, stub; then the direct edge's no-I/O, sold-out, accepted), \
         each row its median round; the room rows once, on one sale's paused room of {} Durable Objects. CPU per \
         request: `utime + stime` of each process before and after the row (the stub edge's three processes as one).",
        ctx.cli.edge_connections(),
        ctx.cli.rounds,
        4
    ));
}
