//! One process's metrics in a Prometheus registry of its own (so two apps in one test process
//! count apart), exposed as text at `GET /metrics` ([`Metrics::exposition`]) and as JSON at
//! `/admin/metrics` ([`Metrics::snapshot`]), both read from the same counters.
//!
//! `serve` counts buys and payments; `consume` counts what the order writer, the canceller and
//! the dead-letter keeper did, and the consumer lag of its groups. Counters are atomics: cheap
//! on the hot path.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use seckill_protocol::errors::ErrorCode;
use serde::Serialize;

/// Content type of [`Metrics::exposition`].
pub const EXPOSITION_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labelled = Family<[(&'static str, &'static str); 1], Counter>;

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    rejections: Labelled,
    /// Every `POST /api/seckill`.
    pub buy_requests: Counter,
    pub buy_queued: Counter,
    pub buy_pending: Counter,
    pub buy_rejected: Counter,
    pub buy_bad_requests: Counter,
    pub buy_unavailable: Counter,
    /// Seconds from a buy request's arrival to its answer (every outcome).
    pub buy_seconds: Histogram,
    pub orders_written: Counter,
    pub orders_redelivered: Counter,
    pub order_write_failures: Counter,
    pub orders_rejected: Counter,
    pub orders_paid: Counter,
    pub orders_cancelled: Counter,
    pub cancels_skipped: Counter,
    pub cancels_repeated: Counter,
    /// Orders the unpaid-order backstop cancelled (their delayed cancel never came).
    pub backstop_cancels: Counter,
    pub dead_letters: Counter,
    pub order_batches: Counter,
    /// Probe messages `/health` stored on the broker (at most one per probe interval).
    pub health_probes: Counter,
    /// Order messages per writer batch.
    pub writer_batch_size: Histogram,
    /// Seconds one writer batch takes (its MySQL transaction and the cancel send).
    pub writer_batch_seconds: Histogram,
    /// Messages the broker holds that a consumer group has not consumed yet.
    pub consumer_lag: Family<[(&'static str, String); 1], Gauge>,
    /// Queues of a group's topics this process consumes (its share after the last rebalance).
    consumer_queues: Family<[(&'static str, String); 1], Gauge>,
    /// Each live sale's stock, `store` = `redis` or `mysql` (see `consume::stock_gauges`).
    stock_units: Family<[(&'static str, String); 2], Gauge>,
    /// Sales this process froze (their Redis state regressed or was lost; see `fencing`).
    pub sales_frozen: Counter,
    /// Frozen sales this process healed with a reconcile.
    pub sales_healed: Counter,
    /// Heal attempts that could not finish (the queue had not drained, or the reconcile failed).
    pub heals_deferred: Counter,
    /// Sales frozen now (as this process's fence last read MySQL).
    pub frozen_sales: Gauge,
    /// Each sale's waiting room as its shards last reported it (see [`crate::rooms`]): users by
    /// `state` (`pre_queue`, `in_line`), admissions per minute, the estimated wait of the last
    /// in line, challenges the room refused.
    room_users: Family<[(&'static str, String); 2], Gauge>,
    room_admitted_per_minute: Family<[(&'static str, String); 1], Gauge>,
    room_wait_seconds: Family<[(&'static str, String); 1], Gauge>,
    room_challenges_refused: Family<[(&'static str, String); 1], Gauge>,
    /// Answers the edge decided itself, by sale (`none`: about no sale) and code.
    edge_refusals: Family<[(&'static str, String); 2], Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("seckill");
        let buys = Labelled::default();
        let buy = |outcome| buys.get_or_create(&[("outcome", outcome)]).clone();
        let (buy_queued, buy_pending, buy_rejected, buy_bad_requests, buy_unavailable) =
            (buy("queued"), buy("pending"), buy("rejected"), buy("bad_request"), buy("unavailable"));
        let orders = Labelled::default();
        let order = |event| orders.get_or_create(&[("event", event)]).clone();
        let fence = Labelled::default();
        let fence_event = |event| fence.get_or_create(&[("event", event)]).clone();
        let metrics = Metrics {
            buy_requests: Counter::default(),
            buy_queued,
            buy_pending,
            buy_rejected,
            buy_bad_requests,
            buy_unavailable,
            buy_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            orders_written: order("written"),
            orders_redelivered: order("redelivered"),
            order_write_failures: order("write_failed"),
            orders_rejected: order("refused"),
            orders_paid: order("paid"),
            orders_cancelled: order("cancelled"),
            cancels_skipped: order("cancel_skipped"),
            cancels_repeated: order("cancel_repeated"),
            backstop_cancels: order("backstop_cancelled"),
            dead_letters: Counter::default(),
            order_batches: Counter::default(),
            health_probes: Counter::default(),
            writer_batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 11)),
            writer_batch_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            consumer_lag: Family::default(),
            consumer_queues: Family::default(),
            stock_units: Family::default(),
            sales_frozen: fence_event("frozen"),
            sales_healed: fence_event("healed"),
            heals_deferred: fence_event("heal_deferred"),
            frozen_sales: Gauge::default(),
            room_users: Family::default(),
            room_admitted_per_minute: Family::default(),
            room_wait_seconds: Family::default(),
            room_challenges_refused: Family::default(),
            edge_refusals: Family::default(),
            rejections: Labelled::default(),
            registry: Registry::default(),
        };
        registry.register("buy_requests", "Buy requests received", metrics.buy_requests.clone());
        registry.register("buys", "Buy requests by outcome", buys);
        registry.register("buy_rejections", "Buys refused by a rule, by answer code", metrics.rejections.clone());
        registry.register("buy_duration_seconds", "Time to answer a buy request", metrics.buy_seconds.clone());
        registry.register("orders", "Orders by what happened to them (writer, canceller, payments)", orders);
        registry.register("dead_letters", "Messages moved to a dead-letter queue", metrics.dead_letters.clone());
        registry.register("writer_batches", "Batches the order writer handled", metrics.order_batches.clone());
        registry.register(
            "health_probes",
            "Probe messages GET /health sent to the broker",
            metrics.health_probes.clone(),
        );
        registry.register("writer_batch_size", "Order messages per writer batch", metrics.writer_batch_size.clone());
        registry.register(
            "writer_batch_duration_seconds",
            "Time the order writer takes for one batch",
            metrics.writer_batch_seconds.clone(),
        );
        registry.register(
            "consumer_lag_messages",
            "Messages the broker holds that the group has not consumed (its retry topic included)",
            metrics.consumer_lag.clone(),
        );
        registry.register(
            "consumer_queues",
            "Queues of the group's topics this process consumes, as the group's last rebalance shared them",
            metrics.consumer_queues.clone(),
        );
        registry.register(
            "stock_units",
            "Units left of each live sale, as Redis and as MySQL hold them",
            metrics.stock_units.clone(),
        );
        registry.register("sale_fence", "Sales frozen because their Redis state regressed, and heals", fence);
        registry.register(
            "frozen_sales",
            "Sales whose buys are refused until a reconcile heals them",
            metrics.frozen_sales.clone(),
        );
        registry.register(
            "room_users",
            "Users in a sale's waiting room, by state (pre_queue, in_line), as its shards last reported",
            metrics.room_users.clone(),
        );
        registry.register(
            "room_admitted_per_minute",
            "Users a sale's waiting room let in per minute, between its shards' last two reports",
            metrics.room_admitted_per_minute.clone(),
        );
        registry.register(
            "room_estimated_wait_seconds",
            "The estimated wait of the last user in a sale's waiting room",
            metrics.room_wait_seconds.clone(),
        );
        registry.register(
            "room_challenges_refused",
            "New users a sale's waiting room turned away without a solved challenge, or with a used one",
            metrics.room_challenges_refused.clone(),
        );
        registry.register(
            "edge_refusals",
            "Answers the edge decided itself (flags, the room, limits, bad requests), by sale and code",
            metrics.edge_refusals.clone(),
        );
        Metrics { registry, ..metrics }
    }
}

/// What the `seckill_room_*` series say of one sale's waiting room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomGauges {
    pub pre_queued: u64,
    pub in_line: u64,
    pub admitted_per_minute: u64,
    pub estimated_wait_secs: u64,
    pub challenges_refused: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSnapshot {
    pub buy_requests: u64,
    pub buy_queued: u64,
    pub buy_rejected: u64,
    pub buy_bad_requests: u64,
    pub buy_unavailable: u64,
    pub orders_written: u64,
    pub orders_redelivered: u64,
    pub order_write_failures: u64,
    pub orders_paid: u64,
    pub orders_cancelled: u64,
    pub cancels_skipped: u64,
    pub cancels_repeated: u64,
    pub dead_letters: u64,
    pub buy_pending: u64,
    pub orders_rejected: u64,
    pub order_batches: u64,
}

impl Metrics {
    pub fn incr(counter: &Counter) {
        counter.inc();
    }

    /// A buy refused by a rule, with its answer code (SOLD_OUT, ALREADY_BOUGHT, ...).
    pub fn rejected(&self, code: ErrorCode) {
        self.buy_rejected.inc();
        self.rejections.get_or_create(&[("code", code.as_str())]).inc();
    }

    /// Sets `group`'s consumer lag.
    pub fn set_lag(&self, group: &str, lag: u64) {
        self.consumer_lag.get_or_create(&[("group", group.to_string())]).set(i64::try_from(lag).unwrap_or(i64::MAX));
    }

    /// Sets how many of `group`'s queues this process consumes.
    pub fn set_queues(&self, group: &str, queues: usize) {
        self.consumer_queues
            .get_or_create(&[("group", group.to_string())])
            .set(i64::try_from(queues).unwrap_or(i64::MAX));
    }

    /// Replaces `seckill_stock_units` with `(product, MySQL stock, Redis stock)` for each
    /// live sale: sales no longer listed lose their series.
    pub fn set_stocks(&self, sales: impl Iterator<Item = (u64, i64, Option<i64>)>) {
        let sales: Vec<_> = sales.collect();
        self.stock_units.clear();
        for (product, mysql, redis) in sales {
            let series = |store: &'static str| [("product_id", product.to_string()), ("store", store.to_string())];
            self.stock_units.get_or_create(&series("mysql")).set(mysql);
            if let Some(redis) = redis {
                self.stock_units.get_or_create(&series("redis")).set(redis);
            }
        }
    }

    /// Sets `product_id`'s waiting-room series from its latest activity (`crate::rooms`).
    pub fn set_room(&self, product_id: u64, room: &RoomGauges) {
        let id = product_id.to_string();
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        for (state, users) in [("pre_queue", room.pre_queued), ("in_line", room.in_line)] {
            self.room_users
                .get_or_create(&[("product_id", id.clone()), ("state", state.to_string())])
                .set(count(users));
        }
        let product = [("product_id", id)];
        self.room_admitted_per_minute.get_or_create(&product).set(count(room.admitted_per_minute));
        self.room_wait_seconds.get_or_create(&product).set(count(room.estimated_wait_secs));
        self.room_challenges_refused.get_or_create(&product).set(count(room.challenges_refused));
    }

    /// Adds `count` answers of `code` the edge decided about `product_id`'s sale (or none).
    pub fn edge_refused(&self, product_id: Option<u64>, code: &str, count: u64) {
        let product = product_id.map_or_else(|| "none".to_owned(), |p| p.to_string());
        self.edge_refusals.get_or_create(&[("product_id", product), ("code", code.to_owned())]).inc_by(count);
    }

    /// The Prometheus (OpenMetrics) text exposition of every metric.
    pub fn exposition(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            buy_requests: self.buy_requests.get(),
            buy_queued: self.buy_queued.get(),
            buy_rejected: self.buy_rejected.get(),
            buy_bad_requests: self.buy_bad_requests.get(),
            buy_unavailable: self.buy_unavailable.get(),
            orders_written: self.orders_written.get(),
            orders_redelivered: self.orders_redelivered.get(),
            order_write_failures: self.order_write_failures.get(),
            orders_paid: self.orders_paid.get(),
            orders_cancelled: self.orders_cancelled.get(),
            cancels_skipped: self.cancels_skipped.get(),
            cancels_repeated: self.cancels_repeated.get(),
            dead_letters: self.dead_letters.get(),
            buy_pending: self.buy_pending.get(),
            orders_rejected: self.orders_rejected.get(),
            order_batches: self.order_batches.get(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_and_the_snapshot_read_the_same_counters() {
        let m = Metrics::default();
        Metrics::incr(&m.buy_requests);
        Metrics::incr(&m.buy_queued);
        m.rejected(ErrorCode::SoldOut);
        m.rejected(ErrorCode::SoldOut);
        Metrics::incr(&m.orders_written);
        m.buy_seconds.observe(0.002);
        m.set_lag("seckill-order-writer", 7);
        m.set_queues("seckill-order-writer", 8);
        let text = m.exposition();
        for line in [
            "seckill_buy_requests_total 1",
            "seckill_buys_total{outcome=\"queued\"} 1",
            "seckill_buys_total{outcome=\"rejected\"} 2",
            "seckill_buy_rejections_total{code=\"SOLD_OUT\"} 2",
            "seckill_orders_total{event=\"written\"} 1",
            "seckill_buy_duration_seconds_count 1",
            "seckill_consumer_lag_messages{group=\"seckill-order-writer\"} 7",
            "seckill_consumer_queues{group=\"seckill-order-writer\"} 8",
        ] {
            assert!(text.lines().any(|l| l == line), "no line {line:?} in:\n{text}");
        }
        let s = m.snapshot();
        assert_eq!((s.buy_requests, s.buy_queued, s.buy_rejected, s.orders_written), (1, 1, 2, 1));
    }
}
