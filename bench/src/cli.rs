//! The command line: what to measure, how hard, and where the report goes.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// Seconds per HTTP scenario when neither `--requests` nor `--duration` is given: long enough
/// that a p99 rests on thousands of answers even for the slowest row, not on a second's noise.
pub(crate) const DEFAULT_SECS: u64 = 5;

/// `seckill-bench`: measures the running `make up` stack against its own ceilings, side by
/// side in one run, and writes a Markdown report and a latency chart.
#[derive(Debug, Clone, Parser)]
#[command(name = "seckill-bench", version, about, long_about = None)]
pub(crate) struct Cli {
    /// Requests per HTTP scenario (instead of the default time, `--duration 5`)
    #[arg(long, value_name = "N", conflicts_with = "duration", value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: Option<u64>,

    /// Run each HTTP scenario (and the broker ceiling) for SECS seconds [default: 5]
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub duration: Option<u64>,

    /// Concurrent connections (clients) per scenario; the edge uses at most 64
    #[arg(long, value_name = "C", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub connections: u64,

    /// Which buy mode(s) of the bench's own origins to measure
    #[arg(long, value_enum, default_value_t = Mode::Both)]
    pub mode: Mode,

    /// Scenario groups to run (repeatable, or comma-separated) [default: all]
    #[arg(long = "scenario", value_enum, value_name = "SCENARIO", value_delimiter = ',')]
    pub scenarios: Vec<Scenario>,

    /// Rounds of the ceiling and origin rows, run interleaved; each row reports its median round,
    /// so a burst of noise on a shared machine skews one round, not the ratios
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=9))]
    pub rounds: u64,

    /// Orders the writer scenario drains into MySQL
    #[arg(long, value_name = "N", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub writer_orders: u64,

    /// Where the report and chart go [default: $SECKILL_RUN/bench, else .run/bench]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// `--mode`: the origin's `buy.mode` setting(s) to compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mode {
    Batched,
    Transaction,
    Both,
}

/// One buy mode of the origin (`APP_BUY__MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum BuyMode {
    Batched,
    Transaction,
}

impl BuyMode {
    /// The value of `APP_BUY__MODE`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            BuyMode::Batched => "batched",
            BuyMode::Transaction => "transaction",
        }
    }
}

/// `--scenario`: a group of measurements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub(crate) enum Scenario {
    /// Redis running buy.lua, the broker's batch send, the origin's no-I/O route
    Ceilings,
    /// Accepted buys per mode and sold-out buys on the bench's own origins
    Origin,
    /// Queued orders drained into MySQL by the order writer
    Writer,
    /// The edge (two bench instances of wrangler's dev server): its no-I/O route, its product
    /// list, sold-out, repeat and accepted buys (to a release origin and to a no-I/O stub), a room
    Edge,
    /// Click to order: from a QUEUED answer to the order in MySQL, in a burst and at a steady pace
    Order,
}

/// When a load stops: after a number of requests, or after a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    Count(u64),
    Duration(Duration),
}

impl Cli {
    /// How long each HTTP scenario runs.
    pub(crate) fn stop(&self) -> Stop {
        match (self.duration, self.requests) {
            (Some(secs), _) => Stop::Duration(Duration::from_secs(secs)),
            (None, Some(n)) => Stop::Count(n),
            (None, None) => Stop::Duration(Duration::from_secs(DEFAULT_SECS)),
        }
    }

    /// The modes to measure, batched first.
    pub(crate) fn modes(&self) -> Vec<BuyMode> {
        match self.mode {
            Mode::Batched => vec![BuyMode::Batched],
            Mode::Transaction => vec![BuyMode::Transaction],
            Mode::Both => vec![BuyMode::Batched, BuyMode::Transaction],
        }
    }

    /// The scenario groups to run, in the order they run, each once.
    pub(crate) fn scenarios(&self) -> Vec<Scenario> {
        let mut s = if self.scenarios.is_empty() {
            vec![Scenario::Ceilings, Scenario::Origin, Scenario::Writer, Scenario::Edge, Scenario::Order]
        } else {
            self.scenarios.clone()
        };
        s.sort();
        s.dedup();
        s
    }

    pub(crate) fn runs(&self, scenario: Scenario) -> bool {
        self.scenarios().contains(&scenario)
    }

    /// Connections for the edge: `wrangler dev` is a development server.
    pub(crate) fn edge_connections(&self) -> u64 {
        self.connections.min(64)
    }

    /// The report folder.
    pub(crate) fn out_dir(&self) -> PathBuf {
        self.out.clone().unwrap_or_else(|| match std::env::var_os("SECKILL_RUN") {
            Some(run) => PathBuf::from(run).join("bench"),
            None => PathBuf::from(".run/bench"),
        })
    }

    /// The flags as a command line, defaults spelled out, for the report.
    pub(crate) fn describe(&self) -> String {
        let amount = match self.stop() {
            Stop::Count(n) => format!("--requests {n}"),
            Stop::Duration(d) => format!("--duration {}", d.as_secs()),
        };
        let mode = match self.mode {
            Mode::Batched => "batched",
            Mode::Transaction => "transaction",
            Mode::Both => "both",
        };
        let scenarios: Vec<&str> = self
            .scenarios()
            .iter()
            .map(|s| match s {
                Scenario::Ceilings => "ceilings",
                Scenario::Origin => "origin",
                Scenario::Writer => "writer",
                Scenario::Edge => "edge",
                Scenario::Order => "order",
            })
            .collect();
        format!(
            "{amount} --connections {} --rounds {} --mode {mode} --scenario {} --writer-orders {} --out {}",
            self.connections,
            self.rounds,
            scenarios.join(","),
            self.writer_orders,
            self.out_dir().display()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_run_everything_for_a_time() {
        let cli = Cli::try_parse_from(["seckill-bench"]).unwrap();
        assert_eq!(cli.stop(), Stop::Duration(Duration::from_secs(DEFAULT_SECS)));
        let cli = Cli::try_parse_from(["seckill-bench", "--requests", "500"]).unwrap();
        assert_eq!(cli.stop(), Stop::Count(500));
        assert_eq!(cli.connections, 256);
        assert_eq!(cli.modes(), vec![BuyMode::Batched, BuyMode::Transaction]);
        assert_eq!(cli.scenarios().len(), 5);
        assert_eq!(cli.writer_orders, 100_000);
        assert_eq!(cli.rounds, 3);
    }

    #[test]
    fn scenarios_repeat_or_split_on_commas() {
        let cli = Cli::try_parse_from(["seckill-bench", "--scenario", "edge,origin", "--scenario", "edge"]).unwrap();
        assert_eq!(cli.scenarios(), vec![Scenario::Origin, Scenario::Edge]);
        assert_eq!(cli.edge_connections(), 64);
    }

    #[test]
    fn bad_flags_are_named() {
        let err = Cli::try_parse_from(["seckill-bench", "--mode", "fast"]).unwrap_err().to_string();
        assert!(err.contains("--mode"), "{err}");
        let err = Cli::try_parse_from(["seckill-bench", "--requests", "5", "--duration", "3"]).unwrap_err().to_string();
        assert!(err.contains("--duration") && err.contains("--requests"), "{err}");
        let err = Cli::try_parse_from(["seckill-bench", "--connections", "0"]).unwrap_err().to_string();
        assert!(err.contains("--connections"), "{err}");
        let err = Cli::try_parse_from(["seckill-bench", "--rounds", "0"]).unwrap_err().to_string();
        assert!(err.contains("--rounds"), "{err}");
    }
}
