//! The bench's own origins: the release `seckill-origin serve` started for this run, one per
//! buy mode and more where a scenario needs them, on free ports from 18080.

use seckill_origin::broker::Messaging;
use seckill_origin::configuration::Settings;
use seckill_origin::startup::Workers;

use super::writer::consumers_of_their_own;
use super::Ctx;
use crate::cli::BuyMode;
use crate::origin_proc::{BenchOrigin, OriginConfig, DATABASE, KEY_PREFIX};

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

/// Drops the bench origins' database and deletes their Redis keys, so this run's origins find
/// only this run's sales. An earlier run's sales, whose Redis keys that run deleted, would each
/// be frozen and healed by the fence of every origin started here once Redis has restarted,
/// thousands of reconciles in the measured rows' time; and a fresh database numbers products
/// from 1 again, so keys an earlier run left would make its sales look live.
pub(super) async fn start_afresh(ctx: &Ctx) -> anyhow::Result<()> {
    let mut settings = ctx.stack.settings.clone();
    settings.mysql.database = DATABASE.to_owned();
    super::writer::drop_database(&settings).await?;
    super::origin::delete_all_keys(ctx).await
}

/// Migrates the bench database and starts one origin per mode, each on a free port from 18080.
pub(super) async fn start_origins(ctx: &Ctx, modes: &[BuyMode]) -> anyhow::Result<Vec<BenchOrigin>> {
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
pub(super) async fn start_replica_ack_origin(ctx: &Ctx, others: &[BenchOrigin]) -> anyhow::Result<BenchOrigin> {
    let config = origin_config(ctx)?;
    let taken: Vec<u16> = others.iter().filter_map(|o| o.url.rsplit(':').next()?.parse().ok()).collect();
    let port = crate::origin_proc::free_port(18080, &taken);
    eprintln!("starting the bench origin (batched, waiting for a Redis replica) on 127.0.0.1:{port}");
    config.start_with(BuyMode::Batched, port, &[("APP_REDIS__REPLICA_ACKS", "1".into())]).await
}

/// The name servers of the bench profile (`scripts/services.sh start mq bench`): two masters,
/// each with a slave it does not wait for (inSyncReplicas 1).
fn unreplicated_namesrv_addr() -> String {
    let port: u16 = std::env::var("BENCH_NAMESRV_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(9879);
    format!("127.0.0.1:{port};127.0.0.1:{}", port + 10)
}

/// True if the stack's broker masters wait for their slaves (`make up PROFILE=cluster`: each
/// master is a SYNC_MASTER), as the name servers and the brokers themselves say.
pub(super) async fn stack_brokers_replicate(ctx: &Ctx) -> anyhow::Result<bool> {
    let messaging = Messaging::start(&ctx.stack.settings.rocketmq)?;
    let brokers = seckill_origin::broker::cluster::describe(&messaging).await?;
    Ok(brokers.iter().any(|b| b.role.as_deref() == Some("SYNC_MASTER")))
}

/// Starts the bench profile's brokers (`scripts/services.sh start mq bench`: the pair's layout
/// whose masters do not wait for their slaves) and a batched origin like the others sending to
/// them, on a port none of `others` uses: what synchronous replication costs is the stack's
/// batched row beside this one's.
pub(super) async fn start_unreplicated_origin(ctx: &Ctx, others: &[BenchOrigin]) -> anyhow::Result<BenchOrigin> {
    let script = ctx.stack.root.join("scripts/services.sh");
    eprintln!("starting the bench profile's brokers (masters not waiting for their slaves)");
    let started = tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash").arg(&script).args(["start", "mq", "bench"]).status()
    })
    .await??;
    anyhow::ensure!(started.success(), "scripts/services.sh start mq bench failed (its output is above)");
    let config = origin_config(ctx)?;
    let taken: Vec<u16> = others.iter().filter_map(|o| o.url.rsplit(':').next()?.parse().ok()).collect();
    let port = crate::origin_proc::free_port(18080, &taken);
    eprintln!("starting the bench origin (batched, on masters not waiting for their slaves) on 127.0.0.1:{port}");
    config.start_with(BuyMode::Batched, port, &[("APP_ROCKETMQ__NAMESRV_ADDR", unreplicated_namesrv_addr())]).await
}

/// A bench origin whose orders are written: a batched origin sending to topics of this run,
/// and the origin's own consumers (`Workers::start`, in this process) writing them into the
/// bench database. The edge rows forward to it, and the click-to-order rows time it.
pub(crate) struct Pipeline {
    pub origin: BenchOrigin,
    pub workers: Workers,
    pub settings: Settings,
}

/// The consumers' settings of the pipeline of run `run`: the bench origins' database and key
/// prefix, topics and groups of this run only.
pub(super) fn pipeline_settings(stack: &Settings, run: &str) -> Settings {
    let mut s = consumers_of_their_own(stack, "pipeline", run);
    s.mysql.database = DATABASE.to_owned();
    s.redis.key_prefix = KEY_PREFIX.to_owned();
    s
}

/// Starts the [`Pipeline`] on a free port from 18180.
pub(super) async fn start_pipeline(ctx: &Ctx) -> anyhow::Result<Pipeline> {
    let config = origin_config(ctx)?;
    let migrate = config.clone();
    tokio::task::spawn_blocking(move || migrate.migrate()).await??;
    let settings = pipeline_settings(&ctx.stack.settings, &ctx.run);
    let port = crate::origin_proc::free_port(18180, &[]);
    eprintln!("starting the bench pipeline: an origin (batched) on 127.0.0.1:{port} and its order writer");
    let mq = &settings.rocketmq;
    let extra = [
        ("APP_ROCKETMQ__ORDER_TOPIC", mq.order_topic.clone()),
        ("APP_ROCKETMQ__CANCEL_TOPIC", mq.cancel_topic.clone()),
        ("APP_ROCKETMQ__EVENT_TOPIC", mq.event_topic.clone()),
        ("APP_ROCKETMQ__PRODUCER_GROUP", mq.producer_group.clone()),
    ];
    let origin = config.start_with(BuyMode::Batched, port, &extra).await?;
    let workers = Workers::start(settings.clone()).await?;
    Ok(Pipeline { origin, workers, settings })
}
