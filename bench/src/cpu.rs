//! CPU per process, from `/proc`: which of the stack's processes a row keeps busy, in CPU µs
//! per answered request and in shares of one core, so a ratio comes with what explains it.
//!
//! The processes are found by what they run (the edge's by the port they serve): the edge's two
//! workerd processes (wrangler's proxy on the edge's port, and the one that runs the Worker),
//! its node process, the origin's serve and consume, Redis, MariaDB, the broker and name server,
//! and the bench itself. Each is `utime + stime` (`/proc/<pid>/stat`) read before and after a
//! row.

use std::collections::BTreeMap;
use std::time::Duration;

/// Clock ticks per second of `/proc/<pid>/stat` (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// The label of the bench's edge in front of the stub origin (all its processes).
pub(crate) const STUB_EDGE: &str = "stub origin edge (all)";
/// The label of the bench's edge run without wrangler's proxy (all its processes).
pub(crate) const DIRECT_EDGE: &str = "direct edge (all)";

/// The processes watched, in the order the report shows them.
pub(crate) const LABELS: &[&str] = &[
    "edge proxy (workerd)",
    "edge worker (workerd)",
    "edge node",
    STUB_EDGE,
    DIRECT_EDGE,
    "origin serve",
    "origin consume",
    "redis",
    "mariadb",
    "broker",
    "namesrv",
    "bench",
];

/// The watched processes: a label and its pids.
#[derive(Debug, Clone, Default)]
pub(crate) struct Watched {
    pids: Vec<(&'static str, u32)>,
}

/// CPU ticks per label at one moment.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    ticks: BTreeMap<&'static str, u64>,
}

/// What a row cost each watched process.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CpuUse {
    /// (label, CPU µs per request, share of one core) in [`LABELS`] order; only labels found.
    pub per_process: Vec<(&'static str, f64, f64)>,
}

struct Proc {
    pid: u32,
    ppid: u32,
    comm: String,
    cmdline: String,
}

fn processes() -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|entry| {
        let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (comm, rest) = comm_and_rest(&stat)?;
        let ppid = rest.split_whitespace().nth(1)?.parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        Some(Proc { pid, ppid, comm: comm.to_owned(), cmdline })
    })
    .collect()
}

/// `comm` (between the first `(` and the last `)`) and the fields after it.
fn comm_and_rest(stat: &str) -> Option<(&str, &str)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    Some((&stat[open + 1..close], stat[close + 1..].trim_start()))
}

impl Watched {
    /// Finds the processes of the stack. Each edge is `(port, label)`: the edge serving `port`
    /// (its node process and every workerd it started); with no label its wrangler proxy (the
    /// workerd on the port), the Worker's workerd and node are told apart, else all of them
    /// count as `label`.
    pub(crate) fn find(edges: &[(u16, Option<&'static str>)]) -> Self {
        let all = processes();
        let mut pids = Vec::new();
        let serves = |p: &Proc, port: u16| p.comm == "workerd" && p.cmdline.contains(&format!(":{port} "));
        for &(port, label) in edges {
            let Some(front) = all.iter().find(|p| serves(p, port)) else { continue };
            let node = front.ppid;
            pids.push((label.unwrap_or("edge proxy (workerd)"), front.pid));
            for p in all.iter().filter(|p| p.ppid == node && p.comm == "workerd" && p.pid != front.pid) {
                pids.push((label.unwrap_or("edge worker (workerd)"), p.pid));
            }
            pids.push((label.unwrap_or("edge node"), node));
        }
        for p in &all {
            let label = if p.cmdline.contains("seckill-origin") && p.cmdline.contains(" serve") {
                "origin serve"
            } else if p.cmdline.contains("seckill-origin") && p.cmdline.contains(" consume") {
                "origin consume"
            } else if p.comm.starts_with("redis-server") {
                "redis"
            } else if p.comm == "mariadbd" || p.comm == "mysqld" {
                "mariadb"
            } else if p.comm.starts_with("rocketmq-broker") {
                "broker"
            } else if p.comm.starts_with("rocketmq-namesr") {
                "namesrv"
            } else {
                continue;
            };
            pids.push((label, p.pid));
        }
        pids.push(("bench", std::process::id()));
        Self { pids }
    }

    /// CPU ticks of every watched process now (a process gone counts 0 from then on).
    pub(crate) fn sample(&self) -> Sample {
        let mut ticks = BTreeMap::new();
        for &(label, pid) in &self.pids {
            let used = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let (_, rest) = comm_and_rest(&stat)?;
                    let fields: Vec<&str> = rest.split_whitespace().collect();
                    // After comm: state is field 0, utime 11, stime 12.
                    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
                })
                .unwrap_or(0);
            *ticks.entry(label).or_insert(0) += used;
        }
        Sample { ticks }
    }
}

impl CpuUse {
    /// What happened between `before` and `after`, over `elapsed`, for `requests` answers.
    pub(crate) fn between(before: &Sample, after: &Sample, elapsed: Duration, requests: u64) -> Self {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let per_process = LABELS
            .iter()
            .filter_map(|&label| {
                let used = after.ticks.get(label)?.saturating_sub(*before.ticks.get(label)?);
                let cpu_secs = used as f64 / TICKS_PER_SEC;
                Some((label, cpu_secs * 1e6 / requests.max(1) as f64, cpu_secs / secs))
            })
            .collect();
        Self { per_process }
    }

    /// The processes' CPU µs per request, summed.
    pub(crate) fn total_us(&self) -> f64 {
        self.per_process.iter().map(|(_, us, _)| us).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comm_may_hold_spaces_and_parentheses() {
        let stat = "42 (rocketmq (x) y) S 1 42 42 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 4 0";
        let (comm, rest) = comm_and_rest(stat).unwrap();
        assert_eq!(comm, "rocketmq (x) y");
        let fields: Vec<&str> = rest.split_whitespace().collect();
        assert_eq!((fields[1], fields[11], fields[12]), ("1", "250", "30"));
    }

    #[test]
    fn use_is_per_request_and_per_core() {
        let before = Sample { ticks: BTreeMap::from([("redis", 100), ("bench", 10)]) };
        let after = Sample { ticks: BTreeMap::from([("redis", 150), ("bench", 30)]) };
        let used = CpuUse::between(&before, &after, Duration::from_secs(1), 1000);
        // 50 ticks = 0.5 s over 1000 requests = 500 µs each, half a core.
        assert_eq!(used.per_process, vec![("redis", 500.0, 0.5), ("bench", 200.0, 0.2)]);
        assert_eq!(used.total_us(), 700.0);
    }
}
