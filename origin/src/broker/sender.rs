//! A plain producer: single messages that follow a state change (delayed cancels, order events,
//! replays) and batches (the buy path's relay and sweeper).

use rocketmq_client_rust::{ClientError, DefaultMQProducer, SendResult, SendStatus};
use rocketmq_model::common::message::message_single::Message;

use super::Messaging;

/// Why a send did not end in SEND_OK, split by what the caller may conclude.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// The broker surely did not store the message(s): refused before anything was written
    /// (no route, connection refused, circuit open, client queue full) or answered with an error.
    #[error("not sent: {0}")]
    NotSent(String),
    /// The broker may or may not have stored them (a timeout, a connection lost mid-request,
    /// a stored message whose flush was not confirmed). Never treat this as "nothing happened".
    #[error("outcome unknown: {0}")]
    Unknown(String),
}

impl SendError {
    pub fn is_not_sent(&self) -> bool {
        matches!(self, SendError::NotSent(_))
    }
}

/// Codes of client errors raised before a request reached the broker, or of a broker that
/// answered with a refusal. Anything else (timeouts above all) leaves the outcome unknown.
const SURELY_NOT_SENT: &[&str] = &[
    "transport.connection.failed",
    "transport.connection.timeout",
    "transport.admission.queue_saturated",
    "transport.dns.failed",
    "transport.endpoint.invalid",
    "transport.remote.rate_limited",
    "transport.start.failed",
    "route.",
    "broker.lookup.not_found",
    "broker.topic.not_found",
    "broker.message.",
    "rpc.broker_address.not_found",
    "client.lifecycle.",
    "core.argument.invalid",
];

fn classify(e: &ClientError) -> SendError {
    let code = e.descriptor().code().as_str();
    let text = format!("{e} [{code}]");
    if e.broker_response_code().is_some() || SURELY_NOT_SENT.iter().any(|p| code.starts_with(p)) {
        SendError::NotSent(text)
    } else {
        SendError::Unknown(text)
    }
}

fn check(result: Result<Option<SendResult>, ClientError>) -> Result<(), SendError> {
    match result {
        Ok(Some(r)) if r.send_status == SendStatus::SendOk => Ok(()),
        // Stored, but the flush or the replica did not confirm in time.
        Ok(Some(r)) => Err(SendError::Unknown(format!("broker answered {:?}", r.send_status))),
        Ok(None) => Err(SendError::Unknown("no send result".into())),
        Err(e) => Err(classify(&e)),
    }
}

/// One message of a batch: key (the order number) and body.
pub struct Outgoing {
    pub key: String,
    pub body: Vec<u8>,
}

pub struct Sender {
    producer: DefaultMQProducer,
}

impl Sender {
    /// A producer in `group` that retries a failed single send once more (cancels, events).
    pub async fn start(messaging: &Messaging, group: &str) -> anyhow::Result<Self> {
        Self::start_with_retries(messaging, group, 2).await
    }

    /// A producer whose sends are tried `retries + 1` times by the client. The buy path's
    /// relay uses 0: a retry after an ambiguous first attempt would hide that ambiguity behind
    /// the second attempt's (maybe clean) failure.
    pub async fn start_with_retries(messaging: &Messaging, group: &str, retries: u32) -> anyhow::Result<Self> {
        let settings = messaging.settings();
        let mut producer = DefaultMQProducer::builder(messaging.client_runtime())
            .client_config(messaging.client_config())
            .producer_group(group.to_string())
            .send_msg_timeout(settings.send_timeout_ms)
            .retry_times_when_send_failed(retries)
            .build();
        producer.start().await.map_err(|e| anyhow::anyhow!("start producer {group}: {e}"))?;
        // Topics are provisioned here rather than left to auto-creation, so consumers find
        // their routes before the first message arrives.
        for topic in super::topics(settings) {
            if let Err(e) = producer.create_topic("TBW102", &topic, settings.queue_nums, Default::default()).await {
                tracing::warn!(%topic, error = %e, "could not create topic; relying on auto-creation");
            }
        }
        Ok(Self { producer })
    }

    /// Sends `body` to `topic` with `tag` and `key`, delayed by `delay_level` if it is > 0.
    /// Returns once the broker stored it.
    pub async fn send(
        &self,
        topic: &str,
        tag: &str,
        key: &str,
        body: Vec<u8>,
        delay_level: i32,
    ) -> Result<(), SendError> {
        let mut builder = Message::builder().topic(topic).tags(tag).key(key).body(body);
        if delay_level > 0 {
            builder = builder.delay_level(delay_level);
        }
        check(self.producer.send(builder.build_unchecked()).await)
    }

    /// Sends `messages` to `topic` with `tag` as one batch (one request, one queue, one
    /// commit-log append): all stored or none. Keep a batch under 1 MiB.
    pub async fn send_batch(&self, topic: &str, tag: &str, messages: Vec<Outgoing>) -> Result<(), SendError> {
        if messages.is_empty() {
            return Ok(());
        }
        let batch: Vec<Message> = messages
            .into_iter()
            .map(|m| Message::builder().topic(topic).tags(tag).key(m.key).body(m.body).build_unchecked())
            .collect();
        check(self.producer.send_batch(batch).await.map(Some))
    }

    pub async fn shutdown(&mut self) {
        self.producer.shutdown().await;
    }
}
