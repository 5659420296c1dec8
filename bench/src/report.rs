//! The report: one row per measurement, the ratios the design promises (each with its target
//! and a ✔/✘), and the Markdown that goes to stdout and to `<out>/bench-<timestamp>.md`.

use std::fmt::Write as _;
use std::time::Duration;

use crate::facts::Facts;
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
    SoldOut,
    Writer,
    EdgeNoIo,
    EdgeAccepted,
    EdgeSoldOut,
}

impl RowKey {
    /// The report's group column.
    pub(crate) fn group(self) -> &'static str {
        use RowKey::*;
        match self {
            RedisCeiling | BrokerCeiling | OriginNoIo => "ceiling",
            AcceptedBatched | AcceptedTransaction | AcceptedTwoOrigins | AcceptedSharded | AcceptedReplicaAck
            | SoldOut => "origin",
            Writer => "writer",
            EdgeNoIo | EdgeAccepted | EdgeSoldOut => "edge",
        }
    }

    /// What the row counts.
    pub(crate) fn unit(self) -> &'static str {
        match self {
            RowKey::RedisCeiling => "calls",
            RowKey::BrokerCeiling => "msg",
            RowKey::Writer => "orders",
            _ => "req",
        }
    }

    /// HTTP rows get a curve on the latency chart.
    pub(crate) fn is_http(self) -> bool {
        !matches!(self, RowKey::RedisCeiling | RowKey::BrokerCeiling | RowKey::Writer)
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
}

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
                Measure::P99(a, b) => (find(a), find(b)),
                Measure::Absolute(a) => (find(a), None),
            };
            let value = match (spec.measure, a, b) {
                (Measure::Rate(..), Some(a), Some(b)) if b.rate > 0.0 => Some(a.rate / b.rate),
                (Measure::P99(..), Some(a), Some(b)) => match (a.latency, b.latency) {
                    (Some(a), Some(b)) if b.p99 > 0.0 => Some(a.p99 / b.p99),
                    _ => None,
                },
                (Measure::Absolute(_), Some(a), _) => Some(a.rate),
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

/// Everything the Markdown report says.
pub(crate) struct Report<'a> {
    pub facts: &'a Facts,
    /// The flags, defaults spelled out.
    pub flags: &'a str,
    pub rows: &'a [Row],
    /// Scenarios that failed, with why.
    pub failures: &'a [String],
    /// Extra lines for the notes section.
    pub notes: &'a [String],
    /// File name of the chart, linked from the report.
    pub chart: Option<&'a str>,
}

impl Report<'_> {
    pub(crate) fn markdown(&self) -> String {
        let f = self.facts;
        let mut md = String::new();
        let _ = writeln!(md, "# seckill bench, {}\n", f.date);
        let _ = writeln!(md, "| machine | |\n|---|---|");
        let _ = writeln!(md, "| cores (nproc) | {} |", f.nproc);
        let _ = writeln!(md, "| CPU | {} |", f.cpu);
        let _ = writeln!(md, "| memory | {} |", f.memory);
        let _ = writeln!(md, "| kernel | {} |", f.kernel);
        let _ = writeln!(md, "| date (UTC) | {} |", f.date);
        let _ = writeln!(md, "| git commit | {} |", f.commit);
        let _ = writeln!(md, "\nFlags: `{}`\n", self.flags);
        let _ = writeln!(
            md,
            "Everything runs on this one machine against 127.0.0.1: the load generator, Redis, \
             MariaDB, the RocketMQ name server and broker, the origins and the edge share its cores.\n"
        );

        md.push_str("## Measurements\n\n");
        md.push_str("| group | scenario | clients | count | rate /s | p50 ms | p90 ms | p99 ms | max ms | answers |\n");
        md.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n");
        for r in self.rows {
            let (p50, p90, p99, max) = match r.latency {
                Some(p) => (ms(p.p50), ms(p.p90), ms(p.p99), ms(p.max)),
                None => ("—".into(), "—".into(), "—".into(), "—".into()),
            };
            let answers = match &r.problem {
                Some(p) => format!("{} ⚠ {p}", r.answers),
                None => r.answers.clone(),
            };
            let (name, answers) = (cell(&r.name), cell(&answers));
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} {} | {} | {p50} | {p90} | {p99} | {max} | {answers} |",
                r.group,
                name,
                r.clients.map(|c| c.to_string()).unwrap_or_else(|| "—".into()),
                r.count,
                r.unit,
                rate(r.rate),
            );
        }

        md.push_str("\n## Ratios\n\n| ratio | value | target | |\n|---|---:|---|:-:|\n");
        for r in ratios(self.rows) {
            let value = match r.value {
                Some(v) => ratio(v),
                None => "n/a".into(),
            };
            let target = match r.target {
                Target::AtLeast(t) => format!("≥ {}", ratio(t)),
                Target::AtMost(t) => format!("≤ {}", ratio(t)),
                Target::Info => "info".into(),
            };
            let verdict = match (r.met, r.value) {
                _ if r.suspect => "⚠ a row it uses has a problem",
                (Some(true), _) => "✔",
                (Some(false), _) => "✘",
                (None, None) => "not measured",
                (None, Some(_)) => "",
            };
            let _ = writeln!(md, "| {} | {value} | {target} | {verdict} |", r.label);
        }

        if !self.failures.is_empty() {
            md.push_str("\n## Failed scenarios\n\n");
            for f in self.failures {
                let _ = writeln!(md, "- {}", f.replace('\n', " "));
            }
        }
        if let Some(chart) = self.chart {
            let _ = writeln!(md, "\nLatency percentiles of the HTTP scenarios: [{chart}]({chart})");
        }
        if !self.notes.is_empty() {
            md.push_str("\n## Notes\n\n");
            for n in self.notes {
                let _ = writeln!(md, "- {n}");
            }
        }
        md
    }
}

/// Text that cannot break a table row.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn rate(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn ratio(v: f64) -> String {
    if v >= 1000.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: RowKey, rate: f64, p99: Option<f64>) -> Row {
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
        }
    }

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

    #[test]
    fn markdown_has_every_row_and_ratio_with_verdicts() {
        let facts = Facts::for_test();
        let mut rows =
            vec![row(RowKey::AcceptedBatched, 24_000.0, Some(30.0)), row(RowKey::SoldOut, 30_000.0, Some(8.0))];
        rows[0].problem = Some("2 unexpected answers".into());
        rows.push(row(RowKey::OriginNoIo, 50_000.0, Some(4.0)));
        rows[1].answers = "409×999 a|b".into();
        rows.push(Row { latency: None, ..row(RowKey::Writer, 6_000.0, None) });
        let failures = vec!["edge: the edge is down".to_string()];
        let md = Report {
            facts: &facts,
            flags: "--requests 10",
            rows: &rows,
            failures: &failures,
            notes: &[],
            chart: Some("latency.svg"),
        }
        .markdown();
        assert!(md.contains("| origin | AcceptedBatched | 256 | 1000 req | 24000 | 15.0 | 24.0 | 30.0 | 60.0 | 200×1000 ⚠ 2 unexpected answers |"), "{md}");
        assert!(md.contains("| writer, orders/s | 6000 | ≥ 5000 | ✔ |"), "{md}");
        assert!(md.contains("| accepted buys batched ÷ transaction, req/s | n/a | ≥ 10.0 | not measured |"), "{md}");
        assert!(md.contains("- edge: the edge is down"), "{md}");
        assert!(md.contains("| sold-out buys ÷ origin no-I/O route, req/s | 0.60 | ≥ 0.50 | ✔ |"), "{md}");
        assert!(md.contains("| 3.75 | ≤ 3.00 | ⚠ a row it uses has a problem |"), "{md}");
        assert!(md.contains("| 409×999 a\\|b |"), "pipes are escaped: {md}");
        assert!(md.contains("`--requests 10`"), "{md}");
        assert!(md.contains("| — | — | — | — |"), "writer row has no latency: {md}");
    }
}
