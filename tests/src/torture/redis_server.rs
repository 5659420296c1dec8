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
}

impl RedisServer {
    /// `redis-server` on a free port of 127.0.0.1, data and AOF in `dir`, `appendfsync
    /// everysec` (the stack's default).
    pub async fn start(dir: &Path, log: &Path) -> anyhow::Result<RedisServer> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut server = RedisServer { child: None, port, dir: dir.to_path_buf(), log: log.to_path_buf() };
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
            .args(["--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--logfile", ""])
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

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
