//! Every order message delivered twice: a consumer group of its own reads the order topic and
//! sends each message it has not seen before once more (same key, tag and body), as a producer
//! retrying after a lost acknowledgement would. The writer must absorb every copy.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use rocketmq_model::common::message::MessageTrait;
use seckill_origin::broker::consumer::{Consumer, Handler};
use seckill_origin::broker::sender::Sender;
use seckill_origin::broker::Messaging;

#[derive(Debug)]
pub struct Duplicator {
    consumer: Consumer,
    sender: Arc<Sender>,
    /// Keys (order numbers) of the messages sent a second time.
    pub copied: Arc<Mutex<HashSet<String>>>,
    pub group: String,
}

impl Duplicator {
    pub async fn start(messaging: &Messaging, group: &str, topic: &str) -> anyhow::Result<Duplicator> {
        let sender = Arc::new(Sender::start(messaging, &format!("{group}-producer")).await?);
        let copied: Arc<Mutex<HashSet<String>>> = Arc::default();
        let handler: Handler = {
            let (sender, copied, topic) = (sender.clone(), copied.clone(), topic.to_string());
            Arc::new(move |msg| {
                let (sender, copied, topic) = (sender.clone(), copied.clone(), topic.clone());
                Box::pin(async move {
                    let key = msg.get_keys().map(|k| k.to_string()).unwrap_or_default();
                    // The sweeper re-sends an order the relay may have sent: one copy per key.
                    if key.is_empty() || copied.lock().unwrap().contains(&key) {
                        return Ok(());
                    }
                    let tag = msg.get_tags().map(|t| t.to_string()).unwrap_or_default();
                    let body = msg.body().map(|b| b.to_vec()).unwrap_or_default();
                    // A failed send (the broker restarting) comes back later as a redelivery.
                    sender.send(&topic, &tag, &key, body, 0).await.map_err(|e| e.to_string())?;
                    copied.lock().unwrap().insert(key);
                    Ok(())
                })
            })
        };
        let consumer = Consumer::start(messaging, group, topic, handler).await?;
        Ok(Duplicator { consumer, sender, copied, group: group.to_string() })
    }

    pub async fn shutdown(self) {
        let Duplicator { mut consumer, sender, .. } = self;
        consumer.shutdown().await;
        drop(consumer);
        // The handler may still hold the sender; then it goes with the process.
        if let Ok(mut sender) = Arc::try_unwrap(sender) {
            sender.shutdown().await;
        }
    }
}
