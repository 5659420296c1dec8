//! The Markdown of a run: the machine, the flags, the measurements, the ratios with their
//! verdicts, the failed scenarios and the notes; what goes to stdout and to the report files.

use std::fmt::Write as _;

use super::ratios::{ratios, Target};
use super::Row;
use crate::facts::Facts;

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

        cpu_table(&mut md, self.rows);

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

/// CPU µs per request of each watched process, for the rows that measured it, with each
/// process's share of one core in brackets.
fn cpu_table(md: &mut String, rows: &[Row]) {
    let measured: Vec<&Row> = rows.iter().filter(|r| r.cpu.is_some()).collect();
    if measured.is_empty() {
        return;
    }
    let labels: Vec<&str> = crate::cpu::LABELS
        .iter()
        .copied()
        .filter(|l| measured.iter().any(|r| r.cpu.as_ref().is_some_and(|c| c.per_process.iter().any(|p| p.0 == *l))))
        .collect();
    md.push_str("\n## CPU per request, by process\n\n");
    md.push_str("CPU µs per answered request (share of one core during the row), from `/proc/<pid>/stat`.\n\n");
    let _ = writeln!(md, "| row | rate /s | {} | all |", labels.join(" | "));
    let _ = writeln!(md, "|---|---:|{}---:|", "---:|".repeat(labels.len()));
    for r in measured {
        let Some(cpu) = &r.cpu else { continue };
        let cells: Vec<String> = labels
            .iter()
            .map(|l| match cpu.per_process.iter().find(|p| p.0 == *l) {
                Some((_, us, share)) => format!("{us:.0} ({:.0} %)", share * 100.0),
                None => "—".into(),
            })
            .collect();
        let _ =
            writeln!(md, "| {} | {} | {} | {:.0} |", cell(&r.name), rate(r.rate), cells.join(" | "), cpu.total_us());
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
    use crate::report::test_support::row;
    use crate::report::RowKey;

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
