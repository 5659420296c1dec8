//! The bench's own origins: the release `seckill-origin serve` started for this run, one per
//! buy mode and more where a scenario needs them, on free ports from 18080.

use super::Ctx;
use crate::cli::BuyMode;
use crate::origin_proc::{BenchOrigin, OriginConfig};

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
