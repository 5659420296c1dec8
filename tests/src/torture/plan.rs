//! What a torture run does: its size (full or the CI scale), its pace and its faults.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// A preset size; each flag below overrides its part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scale {
    /// 50,000 buys from 20,000 users for 1,000 units, 10,000 malformed requests, at 1,000
    /// req/s: a one-minute burst, long enough for every fault to land inside it.
    Full,
    /// A tenth of the requests and units at a tenth of the pace: the same minute, the same
    /// faults (CI).
    Ci,
}

#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    /// Preset size: full (`make torture`) or ci (`make test`).
    #[arg(long, value_enum, default_value = "full")]
    pub scale: Scale,
    /// Buy requests (valid ones; the malformed come on top).
    #[arg(long)]
    pub buys: Option<u64>,
    /// Distinct users the buys come from (each sends at least one).
    #[arg(long)]
    pub users: Option<u64>,
    /// Units on sale.
    #[arg(long)]
    pub units: Option<u32>,
    /// Malformed requests mixed into the buys.
    #[arg(long)]
    pub malformed: Option<u64>,
    /// Requests per second the load aims at (the faults land at fractions of the requests sent).
    #[arg(long)]
    pub rate: Option<u32>,
    /// Requests in flight at most.
    #[arg(long, default_value_t = 128)]
    pub concurrency: usize,
    /// Share of accepted buyers who pay (the others' orders are cancelled 3 s after they are
    /// written, on the test brokers, and their units sold again).
    #[arg(long, default_value_t = 0.25)]
    pub pay_share: f64,
    /// Seed of the request mix (random if not given; the report names it).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Seconds the queue may take to drain after the burst before the run fails.
    #[arg(long, default_value_t = 240)]
    pub drain_limit_secs: u64,
    /// Folder of the report (torture-<time>.md and latest.md).
    #[arg(long, default_value = ".run/torture")]
    pub out: PathBuf,
}

/// A resolved plan.
#[derive(Debug, Clone)]
pub struct Plan {
    pub scale: Scale,
    pub buys: u64,
    pub users: u64,
    pub units: u32,
    pub malformed: u64,
    pub rate: u32,
    pub concurrency: usize,
    pub pay_share: f64,
    pub seed: u64,
    pub drain_limit_secs: u64,
    pub out: PathBuf,
}

impl PlanArgs {
    /// The plan, or a message naming the flag at fault.
    pub fn resolve(self) -> Result<Plan, String> {
        let (buys, users, units, malformed, rate) = match self.scale {
            Scale::Full => (50_000, 20_000, 1_000, 10_000, 1_000),
            Scale::Ci => (5_000, 2_000, 100, 1_000, 100),
        };
        let plan = Plan {
            scale: self.scale,
            buys: self.buys.unwrap_or(buys),
            users: self.users.unwrap_or(users),
            units: self.units.unwrap_or(units),
            malformed: self.malformed.unwrap_or(malformed),
            rate: self.rate.unwrap_or(rate),
            concurrency: self.concurrency,
            pay_share: self.pay_share,
            seed: self.seed.unwrap_or_else(rand::random),
            drain_limit_secs: self.drain_limit_secs,
            out: self.out,
        };
        if plan.users == 0 {
            return Err("--users must be at least 1".into());
        }
        if plan.buys < plan.users {
            return Err(format!("--buys ({}) must be at least --users ({}): every user buys", plan.buys, plan.users));
        }
        if plan.units == 0 {
            return Err("--units must be at least 1".into());
        }
        if plan.rate == 0 {
            return Err("--rate must be at least 1".into());
        }
        if plan.concurrency == 0 {
            return Err("--concurrency must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&plan.pay_share) {
            return Err(format!("--pay-share must be between 0 and 1, got {}", plan.pay_share));
        }
        Ok(plan)
    }
}

impl Plan {
    pub fn requests(&self) -> u64 {
        self.buys + self.malformed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        plan: PlanArgs,
    }

    fn resolve(args: &[&str]) -> Result<Plan, String> {
        Cli::try_parse_from(std::iter::once("torture").chain(args.iter().copied())).unwrap().plan.resolve()
    }

    #[test]
    fn the_full_scale_is_the_issue_s_size_and_flags_override_it() {
        let full = resolve(&[]).unwrap();
        assert_eq!((full.buys, full.users, full.units, full.malformed), (50_000, 20_000, 1_000, 10_000));
        let ci = resolve(&["--scale", "ci", "--units", "7"]).unwrap();
        assert_eq!((ci.buys, ci.units), (5_000, 7));
    }

    #[test]
    fn bad_flags_are_named() {
        assert!(resolve(&["--users", "0"]).unwrap_err().contains("--users"));
        assert!(resolve(&["--buys", "10", "--users", "20"]).unwrap_err().contains("--buys"));
        assert!(resolve(&["--pay-share", "1.5"]).unwrap_err().contains("--pay-share"));
        assert!(resolve(&["--rate", "0"]).unwrap_err().contains("--rate"));
    }
}
