//! The origin as a process of its own (`seckill-origin`, the binary `make up` builds), run
//! with a test app's settings: for tests that kill it -9, restart it, or run its commands.

use std::path::PathBuf;
use std::time::Duration;

use seckill_origin::configuration::{self, Settings};

use crate::wait_until;

/// `seckill-origin serve` or `consume` running as its own process (the binary `make up`
/// builds), with the settings of a test app: for tests that kill and restart it.
#[derive(Debug)]
pub struct OriginProcess {
    child: Option<std::process::Child>,
    settings: Settings,
    command: &'static str,
    port: Option<u16>,
    log: PathBuf,
    /// `http://127.0.0.1:<port>` of a `serve` process; empty for `consume`.
    pub url: String,
}

impl OriginProcess {
    /// Starts `seckill-origin serve` on a free port with `settings` and waits for `/livez`.
    pub async fn start(settings: &Settings, log_name: &str) -> OriginProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Self::serve_on(settings, log_name, port).await
    }

    /// Starts `seckill-origin serve` on `port` and waits for `/livez`.
    pub async fn serve_on(settings: &Settings, log_name: &str, port: u16) -> OriginProcess {
        let mut process = Self::new(settings, log_name, "serve", Some(port));
        process.spawn();
        process.wait_live().await;
        process
    }

    /// Starts `seckill-origin consume` (the order writer and the canceller).
    pub fn consume(settings: &Settings, log_name: &str) -> OriginProcess {
        let mut process = Self::new(settings, log_name, "consume", None);
        process.spawn();
        process
    }

    fn new(settings: &Settings, log_name: &str, command: &'static str, port: Option<u16>) -> OriginProcess {
        let logs = std::env::var("SECKILL_LOGS").map(PathBuf::from).unwrap_or_else(|_| std::env::temp_dir());
        OriginProcess {
            child: None,
            settings: settings.clone(),
            command,
            port,
            log: logs.join(format!("{log_name}.log")),
            url: port.map(|p| format!("http://127.0.0.1:{p}")).unwrap_or_default(),
        }
    }

    fn spawn(&mut self) {
        // Appended to: a restarted process continues its predecessor's log.
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("process log file");
        let mut command = origin_command(&self.settings, &[self.command]);
        if let Some(port) = self.port {
            command.env("APP_HTTP__HOST", "127.0.0.1").env("APP_HTTP__PORT", port.to_string());
        }
        let child = command.stdout(log.try_clone().unwrap()).stderr(log).spawn().expect("start an origin process");
        self.child = Some(child);
    }

    async fn wait_live(&self) {
        let http = reqwest::Client::new();
        let url = &self.url;
        let up = wait_until(Duration::from_secs(60), || {
            let probe = http.get(format!("{url}/livez")).send();
            async move { probe.await.is_ok_and(|r| r.status() == 200) }
        })
        .await;
        assert!(up, "the origin process did not answer on {url} (log: {})", self.log.display());
    }

    /// SIGKILL: no shutdown, no flushing, nothing.
    pub fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill -9 an origin process");
            child.wait().expect("reap an origin process");
        }
    }

    /// Starts the process again with the same settings (and port); a `serve` process is
    /// waited for until it answers `/livez`.
    pub async fn restart(&mut self) {
        self.kill_9();
        self.spawn();
        if self.port.is_some() {
            self.wait_live().await;
        }
    }
}

impl Drop for OriginProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `seckill-origin ARGS` (the binary `make up` builds) with the settings of a test app in its
/// environment. The binary: `$SECKILL_ORIGIN_BIN`, else `$CARGO_TARGET_DIR/debug/seckill-origin`.
pub fn origin_command(settings: &Settings, args: &[&str]) -> std::process::Command {
    let bin = std::env::var("SECKILL_ORIGIN_BIN").map(PathBuf::from).unwrap_or_else(|_| {
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
        target.join("debug/seckill-origin")
    });
    assert!(bin.exists(), "no origin binary at {} (make up builds it; or set SECKILL_ORIGIN_BIN)", bin.display());
    let (s, mq) = (settings, &settings.rocketmq);
    let env: Vec<(&str, String)> = vec![
        ("APP_CONFIG_DIR", configuration::config_dir().display().to_string()),
        ("APP_HTTP__ADMIN_TOKEN", s.http.admin_token.clone()),
        ("APP_HTTP__EDGE_SECRET", s.http.edge_secret.clone()),
        ("APP_ENVIRONMENT", s.environment.clone()),
        ("APP_AUTH__LOCAL_LOGIN", s.auth.local_login.to_string()),
        ("APP_LOG__FORMAT", format!("{:?}", s.log.format).to_lowercase()),
        ("APP_AUTH__TOKEN_KEYS", s.auth.token_keys.clone()),
        ("APP_REDIS__URL", s.redis.url.clone()),
        ("APP_REDIS__CLUSTER_URLS", s.redis.cluster_urls.clone()),
        ("APP_REDIS__KEY_PREFIX", s.redis.key_prefix.clone()),
        ("APP_MYSQL__HOST", s.mysql.host.clone()),
        ("APP_MYSQL__PORT", s.mysql.port.to_string()),
        ("APP_MYSQL__USERNAME", s.mysql.username.clone()),
        ("APP_MYSQL__PASSWORD", s.mysql.password.clone()),
        ("APP_MYSQL__DATABASE", s.mysql.database.clone()),
        ("APP_ROCKETMQ__NAMESRV_ADDR", mq.namesrv_addr.clone()),
        ("APP_ROCKETMQ__ORDER_TOPIC", mq.order_topic.clone()),
        ("APP_ROCKETMQ__CANCEL_TOPIC", mq.cancel_topic.clone()),
        ("APP_ROCKETMQ__EVENT_TOPIC", mq.event_topic.clone()),
        ("APP_ROCKETMQ__PRODUCER_GROUP", format!("{}-process", mq.producer_group)),
        ("APP_ROCKETMQ__ORDER_WRITER_GROUP", mq.order_writer_group.clone()),
        ("APP_ROCKETMQ__CANCELLER_GROUP", mq.canceller_group.clone()),
        ("APP_ROCKETMQ__CANCEL_DELAY_LEVEL", mq.cancel_delay_level.to_string()),
        ("APP_ROCKETMQ__DELAY_LEVELS", mq.delay_levels.clone()),
        ("APP_ORDERS__PAY_TIMEOUT_SECS", s.orders.pay_timeout_secs.to_string()),
        ("APP_ORDERS__BACKSTOP_GRACE_SECS", s.orders.backstop_grace_secs.to_string()),
        ("APP_REDIS__FENCE_AUTO_HEAL", s.redis.fence_auto_heal.to_string()),
        ("APP_BUY__MODE", format!("{:?}", s.buy.mode).to_lowercase()),
        ("APP_BUY__SWEEP_AFTER_MS", s.buy.sweep_after_ms.to_string()),
        ("APP_CONSUMER__PORT", s.consumer.port.to_string()),
        ("RUST_LOG", "info,rocketmq_client_rust=warn,rocketmq_remoting=warn,rocketmq_transport=warn".into()),
    ];
    let mut command = std::process::Command::new(bin);
    command.args(args).envs(env);
    command
}
