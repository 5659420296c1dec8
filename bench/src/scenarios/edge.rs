//! The edge (wrangler's dev server, the build `make up` made), started by the bench twice: one
//! forwarding to the bench's [`Pipeline`] (a release origin whose orders are written to MySQL),
//! one to a [`StubOrigin`] that answers `QUEUED` without I/O. Measured side by side, in
//! interleaved rounds, at min(--connections, 64):
//!
//! * a route the edge answers itself (its ceiling here), and the product list from its memory;
//! * sold-out buys and repeat buys (`ALREADY_BOUGHT`), answered from its flags;
//! * accepted buys through the pipeline, and through the stub (the edge's own cost);
//! * once, a sale's waiting room (joins and polls).
//!
//! Every row records the CPU each of the stack's processes spent on it ([`crate::cpu`]).

use std::future::Future;
use std::time::{Duration, Instant};

use super::bench_edges::BenchEdge;
use super::bench_origins::Pipeline;
use super::origin::{joined, sell_out, stock_for};
use super::rows::load_row;
use super::stub_origin::StubOrigin;
use super::Ctx;
use crate::cpu::{CpuUse, Watched};
use crate::load::{self, Endpoint, Load};
use crate::origin_api::{buy_request, Admin};
use crate::report::{Row, RowKey};

/// The edges a run measures.
pub(crate) struct Edges {
    /// Forwarding to the pipeline.
    pub edge: BenchEdge,
    /// Forwarding to the stub.
    pub stub_edge: BenchEdge,
    /// Forwarding to the pipeline, without wrangler's proxy process.
    pub direct_edge: BenchEdge,
    _stub: StubOrigin,
    pub watched: Watched,
}

/// Which of the edges forwarding to the pipeline a row measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Runner {
    /// Wrangler's dev server, as `make up` runs it.
    Wrangler,
    /// The same Worker on the same workerd, without wrangler's proxy process.
    Direct,
}

impl Edges {
    fn of(&self, runner: Runner) -> &BenchEdge {
        match runner {
            Runner::Wrangler => &self.edge,
            Runner::Direct => &self.direct_edge,
        }
    }
}

/// Starts the three edges (ports from 18787).
pub(crate) async fn start(ctx: &Ctx, pipeline: &Pipeline) -> anyhow::Result<Edges> {
    let start = |name: &'static str, from: u16, url: String, secret: String, direct: bool| {
        let root = ctx.stack.root.clone();
        tokio::task::spawn_blocking(move || BenchEdge::start(&root, name, from, &url, &secret, direct))
    };
    let (url, secret) = (pipeline.origin.url.clone(), pipeline.origin.secret.clone());
    let edge = start("edge-bench", 18787, url.clone(), secret.clone(), false).await??;
    let direct_edge = start("edge-bench-direct", 18807, url, secret, true).await??;
    let stub = StubOrigin::start().await?;
    let stub_edge = start("edge-bench-stub", 18797, stub.url.clone(), "stub".into(), false).await??;
    let watched = Watched::find(&[
        (edge.port, None),
        (stub_edge.port, Some(crate::cpu::STUB_EDGE)),
        (direct_edge.port, Some(crate::cpu::DIRECT_EDGE)),
    ]);
    Ok(Edges { edge, stub_edge, direct_edge, _stub: stub, watched })
}

/// Runs `row` and records what it cost each watched process.
async fn with_cpu(watched: &Watched, row: impl Future<Output = anyhow::Result<Row>>) -> anyhow::Result<Row> {
    let before = watched.sample();
    let mut row = row.await?;
    let after = watched.sample();
    row.cpu = Some(CpuUse::between(&before, &after, row.elapsed, row.count));
    Ok(row)
}

/// `GET /api/nothing`: the edge answers 404 itself, no origin involved.
pub(crate) async fn no_io(ctx: &Ctx, edges: &Edges, runner: Runner) -> anyhow::Result<Row> {
    with_cpu(&edges.watched, async {
        let url = format!("{}/api/nothing", edges.of(runner).url);
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
        let (key, name) = match runner {
            Runner::Wrangler => (RowKey::EdgeNoIo, "edge GET /api/nothing (404 at the edge, no I/O)"),
            Runner::Direct => (RowKey::EdgeDirectNoIo, "direct edge GET /api/nothing (no wrangler proxy; 404, no I/O)"),
        };
        let mut row = load_row(key, name.into(), clients, &tally, "404");
        if decided_by.as_deref() != Some("edge") {
            row.problem = Some(format!("x-seckill-decided-by was {decided_by:?}, not \"edge\""));
        }
        Ok(row)
    })
    .await
}

/// `GET /api/products`, answered from the list the edge holds (refreshed once a second).
pub(crate) async fn product_list(ctx: &Ctx, edges: &Edges) -> anyhow::Result<Row> {
    with_cpu(&edges.watched, async {
        let list = Endpoint::parse(&format!("{}/api/products", edges.edge.url))?;
        let clients = ctx.cli.edge_connections();
        let tally = load::http(
            Load { title: "edge: GET /api/products", workers: clients, stop: ctx.cli.stop(), units_per_call: 1 },
            &list.clone(),
            200,
            move |_| list.get(),
        )
        .await?;
        Ok(load_row(
            RowKey::EdgeProductList,
            "edge GET /api/products (the list it holds)".into(),
            clients,
            &tally,
            "200",
        ))
    })
    .await
}

/// The fields of an edge-bench sale of `stock` units.
fn sale(stock: u64) -> serde_json::Value {
    serde_json::json!({ "stock": stock })
}

/// Waits until the edge's product list has `product` (it holds the list about a second): a
/// sale is on the list before a crowd buys it, as in a real sale.
async fn listed(edge: &BenchEdge, product: u64) -> anyhow::Result<()> {
    let client = load::client(1)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list: serde_json::Value = client.get(format!("{}/api/products", edge.url)).send().await?.json().await?;
        let products = list["products"].as_array().cloned().unwrap_or_default();
        if products.iter().any(|p| p["id"].as_u64() == Some(product)) {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "the edge never listed product {product}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What the accepted row leaves for the repeat row: the product and the users who bought it.
pub(crate) struct Bought {
    product: u64,
    first_user: u64,
    users: u64,
}

/// Accepted buys through the edge to the pipeline: a fresh product, distinct users.
pub(crate) async fn accepted(ctx: &Ctx, edges: &Edges, admin: &Admin, runner: Runner) -> anyhow::Result<(Row, Bought)> {
    let edge = edges.of(runner);
    let product = admin.create_sale(sale(stock_for(ctx.cli.stop()))).await?;
    listed(edge, product).await?;
    let users = ctx.user_block();
    let mut bought = None;
    let row = with_cpu(&edges.watched, async {
        let buy = Endpoint::parse(&format!("{}/api/seckill", edge.url))?;
        let clients = ctx.cli.edge_connections();
        let tally = load::http(
            Load { title: "edge: accepted buys", workers: clients, stop: ctx.cli.stop(), units_per_call: 1 },
            &buy.at("/api/nothing"),
            200,
            move |seq| buy_request(&buy, None, users + seq, product),
        )
        .await?;
        bought = Some(Bought { product, first_user: users, users: tally.calls });
        let (key, name) = match runner {
            Runner::Wrangler => (RowKey::EdgeAccepted, "accepted buys via the edge (release origin, orders written)"),
            Runner::Direct => (RowKey::EdgeDirectAccepted, "accepted buys via the direct edge (no wrangler proxy)"),
        };
        Ok(load_row(key, name.into(), clients, &tally, "200"))
    })
    .await?;
    Ok((row, bought.expect("set by the row")))
}

/// Repeat buys of the users of the accepted row: each answered `ALREADY_BOUGHT` from the edge's
/// memory, the origin never asked.
pub(crate) async fn repeat(ctx: &Ctx, edges: &Edges, bought: &Bought) -> anyhow::Result<Row> {
    let Bought { product, first_user, users } = *bought;
    anyhow::ensure!(users > 0, "the accepted row bought nothing");
    with_cpu(&edges.watched, async {
        let buy = Endpoint::parse(&format!("{}/api/seckill", edges.edge.url))?;
        let clients = ctx.cli.edge_connections();
        let tally = load::http(
            Load { title: "edge: repeat buys", workers: clients, stop: ctx.cli.stop(), units_per_call: 1 },
            &buy.at("/api/nothing"),
            409,
            move |seq| buy_request(&buy, None, first_user + seq % users, product),
        )
        .await?;
        Ok(load_row(
            RowKey::EdgeRepeatBuy,
            "repeat buys via the edge (ALREADY_BOUGHT from its memory)".into(),
            clients,
            &tally,
            "409",
        ))
    })
    .await
}

/// Accepted buys through the edge whose origin is the no-I/O stub: the edge's own cost.
pub(crate) async fn stub_accepted(ctx: &Ctx, edges: &Edges) -> anyhow::Result<Row> {
    let users = ctx.user_block();
    with_cpu(&edges.watched, async {
        let buy = Endpoint::parse(&format!("{}/api/seckill", edges.stub_edge.url))?;
        let clients = ctx.cli.edge_connections();
        let tally = load::http(
            Load {
                title: "edge: accepted buys (stub origin)",
                workers: clients,
                stop: ctx.cli.stop(),
                units_per_call: 1,
            },
            &buy.at("/api/nothing"),
            200,
            move |seq| buy_request(&buy, None, users + seq, super::stub_origin::PRODUCT),
        )
        .await?;
        Ok(load_row(
            RowKey::EdgeStubAccepted,
            "accepted buys via a second edge to a no-I/O stub origin".into(),
            clients,
            &tally,
            "200",
        ))
    })
    .await
}

/// Sold-out buys through the edge: a product of stock 1, bought once through the edge first;
/// the edge then answers from its sold-out flag while it lasts.
pub(crate) async fn sold_out(ctx: &Ctx, edges: &Edges, admin: &Admin, runner: Runner) -> anyhow::Result<Row> {
    let edge = edges.of(runner);
    let product = admin.create_sale(sale(1)).await?;
    listed(edge, product).await?;
    let users = ctx.user_block();
    let url = format!("{}/api/seckill", edge.url);
    let setup = sell_out(&url, None, users, product).await?;
    let mut row = with_cpu(&edges.watched, async {
        let buy = Endpoint::parse(&url)?;
        let clients = ctx.cli.edge_connections();
        let tally = load::http(
            Load { title: "edge: sold-out buys", workers: clients, stop: ctx.cli.stop(), units_per_call: 1 },
            &buy.at("/api/nothing"),
            409,
            move |seq| buy_request(&buy, None, users + 1 + seq, product),
        )
        .await?;
        let (key, name) = match runner {
            Runner::Wrangler => (RowKey::EdgeSoldOut, "sold-out buys via the edge"),
            Runner::Direct => (RowKey::EdgeDirectSoldOut, "sold-out buys via the direct edge (no wrangler proxy)"),
        };
        Ok(load_row(key, name.into(), clients, &tally, "409"))
    })
    .await?;
    row.problem = joined(setup, row.problem);
    Ok(row)
}

/// The room of the room rows: four Durable Objects, paused so that every ask queues (the origin
/// is never reached and the line only grows), and no challenge (each join would cost the
/// client a proof of work, which measures the client).
const ROOM_SHARDS: u32 = 4;

/// Users the poll row cycles through: each joined in the join row before it.
const POLLING_USERS: u64 = 500;

/// Room joins and then polls through the edge, on one sale's room of [`ROOM_SHARDS`] objects:
/// each join is a new user (a ticket, a row), each poll a queued user asking again (the O(1)
/// read of their place). Both answer 429 `QUEUED` from the room.
pub(crate) async fn room(ctx: &Ctx, edges: &Edges, admin: &Admin) -> anyhow::Result<(Row, Row)> {
    let mut fields = sale(1000);
    fields["waitingRoom"] = serde_json::json!({
        "newUsersPerInterval": 100, "intervalSecs": 1, "maxActiveUsers": 1000, "sessionSecs": 60,
        "shards": ROOM_SHARDS, "paused": true,
    });
    let product = admin.create_sale(fields).await?;
    listed(&edges.edge, product).await?;
    let url = format!("{}/api/seckill", edges.edge.url);
    let users = ctx.user_block();
    let (status, body) = crate::origin_api::buy_once(&url, None, users, product).await?;
    anyhow::ensure!(status == 429 && body.contains("QUEUED"), "the room did not queue: {status} {body}");
    let buy = Endpoint::parse(&url)?;
    let clients = ctx.cli.edge_connections();
    let joining = buy.clone();
    let join_row = with_cpu(&edges.watched, async {
        let joins = load::http(
            Load { title: "edge: room joins", workers: clients, stop: ctx.cli.stop(), units_per_call: 1 },
            &buy.at("/api/nothing"),
            429,
            move |seq| buy_request(&joining, None, users + 1 + seq, product),
        )
        .await?;
        let name = format!("room joins via the edge (new users, {ROOM_SHARDS} objects)");
        Ok(load_row(RowKey::EdgeRoomJoin, name, clients, &joins, "429"))
    })
    .await?;
    let polling = buy.clone();
    let poll_row = with_cpu(&edges.watched, async {
        let polls = load::http(
            Load { title: "edge: room polls", workers: clients, stop: ctx.cli.stop(), units_per_call: 1 },
            &buy.at("/api/nothing"),
            429,
            move |seq| buy_request(&polling, None, users + 1 + seq % POLLING_USERS, product),
        )
        .await?;
        let name = format!("room polls via the edge ({POLLING_USERS} queued users asking again)");
        Ok(load_row(RowKey::EdgeRoomPoll, name, clients, &polls, "429"))
    })
    .await?;
    Ok((join_row, poll_row))
}
