//! What every request handler shares. Knows no routes: handlers depend on it, not the reverse.

use std::sync::Arc;

use seckill_protocol::token::KeySet;
use sqlx::MySqlPool;

use crate::broker::health::BrokerHealth;
use crate::broker::sender::Sender;
use crate::broker::Messaging;
use crate::configuration::Settings;
use crate::metrics::Metrics;
use crate::orders::order_no::OrderNoGenerator;
use crate::purchase::sold_out::SoldOutMemo;
use crate::purchase::Buyer;
use crate::stock::StockStore;

#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

/// The parts of an [`AppState`], put together by `startup`.
#[derive(Debug)]
pub struct Inner {
    pub settings: Settings,
    pub db: MySqlPool,
    pub stock: StockStore,
    pub buyer: Buyer,
    /// A plain producer (dead-letter replays, health probes).
    pub sender: Arc<Sender>,
    pub order_nos: Arc<OrderNoGenerator>,
    pub metrics: Arc<Metrics>,
    /// The sales MySQL says were loaded, as this process's fence last read them.
    pub loaded_sales: crate::fencing::LoadedIds,
    pub sold_out: SoldOutMemo,
    pub broker: Arc<BrokerHealth>,
    /// The process's RocketMQ client runtime (admin reads such as the order queue's lag).
    pub messaging: Arc<Messaging>,
    /// `auth.token_keys`, parsed: identity tokens are verified (and the local login signs) with these.
    pub token_keys: KeySet,
    /// What the edge's waiting rooms last reported.
    pub room_reports: crate::rooms::RoomReports,
    /// The answers the edge decided itself, as its instances reported them.
    pub edge_refusals: crate::rooms::EdgeRefusalCounts,
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }
    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }
    pub fn db(&self) -> &MySqlPool {
        &self.0.db
    }
    pub fn stock(&self) -> &StockStore {
        &self.0.stock
    }
    pub fn buyer(&self) -> &Buyer {
        &self.0.buyer
    }
    pub fn sender(&self) -> &Sender {
        &self.0.sender
    }
    pub fn order_nos(&self) -> &OrderNoGenerator {
        &self.0.order_nos
    }
    /// Whether MySQL says `product_id`'s sale was loaded into Redis (as the fence last read).
    pub fn was_loaded(&self, product_id: u64) -> bool {
        self.0.loaded_sales.read().expect("loaded sales lock").contains(&product_id)
    }

    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }
    pub fn sold_out(&self) -> &SoldOutMemo {
        &self.0.sold_out
    }
    pub fn broker(&self) -> &BrokerHealth {
        &self.0.broker
    }
    pub fn messaging(&self) -> &Messaging {
        &self.0.messaging
    }
    pub fn room_reports(&self) -> &crate::rooms::RoomReports {
        &self.0.room_reports
    }
    pub fn edge_refusals(&self) -> &crate::rooms::EdgeRefusalCounts {
        &self.0.edge_refusals
    }
    pub fn token_keys(&self) -> &KeySet {
        &self.0.token_keys
    }
}
