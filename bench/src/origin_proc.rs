//! The bench's own origins: `seckill-origin serve` processes (one per buy mode) started from
//! the release binary with the stack's settings plus overrides that keep every bench write
//! away from the operator's shop (own database, Redis key prefix, topic, producer group,
//! tokens). They are stopped with SIGTERM (then waited for) when dropped, so an error or an
//! interrupt still stops them; the kernel sends them SIGTERM too if the bench itself dies.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::cli::BuyMode;
use crate::interrupt;
use crate::origin_api::Admin;

/// The database every bench origin uses.
pub(crate) const DATABASE: &str = "seckill_bench";
/// The Redis key prefix every bench origin uses.
pub(crate) const KEY_PREFIX: &str = "seckill-bench";
/// The order topic every bench origin sends to (nobody consumes it).
pub(crate) const ORDER_TOPIC: &str = "seckill-bench-order";

/// What every bench origin shares.
#[derive(Debug, Clone)]
pub(crate) struct OriginConfig {
    pub binary: PathBuf,
    pub logs: PathBuf,
    pub admin_token: String,
    pub edge_secret: String,
}

impl OriginConfig {
    /// `APP_*` overrides on top of the stack's settings (inherited from the environment).
    fn overrides(&self, mode: BuyMode, port: u16) -> Vec<(&'static str, String)> {
        vec![
            ("APP_HTTP__HOST", "127.0.0.1".into()),
            ("APP_HTTP__PORT", port.to_string()),
            ("APP_BUY__MODE", mode.as_str().into()),
            ("APP_MYSQL__DATABASE", DATABASE.into()),
            ("APP_REDIS__KEY_PREFIX", KEY_PREFIX.into()),
            ("APP_ROCKETMQ__ORDER_TOPIC", ORDER_TOPIC.into()),
            ("APP_ROCKETMQ__PRODUCER_GROUP", format!("seckill-bench-producer-{}", mode.as_str())),
            ("APP_HTTP__ADMIN_TOKEN", self.admin_token.clone()),
            ("APP_HTTP__EDGE_SECRET", self.edge_secret.clone()),
        ]
    }

    fn log_path(&self, mode: BuyMode) -> PathBuf {
        self.logs.join(format!("bench-origin-{}.log", mode.as_str()))
    }

    fn open_log(&self, mode: BuyMode, what: &str) -> anyhow::Result<File> {
        std::fs::create_dir_all(&self.logs)?;
        let path = self.log_path(mode);
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("open {}", path.display()))?;
        writeln!(log, "==== seckill-bench: {what} at {} ====", chrono::Utc::now().to_rfc3339())?;
        Ok(log)
    }

    /// `seckill-origin migrate` with the bench settings: creates the bench database if missing.
    pub(crate) fn migrate(&self) -> anyhow::Result<()> {
        let mode = BuyMode::Batched;
        let log = self.open_log(mode, "migrate")?;
        let status = Command::new(&self.binary)
            .arg("migrate")
            .envs(self.overrides(mode, 0))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .status()
            .with_context(|| format!("run {} migrate", self.binary.display()))?;
        if !status.success() {
            bail!("seckill-origin migrate failed ({status}):\n{}", tail(&self.log_path(mode), 15));
        }
        Ok(())
    }

    /// Starts `seckill-origin serve` in `mode` on `port` and waits until `/health` says 200.
    pub(crate) async fn start(&self, mode: BuyMode, port: u16) -> anyhow::Result<BenchOrigin> {
        self.start_with(mode, port, &[]).await
    }

    /// [`OriginConfig::start`] with more `APP_*` settings (`extra`), e.g. strict durability.
    pub(crate) async fn start_with(
        &self,
        mode: BuyMode,
        port: u16,
        extra: &[(&'static str, String)],
    ) -> anyhow::Result<BenchOrigin> {
        let log = self.open_log(mode, &format!("serve, mode {}, port {port}, {extra:?}", mode.as_str()))?;
        let mut command = Command::new(&self.binary);
        command
            .arg("serve")
            .envs(self.overrides(mode, port))
            .envs(extra.iter().cloned())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own process group: a Ctrl-C in the terminal reaches the bench only, and the
            // bench stops its origins in order.
            .process_group(0);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        #[expect(unsafe_code, reason = "pre_exec is the only way to set the death signal before exec")]
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(std::io::Error::from)?;
                Ok(())
            });
        }
        let child = command.spawn().with_context(|| format!("start {} serve", self.binary.display()))?;
        interrupt::register_child(child.id());
        let url = format!("http://127.0.0.1:{port}");
        let mut origin = BenchOrigin {
            mode,
            admin: Admin::new(&url, &self.admin_token)?,
            url,
            secret: self.edge_secret.clone(),
            log: self.log_path(mode),
            child: Some(child),
        };
        origin.wait_healthy(Duration::from_secs(90)).await?;
        Ok(origin)
    }
}

/// A running bench origin. Dropping it stops it.
pub(crate) struct BenchOrigin {
    pub mode: BuyMode,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    pub admin: Admin,
    /// Its `x-seckill-edge-secret`.
    pub secret: String,
    log: PathBuf,
    child: Option<Child>,
}

impl BenchOrigin {
    async fn wait_healthy(&mut self, limit: Duration) -> anyhow::Result<()> {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
        let start = Instant::now();
        let mut last = String::from("no answer yet");
        while start.elapsed() < limit {
            interrupt::check()?;
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    bail!(
                        "the bench origin ({}) exited with {status} before it was healthy; {}:\n{}",
                        self.mode.as_str(),
                        self.log.display(),
                        tail(&self.log, 15)
                    );
                }
            }
            match client.get(format!("{}/health", self.url)).send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => last = format!("{} {}", r.status(), r.text().await.unwrap_or_default()),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        bail!(
            "the bench origin ({}) at {} was not healthy within {}s (last: {last}); see {}",
            self.mode.as_str(),
            self.url,
            limit.as_secs(),
            self.log.display()
        )
    }

    /// Stops it (SIGTERM, up to 20 s for a graceful exit, then SIGKILL) and returns how it ended.
    pub(crate) async fn stop(mut self) -> anyhow::Result<Option<ExitStatus>> {
        let child = self.child.take();
        Ok(tokio::task::spawn_blocking(move || child.map(stop_child)).await?)
    }
}

impl Drop for BenchOrigin {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            stop_child(child);
        }
    }
}

fn stop_child(mut child: Child) -> ExitStatus {
    let pid = Pid::from_raw(child.id() as i32);
    if let Ok(Some(status)) = child.try_wait() {
        interrupt::forget_child(child.id());
        return status;
    }
    let _ = kill(pid, Signal::SIGTERM);
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() < Duration::from_secs(20) => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                break child.wait().unwrap_or_else(|_| std::os::unix::process::ExitStatusExt::from_raw(9));
            }
        }
    };
    interrupt::forget_child(child.id());
    status
}

/// A free TCP port on 127.0.0.1, trying `from`, `from + 1`, ... (then any).
pub(crate) fn free_port(from: u16, taken: &[u16]) -> u16 {
    (from..from.saturating_add(200))
        .filter(|p| !taken.contains(p))
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .or_else(|| std::net::TcpListener::bind(("127.0.0.1", 0)).ok()?.local_addr().ok().map(|a| a.port()))
        .unwrap_or(from)
}

/// The last `n` lines of a log file.
pub(crate) fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
