//! The `make up` edge (`wrangler dev`, forwarding to the stack's origin): a route it answers
//! itself (its dev ceiling), accepted buys, sold-out buys, and a sale's waiting room (joins and
//! polls), at min(--connections, 64).
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

/// The room of the room rows: four Durable Objects, paused so that every ask queues (the origin
/// is never reached and the line only grows), and no challenge (each join would cost the
/// client a proof of work, which measures the client).
const ROOM_SHARDS: u32 = 4;

/// Users the poll row cycles through: each joined in the join row before it.
const POLLING_USERS: u64 = 500;

/// A sale whose room holds everyone: created on the stack's origin, listed by the edge.
async fn paused_room_sale(ctx: &Ctx) -> anyhow::Result<u64> {
    let admin = Admin::new(&ctx.stack.origin_url, &ctx.stack.admin_token)?;
    let mut fields = sale(ctx, 1000);
    fields["waitingRoom"] = serde_json::json!({
        "newUsersPerInterval": 100, "intervalSecs": 1, "maxActiveUsers": 1000, "sessionSecs": 60,
        "shards": ROOM_SHARDS, "paused": true,
    });
    admin.create_sale(fields).await
}

/// Room joins and then polls through the edge, on one sale's room of [`ROOM_SHARDS`] objects:
/// each join is a new user (a ticket, a row), each poll a queued user asking again (the O(1)
/// read of their place). Both answer 429 `QUEUED` from the room.
pub(crate) async fn room(ctx: &Ctx) -> anyhow::Result<(Row, Row)> {
    let product = paused_room_sale(ctx).await?;
    let url = format!("{}/api/seckill", ctx.stack.edge_url);
    // The edge lists the sale (its cached list is at most a second old) before the load starts.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let users = ctx.user_block();
    loop {
        let (status, body) = crate::origin_api::buy_once(&url, None, users, product).await?;
        if status == 429 && body.contains("QUEUED") {
            break;
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "the room never queued: {status} {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let buy = Endpoint::parse(&url)?;
    let clients = ctx.cli.edge_connections();
    let joining = buy.clone();
    let joins = load::http(
        Load { title: "edge: room joins", workers: clients, stop: ctx.cli.stop(), units_per_call: 1 },
        &buy.at("/api/nothing"),
        429,
        move |seq| buy_request(&joining, None, users + 1 + seq, product),
    )
    .await?;
    let polling = buy.clone();
    let polls = load::http(
        Load { title: "edge: room polls", workers: clients, stop: ctx.cli.stop(), units_per_call: 1 },
        &buy.at("/api/nothing"),
        429,
        move |seq| buy_request(&polling, None, users + 1 + seq % POLLING_USERS, product),
    )
    .await?;
    let join_row = load_row(
        RowKey::EdgeRoomJoin,
        format!("room joins via the edge (new users, {ROOM_SHARDS} objects)"),
        clients,
        &joins,
        "429",
    );
    let poll_row = load_row(
        RowKey::EdgeRoomPoll,
        format!("room polls via the edge ({POLLING_USERS} queued users asking again)"),
        clients,
        &polls,
        "429",
    );
    Ok((join_row, poll_row))
}
