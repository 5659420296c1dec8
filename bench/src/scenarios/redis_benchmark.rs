//! Runs `redis-benchmark` (Debian's redis-tools) and reads its report: throughput, the
//! latency summary, and the cumulative latency points from which p90 is interpolated.
//! Its live "rps=... (overall: ...)" lines drive a progress bar.

use std::process::Stdio;
use std::time::Instant;

use anyhow::{bail, Context};
use indicatif::ProgressBar;
use tokio::io::AsyncReadExt;

use crate::interrupt;

/// What redis-benchmark measured (latencies in ms).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Measured {
    pub requests: u64,
    pub seconds: f64,
    pub rps: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// `redis-benchmark -h host -p port -c clients -n requests -r 1000000000 <command...>`;
/// every `__rand_int__` in the command becomes a random 12-digit number per call.
pub(crate) async fn run(
    host: &str,
    port: u16,
    clients: u64,
    requests: u64,
    command: &[String],
    bar: &ProgressBar,
) -> anyhow::Result<Measured> {
    let mut child = tokio::process::Command::new("redis-benchmark")
        .args(["-h", host, "-p", &port.to_string(), "-c", &clients.to_string(), "-n", &requests.to_string()])
        .args(["-r", "1000000000"])
        .args(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("start redis-benchmark (Debian package redis-tools; `make up` installs it)")?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let err_task = tokio::spawn(async move {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s).await;
        s
    });
    let start = Instant::now();
    let mut output = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = tokio::select! {
            n = stdout.read(&mut buf) => n?,
            _ = interrupt::wait() => {
                let _ = child.kill().await;
                interrupt::check()?;
                unreachable!("interrupt::wait resolves only once interrupted");
            }
        };
        if n == 0 {
            break;
        }
        output.extend_from_slice(&buf[..n]);
        // The last complete "\r"-terminated progress line: overall rps × time = calls done.
        let text = String::from_utf8_lossy(&output[output.len().saturating_sub(4096)..]).into_owned();
        if let Some(overall) = text.rsplit('\r').filter_map(overall_rps).next() {
            bar.set_position(((overall * start.elapsed().as_secs_f64()) as u64).min(requests));
        }
    }
    let status = child.wait().await?;
    let errors = err_task.await.unwrap_or_default();
    let text = String::from_utf8_lossy(&output);
    if !status.success() {
        bail!("redis-benchmark failed ({status}): {}", errors.trim());
    }
    bar.set_position(requests);
    parse(&text).with_context(|| format!("read redis-benchmark's output (stderr: {})", errors.trim()))
}

/// `X` of a progress line `...: rps=... (overall: X) avg_msec=...`.
fn overall_rps(line: &str) -> Option<f64> {
    let rest = line.split("(overall: ").nth(1)?;
    let (number, _) = rest.split_once(')')?;
    number.trim().parse().ok().filter(|v: &f64| v.is_finite())
}

/// Reads redis-benchmark 7's default (not `--csv`, not `-q`) report.
pub(crate) fn parse(output: &str) -> anyhow::Result<Measured> {
    let lines: Vec<&str> = output.split(['\n', '\r']).map(str::trim).filter(|l| !l.is_empty()).collect();
    let (requests, seconds) = lines
        .iter()
        .find_map(|l| {
            let (n, rest) = l.split_once(" requests completed in ")?;
            Some((n.trim().parse::<u64>().ok()?, rest.strip_suffix(" seconds")?.trim().parse::<f64>().ok()?))
        })
        .context("no \"requests completed in\" line")?;
    let rps = lines
        .iter()
        .find_map(|l| {
            l.strip_prefix("throughput summary:")?.trim().strip_suffix("requests per second")?.trim().parse().ok()
        })
        .context("no throughput summary")?;
    let header = lines
        .iter()
        .position(|l| l.split_whitespace().any(|w| w == "p50") && l.contains("max"))
        .context("no latency summary")?;
    let names: Vec<&str> = lines[header].split_whitespace().collect();
    let values: Vec<f64> = lines
        .get(header + 1)
        .context("no latency summary values")?
        .split_whitespace()
        .map(|v| v.parse::<f64>())
        .collect::<Result<_, _>>()
        .context("latency summary values")?;
    let summary = |name: &str| -> anyhow::Result<f64> {
        names
            .iter()
            .position(|n| *n == name)
            .and_then(|i| values.get(i).copied())
            .with_context(|| format!("no {name} in the latency summary"))
    };
    let mut points: Vec<(f64, u64)> = lines.iter().filter_map(|l| cumulative_point(l)).collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let total = points.iter().map(|p| p.1).max().unwrap_or(requests);
    Ok(Measured {
        requests,
        seconds,
        rps,
        p50: summary("p50")?,
        p90: interpolate(&points, 0.9 * total as f64).context("no latency distribution")?,
        p99: summary("p99")?,
        max: summary("max")?,
    })
}

/// `(ms, cumulative count)` of `99.219% <= 23.615 milliseconds (cumulative count 49617)`.
fn cumulative_point(line: &str) -> Option<(f64, u64)> {
    let (_, rest) = line.split_once("% <= ")?;
    let (ms, rest) = rest.split_once(" milliseconds (cumulative count ")?;
    Some((ms.trim().parse().ok()?, rest.strip_suffix(')')?.trim().parse().ok()?))
}

/// The latency at which the cumulative count reaches `target`, linear between the two
/// measured points around it.
fn interpolate(points: &[(f64, u64)], target: f64) -> Option<f64> {
    let above = points.iter().position(|p| p.1 as f64 >= target)?;
    let (ms_hi, n_hi) = points[above];
    let Some(&(ms_lo, n_lo)) = points[..above].iter().rev().find(|p| p.1 < n_hi) else {
        return Some(ms_hi);
    };
    let share = (target - n_lo as f64) / (n_hi - n_lo) as f64;
    Some(ms_lo + share * (ms_hi - ms_lo))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = include_str!("testdata/redis-benchmark-7.0.txt");

    #[test]
    fn reads_redis_benchmark_7_output() {
        let m = parse(SAMPLE).unwrap();
        assert_eq!(m.requests, 50_000);
        assert_eq!(m.seconds, 3.01);
        assert_eq!(m.rps, 16633.40);
        assert_eq!((m.p50, m.p99, m.max), (14.471, 23.391, 36.575));
        // Between 87.500% <= 18.255 ms (43785) and 91.954% <= 19.103 ms (45977).
        assert!(m.p90 > 18.255 && m.p90 < 19.103, "{}", m.p90);
    }

    #[test]
    fn reads_progress_lines() {
        let line = "EVALSHA x 5 a b: rps=14920.3 (overall: 14686.3) avg_msec=15.544 (overall: 15.544)";
        assert_eq!(overall_rps(line), Some(14686.3));
        assert_eq!(overall_rps("EVALSHA: rps=0.0 (overall: -nan) avg_msec=-nan"), None);
    }

    #[test]
    fn output_without_a_summary_is_an_error() {
        assert!(parse("ERR unknown command").is_err());
    }
}
