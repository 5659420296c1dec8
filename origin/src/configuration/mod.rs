//! Settings: `config/base.toml`, then `config/<APP_ENVIRONMENT>.toml` if it exists, then
//! `APP_<SECTION>__<KEY>` environment variables, later sources winning.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sqlx::mysql::MySqlConnectOptions;

mod checks;
pub use checks::{DEV_ADMIN_TOKEN, DEV_EDGE_SECRET, LOCAL_ENVIRONMENT, MIN_SECRET_BYTES};

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// `APP_ENVIRONMENT` (required, no default): which `config/<environment>.toml` was read.
    /// Only `local` (what `make up` and the tests run) may keep the development secrets or turn
    /// on the local login; a deployment that forgets to name itself does not start.
    pub environment: String,
    pub http: HttpSettings,
    pub auth: AuthSettings,
    pub redis: RedisSettings,
    pub mysql: MySqlSettings,
    pub rocketmq: RocketMqSettings,
    pub orders: OrderSettings,
    pub buy: BuySettings,
    pub consumer: ConsumerSettings,
    pub log: LogSettings,
}

/// How the process logs (the level is `RUST_LOG`'s).
#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, the request's span (with its `request_id`) included.
    Json,
}

/// Signed identity (see `seckill_protocol::token`).
#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    /// `kid:secret[,kid:secret...]`: tokens are verified with any of them; the first signs the
    /// local login's tokens. The edge's `TOKEN_KEYS` secret must hold the same keys.
    pub token_keys: String,
    /// The `aud` every token must carry.
    pub audience: String,
    /// Lifetime of a local login's token (at most 3600 s).
    pub login_token_secs: u64,
    /// `POST /api/login`, which signs a token for any user id it is sent: off unless switched
    /// on, and refused outside the local environment (the development stack turns it on).
    #[serde(default)]
    pub local_login: bool,
}

/// The `consume` process's own HTTP listener and lag watch.
#[derive(Debug, Clone, Deserialize)]
pub struct ConsumerSettings {
    /// `consume` answers `GET /metrics` and `/livez` here (0 = any free port).
    pub host: String,
    pub port: u16,
    /// How often `consume` reads its groups' lag from the broker (`seckill_consumer_lag_messages`).
    pub lag_interval_ms: u64,
}

/// How the buy path queues an accepted order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuyMode {
    /// One Lua call takes stock and writes the order to a Redis outbox; a relay sends the
    /// outbox to the broker in group-committed batches. QUEUED once the broker stored the batch.
    Batched,
    /// One RocketMQ transaction message per buy, with the Lua call as its local transaction.
    Transaction,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BuySettings {
    pub mode: BuyMode,
    /// Most orders one relay batch carries (and one Lua call decides).
    pub batch_max: usize,
    /// Relay batches (and Lua calls) in flight at once per origin.
    pub batches_in_flight: usize,
    /// Outbox entries older than this (Redis clock) belong to the sweeper; younger ones to the
    /// relay that wrote them. Must exceed `rocketmq.send_timeout_ms` with room to spare.
    pub sweep_after_ms: u64,
    /// How often the sweeper looks for old outbox entries.
    pub sweep_interval_ms: u64,
    /// How long an origin answers SOLD_OUT for a product from memory after Redis said so.
    pub sold_out_cache_ms: u64,
    /// Length of the lease on this origin's order-number node id (`tb_origin_node`), renewed
    /// every third of it. A dead origin's node is free again after this long.
    pub node_lease_ms: u64,
    /// Most buys waiting for the decider at once; past it a buy is answered 503 `BUSY` with
    /// nothing taken, so a stalled Redis cannot pile up work to run long after its buyers left.
    #[serde(default = "default_queue_max")]
    pub queue_max: usize,
    /// A buy that waited this long for its turn is answered 503 `BUSY` without running its
    /// script: its buyer (or the edge, `ORIGIN_TIMEOUT_MS`) has stopped waiting.
    #[serde(default = "default_queue_timeout_ms")]
    pub queue_timeout_ms: u64,
}

fn default_queue_max() -> usize {
    8192
}

fn default_queue_timeout_ms() -> u64 {
    5_000
}

#[derive(Debug, Clone, Deserialize)]
pub struct HttpSettings {
    pub host: String,
    pub port: u16,
    pub admin_token: String,
    /// The secret the edge sends in `x-seckill-edge-secret`; `/api/*` needs it. Never empty.
    pub edge_secret: String,
    pub sold_out_flag_ttl_secs: u64,
    pub buyer_flag_ttl_secs: u64,
    /// How long a client may take to send a request's headers before its connection closes.
    pub header_read_timeout_ms: u64,
    /// Connections served at once; more are answered 503 and closed (`http::serve`).
    pub max_connections: usize,
    /// Requests in the handlers at once; more are answered 503 at once, nothing done.
    pub max_in_flight: usize,
    /// A request still unanswered after this is answered 504 `ORIGIN_TIMEOUT` (outcome unknown).
    pub request_deadline_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RedisSettings {
    pub url: String,
    /// Seed nodes of a Redis Cluster, comma-separated (`redis://127.0.0.1:7001,...`); when not
    /// empty the origin uses the cluster and ignores `url`.
    #[serde(default)]
    pub cluster_urls: String,
    pub key_prefix: String,
    /// How often each `serve` process checks that Redis still holds what MySQL recorded for
    /// every loaded sale, and that the server did not restart or fail over (`fencing`).
    #[serde(default = "default_fence_check_ms")]
    pub fence_check_ms: u64,
    /// Whether the origins heal a frozen sale themselves (a reconcile once the order queue
    /// has drained); false leaves it frozen for an operator's reconcile.
    #[serde(default = "default_true")]
    pub fence_auto_heal: bool,
    /// Strict durability with replicas: how many replicas must hold a buy's (and a loan's)
    /// write before it is answered QUEUED or the loan is passed on (Redis `WAIT`). 0 = answer
    /// once the master has it (a failover to a replica that had not received it is then
    /// fenced and healed, with refusals; see docs/DESIGN.md "When Redis loses writes").
    #[serde(default)]
    pub replica_acks: u32,
    /// How long (ms) a buy waits for those replicas; past it the buy is answered 202 PENDING
    /// and its order is left to the sweeper, which sends it only if the write survived.
    #[serde(default = "default_replica_ack_timeout_ms")]
    pub replica_ack_timeout_ms: u64,
}

fn default_replica_ack_timeout_ms() -> u64 {
    200
}

fn default_true() -> bool {
    true
}

fn default_fence_check_ms() -> u64 {
    250
}

#[derive(Debug, Clone, Deserialize)]
pub struct MySqlSettings {
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: String,
    pub database: String,
    pub max_connections: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RocketMqSettings {
    pub namesrv_addr: String,
    pub order_topic: String,
    pub cancel_topic: String,
    pub event_topic: String,
    pub producer_group: String,
    pub order_writer_group: String,
    pub canceller_group: String,
    pub cancel_delay_level: i32,
    pub max_reconsume_times: i32,
    pub send_timeout_ms: u32,
    pub queue_nums: i32,
    /// Most order messages the writer takes in one MySQL transaction.
    pub writer_batch_max: u32,
    /// How long the writer waits after a pull that found orders before it pulls again (ms; a
    /// pull that finds none waits at the broker for the next order, so the first order after a
    /// quiet spell is not held). Each pull's orders are one transaction, and every one of them
    /// updates the sale's row: pulling at once would write an order or two per transaction, and
    /// those transactions, one at a time on that row, would fall behind at a few thousand
    /// orders a second.
    #[serde(default = "default_writer_pull_interval_ms")]
    pub writer_pull_interval_ms: u32,
    /// The broker's delay table (its `messageDelayLevel`), level 1 first: what each delay
    /// level waits, so start-up can refuse a cancel level shorter than the pay timeout.
    #[serde(default = "default_delay_levels")]
    pub delay_levels: String,
    /// The delay level at which the canceller sends again the orders of a cancel message it
    /// could not finish (or that arrived before the order expired).
    #[serde(default = "default_cancel_retry_delay_level")]
    pub cancel_retry_delay_level: i32,
}

/// RocketMQ's default `messageDelayLevel`.
pub const DEFAULT_DELAY_LEVELS: &str = "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h";

fn default_writer_pull_interval_ms() -> u32 {
    30
}

fn default_delay_levels() -> String {
    DEFAULT_DELAY_LEVELS.into()
}

fn default_cancel_retry_delay_level() -> i32 {
    3
}

impl RocketMqSettings {
    /// How long the broker holds a message sent at delay `level` (1 = the table's first),
    /// read from `delay_levels` ("1s 5s 10s ... 2h"; units s, m, h, d).
    pub fn delay_of(&self, level: i32) -> Result<Duration, String> {
        let entry = usize::try_from(level)
            .ok()
            .and_then(|l| l.checked_sub(1))
            .and_then(|i| self.delay_levels.split_whitespace().nth(i))
            .ok_or_else(|| format!("rocketmq.delay_levels has no level {level}: {:?}", self.delay_levels))?;
        let (number, unit) = entry.split_at(entry.find(|c: char| !c.is_ascii_digit()).unwrap_or(entry.len()));
        let n: u64 = number.parse().map_err(|_| format!("rocketmq.delay_levels: bad delay {entry:?}"))?;
        let secs = match unit {
            "s" => n,
            "m" => n * 60,
            "h" => n * 3600,
            "d" => n * 86_400,
            _ => return Err(format!("rocketmq.delay_levels: bad unit in {entry:?} (s, m, h or d)")),
        };
        Ok(Duration::from_secs(secs))
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct OrderSettings {
    pub pay_timeout_secs: u64,
    /// The unpaid-order backstop (in `consume`) cancels UNPAID orders this long past their
    /// `expire_at`: those whose delayed cancel was lost, dead-lettered or is late.
    #[serde(default = "default_backstop_grace_secs")]
    pub backstop_grace_secs: u64,
    /// How often the backstop looks.
    #[serde(default = "default_backstop_interval_ms")]
    pub backstop_interval_ms: u64,
}

fn default_backstop_grace_secs() -> u64 {
    60
}

fn default_backstop_interval_ms() -> u64 {
    5_000
}

impl MySqlSettings {
    /// Connection options for the configured database.
    pub fn connect_options(&self) -> MySqlConnectOptions {
        self.server_options().database(&self.database)
    }

    /// Connection options without a database: for creating one.
    pub fn server_options(&self) -> MySqlConnectOptions {
        MySqlConnectOptions::new().host(&self.host).port(self.port).username(&self.username).password(&self.password)
    }
}

/// The folder holding `base.toml`: `$APP_CONFIG_DIR`, else `./config`, else the one next to
/// this crate (so tests and `cargo run` work from anywhere in the workspace).
pub fn config_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("APP_CONFIG_DIR") {
        return PathBuf::from(dir);
    }
    let local = PathBuf::from("config");
    if local.join("base.toml").exists() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config")
}

/// Loads the settings from [`config_dir`] and the environment. `APP_ENVIRONMENT` must be set:
/// a production deployment that forgot it would otherwise run as `local`, with the public
/// development secrets.
pub fn load() -> Result<Settings, config::ConfigError> {
    let environment = std::env::var("APP_ENVIRONMENT").map_err(|_| {
        config::ConfigError::Message(format!(
            "APP_ENVIRONMENT is not set: name the environment, {LOCAL_ENVIRONMENT:?} for development \
             (what `make up` sets) or the name of a config/<environment>.toml such as \"production\""
        ))
    })?;
    load_from(&config_dir(), &environment)
}

/// The settings of `environment` from `dir`, then the `APP_` variables.
pub fn load_from(dir: &Path, environment: &str) -> Result<Settings, config::ConfigError> {
    if environment.trim().is_empty() {
        return Err(config::ConfigError::Message("APP_ENVIRONMENT is empty".into()));
    }
    config::Config::builder()
        .set_override("environment", environment)?
        .add_source(config::File::from(dir.join("base.toml")))
        .add_source(config::File::from(dir.join(format!("{environment}.toml"))).required(false))
        .add_source(config::Environment::with_prefix("APP").prefix_separator("_").separator("__").try_parsing(true))
        .build()?
        .try_deserialize()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `config/base.toml` as the local environment reads it.
    pub(crate) fn settings() -> Settings {
        load_from(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../config"), LOCAL_ENVIRONMENT).expect("base.toml loads")
    }

    #[test]
    fn an_empty_environment_is_refused() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        assert!(load_from(&dir, " ").unwrap_err().to_string().contains("APP_ENVIRONMENT"));
    }

    #[test]
    fn delay_levels_read_as_the_broker_reads_them() {
        let mut s = settings();
        s.rocketmq.delay_levels = DEFAULT_DELAY_LEVELS.into();
        assert_eq!(s.rocketmq.delay_of(1), Ok(Duration::from_secs(1)));
        assert_eq!(s.rocketmq.delay_of(16), Ok(Duration::from_secs(1800)));
        assert_eq!(s.rocketmq.delay_of(18), Ok(Duration::from_secs(7200)));
        assert!(s.rocketmq.delay_of(19).unwrap_err().contains("no level 19"));
        assert!(s.rocketmq.delay_of(0).is_err());
        s.rocketmq.delay_levels = "1s 2x".into();
        assert!(s.rocketmq.delay_of(2).unwrap_err().contains("bad unit"));
    }
}
