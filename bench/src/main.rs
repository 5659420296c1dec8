//! `seckill-bench` (`make bench`): the running `make up` stack measured against its own
//! ceilings, side by side in one run, all on 127.0.0.1. Prints a Markdown report and writes
//! it to `<out>/bench-<UTC timestamp>.md` and `<out>/latest.md`, with a latency chart
//! `<out>/latency-<timestamp>.svg`. Exits 0 if every scenario ran (whatever the numbers),
//! 1 if one failed or the run was interrupted, 2 for bad flags.

// Test and bench tooling: its counts, durations and shares are far from their types' limits,
// and a wrong one fails a run rather than a buyer. The origin and the edge convert checked.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    reason = "test and bench tooling; see the comment above"
)]

mod chart;
mod cli;
mod cpu;
mod exclusive;
mod facts;
mod interrupt;
mod latency;
mod load;
mod origin_api;
mod origin_proc;
mod report;
mod scenarios;
mod stack;

use std::fs::OpenOptions;
use std::process::ExitCode;
use std::sync::Mutex;

use anyhow::Context;
use clap::Parser;

use crate::cli::Cli;
use crate::facts::Facts;
use crate::report::Report;
use crate::scenarios::Ctx;
use crate::stack::Stack;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("seckill-bench: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli));
    // The RocketMQ client leaves background tasks behind; do not wait for them.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("seckill-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the bench; `Ok(false)` if a scenario failed or the run was interrupted.
async fn run(cli: Cli) -> anyhow::Result<bool> {
    interrupt::install()?;
    let _one_at_a_time = exclusive::acquire(&exclusive::default_path())?;
    let stack = Stack::from_env()?;
    log_to_file(&stack)?;
    stack.preflight(&cli).await?;

    let started = chrono::Utc::now();
    // Unique even for two runs started in the same second.
    let run_id = format!("{}p{}", started.format("%Y%m%d%H%M%S"), std::process::id());
    let stamp = started.format("%Y%m%dT%H%M%SZ").to_string();
    let facts = Facts::probe(&stack.root, started);
    let flags = cli.describe();
    let out_dir = cli.out_dir();
    eprintln!("seckill-bench: run {run_id}, {flags}");
    let ctx = Ctx::new(cli, stack, run_id, started.timestamp() as u64);
    let outcome = scenarios::run_all(&ctx).await;

    std::fs::create_dir_all(&out_dir).with_context(|| format!("create {}", out_dir.display()))?;
    let chart_name = format!("latency-{stamp}.svg");
    let chart_path = out_dir.join(&chart_name);
    let title = format!("seckill bench {}: latency by percentile", facts.date);
    let chart = match chart::write_svg(&chart_path, &title, &outcome.rows) {
        Ok(true) => Some(chart_name.as_str()),
        Ok(false) => None,
        Err(e) => {
            eprintln!("seckill-bench: could not draw the chart: {e:#}");
            None
        }
    };
    let markdown = Report {
        facts: &facts,
        flags: &flags,
        rows: &outcome.rows,
        failures: &outcome.failures,
        notes: &outcome.notes,
        chart,
    }
    .markdown();
    let report_path = out_dir.join(format!("bench-{stamp}.md"));
    std::fs::write(&report_path, &markdown).with_context(|| format!("write {}", report_path.display()))?;
    std::fs::write(out_dir.join("latest.md"), &markdown)?;
    println!("{markdown}");
    eprintln!("seckill-bench: report {} (also latest.md)", report_path.display());
    if chart.is_some() {
        eprintln!("seckill-bench: chart  {}", chart_path.display());
    }
    Ok(outcome.failures.is_empty() && !outcome.interrupted)
}

/// The origin library's logs (the writer's consumers run in this process) go to
/// `$SECKILL_LOGS/bench.log`, not over the progress bars.
fn log_to_file(stack: &Stack) -> anyhow::Result<()> {
    std::fs::create_dir_all(&stack.logs)?;
    let path = stack.logs.join("bench.log");
    let file =
        OpenOptions::new().create(true).append(true).open(&path).with_context(|| format!("open {}", path.display()))?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        "info,rocketmq_client_rust=warn,rocketmq_remoting=warn,rocketmq_transport=warn,sqlx=warn".into()
    });
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_writer(Mutex::new(file)).init();
    Ok(())
}
