//! Push consumers (clustering) whose listeners run async handlers on the app's runtime.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};

use rocketmq_client_rust::{
    ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus, DefaultMQPushConsumer, MQPushConsumer,
    MessageListenerConcurrently,
};
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::common::message::message_ext::MessageExt;
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
        Self::start_batched(messaging, group, topics, 1, batch).await
    }

    /// Like [`Consumer::start_many`], handing the handler up to `batch` messages at a time.
    pub async fn start_batched(
        messaging: &Messaging,
        group: &str,
        topics: &[&str],
        batch: u32,
        handler: BatchHandler,
    ) -> anyhow::Result<Self> {
        let settings = messaging.settings();
        let batch = batch.clamp(1, 1024);
        let mut inner = DefaultMQPushConsumer::builder(messaging.client_runtime())
            .client_config(messaging.client_config())
            .consumer_group(group.to_string())
            .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
            .max_reconsume_times(settings.max_reconsume_times)
            .consume_message_batch_max_size(batch)
            // Pull several batches' worth at once: the broker caps one pull (its TOML raises
            // maxTransferCountOnMessageInMemory for that).
            .pull_batch_size((batch * 2).clamp(32, 1024))
            .consume_thread_min(8)
            .consume_thread_max(32)
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
        Ok(Self { inner })
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
