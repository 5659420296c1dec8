//! A Redis server of the run's own (AOF on, its own folder and port), so that restarting it
//! touches nothing but the run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::wait_until;

#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    log: PathBuf,
    persistence: Persistence,
    /// The port of the server this one replicates, until it is promoted.
    replica_of: Option<u16>,
}

/// What a Redis server of a test keeps across a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// The AOF with `appendfsync everysec` (the stack's default).
    Aof,
    /// Only the snapshots a test asks for with `SAVE`: a kill -9 and restart loads the last
    /// one, losing every write after it (what a crash that lost the AOF's tail, or a failover
    /// to a lagging replica, leaves).
    SnapshotOnly,
}

impl RedisServer {
    /// `redis-server` on a free port of 127.0.0.1, data and AOF in `dir`, `appendfsync
    /// everysec` (the stack's default).
    pub async fn start(dir: &Path, log: &Path) -> anyhow::Result<RedisServer> {
        Self::start_with(dir, log, Persistence::Aof).await
    }

    /// [`RedisServer::start`] keeping what `persistence` says.
    pub async fn start_with(dir: &Path, log: &Path, persistence: Persistence) -> anyhow::Result<RedisServer> {
        Self::start_on_free_port(dir, log, persistence, None).await
    }

    /// [`RedisServer::start`] as a replica of `primary` (AOF `everysec`, like it).
    pub async fn start_replica(dir: &Path, log: &Path, primary: &RedisServer) -> anyhow::Result<RedisServer> {
        Self::start_on_free_port(dir, log, Persistence::Aof, Some(primary.port)).await
    }

    async fn start_on_free_port(
        dir: &Path,
        log: &Path,
        persistence: Persistence,
        replica_of: Option<u16>,
    ) -> anyhow::Result<RedisServer> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut server =
            RedisServer { child: None, port, dir: dir.to_path_buf(), log: log.to_path_buf(), persistence, replica_of };
        server.spawn().await?;
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string(), "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(match self.persistence {
                Persistence::Aof => ["--appendonly", "yes", "--appendfsync", "everysec"],
                Persistence::SnapshotOnly => ["--appendonly", "no", "--appendfsync", "no"],
            })
            .args(["--save", "", "--logfile", ""])
            .args(
                self.replica_of
                    .map(|p| ["--replicaof".to_string(), "127.0.0.1".into(), p.to_string()])
                    .into_iter()
                    .flatten(),
            )
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("start redis-server (scripts/services.sh install puts it on PATH)")?;
        self.child = Some(child);
        wait_answers(self.port, &self.log).await
    }

    /// Stops Redis the way an operator restarts it (SIGTERM: it finishes the AOF and exits),
    /// then starts it on the same port and folder and waits until it has loaded the AOF.
    /// Returns how long Redis was away.
    pub async fn restart(&mut self) -> anyhow::Result<Duration> {
        let down = Instant::now();
        if let Some(mut child) = self.child.take() {
            let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status()?;
            anyhow::ensure!(status.success(), "kill -TERM redis-server failed");
            child.wait()?;
        }
        self.spawn().await?;
        Ok(down.elapsed())
    }
}

impl RedisServer {
    async fn info(&self, section: &str) -> anyhow::Result<String> {
        let mut c = redis::Client::open(self.url())?.get_multiplexed_async_connection().await?;
        Ok(redis::cmd("INFO").arg(section).query_async(&mut c).await?)
    }

    /// Waits until this replica is linked to its primary and holds all it has written.
    pub async fn wait_in_sync(&self, primary: &RedisServer) -> anyhow::Result<()> {
        let field = |text: &str, name: &str| {
            text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(|v| v.trim().to_string()))
        };
        let target: u64 = field(&primary.info("replication").await?, "master_repl_offset")
            .and_then(|o| o.parse().ok())
            .context("the primary's replication offset")?;
        let synced = wait_until(Duration::from_secs(30), || async {
            let Ok(info) = self.info("replication").await else { return false };
            field(&info, "master_link_status").as_deref() == Some("up")
                && field(&info, "slave_repl_offset").and_then(|o| o.parse::<u64>().ok()).is_some_and(|o| o >= target)
        })
        .await;
        anyhow::ensure!(
            synced,
            "replica {} did not catch up with {} (log {})",
            self.port,
            primary.port,
            self.log.display()
        );
        Ok(())
    }

    /// Makes this replica fall behind `primary`: stops it (SIGSTOP) and has the primary drop
    /// the replication link, so nothing the primary writes from now on reaches it (merely
    /// stopped, it would find the writes waiting in its socket buffer).
    pub async fn cut_off_from(&self, primary: &RedisServer) -> anyhow::Result<()> {
        self.signal("-STOP")?;
        let mut c = redis::Client::open(primary.url())?.get_multiplexed_async_connection().await?;
        redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("replica").query_async::<()>(&mut c).await?;
        Ok(())
    }

    /// Lets a server stopped by [`RedisServer::cut_off_from`] run again, and promotes it
    /// (`REPLICAOF NO ONE`): it serves what it had, and later restarts keep it a primary.
    pub async fn promote(&mut self) -> anyhow::Result<()> {
        self.signal("-CONT")?;
        let mut c = redis::Client::open(self.url())?.get_multiplexed_async_connection().await?;
        redis::cmd("REPLICAOF").arg("NO").arg("ONE").query_async::<()>(&mut c).await?;
        self.replica_of = None;
        Ok(())
    }

    /// Kills Redis with SIGKILL and leaves it down.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let child = self.child.as_ref().context("redis-server is not running")?;
        let status = Command::new("kill").args([signal, &child.id().to_string()]).status()?;
        anyhow::ensure!(status.success(), "kill {signal} redis-server on {} failed", self.port);
        Ok(())
    }

    /// Kills Redis with SIGKILL (a crash: nothing is flushed) and starts it again on the same
    /// port and folder, from whatever it had persisted.
    pub async fn crash_and_restart(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        self.spawn().await
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits up to 30 s until the redis-server on `port` answers PING (while it loads its AOF it
/// answers LOADING); the error names its `log`.
pub async fn wait_answers(port: u16, log: &Path) -> anyhow::Result<()> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let ready = wait_until(Duration::from_secs(30), || {
        let client = client.clone();
        async move {
            match client.get_multiplexed_async_connection().await {
                Ok(mut c) => redis::cmd("PING").query_async::<String>(&mut c).await.is_ok(),
                Err(_) => false,
            }
        }
    })
    .await;
    anyhow::ensure!(ready, "redis-server did not answer on port {port} (log {})", log.display());
    Ok(())
}
