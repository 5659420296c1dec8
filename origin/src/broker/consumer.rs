//! Push consumers (clustering) whose listeners run async handlers on the app's runtime.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};

use rocketmq_client_rust::{
    ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus, DefaultMQPushConsumer, MQPushConsumer,
    MessageListenerConcurrently, MessageQueueListener,
};
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_queue::MessageQueue;
use tokio::runtime::Handle;

use super::Messaging;

/// A handler's verdict on one message.
pub type Handled = Result<(), String>;
pub type HandlerFuture = Pin<Box<dyn Future<Output = Handled> + Send>>;
/// Handles one message. `Err` makes the broker redeliver it later (RocketMQ's reconsume
/// schedule: 10 s, 30 s, 1 min, ...), and after `max_reconsume_times` it goes to `%DLQ%<group>`.
pub type Handler = Arc<dyn Fn(MessageExt) -> HandlerFuture + Send + Sync>;

/// A handler's verdict on a batch: `Err` lists (index in the batch, reason) of the messages
/// that failed. The client retries a batch whole, so any failure sends every message of it
/// back; handlers must be idempotent (the ones that succeeded are found done next time).
pub type BatchHandled = Result<(), Vec<(usize, String)>>;
pub type BatchHandlerFuture = Pin<Box<dyn Future<Output = BatchHandled> + Send>>;
/// Handles up to `batch` messages of one queue at once.
pub type BatchHandler = Arc<dyn Fn(Vec<MessageExt>) -> BatchHandlerFuture + Send + Sync>;

/// A running consumer; dropping it does not stop it, call [`Consumer::shutdown`].
pub struct Consumer {
    inner: DefaultMQPushConsumer,
    group: String,
    share: Arc<QueueShare>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer").field("group", &self.group).finish_non_exhaustive()
    }
}

/// The queues of a consumer's topics that the group's last rebalance gave this instance. A
/// member with none is idle: the group has more members than the topics have queues, or the
/// member has not been through a rebalance yet (a new member waits for one before it pulls).
#[derive(Debug, Default)]
pub struct QueueShare {
    /// Topic → (queues assigned to this instance, queues of the topic on every broker).
    by_topic: Mutex<HashMap<String, (usize, usize)>>,
}

impl QueueShare {
    /// (assigned to this instance, all), summed over the subscribed topics.
    pub fn get(&self) -> (usize, usize) {
        let map = self.by_topic.lock().expect("queue share lock");
        map.values().fold((0, 0), |(a, n), (mine, all)| (a + mine, n + all))
    }
}

/// Records each rebalance's outcome for the subscribed topics (not the group's retry topic,
/// which the client subscribes on its own).
struct ShareListener {
    share: Arc<QueueShare>,
    topics: Vec<String>,
}

impl MessageQueueListener for ShareListener {
    fn message_queue_changed(&self, topic: &str, all: &HashSet<MessageQueue>, assigned: &HashSet<MessageQueue>) {
        if self.topics.iter().any(|t| t == topic) {
            self.share
                .by_topic
                .lock()
                .expect("queue share lock")
                .insert(topic.to_string(), (assigned.len(), all.len()));
        }
    }
}

impl Consumer {
    /// Subscribes `group` to every tag of `topic` and starts consuming from the first offset
    /// the group has not consumed (a new group starts at the beginning of the topic).
    pub async fn start(messaging: &Messaging, group: &str, topic: &str, handler: Handler) -> anyhow::Result<Self> {
        Self::start_many(messaging, group, &[topic], handler).await
    }

    /// Like [`Consumer::start`], subscribed to several topics.
    pub async fn start_many(
        messaging: &Messaging,
        group: &str,
        topics: &[&str],
        handler: Handler,
    ) -> anyhow::Result<Self> {
        let batch: BatchHandler = Arc::new(move |msgs: Vec<MessageExt>| {
            let handler = Arc::clone(&handler);
            Box::pin(async move {
                for (i, msg) in msgs.into_iter().enumerate() {
                    handler(msg).await.map_err(|reason| vec![(i, reason)])?;
                }
                Ok(())
            })
        });
        Self::start_batched(messaging, group, topics, 1, 0, batch).await
    }

    /// Like [`Consumer::start_many`], handing the handler up to `batch` messages at a time (at
    /// most 1,024), and pulling again `pull_interval_ms` (at most 1,000) after a pull that found
    /// messages (0: at once).
    pub async fn start_batched(
        messaging: &Messaging,
        group: &str,
        topics: &[&str],
        batch: u32,
        pull_interval_ms: u32,
        handler: BatchHandler,
    ) -> anyhow::Result<Self> {
        let settings = messaging.settings();
        let batch = batch.clamp(1, 1024);
        let pull_interval_ms = pull_interval_ms.min(1000);
        let share = Arc::new(QueueShare::default());
        let listener =
            ShareListener { share: Arc::clone(&share), topics: topics.iter().map(|t| t.to_string()).collect() };
        let mut inner = DefaultMQPushConsumer::builder(messaging.client_runtime())
            .client_config(messaging.client_config())
            .consumer_group(group.to_string())
            .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
            .max_reconsume_times(settings.max_reconsume_times)
            .consume_message_batch_max_size(batch)
            // Pull several batches' worth at once: the broker caps one pull (its TOML raises
            // maxTransferCountOnMessageInMemory for that).
            .pull_batch_size((batch * 2).clamp(32, 1024))
            .pull_interval(u64::from(pull_interval_ms))
            .consume_thread_min(8)
            .consume_thread_max(32)
            .message_queue_listener(Some(Arc::new(listener)))
            .build();
        for topic in topics {
            inner.subscribe(*topic, "*").await.map_err(|e| anyhow::anyhow!("subscribe {group} to {topic}: {e}"))?;
        }
        inner.register_message_listener_concurrently(Listener {
            handler,
            app: Handle::current(),
            group: group.to_string(),
        });
        inner.start().await.map_err(|e| anyhow::anyhow!("start consumer {group}: {e}"))?;
        Ok(Self { inner, group: group.to_string(), share })
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    /// This instance's share of the group's queues, as the last rebalance left it.
    pub fn queue_share(&self) -> Arc<QueueShare> {
        Arc::clone(&self.share)
    }

    pub async fn shutdown(&mut self) {
        self.inner.shutdown().await;
    }
}

struct Listener {
    handler: BatchHandler,
    app: Handle,
    group: String,
}

impl MessageListenerConcurrently for Listener {
    fn consume_message(
        &self,
        msgs: &[&MessageExt],
        _context: &ConsumeConcurrentlyContext,
    ) -> rocketmq_client_rust::ClientResult<ConsumeConcurrentlyStatus> {
        let owned: Vec<MessageExt> = msgs.iter().map(|m| (*m).clone()).collect();
        match self.app.block_on((self.handler)(owned)) {
            Ok(()) => {
                for msg in msgs {
                    forget_failure(&failure_key(&self.group, msg));
                }
                Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
            }
            Err(failed) => {
                for (i, reason) in failed {
                    let Some(msg) = msgs.get(i) else { continue };
                    remember_failure(failure_key(&self.group, msg), &reason);
                    tracing::warn!(
                        group = %self.group,
                        msg_id = %msg.msg_id(),
                        reconsumed = msg.reconsume_times(),
                        %reason,
                        "message failed; the broker will redeliver it"
                    );
                }
                Ok(ConsumeConcurrentlyStatus::ReconsumeLater)
            }
        }
    }
}

/// Why each message last failed, by consumer group and message key, so the dead-letter keeper
/// (in the same process) can say why a message ended in `%DLQ%<group>`.
fn failures() -> &'static Mutex<HashMap<String, String>> {
    static FAILURES: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    FAILURES.get_or_init(Default::default)
}

fn failure_key(group: &str, msg: &MessageExt) -> String {
    use rocketmq_model::common::message::MessageTrait;
    let key = msg.get_keys().map(|k| k.to_string()).unwrap_or_else(|| msg.msg_id().to_string());
    format!("{group}/{key}")
}

fn remember_failure(key: String, reason: &str) {
    let mut map = failures().lock().expect("failure log lock");
    // Bounded: under a long outage thousands fail; the newest reasons are the useful ones.
    if map.len() >= 10_000 {
        map.clear();
    }
    map.insert(key, reason.chars().take(500).collect());
}

fn forget_failure(key: &str) {
    failures().lock().expect("failure log lock").remove(key);
}

/// The last failure reason this process saw for `msg` (same keys) in consumer `group`.
pub fn last_failure(group: &str, msg: &MessageExt) -> Option<String> {
    failures().lock().expect("failure log lock").get(&failure_key(group, msg)).cloned()
}
