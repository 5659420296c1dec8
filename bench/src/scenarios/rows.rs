//! From what a scenario measured to the report's rows: a row per load, one row per key out
//! of several rounds, and the line each finished scenario prints.

use crate::latency::{self, Percentiles};
use crate::load::Tally;
use crate::report::{Row, RowKey};

/// One row per key, in first-seen order: the round of median rate (the lower middle of an
/// even count). With more than one round, the name lists every round's rate.
pub(super) fn median_rows(rows: Vec<Row>) -> Vec<Row> {
    let mut groups: Vec<Vec<Row>> = Vec::new();
    for row in rows {
        match groups.iter_mut().find(|g| g[0].key == row.key) {
            Some(group) => group.push(row),
            None => groups.push(vec![row]),
        }
    }
    groups
        .into_iter()
        .map(|mut of_key| {
            let n = of_key.len();
            if n == 1 {
                return of_key.swap_remove(0);
            }
            let rates: Vec<String> = of_key.iter().map(|r| format!("{:.0}", r.rate)).collect();
            of_key.sort_by(|a, b| a.rate.total_cmp(&b.rate));
            let mut median = of_key.swap_remove((n - 1) / 2);
            median.name = format!("{} — median of {n} rounds ({} /s)", median.name, rates.join(", "));
            median
        })
        .collect()
}

/// A report row from an HTTP or broker load; `expected` names the answer every call should
/// get. HTTP rows carry their percentile curve for the chart.
pub(crate) fn load_row(key: RowKey, name: String, clients: u64, tally: &Tally, expected: &str) -> Row {
    Row {
        key,
        group: key.group(),
        name,
        clients: Some(clients),
        count: tally.units,
        unit: key.unit(),
        rate: tally.rate(),
        elapsed: tally.elapsed,
        latency: Percentiles::of(&tally.histogram),
        answers: tally.answers_text(),
        problem: (tally.unexpected > 0).then(|| format!("{} of {} not {expected}", tally.unexpected, tally.calls)),
        curve: key.is_http().then(|| latency::curve(&tally.histogram)),
        cpu: None,
    }
}

/// One line per finished scenario on stderr (also when no progress bar is drawn).
pub(super) fn summary(row: &Row) -> String {
    let lat = row.latency.map(|p| format!(", p50 {:.2} ms, p99 {:.2} ms", p.p50, p.p99)).unwrap_or_default();
    format!(
        "  {}: {}: {} {} in {:.1} s = {:.0}/s{lat}; {}{}",
        row.group,
        row.name,
        row.count,
        row.unit,
        row.elapsed.as_secs_f64(),
        row.rate,
        row.answers,
        row.problem.as_ref().map(|p| format!(" ⚠ {p}")).unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: RowKey, rate: f64) -> Row {
        Row {
            key,
            group: key.group(),
            name: "r".into(),
            clients: None,
            count: 1,
            unit: key.unit(),
            rate,
            elapsed: std::time::Duration::from_secs(1),
            latency: None,
            answers: String::new(),
            problem: None,
            curve: None,
            cpu: None,
        }
    }

    #[test]
    fn rounds_keep_each_rows_median_round() {
        let rows = vec![
            row(RowKey::RedisCeiling, 30.0),
            row(RowKey::AcceptedBatched, 10.0),
            row(RowKey::RedisCeiling, 10.0),
            row(RowKey::AcceptedBatched, 30.0),
            row(RowKey::BrokerCeiling, 5.0),
            row(RowKey::RedisCeiling, 20.0),
            row(RowKey::AcceptedBatched, 20.0),
        ];
        let merged = median_rows(rows);
        let got: Vec<(RowKey, f64)> = merged.iter().map(|r| (r.key, r.rate)).collect();
        assert_eq!(
            got,
            vec![(RowKey::RedisCeiling, 20.0), (RowKey::AcceptedBatched, 20.0), (RowKey::BrokerCeiling, 5.0)]
        );
        assert_eq!(merged[0].name, "r — median of 3 rounds (30, 10, 20 /s)");
        assert_eq!(merged[2].name, "r", "a row run once keeps its name");
    }
}
