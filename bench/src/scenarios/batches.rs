//! The broker scenarios' batches (the broker ceiling, the writer's queue): real order
//! messages, and a batch send timed as one call of a load.

use rust_decimal::Decimal;
use seckill_origin::broker::sender::{Outgoing, Sender};
use seckill_origin::orders::OrderMessage;

use crate::load::{self, Answer};
use crate::origin_api::PRICE;

/// Sends one batch to `topic` and reports it as a load outcome, timed per batch: stored, surely
/// not sent, or outcome unknown (only "stored" is expected).
pub(crate) async fn send_timed(sender: &Sender, topic: &str, batch: Vec<Outgoing>) -> load::Outcome {
    let start = std::time::Instant::now();
    let result = sender.send_batch(topic, "ORDER", batch).await;
    let latency = Some(start.elapsed());
    match result {
        Ok(()) => load::Outcome { answer: Answer::Label("batch stored"), expected: true, latency },
        Err(e) if e.is_not_sent() => load::Outcome { answer: Answer::Label("not sent"), expected: false, latency },
        Err(_) => load::Outcome { answer: Answer::Label("outcome unknown"), expected: false, latency },
    }
}

/// `count` real order messages, numbered from `first`: order_no `<n>-<product>`, a distinct
/// user per order, key = order_no (tag ORDER is given at send).
pub(crate) fn order_batch(first: u64, count: u64, user_base: u64, product: u64) -> Vec<Outgoing> {
    let price: Decimal = PRICE.parse().expect("valid price");
    let now = chrono::Utc::now().timestamp_millis();
    (first..first + count)
        .map(|n| {
            let message = OrderMessage {
                order_no: format!("{n}-{product}"),
                user_id: user_base + n,
                product_id: product,
                quantity: 1,
                price,
                accepted_at: now,
            };
            Outgoing { key: message.order_no.clone(), body: serde_json::to_vec(&message).expect("serializes") }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_batches_are_real_order_messages() {
        let batch = order_batch(10, 3, 1000, 7);
        assert_eq!(batch.len(), 3);
        assert_eq!(batch[0].key, "10-7");
        let m: OrderMessage = serde_json::from_slice(&batch[2].body).unwrap();
        assert_eq!((m.order_no.as_str(), m.user_id, m.product_id, m.quantity), ("12-7", 1012, 7, 1));
        assert_eq!(m.price.to_string(), "6999.00");
    }
}
