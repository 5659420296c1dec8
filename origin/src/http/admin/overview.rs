//! What the console shows in one answer, and this process's counters.

use axum::extract::State;
use axum::Json;
use seckill_protocol::room::RoomSettings;
use serde::Serialize;
use utoipa::ToSchema;

use super::sales::stock_view;
use crate::broker::lag::group_lag;
use crate::dead_letters;
use crate::error::{ApiError, ErrorBody};
use crate::http::state::AppState;
use crate::metrics::MetricsSnapshot;
use crate::orders::StatusCounts;
use crate::products;
use crate::rooms::RoomActivity;

/// One sale as the console shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct SaleOverview {
    pub id: u64,
    pub name: String,
    #[schema(example = "6999.00")]
    pub price: String,
    pub initial_stock: u32,
    /// Epoch milliseconds; `null`: open from the preload / without end.
    pub start_at: Option<i64>,
    pub end_at: Option<i64>,
    pub per_user_limit: u32,
    pub waiting_room: Option<RoomSettings>,
    /// The room as its shards last reported it; `null` when none did in the last minute.
    pub room_activity: Option<RoomActivity>,
    /// The answers the edge decided itself about this sale, by code, since this origin started.
    pub edge_refusals: std::collections::BTreeMap<String, u64>,
    /// As in [`StockView`].
    pub redis: Option<i64>,
    pub mysql: u32,
    pub in_flight: Option<i64>,
    pub outbox: u64,
    pub orders: StatusCounts,
}

/// How far behind one consumer group is.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ConsumerLag {
    pub group: String,
    /// Messages stored that the group has not finished; `null` when the broker cannot say.
    pub lag: Option<u64>,
    /// Why `lag` is `null`.
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct DeadLetterCounts {
    pub total: u64,
    /// Not replayed yet: each is an order message nobody has handled.
    pub unreplayed: u64,
}

/// Everything the console shows, in one answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct Overview {
    pub server_time: i64,
    pub sales: Vec<SaleOverview>,
    pub consumers: Vec<ConsumerLag>,
    pub dead_letters: DeadLetterCounts,
}

/// `GET /admin/overview`: every sale's stock (Redis, MySQL, in flight, outbox) and orders by
/// status, each consumer group's lag read from the broker now, and the dead letters.
#[utoipa::path(
    get, path = "/admin/overview", tag = "admin", security(("adminToken" = [])),
    responses(
        (status = 200, description = "The overview", body = Overview),
        (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
        (status = 503, description = "`UNAVAILABLE`: Redis or MySQL is down", body = ErrorBody),
    )
)]
pub(super) async fn overview(State(state): State<AppState>) -> Result<Json<Overview>, ApiError> {
    let all = products::all(state.db()).await?;
    let rooms = products::waiting_rooms(state.db()).await?;
    let mut sales = Vec::with_capacity(all.len());
    for product in &all {
        let stock = stock_view(&state, product).await?;
        sales.push(SaleOverview {
            id: product.id,
            name: product.name.clone(),
            price: product.price.round_dp(2).to_string(),
            initial_stock: product.initial_stock,
            start_at: product.start_ms(),
            end_at: product.end_ms(),
            per_user_limit: product.per_user_limit,
            waiting_room: rooms.get(&product.id).copied(),
            room_activity: state.room_reports().activity(product.id, std::time::Instant::now()),
            edge_refusals: state.edge_refusals().of(product.id),
            redis: stock.redis,
            mysql: stock.mysql,
            in_flight: stock.in_flight,
            outbox: stock.outbox,
            orders: stock.orders,
        });
    }
    let mq = &state.settings().rocketmq;
    let mut consumers = Vec::new();
    for (group, topic) in [(&mq.order_writer_group, &mq.order_topic), (&mq.canceller_group, &mq.cancel_topic)] {
        // Boxed: the admin client's future is too deep to inline into a handler's.
        let (lag, error) = match Box::pin(group_lag(state.messaging(), group, Some(topic))).await {
            Ok(lag) => (Some(lag), None),
            Err(e) => (None, Some(e.to_string())),
        };
        consumers.push(ConsumerLag { group: group.clone(), lag, error });
    }
    let (total, unreplayed) = dead_letters::counts(state.db()).await?;
    Ok(Json(Overview {
        server_time: chrono::Utc::now().timestamp_millis(),
        sales,
        consumers,
        dead_letters: DeadLetterCounts { total, unreplayed },
    }))
}

/// `GET /admin/metrics`: this process's counters as JSON (the same registry `/metrics` exposes).
#[utoipa::path(
    get, path = "/admin/metrics", tag = "admin", security(("adminToken" = [])),
    responses(
        (status = 200, description = "This process's counters", body = MetricsSnapshot),
        (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
    )
)]
pub(super) async fn metrics(State(state): State<AppState>) -> Json<MetricsSnapshot> {
    Json(state.metrics().snapshot())
}
