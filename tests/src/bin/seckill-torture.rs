//! `make torture` (full) and the CI run in `make test` (`--scale ci`): see
//! [`seckill_e2e::torture`]. Prints the Markdown report, writes it to `--out`, and exits 1 if
//! any invariant does not hold (2 for bad flags).

use std::process::ExitCode;

use clap::Parser;
use seckill_e2e::torture::{self, plan::PlanArgs};

/// One sale under every fault at once (two origins, two consumers, the broker, Redis and
/// MariaDB as real processes), then every invariant checked. Needs the services of `make test`
/// (scripts/torture.sh starts them).
#[derive(Parser)]
#[command(name = "seckill-torture")]
struct Cli {
    #[command(flatten)]
    plan: PlanArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let plan = match cli.plan.resolve() {
        Ok(plan) => plan,
        Err(message) => {
            eprintln!("seckill-torture: {message}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    runtime.block_on(async move {
        let started_at = chrono::Local::now().format("%Y-%m-%d %H:%M:%S").to_string();
        let out = plan.out.clone();
        let outcome = match torture::run(plan).await {
            Ok(outcome) => outcome,
            Err(e) => {
                eprintln!("seckill-torture: the run could not be carried out: {e:#}");
                return ExitCode::FAILURE;
            }
        };
        let report = torture::report::markdown(&outcome, &started_at);
        println!("{report}");
        let written = std::fs::create_dir_all(&out).and_then(|()| {
            let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
            std::fs::write(out.join(format!("torture-{stamp}.md")), &report)?;
            std::fs::write(out.join("latest.md"), &report)
        });
        match written {
            Ok(()) => eprintln!("[torture] report written to {}/latest.md", out.display()),
            Err(e) => eprintln!("seckill-torture: cannot write the report to {}: {e}", out.display()),
        }
        if outcome.passed() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    })
}
