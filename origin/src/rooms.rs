//! What the edge reports, kept in memory for the console and Prometheus:
//! - its waiting rooms (each Durable Object of a sale's room, a few seconds apart while it is
//!   busy: [`seckill_protocol::room::RoomReport`]): per sale, summed over its shards, who waits
//!   for the draw, who is in line, how many are let in a minute, the wait of the last in line
//!   and the challenges refused ([`RoomReports`]);
//! - the answers it decided itself, by sale and code ([`EdgeRefusalCounts`]), added up from
//!   every instance's reports since this process started.
//!
//! An object reports to the same origin each time (the edge picks it by the object's name), so
//! one origin holds a sale's figures; a report older than [`STALE_AFTER`] no longer counts.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use seckill_protocol::errors::EdgeRefusals;
use seckill_protocol::room::RoomReport;
use serde::Serialize;

use crate::metrics::RoomGauges;

/// A shard that has not reported for this long has nothing left to say (nobody waits there).
pub const STALE_AFTER: Duration = Duration::from_secs(60);

/// One sale's room as its shards last reported it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoomActivity {
    pub pre_queued: u64,
    pub in_line: u64,
    /// Admissions in the last minute's reports, per minute (0 until a shard reported twice).
    pub admitted_per_minute: f64,
    pub admitted_total: u64,
    /// The longest of the shards' estimates for their last in line.
    pub estimated_wait_secs: u64,
    pub challenges_refused: u64,
    pub paused: bool,
    /// Shards that reported in the last minute, of the room's.
    pub shards_reporting: u32,
    pub shards: u32,
}

#[derive(Debug)]
struct ShardState {
    report: RoomReport,
    at: Instant,
    /// Admissions per minute between this report and the one before it.
    per_minute: f64,
}

/// The latest report of every shard of every sale.
#[derive(Debug, Default)]
pub struct RoomReports {
    shards: Mutex<HashMap<(u64, u32), ShardState>>,
}

impl RoomReports {
    /// Keeps `report`, received at `at`, and returns its sale's activity as it now stands.
    pub fn record(&self, report: RoomReport, at: Instant) -> RoomActivity {
        let product_id = report.product_id;
        let mut shards = self.shards.lock().expect("room reports lock");
        let key = (product_id, report.shard);
        let per_minute = match shards.get(&key) {
            Some(before) if at > before.at => {
                let admitted = report.admitted_total.saturating_sub(before.report.admitted_total);
                admitted as f64 * 60.0 / at.duration_since(before.at).as_secs_f64()
            }
            _ => 0.0,
        };
        shards.insert(key, ShardState { report, at, per_minute });
        shards.retain(|_, s| at.saturating_duration_since(s.at) < STALE_AFTER);
        activity_of(&shards, product_id).expect("the sale just reported")
    }

    /// `product_id`'s room as its shards reported it in the last minute, if any did.
    pub fn activity(&self, product_id: u64, now: Instant) -> Option<RoomActivity> {
        let mut shards = self.shards.lock().expect("room reports lock");
        shards.retain(|_, s| now.saturating_duration_since(s.at) < STALE_AFTER);
        activity_of(&shards, product_id)
    }
}

impl RoomActivity {
    /// The figures of the `seckill_room_*` series.
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "a rate of admissions, not negative")]
    pub fn gauges(&self) -> RoomGauges {
        RoomGauges {
            pre_queued: self.pre_queued,
            in_line: self.in_line,
            admitted_per_minute: self.admitted_per_minute.round() as u64,
            estimated_wait_secs: self.estimated_wait_secs,
            challenges_refused: self.challenges_refused,
        }
    }
}

/// A figure summed over a sale's shards (saturating: reports are the edge's word, not checked).
fn total(shards: &[&ShardState], figure: impl Fn(&RoomReport) -> u64) -> u64 {
    shards.iter().fold(0u64, |sum, s| sum.saturating_add(figure(&s.report)))
}

fn activity_of(shards: &HashMap<(u64, u32), ShardState>, product_id: u64) -> Option<RoomActivity> {
    let of_sale: Vec<&ShardState> = shards.iter().filter(|((p, _), _)| *p == product_id).map(|(_, s)| s).collect();
    let newest = of_sale.iter().max_by_key(|s| s.at)?;
    Some(RoomActivity {
        pre_queued: total(&of_sale, |r| r.pre_queued),
        in_line: total(&of_sale, |r| r.in_line),
        admitted_per_minute: of_sale.iter().map(|s| s.per_minute).sum(),
        admitted_total: total(&of_sale, |r| r.admitted_total),
        estimated_wait_secs: of_sale.iter().map(|s| s.report.estimated_wait_secs).max().unwrap_or(0),
        challenges_refused: total(&of_sale, |r| r.challenges_refused),
        paused: newest.report.paused,
        shards_reporting: u32::try_from(of_sale.len()).unwrap_or(u32::MAX),
        shards: newest.report.shards,
    })
}

/// The answers the edge decided itself, by sale (`None`: a request about no sale) and code,
/// added up since this process started.
#[derive(Debug, Default)]
pub struct EdgeRefusalCounts {
    counts: Mutex<HashMap<Option<u64>, BTreeMap<String, u64>>>,
}

impl EdgeRefusalCounts {
    /// Adds one instance's report.
    pub fn add(&self, report: &EdgeRefusals) {
        let mut counts = self.counts.lock().expect("edge refusal counts lock");
        for c in &report.counts {
            let total = counts.entry(c.product_id).or_default().entry(c.code.clone()).or_default();
            *total = total.saturating_add(c.count);
        }
    }

    /// `product_id`'s counts by code (empty when the edge decided nothing about it).
    pub fn of(&self, product_id: u64) -> BTreeMap<String, u64> {
        self.counts.lock().expect("edge refusal counts lock").get(&Some(product_id)).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(shard: u32, in_line: u64, admitted_total: u64) -> RoomReport {
        RoomReport {
            product_id: 7,
            shard,
            shards: 2,
            pre_queued: 1,
            in_line,
            admitted_total,
            challenges_refused: 3,
            estimated_wait_secs: in_line,
            paused: false,
        }
    }

    #[test]
    fn a_sale_s_shards_add_up_and_the_rate_comes_from_successive_reports() {
        let reports = RoomReports::default();
        let t0 = Instant::now();
        let first = reports.record(report(0, 10, 100), t0);
        assert_eq!((first.in_line, first.admitted_per_minute, first.shards_reporting), (10, 0.0, 1));
        reports.record(report(1, 20, 50), t0);
        let later = reports.record(report(0, 8, 110), t0 + Duration::from_secs(5));
        assert_eq!((later.pre_queued, later.in_line, later.admitted_total), (2, 28, 160));
        assert!((later.admitted_per_minute - 120.0).abs() < 1e-9, "10 in 5 s: {}", later.admitted_per_minute);
        assert_eq!((later.estimated_wait_secs, later.challenges_refused, later.shards), (20, 6, 2));
        assert_eq!(reports.activity(8, t0), None, "another sale reported nothing");
        assert_eq!(reports.activity(7, t0 + STALE_AFTER + Duration::from_secs(6)), None, "stale reports count no more");
    }

    #[test]
    fn edge_refusals_add_up_over_reports_by_sale_and_code() {
        use seckill_protocol::errors::RefusalCount;
        let counts = EdgeRefusalCounts::default();
        let report = |product_id, code: &str, count| EdgeRefusals {
            counts: vec![RefusalCount { product_id, code: code.into(), count }],
        };
        counts.add(&report(Some(7), "SOLD_OUT", 10));
        counts.add(&report(Some(7), "SOLD_OUT", 5));
        counts.add(&report(Some(7), "QUEUED", 2));
        counts.add(&report(None, "NOT_FOUND", 1));
        assert_eq!(counts.of(7), BTreeMap::from([("QUEUED".to_owned(), 2), ("SOLD_OUT".to_owned(), 15)]));
        assert!(counts.of(8).is_empty());
    }
}
