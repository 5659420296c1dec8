//! What a run saw: the tallies, the faults as injected and the checks' verdicts.

use std::time::Duration;

use super::load::Tally;
use super::plan::Plan;

/// What the fence did in a run: the sale frozen after a Redis loss, and healed.
#[derive(Debug, Clone, Default)]
pub struct FenceTally {
    /// How long the sale was frozen in all (sampled every 100 ms).
    pub frozen_for: Duration,
    /// Reconcile runs of the sale (each heal is one).
    pub heals: u64,
    /// Orders the writer refused, by reason.
    pub refusals: Vec<(String, i64)>,
    /// Buys answered 503 SALE_FROZEN.
    pub frozen_answers: u64,
}

/// The brokers after the drain.
#[derive(Debug, Clone, Default)]
pub struct BrokerTally {
    /// `seckill-origin brokers`' table: each broker's role and its slave's replication.
    pub table: String,
    /// Messages the slaves served during the run (None: a slave did not say).
    pub read_from_slaves: Option<u64>,
    /// Messages the masters served since they last started (both restart during the run):
    /// that the count is a live one (None: a master did not say).
    pub read_from_masters: Option<u64>,
}

/// A fault as it was injected.
#[derive(Debug, Clone)]
pub struct Fault {
    /// Since the burst began.
    pub at: Duration,
    /// Requests sent by then.
    pub sent: u64,
    pub what: String,
    /// The state it hit (what was in flight) and how long the service was away.
    pub detail: String,
}

/// One invariant's verdict.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// Orders as MySQL holds them after the drain.
#[derive(Debug, Clone, Default)]
pub struct Orders {
    pub written: u64,
    pub paid: u64,
    pub cancelled: u64,
    pub paid_units: u64,
    pub mysql_stock: i64,
    pub redis_stock: Option<i64>,
}

/// Everything a run saw.
#[derive(Debug)]
pub struct Outcome {
    pub plan: Plan,
    pub id: String,
    pub product: u64,
    pub tally: Tally,
    pub faults: Vec<Fault>,
    pub burst: Duration,
    /// From the last answer to a drained queue (None: it did not drain in time).
    pub drain: Option<Duration>,
    pub orders: Orders,
    /// Order messages the duplicator sent a second time.
    pub duplicated: u64,
    pub checks: Vec<Check>,
    pub fence: FenceTally,
    pub brokers: BrokerTally,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
}
