//! The `make up` edge (`wrangler dev`, forwarding to the stack's origin): a route it answers
//! itself (its dev ceiling), accepted buys and sold-out buys, at min(--connections, 64).
//! Products are created on the stack's origin with its admin token.

use super::origin::{joined, sell_out, stock_for};
use super::{load_row, Ctx};
use crate::load::{self, Endpoint, Load};
use crate::origin_api::{buy_request, Admin};
use crate::report::{Row, RowKey};

/// `GET /api/nothing`: the edge answers 404 itself, no origin involved.
pub async fn no_io(ctx: &Ctx) -> anyhow::Result<Row> {
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

/// Accepted buys through the edge: a fresh product on the stack's origin, distinct users.
pub async fn accepted(ctx: &Ctx) -> anyhow::Result<Row> {
    let admin = Admin::new(&ctx.stack.origin_url, &ctx.stack.admin_token)?;
    let product = admin.create_product(stock_for(ctx.cli.stop())).await?;
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
pub async fn sold_out(ctx: &Ctx) -> anyhow::Result<Row> {
    let admin = Admin::new(&ctx.stack.origin_url, &ctx.stack.admin_token)?;
    let product = admin.create_product(1).await?;
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
