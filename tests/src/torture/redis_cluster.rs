//! A Redis Cluster of a test's own: three masters with one replica each, on free ports of
//! 127.0.0.1, so that a test may pause a replica and kill a master without touching anyone
//! else's Redis.
//!
//! The nodes are set to fail over fast (`cluster-node-timeout` 1 s) and to let any replica
//! take over however far behind it is (`cluster-replica-validity-factor 0`): the failover a
//! test wants to see is the one to a replica that lagged.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use anyhow::Context;

use super::redis_server::wait_answers;
use crate::wait_until;

#[derive(Debug)]
pub struct RedisCluster {
    nodes: HashMap<u16, Child>,
    ports: Vec<u16>,
    dir: PathBuf,
    log: PathBuf,
}

/// What `CLUSTER NODES` says of one node.
#[derive(Debug, Clone)]
struct NodeLine {
    id: String,
    port: u16,
    master: bool,
    failed: bool,
    /// The master's id, for a replica.
    master_id: Option<String>,
    /// Slot ranges served, for a master.
    slots: Vec<(u16, u16)>,
}

impl RedisCluster {
    /// Six redis-servers (AOF `everysec`) in `dir`, joined by `redis-cli --cluster create
    /// --cluster-replicas 1`; returns once every master has a replica in sync.
    pub async fn start(dir: &Path, log: &Path) -> anyhow::Result<RedisCluster> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let mut ports = Vec::new();
        let listeners: Vec<std::net::TcpListener> =
            (0..6).map(|_| std::net::TcpListener::bind("127.0.0.1:0")).collect::<Result<_, _>>()?;
        for l in &listeners {
            ports.push(l.local_addr()?.port());
        }
        drop(listeners);
        let mut cluster = RedisCluster {
            nodes: HashMap::new(),
            ports: ports.clone(),
            dir: dir.to_path_buf(),
            log: log.to_path_buf(),
        };
        for port in &ports {
            cluster.spawn(*port)?;
        }
        for port in &ports {
            wait_answers(*port, &cluster.log).await?;
        }
        let seeds: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&seeds)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .context("redis-cli --cluster create")?;
        anyhow::ensure!(out.status.success(), "cluster create failed: {}", String::from_utf8_lossy(&out.stdout));
        let ready = wait_until(Duration::from_secs(60), || async { cluster.in_sync().await }).await;
        anyhow::ensure!(
            ready,
            "the test cluster did not come up with a replica per master (log {})",
            cluster.log.display()
        );
        Ok(cluster)
    }

    fn spawn(&mut self, port: u16) -> anyhow::Result<()> {
        let dir = self.dir.join(port.to_string());
        std::fs::create_dir_all(&dir)?;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--daemonize", "no"])
            .arg("--dir")
            .arg(&dir)
            .args(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"])
            .args(["--cluster-node-timeout", "1000", "--cluster-replica-validity-factor", "0"])
            .args(["--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--logfile", ""])
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("start redis-server (scripts/services.sh install puts it on PATH)")?;
        self.nodes.insert(port, child);
        Ok(())
    }

    /// The cluster's seed nodes, as `redis.cluster_urls` takes them.
    pub fn seed_urls(&self) -> String {
        self.ports.iter().map(|p| format!("redis://127.0.0.1:{p}")).collect::<Vec<_>>().join(",")
    }

    async fn query(port: u16, cmd: &redis::Cmd) -> redis::RedisResult<redis::Value> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
        let mut c = tokio::time::timeout(Duration::from_secs(2), client.get_multiplexed_async_connection())
            .await
            .map_err(|_| redis::RedisError::from((redis::ErrorKind::IoError, "connect timed out")))??;
        tokio::time::timeout(Duration::from_secs(2), cmd.query_async(&mut c))
            .await
            .map_err(|_| redis::RedisError::from((redis::ErrorKind::IoError, "reply timed out")))?
    }

    /// `CLUSTER NODES` as any live node sees it.
    async fn nodes(&self) -> Option<Vec<NodeLine>> {
        for port in self.nodes.keys() {
            let Ok(value) = Self::query(*port, redis::cmd("CLUSTER").arg("NODES")).await else { continue };
            let Ok(text) = redis::from_redis_value::<String>(&value) else { continue };
            return Some(text.lines().filter_map(parse_node_line).collect());
        }
        None
    }

    /// Every master serves slots, is not failed, and has a replica whose link is up.
    async fn in_sync(&self) -> bool {
        let Some(nodes) = self.nodes().await else { return false };
        let masters: Vec<&NodeLine> = nodes.iter().filter(|n| n.master && !n.slots.is_empty()).collect();
        if masters.len() != 3 || masters.iter().any(|m| m.failed) {
            return false;
        }
        for m in masters {
            let Ok(info) = Self::query(m.port, redis::cmd("INFO").arg("replication")).await else { return false };
            let info: String = redis::from_redis_value(&info).unwrap_or_default();
            if !info.lines().any(|l| l.starts_with("slave0:") && l.contains("state=online")) {
                return false;
            }
        }
        true
    }

    /// The port of the master serving `slot`, and of its replica.
    pub async fn master_and_replica_of_slot(&self, slot: u16) -> anyhow::Result<(u16, u16)> {
        let nodes = self.nodes().await.context("no node answers CLUSTER NODES")?;
        let master = nodes
            .iter()
            .find(|n| n.master && n.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot)))
            .with_context(|| format!("no master serves slot {slot}"))?;
        let replica = nodes
            .iter()
            .find(|n| n.master_id.as_deref() == Some(master.id.as_str()))
            .with_context(|| format!("master {} has no replica", master.port))?;
        Ok((master.port, replica.port))
    }

    fn signal(&self, port: u16, signal: &str) -> anyhow::Result<()> {
        let child = self.nodes.get(&port).with_context(|| format!("no node on port {port}"))?;
        let status = Command::new("kill").args([signal, &child.id().to_string()]).status()?;
        anyhow::ensure!(status.success(), "kill {signal} redis-server on {port} failed");
        Ok(())
    }

    /// Makes `replica` fall behind `master`: stops it (SIGSTOP) and has the master drop its
    /// replication link, so that nothing the master writes from now on reaches it (merely
    /// stopped, it would find the writes waiting in its socket buffer when it runs again).
    /// Stopped, it cannot connect again until [`RedisCluster::resume`].
    pub async fn cut_off(&self, master: u16, replica: u16) -> anyhow::Result<()> {
        self.signal(replica, "-STOP")?;
        Self::query(master, redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("replica"))
            .await
            .context("CLIENT KILL TYPE replica")?;
        Ok(())
    }

    /// Lets node `port` run again (SIGCONT).
    pub fn resume(&self, port: u16) -> anyhow::Result<()> {
        self.signal(port, "-CONT")
    }

    /// Kills node `port` with SIGKILL: nothing is flushed, and it stays down.
    pub fn kill(&mut self, port: u16) -> anyhow::Result<()> {
        let mut child = self.nodes.remove(&port).with_context(|| format!("no node on port {port}"))?;
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    /// Starts the killed node `port` again on its folder: it rejoins the cluster (as a replica
    /// of whoever took its slots).
    pub async fn restart(&mut self, port: u16) -> anyhow::Result<()> {
        anyhow::ensure!(!self.nodes.contains_key(&port), "node {port} is running");
        self.spawn(port)?;
        wait_answers(port, &self.log).await
    }

    /// Waits until `replica` has received everything `master` has written so far.
    pub async fn wait_caught_up(&self, master: u16, replica: u16) -> anyhow::Result<()> {
        let offset = |port: u16, field: &'static str| async move {
            let info = Self::query(port, redis::cmd("INFO").arg("replication")).await.ok()?;
            let info: String = redis::from_redis_value(&info).ok()?;
            info.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':')?.trim().parse::<u64>().ok())
        };
        let target = offset(master, "master_repl_offset").await.context("the master's replication offset")?;
        let caught_up = wait_until(Duration::from_secs(10), || async {
            offset(replica, "slave_repl_offset").await.is_some_and(|o| o >= target)
        })
        .await;
        anyhow::ensure!(caught_up, "replica {replica} did not catch up with master {master}");
        Ok(())
    }

    /// Waits until node `port` is a master serving slots and the cluster is ok.
    pub async fn wait_promoted(&self, port: u16, limit: Duration) -> bool {
        wait_until(limit, || async {
            let Ok(info) = Self::query(port, redis::cmd("CLUSTER").arg("INFO")).await else { return false };
            let info: String = redis::from_redis_value(&info).unwrap_or_default();
            let Some(nodes) = self.nodes().await else { return false };
            info.contains("cluster_state:ok") && nodes.iter().any(|n| n.port == port && n.master && !n.slots.is_empty())
        })
        .await
    }
}

fn parse_node_line(line: &str) -> Option<NodeLine> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 8 {
        return None;
    }
    let port = fields[1].split('@').next()?.rsplit(':').next()?.parse().ok()?;
    let flags = fields[2];
    let slots = fields[8..]
        .iter()
        .filter(|s| !s.starts_with('['))
        .filter_map(|s| match s.split_once('-') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => s.parse().ok().map(|v| (v, v)),
        })
        .collect();
    Some(NodeLine {
        id: fields[0].to_string(),
        port,
        master: flags.contains("master"),
        failed: flags.contains("fail"),
        master_id: (fields[3] != "-").then(|| fields[3].to_string()),
        slots,
    })
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        // SIGKILL ends a paused (SIGSTOPped) node too.
        for (_, mut child) in self.nodes.drain() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
