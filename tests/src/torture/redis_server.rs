//! A Redis server of the run's own (AOF on, its own folder and port), so that restarting it
//! touches nothing but the run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::wait_until;

pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    log: PathBuf,
    persistence: Persistence,
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
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut server = RedisServer { child: None, port, dir: dir.to_path_buf(), log: log.to_path_buf(), persistence };
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
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("start redis-server (scripts/services.sh install puts it on PATH)")?;
        self.child = Some(child);
        let client = redis::Client::open(self.url())?;
        // Ready = answers PING (while it loads the AOF it answers LOADING).
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
        anyhow::ensure!(ready, "redis-server did not answer on port {} (log {})", self.port, self.log.display());
        Ok(())
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
    /// Kills Redis with SIGKILL and starts it again from the snapshot a `SAVE` left, without
    /// its AOF: every write after the snapshot is gone, as after a failover to a replica that
    /// lagged that far behind. An AOF server turns its AOF on again (rewritten from the
    /// snapshot) before this returns.
    pub async fn crash_back_to_snapshot(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        let _ = std::fs::remove_dir_all(self.dir.join("appendonlydir"));
        let mode = self.persistence;
        self.persistence = Persistence::SnapshotOnly;
        let spawned = self.spawn().await;
        self.persistence = mode;
        spawned?;
        if mode == Persistence::Aof {
            let mut c = redis::Client::open(self.url())?.get_multiplexed_async_connection().await?;
            redis::cmd("CONFIG").arg("SET").arg("appendonly").arg("yes").query_async::<()>(&mut c).await?;
            let rewritten = wait_until(Duration::from_secs(30), || {
                let mut c = c.clone();
                async move {
                    let info: String =
                        redis::cmd("INFO").arg("persistence").query_async(&mut c).await.unwrap_or_default();
                    info.contains("aof_enabled:1")
                        && info.contains("aof_rewrite_in_progress:0")
                        && info.contains("aof_rewrite_scheduled:0")
                }
            })
            .await;
            anyhow::ensure!(rewritten, "Redis did not turn its AOF back on (log {})", self.log.display());
        }
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
