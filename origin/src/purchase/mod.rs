//! The buy path's rules, behind `POST /api/seckill` ([`crate::http`]): a valid buy is placed
//! on the configured path, [`Buyer::place`].
//!
//! Two modes (`buy.mode`):
//! - `batched` ([`batched`]): one authoritative `buy.lua` call takes stock and writes an outbox
//!   entry; a relay sends outbox entries to the broker in group-committed batches, and the buyer
//!   hears QUEUED once the broker stored the order. A [`sweeper`] sends what a relay left behind.
//! - `transaction`: a cheap read-only check, then one RocketMQ transaction message per buy with
//!   the script as its local transaction ([`transaction`]). Kept for comparison.
//!
//! Either way a product known to be sold out is answered from memory ([`sold_out`]).

pub mod batched;
pub mod sold_out;
pub mod sweeper;
pub mod transaction;

use rust_decimal::Decimal;

use crate::broker::health::BrokerHealth;
use crate::orders::order_no::{NoLease, OrderNoGenerator};
use crate::orders::OrderMessage;
use crate::stock::{BuyOutcome, StockStore};
use batched::BatchedBuyer;
use transaction::{BuyError, BuyProducer};

/// Why a buy is refused while this origin cannot prove its order-number node lease.
const NO_ORDER_NUMBER: &str = "this origin cannot issue order numbers right now; nothing was bought, try again shortly";

/// The configured buy path.
#[derive(Debug)]
pub enum Buyer {
    Batched(BatchedBuyer),
    Transaction(BuyProducer),
}

/// An accepted buy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placed {
    /// The broker stored the order: it will become an order row.
    Queued(String),
    /// Stock was (or may have been) taken and the order is kept in the outbox, but the broker
    /// has not confirmed it yet: the sweeper sends it. The buyer can follow the order number.
    Pending(String),
}

/// A buy that was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuyFailure {
    /// A rule said no; nothing was taken.
    Rejected(BuyOutcome),
    /// A service is down and surely nothing was taken.
    Unavailable(&'static str),
    /// Turned away before its script ran (too many buys waiting, or this one waited too
    /// long); nothing was taken.
    Busy(&'static str),
}

/// A validated buy whose buyer is the signed-in user (one definition with the edge).
pub use seckill_protocol::buy::Buy;

impl Buyer {
    /// Places one valid buy on the configured path: `Queued` once the broker holds its order,
    /// `Pending` while that is not confirmed (the outbox keeps it), else why not. `stock` and
    /// `broker` serve transaction mode only (its read-only check, the broker's health).
    pub async fn place(
        &self,
        request: &Buy,
        order_nos: &OrderNoGenerator,
        stock: &StockStore,
        broker: &BrokerHealth,
    ) -> Result<Placed, BuyFailure> {
        match self {
            Buyer::Batched(buyer) => match order_nos.next(request.product_id) {
                Ok(order_no) => buyer.buy(request, order_no).await,
                Err(NoLease) => Err(BuyFailure::Unavailable(NO_ORDER_NUMBER)),
            },
            // Boxed: the transaction path's future is large, and inline it would make every
            // request's future (moved several times on its way through axum) that large too.
            Buyer::Transaction(producer) => {
                Box::pin(buy_in_transaction(producer, request, order_nos, stock, broker)).await
            }
        }
    }
}

/// Transaction mode: a read-only check turns most requests away before the broker; the
/// survivors go out as a transaction message whose local transaction takes the stock.
async fn buy_in_transaction(
    producer: &BuyProducer,
    r: &Buy,
    order_nos: &OrderNoGenerator,
    stock: &StockStore,
    broker: &BrokerHealth,
) -> Result<Placed, BuyFailure> {
    let unavailable = "the stock service is unavailable; try again shortly";
    let (outcome, price) =
        stock.check(r.product_id, r.user_id, r.quantity).await.map_err(|_| BuyFailure::Unavailable(unavailable))?;
    if !matches!(outcome, BuyOutcome::Taken { .. }) {
        return Err(BuyFailure::Rejected(outcome));
    }
    let Ok(price) = price.parse::<Decimal>() else {
        tracing::error!(product_id = r.product_id, %price, "product has no valid price in Redis; preload it again");
        return Err(BuyFailure::Unavailable(unavailable));
    };
    let order_no = order_nos.next(r.product_id).map_err(|NoLease| BuyFailure::Unavailable(NO_ORDER_NUMBER))?;
    let message = OrderMessage {
        order_no: order_no.clone(),
        user_id: r.user_id,
        product_id: r.product_id,
        quantity: r.quantity,
        price,
        accepted_at: chrono::Utc::now().timestamp_millis(),
    };
    match producer.buy(message).await {
        Ok(BuyOutcome::Taken { .. }) => {
            broker.ok();
            Ok(Placed::Queued(order_no))
        }
        Ok(outcome) => {
            broker.ok();
            Err(BuyFailure::Rejected(outcome))
        }
        Err(BuyError::Broker(e)) => {
            broker.failed();
            tracing::warn!(error = %e, "order queue unavailable; nothing taken from stock");
            Err(BuyFailure::Unavailable("the order queue is unavailable; nothing was bought, try again shortly"))
        }
        // The local transaction could not tell whether the script ran; the broker's check-back
        // settles it from the deduction log, so the order may yet be placed.
        Err(BuyError::Redis(e)) => {
            tracing::warn!(error = %e, "stock unavailable during a transaction buy; outcome left to the check-back");
            Ok(Placed::Pending(order_no))
        }
    }
}
