//! A plain producer: single messages that follow a state change (delayed cancels, order events,
//! replays) and batches (the buy path's relay and sweeper).

use rocketmq_client_rust::{ClientError, DefaultMQProducer, SendResult, SendStatus};
use rocketmq_error::ViewValueRef;
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

/// `transport.connection.failed` covers both a connection that never opened and one that
/// closed while the broker was answering (a broker killed mid-request may have stored the
/// batch). Only the phases before any byte was written make it a sure "not sent"; the
/// client's "closed" phase is raised on either side of the write, so it stays unknown.
const CONNECTION_FAILED: &str = "transport.connection.failed";
const PHASES_BEFORE_THE_WRITE: &[&str] = &["endpoint_validation", "connect", "before_write"];

/// The `phase` the transport recorded on an error, if any.
fn phase(e: &ClientError) -> Option<String> {
    let error = e.clone().into_shared_error();
    let view = error.diagnostic_view().ok()?;
    let field = view.fields().find(|f| f.name() == "phase")?;
    match field.value() {
        ViewValueRef::Text(text) => Some(text.to_string()),
        _ => None,
    }
}

fn classify(e: &ClientError) -> SendError {
    let code = e.descriptor().code().as_str();
    let phase = phase(e);
    let text = format!("{e} [{code}{}]", phase.as_deref().map(|p| format!(" phase={p}")).unwrap_or_default());
    let surely_not_sent = e.broker_response_code().is_some()
        || SURELY_NOT_SENT.iter().any(|p| code.starts_with(p))
        || (code == CONNECTION_FAILED && phase.is_some_and(|p| PHASES_BEFORE_THE_WRITE.contains(&p.as_str())));
    if surely_not_sent {
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

/// Runs `attempt` and, if the broker surely stored nothing, runs it once more: that cannot
/// duplicate anything, and the client keeps away from a broker a send just failed on, so with
/// the topic's queues on several brokers the second try goes to another one (a broker killed:
/// its queues stay in the route until the name server drops it). An unknown outcome is never
/// tried again here: that is for the callers' own rules (the sweeper, the writer's dedupe).
async fn once_more_if_not_sent<F, Fut>(topic: &str, attempt: F) -> Result<(), SendError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), SendError>>,
{
    match attempt().await {
        Err(SendError::NotSent(reason)) => {
            tracing::warn!(%topic, %reason, "the broker refused a send; trying once more");
            attempt().await
        }
        other => other,
    }
}

/// One message of a batch: key (the order number) and body.
#[derive(Debug)]
pub struct Outgoing {
    pub key: String,
    pub body: Vec<u8>,
}

pub struct Sender {
    producer: DefaultMQProducer,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
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
        // After a send to a broker fails (a broker killed, unreachable), the client keeps away
        // from that broker for a while and picks the topic's queues on the others; with one
        // broker it still picks that one.
        producer.set_send_latency_fault_enable(true);
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
        once_more_if_not_sent(topic, || {
            let mut builder = Message::builder().topic(topic).tags(tag).key(key).body(body.clone());
            if delay_level > 0 {
                builder = builder.delay_level(delay_level);
            }
            async move { check(self.producer.send(builder.build_unchecked()).await) }
        })
        .await
    }

    /// Sends `messages` to `topic` with `tag` as one batch (one request, one queue, one
    /// commit-log append): all stored or none. Keep a batch under 1 MiB.
    pub async fn send_batch(&self, topic: &str, tag: &str, messages: Vec<Outgoing>) -> Result<(), SendError> {
        if messages.is_empty() {
            return Ok(());
        }
        once_more_if_not_sent(topic, || {
            let batch: Vec<Message> = messages
                .iter()
                .map(|m| {
                    Message::builder().topic(topic).tags(tag).key(m.key.as_str()).body(m.body.clone()).build_unchecked()
                })
                .collect();
            async move { check(self.producer.send_batch(batch).await.map(Some)) }
        })
        .await
    }

    pub async fn shutdown(&mut self) {
        self.producer.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use rocketmq_error::{fields, Error, ErrorContext};

    use super::*;

    fn connection_failed(phase: &str) -> ClientError {
        ClientError::from_error(
            Error::new(&rocketmq_error::TRANSPORT_CONNECTION_FAILED)
                .with_context(ErrorContext::new().with_text(fields::PHASE, phase)),
        )
    }

    #[test]
    fn a_connection_that_never_opened_surely_sent_nothing() {
        for phase in ["connect", "before_write", "endpoint_validation"] {
            assert!(classify(&connection_failed(phase)).is_not_sent(), "{phase}");
        }
    }

    #[test]
    fn a_connection_lost_during_or_after_the_write_leaves_the_outcome_unknown() {
        for phase in ["closed", "writing", "awaiting_response", "read"] {
            assert!(matches!(classify(&connection_failed(phase)), SendError::Unknown(_)), "{phase}");
        }
        let no_phase = ClientError::from_error(Error::new(&rocketmq_error::TRANSPORT_CONNECTION_FAILED));
        assert!(matches!(classify(&no_phase), SendError::Unknown(_)));
    }

    #[test]
    fn a_timeout_is_unknown_and_a_missing_route_is_not_sent() {
        let timeout = ClientError::from_error(Error::new(&rocketmq_error::CORE_OPERATION_TIMED_OUT));
        assert!(matches!(classify(&timeout), SendError::Unknown(_)));
        let saturated = ClientError::from_error(Error::new(&rocketmq_error::TRANSPORT_ADMISSION_QUEUE_SATURATED));
        assert!(classify(&saturated).is_not_sent());
    }
}
