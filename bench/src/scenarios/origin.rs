//! Buys on the bench's own origins: accepted buys (every answer 200 QUEUED: a fresh product
//! with stock for every request, a distinct user per request) per buy mode, and sold-out buys
//! (every answer 409 SOLD_OUT: a product of stock 1, bought once first).

use redis::AsyncCommands;
use serde_json::json;

use super::rows::load_row;
use super::Ctx;
use crate::cli::{BuyMode, Stop};
use crate::load::{self, Endpoint, Load};
use crate::origin_api::{buy_once, buy_request};
use crate::origin_proc::{BenchOrigin, KEY_PREFIX};
use crate::report::{Row, RowKey};

/// Stock of an accepted-buys product in `--duration` mode (the origin's maximum).
pub(crate) const DURATION_STOCK: u64 = 100_000_000;

/// Stock that covers every request of a load.
pub(crate) fn stock_for(stop: Stop) -> u64 {
    match stop {
        Stop::Count(n) => n,
        Stop::Duration(_) => DURATION_STOCK,
    }
}

/// The buckets of the sharded-sale row's product.
pub(crate) const SHARDED_BUCKETS: u32 = 4;

/// Accepted buys on `origin`. Records the product it creates in `products`.
pub(crate) async fn accepted(ctx: &Ctx, origin: &BenchOrigin, products: &mut Vec<u64>) -> anyhow::Result<Row> {
    let key = match origin.mode {
        BuyMode::Batched => RowKey::AcceptedBatched,
        BuyMode::Transaction => RowKey::AcceptedTransaction,
    };
    let name = format!("accepted buys, {} mode", origin.mode.as_str());
    accepted_as(ctx, origin, products, key, name).await
}

/// Accepted buys on `origin`, a batched origin started with `redis.replica_acks` = 1: each
/// buy is answered QUEUED only once a replica holds it. Records the product.
pub(crate) async fn accepted_replica_ack(
    ctx: &Ctx,
    origin: &BenchOrigin,
    products: &mut Vec<u64>,
) -> anyhow::Result<Row> {
    let name = "accepted buys, batched mode, QUEUED once a Redis replica holds them (redis.replica_acks = 1)".into();
    accepted_as(ctx, origin, products, RowKey::AcceptedReplicaAck, name).await
}

/// Accepted buys on `origin`, a batched origin on the bench profile's brokers, whose masters
/// answer SEND_OK without waiting for their slaves. Records the product.
pub(crate) async fn accepted_unreplicated(
    ctx: &Ctx,
    origin: &BenchOrigin,
    products: &mut Vec<u64>,
) -> anyhow::Result<Row> {
    let name =
        "accepted buys, batched mode, on broker masters not waiting for their slaves (inSyncReplicas = 1)".into();
    accepted_as(ctx, origin, products, RowKey::AcceptedUnreplicated, name).await
}

/// Accepted buys on `origin` of a fresh product (recorded in `products`) with stock for every
/// request: the row `key`, `name`.
async fn accepted_as(
    ctx: &Ctx,
    origin: &BenchOrigin,
    products: &mut Vec<u64>,
    key: RowKey,
    name: String,
) -> anyhow::Result<Row> {
    let product = origin.admin.create_product(stock_for(ctx.cli.stop())).await?;
    products.push(product);
    accepted_of(ctx, &[origin], product, key, name).await
}

/// Accepted buys on `origin` of one sale split into [`SHARDED_BUCKETS`] stock buckets (hot-
/// product sharding; on a Redis Cluster each bucket is a slot of its own). Records the product.
pub(crate) async fn accepted_sharded(ctx: &Ctx, origin: &BenchOrigin, products: &mut Vec<u64>) -> anyhow::Result<Row> {
    let sale = json!({ "stock": stock_for(ctx.cli.stop()), "stockBuckets": SHARDED_BUCKETS });
    let product = origin.admin.create_sale(sale).await?;
    products.push(product);
    let name = format!("accepted buys, {} mode, one sale in {SHARDED_BUCKETS} buckets", origin.mode.as_str());
    accepted_of(ctx, &[origin], product, RowKey::AcceptedSharded, name).await
}

/// Accepted buys of `product`, a distinct user per buy, spread evenly over `origins` (each
/// keeps 1/n of the connections, as an edge spreading users over origins): the row `key`, `name`.
async fn accepted_of(
    ctx: &Ctx,
    origins: &[&BenchOrigin],
    product: u64,
    key: RowKey,
    name: String,
) -> anyhow::Result<Row> {
    let first = origins.first().ok_or_else(|| anyhow::anyhow!("no origin"))?;
    let users = ctx.user_block();
    let servers: Vec<Endpoint> =
        origins.iter().map(|o| Endpoint::parse(&format!("{}/livez", o.url))).collect::<anyhow::Result<_>>()?;
    // Path and body are the same on every origin; the load sends each to its worker's server.
    let buy = Endpoint::parse(&format!("{}/api/seckill", first.url))?;
    let secret = first.secret.clone();
    let clients = ctx.cli.connections;
    let title = format!("origin: {name}");
    let tally = load::http_over(
        Load { title: &title, workers: clients, stop: ctx.cli.stop(), units_per_call: 1 },
        &servers,
        200,
        move |seq| buy_request(&buy, Some(&secret), users + seq, product),
    )
    .await?;
    Ok(load_row(key, name, clients, &tally, "200"))
}

/// Accepted buys spread evenly over `origins` (batched ones), one product they all sell.
/// Records the product.
pub(crate) async fn accepted_over(ctx: &Ctx, origins: &[&BenchOrigin], products: &mut Vec<u64>) -> anyhow::Result<Row> {
    let first = origins.first().ok_or_else(|| anyhow::anyhow!("no origin"))?;
    let product = first.admin.create_product(stock_for(ctx.cli.stop())).await?;
    products.push(product);
    let name = format!("accepted buys, batched mode, over {} origins", origins.len());
    accepted_of(ctx, origins, product, RowKey::AcceptedTwoOrigins, name).await
}

/// Sold-out buys on `origin`. Records the product it creates in `products`.
pub(crate) async fn sold_out(ctx: &Ctx, origin: &BenchOrigin, products: &mut Vec<u64>) -> anyhow::Result<Row> {
    let product = origin.admin.create_product(1).await?;
    products.push(product);
    let users = ctx.user_block();
    let url = format!("{}/api/seckill", origin.url);
    let setup = sell_out(&url, Some(&origin.secret), users, product).await?;
    let buy = Endpoint::parse(&url)?;
    let secret = origin.secret.clone();
    let clients = ctx.cli.connections;
    let tally = load::http(
        Load { title: "origin: sold-out buys", workers: clients, stop: ctx.cli.stop(), units_per_call: 1 },
        &buy.at("/livez"),
        409,
        move |seq| buy_request(&buy, Some(&secret), users + 1 + seq, product),
    )
    .await?;
    let mut row =
        load_row(RowKey::SoldOut, format!("sold-out buys, {} mode", origin.mode.as_str()), clients, &tally, "409");
    row.problem = joined(setup, row.problem);
    Ok(row)
}

/// Buys the one unit of `product`. `Some(problem)` if that buy was not accepted: the load
/// still runs (and shows what the origin answers), with the problem on its row.
pub(crate) async fn sell_out(
    url: &str,
    secret: Option<&str>,
    user: u64,
    product: u64,
) -> anyhow::Result<Option<String>> {
    let (status, body) = buy_once(url, secret, user, product).await?;
    Ok((status != 200).then(|| format!("the buy that should sell product {product} out got {status} {body}")))
}

/// Both problems, `; `-separated.
pub(crate) fn joined(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(format!("{a}; {b}")),
        (a, b) => a.or(b),
    }
}

/// Deletes the Redis keys of the bench origins' products (`seckill-bench:{id}:*`) once the
/// origins are stopped: nothing consumes their orders, so they would stay "in flight". On a
/// cluster every seed node (each a master) is scanned for the keys it holds.
pub(crate) async fn delete_keys(ctx: &Ctx, products: &[u64]) -> anyhow::Result<()> {
    // `{P}:…` and a sharded sale's other buckets, `{P.b.n}:…` (but not `{P7}:…`).
    let patterns: Vec<String> = products.iter().map(|id| format!("{KEY_PREFIX}:{{{id}[.}}]*")).collect();
    delete_matching(ctx, &patterns).await
}

/// Deletes every key of the bench origins (prefix `seckill-bench`), of this run or an earlier.
pub(crate) async fn delete_all_keys(ctx: &Ctx) -> anyhow::Result<()> {
    delete_matching(ctx, &[format!("{KEY_PREFIX}:*")]).await
}

/// Deletes the keys matching each of `patterns` on every node of the stack's Redis.
async fn delete_matching(ctx: &Ctx, patterns: &[String]) -> anyhow::Result<()> {
    if patterns.is_empty() {
        return Ok(());
    }
    let redis = &ctx.stack.settings.redis;
    let mut nodes: Vec<&str> = redis.cluster_urls.split(',').map(str::trim).filter(|u| !u.is_empty()).collect();
    if nodes.is_empty() {
        nodes.push(redis.url.as_str());
    }
    for node in nodes {
        let client = redis::Client::open(node)?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        for pattern in patterns {
            let mut keys: Vec<String> = Vec::new();
            let mut cursor = 0u64;
            loop {
                let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut conn)
                    .await?;
                keys.extend(batch);
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
            // One key per DEL: on a cluster node a multi-key DEL must stay within one slot.
            for key in keys {
                let _: () = conn.del(&key).await?;
            }
        }
    }
    Ok(())
}
