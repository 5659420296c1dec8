//! The running `make up` stack: where its services are (from the environment
//! `scripts/bench.sh` sets up: scripts/env.sh and the origin's APP_* settings), and a check
//! that the ones a run needs answer.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use seckill_origin::configuration::{self, Settings};

use crate::cli::{Cli, Scenario};

/// Addresses, credentials and folders of the stack.
#[derive(Debug, Clone)]
pub(crate) struct Stack {
    /// The origin's settings as the stack runs it (Redis, MySQL, RocketMQ, tokens).
    pub settings: Settings,
    /// `http://127.0.0.1:8080`: the stack's own origin.
    pub origin_url: String,
    /// `http://127.0.0.1:8787`: the edge (`wrangler dev`).
    pub edge_url: String,
    /// The clone (`$SECKILL_ROOT`).
    pub root: PathBuf,
    /// `$SECKILL_LOGS`.
    pub logs: PathBuf,
}

fn env(name: &str, default: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_string())
}

impl Stack {
    /// Reads the settings the way the origin does (config/base.toml + APP_* variables) and
    /// the stack's ports and tokens from scripts/env.sh's variables.
    pub(crate) fn from_env() -> anyhow::Result<Self> {
        let settings = configuration::load().context("read the origin's settings (config/base.toml, APP_*)")?;
        let host = env("SECKILL_HOST", "127.0.0.1");
        let root = PathBuf::from(env("SECKILL_ROOT", "."));
        let run = std::env::var_os("SECKILL_RUN").map(PathBuf::from).unwrap_or_else(|| root.join(".run"));
        let logs = std::env::var_os("SECKILL_LOGS").map(PathBuf::from).unwrap_or_else(|| run.join("logs"));
        Ok(Self {
            origin_url: format!("http://{host}:{}", env("ORIGIN_PORT", "8080")),
            edge_url: format!("http://{host}:{}", env("EDGE_PORT", "8787")),
            settings,
            root,
            logs,
        })
    }

    /// Checks that every service the chosen scenarios need answers; the error lists each
    /// one that does not and says how to start the stack.
    pub(crate) async fn preflight(&self, cli: &Cli) -> anyhow::Result<()> {
        let s = &self.settings;
        let redis = host_port(&s.redis.url).unwrap_or_else(|| "127.0.0.1:6379".into());
        let mysql = format!("{}:{}", s.mysql.host, s.mysql.port);
        // The first of the name servers (`a;b` on the cluster profile).
        let namesrv = s.rocketmq.namesrv_addr.split(';').next().unwrap_or_default().trim().to_string();
        let mut problems = Vec::new();
        let needs_backends = cli.runs(Scenario::Ceilings) || cli.runs(Scenario::Origin) || cli.runs(Scenario::Writer);
        if needs_backends {
            for (name, addr) in [("Redis", &redis), ("MariaDB", &mysql), ("RocketMQ name server", &namesrv)] {
                if !tcp_open(addr).await {
                    problems.push(format!("{name} does not accept connections at {addr}"));
                }
            }
        }
        if cli.runs(Scenario::Edge) {
            let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
            match client.get(format!("{}/health", self.origin_url)).send().await {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => {
                    let status = r.status();
                    let body = r.text().await.unwrap_or_default();
                    problems.push(format!("the stack's origin at {} is unhealthy: {status} {body}", self.origin_url));
                }
                Err(_) => problems.push(format!("the stack's origin does not answer at {}/health", self.origin_url)),
            }
            if client.get(format!("{}/", self.edge_url)).send().await.is_err() {
                problems.push(format!("the edge does not answer at {}/", self.edge_url));
            }
        }
        if !problems.is_empty() {
            bail!(
                "the stack is not running (or not all of it):\n  - {}\nStart it with `make up` (it prints the URLs when everything answers), then run the bench again.",
                problems.join("\n  - ")
            );
        }
        Ok(())
    }

    /// The release `seckill-origin` next to this binary (`$CARGO_TARGET_DIR/release`).
    pub(crate) fn origin_binary(&self) -> anyhow::Result<PathBuf> {
        let exe = std::env::current_exe().context("locate seckill-bench")?;
        let candidates = [
            exe.with_file_name("seckill-origin"),
            std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_default().join("release/seckill-origin"),
        ];
        candidates.into_iter().find(|p| p.is_file()).with_context(|| {
            format!(
                "no release seckill-origin next to {}; build it with `cargo build --release -p seckill-origin` \
                 (scripts/bench.sh does)",
                exe.display()
            )
        })
    }
}

/// `host:port` of a `redis://host:port/...` URL.
fn host_port(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let authority = authority.rsplit_once('@').map(|(_, a)| a).unwrap_or(authority);
    Some(if authority.contains(':') { authority.to_string() } else { format!("{authority}:6379") })
}

async fn tcp_open(addr: &str) -> bool {
    matches!(tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await, Ok(Ok(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_urls_give_their_address() {
        assert_eq!(host_port("redis://127.0.0.1:6379").as_deref(), Some("127.0.0.1:6379"));
        assert_eq!(host_port("redis://:pw@localhost/0").as_deref(), Some("localhost:6379"));
    }
}
