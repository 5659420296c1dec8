//! A plain producer for messages that follow a state change (delayed cancels, order events).

use rocketmq_client_rust::DefaultMQProducer;
use rocketmq_model::common::message::message_single::Message;

use super::Messaging;

pub struct Sender {
    producer: DefaultMQProducer,
}

impl Sender {
    pub async fn start(messaging: &Messaging, group: &str) -> anyhow::Result<Self> {
        let settings = messaging.settings();
        let mut producer = DefaultMQProducer::builder(messaging.client_runtime())
            .client_config(messaging.client_config())
            .producer_group(group.to_string())
            .send_msg_timeout(settings.send_timeout_ms)
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
    pub async fn send(&self, topic: &str, tag: &str, key: &str, body: Vec<u8>, delay_level: i32) -> Result<(), String> {
        let mut builder = Message::builder().topic(topic).tags(tag).key(key).body(body);
        if delay_level > 0 {
            builder = builder.delay_level(delay_level);
        }
        match self.producer.send(builder.build_unchecked()).await {
            Ok(Some(result)) if result.send_status == rocketmq_client_rust::SendStatus::SendOk => Ok(()),
            Ok(Some(result)) => Err(format!("broker answered {:?}", result.send_status)),
            Ok(None) => Err("no send result".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    pub async fn shutdown(&mut self) {
        self.producer.shutdown().await;
    }
}
