//! The buy path's transaction message: the half message goes to the broker first, the Redis
//! buy script runs as the local transaction, and the message is committed only if the script
//! took stock. If the origin dies before the commit reaches the broker, the broker checks back
//! and the answer comes from the deduction log, so Redis and the broker always agree.

use std::any::Any;
use std::sync::{Arc, Mutex};

use rocketmq_client_rust::{LocalTransactionState, TransactionListener, TransactionMQProducer};
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_model::common::message::MessageTrait;
use tokio::runtime::Handle;

use crate::broker::Messaging;
use crate::orders::OrderMessage;
use crate::stock::{Bucket, BuyOutcome, StockStore};

#[derive(Debug, thiserror::Error)]
pub enum BuyError {
    /// The half message could not be stored: nothing was taken from Redis.
    #[error("broker unavailable: {0}")]
    Broker(String),
    /// Redis failed during the local transaction; the message was rolled back or is left to
    /// the broker's check-back, which reads the deduction log.
    #[error("redis unavailable: {0}")]
    Redis(String),
}

/// Sends order messages as transaction messages with the Redis buy script as the local
/// transaction.
pub struct BuyProducer {
    producer: TransactionMQProducer,
    topic: String,
    /// Bounds the sends in flight: the client fails sends beyond its admission queue
    /// (`transport.admission.queue_saturated`) instead of queueing them, so a burst waits here.
    in_flight: tokio::sync::Semaphore,
}

impl std::fmt::Debug for BuyProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuyProducer").field("topic", &self.topic).finish_non_exhaustive()
    }
}

/// Transaction sends allowed in flight at once per origin.
const MAX_IN_FLIGHT: usize = 64;

/// Passed to the listener with each send; the listener puts the script's answer in `outcome`.
struct BuyCall {
    order: OrderMessage,
    outcome: Arc<Mutex<Option<Result<BuyOutcome, String>>>>,
}

impl BuyProducer {
    pub async fn start(messaging: &Messaging, stock: StockStore) -> anyhow::Result<Self> {
        let settings = messaging.settings();
        let listener = BuyTransaction { stock, app: Handle::current() };
        let mut producer = TransactionMQProducer::builder(messaging.client_runtime())
            .client_config(messaging.client_config())
            .producer_group(settings.producer_group.clone())
            .topics(vec![settings.order_topic.clone()])
            .send_msg_timeout(settings.send_timeout_ms)
            .retry_times_when_send_failed(1)
            .transaction_listener(listener)
            .build();
        producer.start().await.map_err(|e| anyhow::anyhow!("start transaction producer: {e}"))?;
        Ok(Self {
            producer,
            topic: settings.order_topic.clone(),
            in_flight: tokio::sync::Semaphore::new(MAX_IN_FLIGHT),
        })
    }

    /// Takes stock in Redis and queues the order, atomically with respect to the broker.
    /// Returns what the buy script decided (`Taken` means the order message is committed).
    pub async fn buy(&self, order: OrderMessage) -> Result<BuyOutcome, BuyError> {
        let body = serde_json::to_vec(&order).expect("order message serializes");
        let message = Message::builder()
            .topic(self.topic.as_str())
            .tags("ORDER")
            .key(order.order_no.as_str())
            .body(body)
            .build_unchecked();
        let outcome = Arc::new(Mutex::new(None));
        let call = BuyCall { order, outcome: Arc::clone(&outcome) };
        let _permit = self.in_flight.acquire().await.expect("the semaphore is never closed");
        let result = self.producer.send_message_in_transaction(message, Some(call)).await;
        let decided = outcome.lock().expect("buy outcome lock").take();
        match (result, decided) {
            (Err(e), None) => Err(BuyError::Broker(e.to_string())),
            // Sent and decided; if the commit/rollback did not reach the broker, its
            // check-back settles it from the deduction log.
            (_, Some(Ok(outcome))) => Ok(outcome),
            (_, Some(Err(e))) => Err(BuyError::Redis(e)),
            (Ok(r), None) => {
                Err(BuyError::Redis(format!("local transaction did not run (state {:?})", r.local_transaction_state)))
            }
        }
    }

    pub async fn shutdown(&mut self) {
        self.producer.shutdown().await;
    }
}

struct BuyTransaction {
    stock: StockStore,
    app: Handle,
}

impl TransactionListener for BuyTransaction {
    fn execute_local_transaction(
        &self,
        _msg: &dyn MessageTrait,
        arg: Option<&(dyn Any + Send + Sync)>,
    ) -> LocalTransactionState {
        let Some(call) = arg.and_then(|a| a.downcast_ref::<BuyCall>()) else {
            tracing::error!("transaction message sent without its buy call; rolling back");
            return LocalTransactionState::RollbackMessage;
        };
        let o = &call.order;
        let mut result = self.app.block_on(self.stock.take(o.product_id, o.user_id, o.quantity, &o.order_no));
        let mut state = match &result {
            Ok(BuyOutcome::Taken { .. }) => LocalTransactionState::CommitMessage,
            Ok(_) => LocalTransactionState::RollbackMessage,
            // Refused before sending: the script surely did not run.
            Err(e) if e.is_connection_refusal() => LocalTransactionState::RollbackMessage,
            Err(_) => LocalTransactionState::Unknown,
        };
        if state == LocalTransactionState::Unknown {
            // The script may or may not have run. Redis answers one connection in order, so a
            // read of the deduction log on the same connection settles it; if even that fails,
            // the broker's check-back asks again later.
            match self.app.block_on(self.stock.settle_deduction(o.product_id, &o.order_no)) {
                Some(true) => {
                    result = Ok(BuyOutcome::Taken { stock_left: -1 });
                    state = LocalTransactionState::CommitMessage;
                }
                Some(false) => state = LocalTransactionState::RollbackMessage,
                None => {}
            }
        }
        let mut result = result.map_err(|e| e.to_string());
        if state == LocalTransactionState::CommitMessage
            && !self.app.block_on(self.stock.replicated(Bucket::first(o.product_id)))
        {
            // Strict durability: not committed before a replica holds the deduction; the
            // check-back commits it once one does, or rolls it back if a failover lost it.
            result = Err("the replicas did not confirm the deduction in time".into());
            state = LocalTransactionState::Unknown;
        }
        *call.outcome.lock().expect("buy outcome lock") = Some(result);
        state
    }

    fn check_local_transaction(&self, msg: &MessageExt) -> LocalTransactionState {
        let Some(order) = msg.body().and_then(|b| serde_json::from_slice::<OrderMessage>(&b).ok()) else {
            tracing::error!(msg_id = %msg.msg_id(), "check-back for an unreadable order message; rolling back");
            return LocalTransactionState::RollbackMessage;
        };
        match self.app.block_on(self.stock.deduction(order.product_id, &order.order_no)) {
            Ok(Some(_)) if self.app.block_on(self.stock.replicated_after_read(Bucket::first(order.product_id))) => {
                LocalTransactionState::CommitMessage
            }
            Ok(Some(_)) => LocalTransactionState::Unknown,
            Ok(None) => LocalTransactionState::RollbackMessage,
            Err(e) => {
                tracing::warn!(order_no = %order.order_no, error = %e, "check-back cannot read Redis; asking again later");
                LocalTransactionState::Unknown
            }
        }
    }
}
