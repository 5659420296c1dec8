//! Facts about the machine and the code a report was made on.

use std::path::Path;
use std::process::Command;

use chrono::{DateTime, Utc};

/// What the report's machine table shows.
#[derive(Debug, Clone)]
pub(crate) struct Facts {
    pub nproc: String,
    pub cpu: String,
    pub memory: String,
    pub kernel: String,
    /// `2026-11-24 03:15:02 UTC`.
    pub date: String,
    /// `d644de4 (bench)`, `+ uncommitted changes` when the tree is dirty.
    pub commit: String,
}

impl Facts {
    /// Reads /proc and asks git about the checkout at `root`.
    pub(crate) fn probe(root: &Path, now: DateTime<Utc>) -> Self {
        let nproc = run("nproc", &[], root)
            .or_else(|| std::thread::available_parallelism().ok().map(|n| n.to_string()))
            .unwrap_or_else(|| "?".into());
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "?".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0))
            .unwrap_or_else(|| "?".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| format!("Linux {}", s.trim()))
            .unwrap_or_else(|_| "?".into());
        let commit = match run("git", &["rev-parse", "--short", "HEAD"], root) {
            Some(hash) => {
                let branch = run("git", &["rev-parse", "--abbrev-ref", "HEAD"], root).unwrap_or_default();
                let dirty =
                    run("git", &["status", "--porcelain", "--untracked-files=no"], root).is_some_and(|s| !s.is_empty());
                format!("{hash} ({branch}){}", if dirty { " + uncommitted changes" } else { "" })
            }
            None => "? (not a git checkout)".into(),
        };
        Self { nproc, cpu, memory, kernel, date: now.format("%Y-%m-%d %H:%M:%S UTC").to_string(), commit }
    }

    #[cfg(test)]
    pub(crate) fn for_test() -> Self {
        Self {
            nproc: "2".into(),
            cpu: "Test CPU".into(),
            memory: "24.0 GiB".into(),
            kernel: "Linux 6.1".into(),
            date: "2026-11-24 03:15:02 UTC".into(),
            commit: "abc1234 (bench)".into(),
        }
    }
}

/// The trimmed stdout of a command that succeeded.
fn run(cmd: &str, args: &[&str], dir: &Path) -> Option<String> {
    let out = Command::new(cmd).args(args).current_dir(dir).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
