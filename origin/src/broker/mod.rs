//! RocketMQ: one client runtime per process, the buy path's transaction producer, a plain
//! producer for follow-up messages, and push consumers that hand messages to async handlers.
//!
//! The client calls listeners synchronously on its own runtime's blocking lane; our handlers
//! are async on the application's runtime, so the glue `block_on`s them there.

pub mod cluster;
pub mod consumer;
pub mod health;
pub mod lag;
pub mod sender;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cheetah_string::CheetahString;
use rocketmq_client_rust::ClientConfig;
use rocketmq_client_rust::{ClientRuntime, ClientRuntimeConfig};
use rocketmq_runtime::{RuntimeConfig, RuntimeOwner};

use crate::configuration::RocketMqSettings;

/// Owns the RocketMQ client's runtime for this process.
pub struct Messaging {
    // Field order matters: the client runtime must go before the owner that runs it.
    runtime: Arc<ClientRuntime>,
    _owner: RuntimeOwner,
    settings: RocketMqSettings,
    instance: String,
}

impl std::fmt::Debug for Messaging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Messaging").field("instance", &self.instance).finish_non_exhaustive()
    }
}

static INSTANCES: AtomicU64 = AtomicU64::new(0);

impl Messaging {
    pub fn start(settings: &RocketMqSettings) -> anyhow::Result<Self> {
        // The default profile lets 2x cores listener calls run at once and queues 8x cores;
        // a burst of buys (each one a local-transaction call) overflows that and fails.
        let mut config = RuntimeConfig::default()
            .with_max_blocking_threads(256)
            .map_err(|e| anyhow::anyhow!("rocketmq runtime config: {e:?}"))?;
        config.thread_name = "rocketmq-client".into();
        config.blocking_lane_policies.metadata_io.max_concurrency = 128;
        config.blocking_lane_policies.metadata_io.max_queue_depth = 8192;
        let owner = RuntimeOwner::plan(config)
            .map_err(|e| anyhow::anyhow!("rocketmq runtime config: {e:?}"))?
            .build()
            .map_err(|e| anyhow::anyhow!("rocketmq runtime: {e}"))?;
        let runtime = ClientRuntime::try_new(
            owner.root_context().component("seckill"),
            ClientRuntimeConfig::default(),
            rocketmq_observability::TelemetryHandle::noop(),
        )
        .map_err(|e| anyhow::anyhow!("rocketmq client runtime: {e}"))?;
        // Clients in one process that share an instance name share one connection set; each
        // Messaging (one per app, several in tests) gets its own.
        let instance = format!("seckill-{}-{}", std::process::id(), INSTANCES.fetch_add(1, Ordering::Relaxed));
        Ok(Self { runtime, _owner: owner, settings: settings.clone(), instance })
    }

    pub fn client_runtime(&self) -> Arc<ClientRuntime> {
        Arc::clone(&self.runtime)
    }

    pub fn settings(&self) -> &RocketMqSettings {
        &self.settings
    }

    /// A started admin client of its own (named `purpose-<pid>-<n>`) with this process's client
    /// settings; call `shutdown` when done. Each is its own: two admin clients sharing an
    /// instance name would share (and the first to finish would shut down) one connection set.
    pub async fn admin(&self, purpose: &str) -> anyhow::Result<rocketmq_client_rust::DefaultMQAdminExt> {
        static ADMINS: AtomicU64 = AtomicU64::new(0);
        let name = format!("{purpose}-{}-{}", std::process::id(), ADMINS.fetch_add(1, Ordering::Relaxed));
        let mut admin = rocketmq_client_rust::DefaultMQAdminExt::with_admin_ext_group_and_timeout(
            self.client_runtime(),
            name.clone(),
            std::time::Duration::from_secs(3),
        );
        *admin.client_config_mut() = self.client_config();
        admin.client_config_mut().set_instance_name(CheetahString::from_string(name));
        admin.start().await.map_err(|e| anyhow::anyhow!("cannot start a broker admin client: {e}"))?;
        Ok(admin)
    }

    /// Client settings every producer and consumer of this process uses.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::default();
        config.set_namesrv_addr(CheetahString::from_string(self.settings.namesrv_addr.clone()));
        config.set_instance_name(CheetahString::from_string(self.instance.clone()));
        // Pick up new topic routes and brokers that come back within 10 s (the client minimum), not 30 s.
        config.set_poll_name_server_interval(10_000);
        config.set_heartbeat_broker_interval(10_000);
        // Consumed offsets reach the broker within a second (the client's minimum; 5 s by
        // default): the order queue's lag, which a frozen sale's heal waits to read 0, is that
        // much fresher.
        config.set_persist_consumer_offset_interval(1_000);
        config
    }
}

/// The topics the system uses, created on the broker if missing: the three business topics,
/// the health-probe topic, and the dead-letter topics of our consumer groups (so the keeper can subscribe at once).
pub fn topics(settings: &RocketMqSettings) -> Vec<String> {
    vec![
        settings.order_topic.clone(),
        settings.cancel_topic.clone(),
        settings.event_topic.clone(),
        health_topic(settings),
        dlq_topic(&settings.order_writer_group),
        dlq_topic(&settings.canceller_group),
    ]
}

/// The prefix of a dead-letter topic: the broker moves a message a group gave up on to
/// `%DLQ%<group>`.
pub const DLQ_PREFIX: &str = "%DLQ%";

/// The DLQ topic of a consumer group.
pub fn dlq_topic(group: &str) -> String {
    format!("{DLQ_PREFIX}{group}")
}

/// Where `/health` sends a tiny probe message: a send the broker stored is the only proof that
/// it is reachable (the name server keeps routing to a dead broker until its heartbeat expires).
/// Nobody consumes it; the broker's retention removes the probes.
pub fn health_topic(settings: &RocketMqSettings) -> String {
    format!("{}-health", settings.order_topic)
}
