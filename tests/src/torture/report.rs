//! The run's Markdown report.

use std::fmt::Write;

use super::Outcome;

pub fn markdown(o: &Outcome, started_at: &str) -> String {
    let p = &o.plan;
    let t = &o.tally;
    let mut md = String::new();
    let verdict = if o.passed() { "PASSED" } else { "FAILED" };
    let _ = writeln!(md, "# seckill torture: {verdict}\n");
    let _ = writeln!(
        md,
        "Run `{}` at {started_at}, scale `{:?}`, seed `{}` (re-run it with `make torture ARGS=\"--seed {}\"`).\n",
        o.id, p.scale, p.seed, p.seed
    );
    let _ = writeln!(
        md,
        "{} buys from {} users (quantities 1–3, per-user limit 3) for {} units, {} malformed requests mixed in; \
         {} req/s aimed, {} in flight at most; {:.0}% of accepted buyers pay, the rest are cancelled 3 s after \
         their order is written. Two origins, two consumers, two broker masters each with a synchronous slave (the \
         pair profile), a Redis of the run's own (AOF on), MariaDB.\n",
        p.buys,
        p.users,
        p.units,
        p.malformed,
        p.rate,
        p.concurrency,
        p.pay_share * 100.0
    );

    let _ = writeln!(md, "## Invariants\n\n| check | verdict | detail |\n|---|---|---|");
    for c in &o.checks {
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            c.name,
            if c.ok { "ok" } else { "**FAILED**" },
            c.detail.replace('|', "\\|")
        );
    }

    let _ = writeln!(md, "\n## Faults injected\n\n| at | requests sent | fault | what it hit |\n|---:|---:|---|---|");
    for f in &o.faults {
        let _ = writeln!(md, "| {:.1} s | {} | {} | {} |", f.at.as_secs_f64(), f.sent, f.what, f.detail);
    }
    let _ = writeln!(md, "| (all run) | | every order message sent a second time | {} copies |", o.duplicated);

    let _ = writeln!(md, "\n## Answers to the {} buys\n\n| answer | count |\n|---|---:|", p.buys);
    for (label, n) in &t.buys {
        let _ = writeln!(md, "| {label} | {n} |");
    }
    let _ = writeln!(
        md,
        "\nAccepted (200 + 202): **{}**. Connections refused by a dead origin and sent to the other: {}.",
        t.accepted(),
        t.rerouted
    );

    let _ = writeln!(
        md,
        "\n## Answers to the {} malformed requests\n\n| kind | answer | count |\n|---|---|---:|",
        p.malformed
    );
    for ((kind, label), n) in &t.malformed {
        let _ = writeln!(md, "| {kind} | {label} | {n} |");
    }

    let or = &o.orders;
    let _ = writeln!(md, "\n## Orders\n\n| | |\n|---|---:|");
    let _ = writeln!(md, "| orders written | {} |", or.written);
    let _ = writeln!(md, "| paid | {} ({} units) |", or.paid, or.paid_units);
    let _ = writeln!(md, "| cancelled unpaid (stock given back) | {} |", or.cancelled);
    let _ = writeln!(md, "| payments refused: cancelled first | {} |", t.pay_too_late);
    let _ = writeln!(md, "| payments given up: never payable in 20 s | {} |", t.pay_gave_up);
    let _ = writeln!(md, "| duplicates absorbed (copies sent, none written) | {} |", o.duplicated);
    let _ = writeln!(
        md,
        "| stock left: MySQL / Redis | {} / {} |",
        or.mysql_stock,
        or.redis_stock.map_or("none".into(), |s| s.to_string())
    );

    let f = &o.fence;
    let _ = writeln!(md, "\n## Fence (Redis losing writes)\n\n| | |\n|---|---:|");
    let _ = writeln!(md, "| time the sale was frozen (sampled every 100 ms) | {:.1} s |", f.frozen_for.as_secs_f64());
    let _ = writeln!(md, "| buys answered 503 SALE_FROZEN | {} |", f.frozen_answers);
    let _ = writeln!(md, "| heals (reconcile runs of the sale) | {} |", f.heals);
    let refusals: i64 = f.refusals.iter().map(|(_, n)| n).sum();
    let reasons: Vec<String> = f.refusals.iter().map(|(r, n)| format!("{r} {n}")).collect();
    let _ = writeln!(
        md,
        "| orders refused by the writer, visible to their buyers | {refusals}{} |",
        if reasons.is_empty() { String::new() } else { format!(" ({})", reasons.join(", ")) }
    );

    let b = &o.brokers;
    let _ = writeln!(md, "\n## Brokers after the drain\n\n```\n{}```\n", b.table);
    let _ = writeln!(
        md,
        "Messages read from the slaves during the run: **{}** (from the masters since their restarts: {}). Slaves \
         serve no reads (`slaveReadEnable` is off; docs/SCALING.md says why): a master's orders wait for it to \
         come back.",
        b.read_from_slaves.map_or("unknown (a slave did not say)".into(), |n| n.to_string()),
        b.read_from_masters.map_or("unknown".into(), |n| n.to_string())
    );

    let _ = writeln!(md, "\n## Time\n\n| | |\n|---|---:|");
    let _ = writeln!(md, "| burst (first request to last answer and payment) | {:.1} s |", o.burst.as_secs_f64());
    let _ = writeln!(
        md,
        "| time to drain (last answer to nothing in flight) | {} |",
        o.drain.map_or("did not drain".into(), |d| format!("{:.1} s", d.as_secs_f64()))
    );
    let _ = writeln!(
        md,
        "\nThe drain includes the last orders' 3 s unpaid-order cancel. Logs: `.run/logs/torture-{}-*.log`.",
        o.id
    );
    md
}
