//! The `make up` edge (`wrangler dev`, forwarding to the stack's origin): a route it answers
//! itself (its dev ceiling), accepted buys and sold-out buys, at min(--connections, 64).
//! Products are created on the stack's origin with its admin token; they are real sales of
//! the `make up` shop, so each one ends shortly after the run ([`sale`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::origin::{joined, sell_out, stock_for};
use super::rows::load_row;
use super::Ctx;
use crate::cli::Stop;
use crate::load::{self, Endpoint, Load};
use crate::origin_api::{buy_request, Admin};
use crate::report::{Row, RowKey};

/// `GET /api/nothing`: the edge answers 404 itself, no origin involved.
pub(crate) async fn no_io(ctx: &Ctx) -> anyhow::Result<Row> {
    let url = format!("{}/api/nothing", ctx.stack.edge_url);
    let probe = load::client(1)?.get(&url).send().await?;
    let decided_by = probe.headers().get("x-seckill-decided-by").and_then(|v| v.to_str().ok()).map(str::to_string);
    anyhow::ensure!(probe.status() == 404, "GET {url} answered {} (expected the edge's 404)", probe.status());
    let clients = ctx.cli.edge_connections();
    let nothing = Endpoint::parse(&url)?;
    let tally = load::http(
        Load { title: "edge: GET /api/nothing", workers: clients, stop: ctx.cli.stop(), units_per_call: 1 },
        &nothing.clone(),
        404,
        move |_| nothing.get(),
    )
    .await?;
    let mut row =
        load_row(RowKey::EdgeNoIo, "edge GET /api/nothing (404 at the edge, no I/O)".into(), clients, &tally, "404");
    if decided_by.as_deref() != Some("edge") {
        row.problem = Some(format!("x-seckill-decided-by was {decided_by:?}, not \"edge\""));
    }
    Ok(row)
}

/// The fields of an edge-bench sale of `stock` units: it ends two minutes after the run's
/// duration (half an hour for a request count), so the shop that `make up` serves shows it as
/// ended rather than on sale for good.
fn sale(ctx: &Ctx, stock: u64) -> serde_json::Value {
    let run = match ctx.cli.stop() {
        Stop::Duration(d) => d + Duration::from_secs(120),
        Stop::Count(_) => Duration::from_secs(30 * 60),
    };
    let ends = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default() + run;
    serde_json::json!({ "stock": stock, "endAt": ends.as_millis() as i64 })
}

/// Accepted buys through the edge: a fresh product on the stack's origin, distinct users.
pub(crate) async fn accepted(ctx: &Ctx) -> anyhow::Result<Row> {
    let admin = Admin::new(&ctx.stack.origin_url, &ctx.stack.admin_token)?;
    let product = admin.create_sale(sale(ctx, stock_for(ctx.cli.stop()))).await?;
    let users = ctx.user_block();
    let buy = Endpoint::parse(&format!("{}/api/seckill", ctx.stack.edge_url))?;
    let clients = ctx.cli.edge_connections();
    let tally = load::http(
        Load { title: "edge: accepted buys", workers: clients, stop: ctx.cli.stop(), units_per_call: 1 },
        &buy.at("/api/nothing"),
        200,
        move |seq| buy_request(&buy, None, users + seq, product),
    )
    .await?;
    Ok(load_row(RowKey::EdgeAccepted, "accepted buys via the edge".into(), clients, &tally, "200"))
}

/// Sold-out buys through the edge: a product of stock 1 on the stack's origin, bought once
/// through the edge first; the edge then answers from its sold-out flag while it lasts.
pub(crate) async fn sold_out(ctx: &Ctx) -> anyhow::Result<Row> {
    let admin = Admin::new(&ctx.stack.origin_url, &ctx.stack.admin_token)?;
    let product = admin.create_sale(sale(ctx, 1)).await?;
    let users = ctx.user_block();
    let url = format!("{}/api/seckill", ctx.stack.edge_url);
    let setup = sell_out(&url, None, users, product).await?;
    let buy = Endpoint::parse(&url)?;
    let clients = ctx.cli.edge_connections();
    let tally = load::http(
        Load { title: "edge: sold-out buys", workers: clients, stop: ctx.cli.stop(), units_per_call: 1 },
        &buy.at("/api/nothing"),
        409,
        move |seq| buy_request(&buy, None, users + 1 + seq, product),
    )
    .await?;
    let mut row = load_row(RowKey::EdgeSoldOut, "sold-out buys via the edge".into(), clients, &tally, "409");
    row.problem = joined(setup, row.problem);
    Ok(row)
}
