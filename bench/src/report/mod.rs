//! The report: one row per measurement, the ratios the design promises (each with its target
//! and a ✔/✘), and the Markdown that goes to stdout and to `<out>/bench-<timestamp>.md`.
//!
//! This module defines the rows; [`ratios`] computes the ratios from them and [`markdown`]
//! writes the text.

mod markdown;
mod ratios;

use std::time::Duration;

pub(crate) use self::markdown::Report;
use crate::cpu::CpuUse;
use crate::latency::Percentiles;

/// Which measurement a row is; ratios look rows up by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowKey {
    RedisCeiling,
    BrokerCeiling,
    OriginNoIo,
    AcceptedBatched,
    AcceptedTransaction,
    /// Accepted buys spread over two batched origins.
    AcceptedTwoOrigins,
    /// Accepted buys of one sale split into stock buckets.
    AcceptedSharded,
    /// Accepted buys (batched) on an origin that waits for a Redis replica (`redis.replica_acks`
    /// = 1, strict durability); only on a Redis Cluster with replicas.
    AcceptedReplicaAck,
    /// Accepted buys (batched) on brokers whose masters do not wait for their slaves (the
    /// bench profile, inSyncReplicas 1); only when the stack's masters are SYNC_MASTERs.
    AcceptedUnreplicated,
    SoldOut,
    Writer,
    EdgeNoIo,
    EdgeAccepted,
    EdgeSoldOut,
    /// New users joining one sale's waiting room (paused, so every one queues).
    EdgeRoomJoin,
    /// Queued users asking that room again.
    EdgeRoomPoll,
    /// `GET /api/products` answered from the edge's memory.
    EdgeProductList,
    /// Repeat buys answered `ALREADY_BOUGHT` from the edge's memory.
    EdgeRepeatBuy,
    /// Accepted buys through an edge whose origin answers `QUEUED` without I/O.
    EdgeStubAccepted,
    /// The no-I/O route, sold-out and accepted buys through the edge run without wrangler's
    /// proxy process (`edge/dev-server.mjs --direct`).
    EdgeDirectNoIo,
    EdgeDirectSoldOut,
    EdgeDirectAccepted,
    /// From a `QUEUED` answer to the order row in MySQL, at a steady half of the writer's pace.
    ClickToOrderSteady,
    /// The same, for a burst as fast as the origin takes it: how long MySQL takes to catch up.
    ClickToOrderBurst,
}

impl RowKey {
    /// The report's group column.
    pub(crate) fn group(self) -> &'static str {
        use RowKey::*;
        match self {
            RedisCeiling | BrokerCeiling | OriginNoIo => "ceiling",
            AcceptedBatched | AcceptedTransaction | AcceptedTwoOrigins | AcceptedSharded | AcceptedReplicaAck
            | AcceptedUnreplicated | SoldOut => "origin",
            Writer => "writer",
            EdgeNoIo | EdgeAccepted | EdgeSoldOut | EdgeRoomJoin | EdgeRoomPoll | EdgeProductList | EdgeRepeatBuy
            | EdgeStubAccepted | EdgeDirectNoIo | EdgeDirectSoldOut | EdgeDirectAccepted => "edge",
            ClickToOrderSteady | ClickToOrderBurst => "order",
        }
    }

    /// What the row counts.
    pub(crate) fn unit(self) -> &'static str {
        match self {
            RowKey::RedisCeiling => "calls",
            RowKey::BrokerCeiling => "msg",
            RowKey::Writer | RowKey::ClickToOrderSteady | RowKey::ClickToOrderBurst => "orders",
            _ => "req",
        }
    }

    /// HTTP rows get a curve on the latency chart.
    pub(crate) fn is_http(self) -> bool {
        !matches!(
            self,
            RowKey::RedisCeiling
                | RowKey::BrokerCeiling
                | RowKey::Writer
                | RowKey::ClickToOrderSteady
                | RowKey::ClickToOrderBurst
        )
    }
}

/// One measurement.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub key: RowKey,
    /// "ceiling", "origin", "writer", "edge".
    pub group: &'static str,
    pub name: String,
    /// Concurrent clients (connections, or batches in flight).
    pub clients: Option<u64>,
    /// Requests, messages or orders.
    pub count: u64,
    /// What `count` counts: "req", "msg", "orders".
    pub unit: &'static str,
    /// `count` per second.
    pub rate: f64,
    pub elapsed: Duration,
    /// Latency percentiles (ms); `None` where there is no per-call latency (the writer).
    pub latency: Option<Percentiles>,
    /// Answers by kind: `200×20000`, `409×20000`, ...
    pub answers: String,
    /// Something that makes the row suspect (unexpected answers, a timeout), shown with ⚠.
    pub problem: Option<String>,
    /// The percentile curve (x = log10(1/(1-q)), ms) for the chart; HTTP rows only.
    pub curve: Option<Vec<(f64, f64)>>,
    /// What the row cost the stack's processes (the edge rows).
    pub cpu: Option<CpuUse>,
}

/// What the tests of [`ratios`] and [`markdown`] build their rows with.
#[cfg(test)]
mod test_support {
    use super::*;

    /// An origin row of `key` at `rate` /s (1000 requests from 256 clients, all 200), with
    /// percentiles around `p99` if given.
    pub(super) fn row(key: RowKey, rate: f64, p99: Option<f64>) -> Row {
        Row {
            key,
            group: "origin",
            name: format!("{key:?}"),
            clients: Some(256),
            count: 1000,
            unit: "req",
            rate,
            elapsed: Duration::from_secs(1),
            latency: p99.map(|p99| Percentiles { p50: p99 / 2.0, p90: p99 * 0.8, p99, max: p99 * 2.0 }),
            answers: "200×1000".into(),
            problem: None,
            curve: None,
            cpu: None,
        }
    }
}
