//! The ratios the design promises: each compares rows of the report against a target
//! (✔/✘), or is shown for information only.

use super::{Row, RowKey};

/// What a ratio must be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Target {
    AtLeast(f64),
    AtMost(f64),
    /// Shown for information, no verdict.
    Info,
}

/// What a ratio compares.
#[derive(Debug, Clone, Copy)]
enum Measure {
    /// rate(a) ÷ rate(first present of b).
    Rate(RowKey, &'static [RowKey]),
    /// p99(a) ÷ p99(b).
    P99(RowKey, RowKey),
    /// p50(a) ÷ p50(b).
    P50(RowKey, RowKey),
    /// p99(a) itself, ms.
    P99Ms(RowKey),
    /// rate(a) itself.
    Absolute(RowKey),
}

struct Spec {
    label: &'static str,
    measure: Measure,
    target: Target,
}

const SPECS: &[Spec] = &[
    Spec {
        label: "accepted buys (batched) ÷ Redis EVALSHA ceiling, req/s",
        measure: Measure::Rate(RowKey::AcceptedBatched, &[RowKey::RedisCeiling]),
        target: Target::AtLeast(0.5),
    },
    Spec {
        label: "accepted buys on two origins ÷ on one (batched), req/s",
        measure: Measure::Rate(RowKey::AcceptedTwoOrigins, &[RowKey::AcceptedBatched]),
        target: Target::Info,
    },
    Spec {
        label: "accepted buys of a 4-bucket sale ÷ of an unsharded one (batched), req/s",
        measure: Measure::Rate(RowKey::AcceptedSharded, &[RowKey::AcceptedBatched]),
        target: Target::Info,
    },
    Spec {
        label: "accepted buys waiting for a Redis replica ÷ not waiting (batched), req/s",
        measure: Measure::Rate(RowKey::AcceptedReplicaAck, &[RowKey::AcceptedBatched]),
        target: Target::Info,
    },
    Spec {
        label: "accepted buys (batched) on the stack's SYNC_MASTERs ÷ on masters not waiting for their slaves, req/s",
        measure: Measure::Rate(RowKey::AcceptedBatched, &[RowKey::AcceptedUnreplicated]),
        target: Target::Info,
    },
    Spec {
        label: "accepted buys batched ÷ transaction, req/s",
        measure: Measure::Rate(RowKey::AcceptedBatched, &[RowKey::AcceptedTransaction]),
        target: Target::AtLeast(10.0),
    },
    Spec {
        label: "accepted-buy p99 (batched) ÷ sold-out p99",
        measure: Measure::P99(RowKey::AcceptedBatched, RowKey::SoldOut),
        target: Target::AtMost(3.0),
    },
    Spec {
        label: "sold-out buys ÷ origin no-I/O route, req/s",
        measure: Measure::Rate(RowKey::SoldOut, &[RowKey::OriginNoIo]),
        target: Target::AtLeast(0.5),
    },
    Spec { label: "writer, orders/s", measure: Measure::Absolute(RowKey::Writer), target: Target::AtLeast(5000.0) },
    Spec {
        label: "writer orders/s ÷ broker batch-send ceiling msg/s",
        measure: Measure::Rate(RowKey::Writer, &[RowKey::BrokerCeiling]),
        target: Target::Info,
    },
    Spec {
        label: "edge accepted buys ÷ edge no-I/O route, req/s",
        measure: Measure::Rate(RowKey::EdgeAccepted, &[RowKey::EdgeNoIo]),
        target: Target::AtLeast(0.6),
    },
    Spec {
        label: "edge sold-out buys ÷ edge no-I/O route, req/s",
        measure: Measure::Rate(RowKey::EdgeSoldOut, &[RowKey::EdgeNoIo]),
        target: Target::AtLeast(0.9),
    },
    Spec {
        label: "edge accepted-buy p50 ÷ edge no-I/O p50",
        measure: Measure::P50(RowKey::EdgeAccepted, RowKey::EdgeNoIo),
        target: Target::AtMost(2.0),
    },
    Spec {
        label: "edge product list (held) ÷ edge no-I/O route, req/s",
        measure: Measure::Rate(RowKey::EdgeProductList, &[RowKey::EdgeNoIo]),
        target: Target::Info,
    },
    Spec {
        label: "edge repeat buys (ALREADY_BOUGHT) ÷ edge no-I/O route, req/s",
        measure: Measure::Rate(RowKey::EdgeRepeatBuy, &[RowKey::EdgeNoIo]),
        target: Target::Info,
    },
    Spec {
        label: "edge accepted buys to a no-I/O stub origin ÷ edge no-I/O route, req/s",
        measure: Measure::Rate(RowKey::EdgeStubAccepted, &[RowKey::EdgeNoIo]),
        target: Target::Info,
    },
    Spec {
        label: "edge accepted buys ÷ the same to a no-I/O stub origin, req/s",
        measure: Measure::Rate(RowKey::EdgeAccepted, &[RowKey::EdgeStubAccepted]),
        target: Target::Info,
    },
    Spec {
        label: "direct edge (no wrangler proxy) no-I/O route ÷ wrangler's, req/s",
        measure: Measure::Rate(RowKey::EdgeDirectNoIo, &[RowKey::EdgeNoIo]),
        target: Target::Info,
    },
    Spec {
        label: "direct edge accepted buys ÷ its no-I/O route, req/s",
        measure: Measure::Rate(RowKey::EdgeDirectAccepted, &[RowKey::EdgeDirectNoIo]),
        target: Target::Info,
    },
    Spec {
        label: "direct edge sold-out buys ÷ its no-I/O route, req/s",
        measure: Measure::Rate(RowKey::EdgeDirectSoldOut, &[RowKey::EdgeDirectNoIo]),
        target: Target::Info,
    },
    Spec {
        label: "click to order p99 at a steady half of the writer's pace, ms",
        measure: Measure::P99Ms(RowKey::ClickToOrderSteady),
        target: Target::AtMost(100.0),
    },
    Spec {
        label: "edge room joins ÷ edge no-I/O route, req/s",
        measure: Measure::Rate(RowKey::EdgeRoomJoin, &[RowKey::EdgeNoIo]),
        target: Target::Info,
    },
    Spec {
        label: "edge room polls ÷ edge no-I/O route, req/s",
        measure: Measure::Rate(RowKey::EdgeRoomPoll, &[RowKey::EdgeNoIo]),
        target: Target::Info,
    },
    Spec {
        label: "edge accepted buys ÷ origin accepted buys, req/s",
        measure: Measure::Rate(RowKey::EdgeAccepted, &[RowKey::AcceptedBatched, RowKey::AcceptedTransaction]),
        target: Target::Info,
    },
];

/// One line of the ratio table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Ratio {
    pub label: &'static str,
    /// `None` if a row it needs was not measured.
    pub value: Option<f64>,
    pub target: Target,
    /// `Some(true)` ✔, `Some(false)` ✘, `None` for information, not measured, or suspect.
    pub met: Option<bool>,
    /// A row it uses has a problem (unexpected answers, a timeout): no verdict.
    pub suspect: bool,
}

/// Every ratio of [`SPECS`] computed from `rows`.
pub(crate) fn ratios(rows: &[Row]) -> Vec<Ratio> {
    let find = |k: RowKey| rows.iter().find(|r| r.key == k && r.count > 0);
    SPECS
        .iter()
        .map(|spec| {
            let (a, b) = match spec.measure {
                Measure::Rate(a, bs) => (find(a), bs.iter().find_map(|k| find(*k))),
                Measure::P99(a, b) | Measure::P50(a, b) => (find(a), find(b)),
                Measure::Absolute(a) | Measure::P99Ms(a) => (find(a), None),
            };
            let value = match (spec.measure, a, b) {
                (Measure::Rate(..), Some(a), Some(b)) if b.rate > 0.0 => Some(a.rate / b.rate),
                (Measure::P99(..), Some(a), Some(b)) => match (a.latency, b.latency) {
                    (Some(a), Some(b)) if b.p99 > 0.0 => Some(a.p99 / b.p99),
                    _ => None,
                },
                (Measure::P50(..), Some(a), Some(b)) => match (a.latency, b.latency) {
                    (Some(a), Some(b)) if b.p50 > 0.0 => Some(a.p50 / b.p50),
                    _ => None,
                },
                (Measure::Absolute(_), Some(a), _) => Some(a.rate),
                (Measure::P99Ms(_), Some(a), _) => a.latency.map(|p| p.p99),
                _ => None,
            };
            let suspect = value.is_some() && [a, b].iter().flatten().any(|r| r.problem.is_some());
            let met = match (value, spec.target) {
                _ if suspect => None,
                (Some(v), Target::AtLeast(t)) => Some(v >= t),
                (Some(v), Target::AtMost(t)) => Some(v <= t),
                _ => None,
            };
            Ratio { label: spec.label, value, target: spec.target, met, suspect }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::test_support::row;

    fn find<'a>(rs: &'a [Ratio], prefix: &str) -> &'a Ratio {
        rs.iter().find(|r| r.label.starts_with(prefix)).unwrap()
    }

    #[test]
    fn ratios_compare_rows_against_their_targets() {
        let rows = vec![
            row(RowKey::RedisCeiling, 40_000.0, Some(5.0)),
            row(RowKey::AcceptedBatched, 24_000.0, Some(30.0)),
            row(RowKey::AcceptedTransaction, 3_000.0, Some(90.0)),
            row(RowKey::SoldOut, 30_000.0, Some(8.0)),
            row(RowKey::OriginNoIo, 50_000.0, Some(4.0)),
            row(RowKey::Writer, 4_000.0, None),
        ];
        let rs = ratios(&rows);
        let ceiling = find(&rs, "accepted buys (batched) ÷ Redis");
        assert_eq!(ceiling.value, Some(0.6));
        assert_eq!(ceiling.met, Some(true));
        let modes = find(&rs, "accepted buys batched ÷ transaction");
        assert_eq!(modes.value, Some(8.0));
        assert_eq!(modes.met, Some(false));
        let p99 = find(&rs, "accepted-buy p99");
        assert_eq!(p99.value, Some(3.75));
        assert_eq!(p99.met, Some(false), "≤ 3 is the target");
        assert_eq!(find(&rs, "sold-out buys ÷").met, Some(true));
        let writer = find(&rs, "writer, orders/s");
        assert_eq!((writer.value, writer.met), (Some(4_000.0), Some(false)));
    }

    #[test]
    fn a_row_with_a_problem_makes_its_ratios_suspect() {
        let mut batched = row(RowKey::AcceptedBatched, 24_000.0, Some(30.0));
        batched.problem = Some("2000 of 2000 not 200".into());
        let rows = vec![batched, row(RowKey::RedisCeiling, 40_000.0, Some(5.0)), row(RowKey::Writer, 6_000.0, None)];
        let rs = ratios(&rows);
        let ceiling = find(&rs, "accepted buys (batched) ÷ Redis");
        assert_eq!((ceiling.value, ceiling.met, ceiling.suspect), (Some(0.6), None, true));
        let writer = find(&rs, "writer, orders/s");
        assert_eq!((writer.met, writer.suspect), (Some(true), false));
    }

    #[test]
    fn missing_rows_give_no_verdict_and_info_ratios_none() {
        let rows = vec![row(RowKey::EdgeAccepted, 500.0, Some(50.0)), row(RowKey::AcceptedTransaction, 1000.0, None)];
        let rs = ratios(&rows);
        let ceiling = find(&rs, "accepted buys (batched) ÷ Redis");
        assert_eq!((ceiling.value, ceiling.met), (None, None));
        // Falls back to the transaction row when batched was not measured.
        let edge = find(&rs, "edge accepted buys ÷ origin");
        assert_eq!((edge.value, edge.met), (Some(0.5), None));
    }
}
