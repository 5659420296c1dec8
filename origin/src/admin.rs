//! The admin API (behind the bearer token): create sales, preload them into Redis, compare
//! Redis and MySQL stock, list orders, read metrics, and the overview the console shows.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use seckill_protocol::room::RoomSettings;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::broker::lag::group_lag;
use crate::dead_letters;
use crate::error::{parse_json, ApiError, ErrorBody};
use crate::metrics::MetricsSnapshot;
use crate::orders::{self, OrderStatus, StatusCounts};
use crate::preload::Preloaded;
use crate::products::{self, NewProduct, Product};
use crate::reconcile::{Reconciler, Report, MAX_QUEUE_WAIT};
use crate::state::AppState;

/// The admin routes, each with its description; [`crate::http::routes`] guards them.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_product))
        .routes(routes!(preload))
        .routes(routes!(reconcile))
        .routes(routes!(stock))
        .routes(routes!(waiting_room, set_waiting_room, remove_waiting_room))
        .routes(routes!(overview))
        .routes(routes!(list_orders))
        .routes(routes!(metrics))
        .routes(routes!(rejected_orders))
        .routes(routes!(dead_letters::list))
        .routes(routes!(dead_letters::replay))
}

fn product_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse::<u64>()
        .ok()
        .filter(|id| *id >= 1)
        .ok_or_else(|| ApiError::BadRequest(format!("product id must be a positive integer, got {raw:?}")))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Created {
    /// The new product's id.
    pub id: u64,
}

/// `POST /admin/products` → 201 `{"id"}`.
#[utoipa::path(
    post, path = "/admin/products", tag = "admin", security(("adminToken" = [])),
    request_body = NewProduct,
    responses(
        (status = 201, description = "The sale is created (in MySQL; preload puts it on sale)", body = Created),
        (status = 400, description = "`BAD_REQUEST`: a field is missing, unknown or out of bounds", body = ErrorBody),
        (status = 401, description = "`UNAUTHORIZED`: missing or wrong admin token", body = ErrorBody),
    )
)]
async fn create_product(State(state): State<AppState>, body: Bytes) -> Result<(StatusCode, Json<Created>), ApiError> {
    let new: NewProduct = parse_json(&body)?;
    let valid = new.validate().map_err(ApiError::BadRequest)?;
    let id = products::create(state.db(), &valid).await?;
    Ok((StatusCode::CREATED, Json(Created { id })))
}

/// A true/false query parameter (absent = false), or a 400 naming it.
fn flag(name: &str, raw: Option<&str>) -> Result<bool, ApiError> {
    match raw {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(ApiError::BadRequest(format!("{name} must be true or false, got {other:?}"))),
    }
}

#[derive(Deserialize)]
struct PreloadFlags {
    force: Option<String>,
}

/// `POST /admin/products/{id}/preload[?force=true]`: loads the sale into Redis from MySQL
/// (stock, window, price, buyers and deduction log of the active orders) in one script, so no
/// buy lands in between. Orders Redis took that MySQL has not written yet stay taken. Refused
/// (409 `SALE_LIVE`) while the loaded sale's window is open, and (409 `REDIS_STATE_LOST`) when
/// Redis does not hold what MySQL recorded for a loaded sale, unless forced: orders of a lost
/// state may still be in the queue, invisible to both Redis and MySQL; [`reconcile`] waits
/// for the queue to drain. See [`crate::preload`].
#[utoipa::path(
    post, path = "/admin/products/{id}/preload", tag = "admin", security(("adminToken" = [])),
    params(
        ("id" = u64, Path, description = "The product"),
        ("force" = Option<bool>, Query, description = "Preload even while the sale is live or after Redis lost it"),
    ),
    responses(
        (status = 200, description = "Loaded", body = Preloaded),
        (status = 400, description = "`BAD_REQUEST`: bad id or flag", body = ErrorBody),
        (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
        (status = 404, description = "`NO_SUCH_PRODUCT`", body = ErrorBody),
        (status = 409, description = "`SALE_LIVE`, `REDIS_STATE_LOST`, `INCONSISTENT` or `SALE_BUSY`", body = ErrorBody),
        (status = 503, description = "`UNAVAILABLE`: Redis or MySQL is down", body = ErrorBody),
    )
)]
async fn preload(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Query(flags): Query<PreloadFlags>,
) -> Result<Json<Preloaded>, ApiError> {
    let id = product_id(&raw)?;
    let force = flag("force", flags.force.as_deref())?;
    Ok(Json(crate::preload::preload(state.db(), state.stock(), id, force).await?))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReconcileFlags {
    dry_run: Option<String>,
    wait_secs: Option<String>,
}

/// `POST /admin/products/{id}/reconcile[?dryRun=true][&waitSecs=N]`: sets the product's Redis
/// state (stock, window, buyers, deduction log) to MySQL's plus what Redis knows is in flight,
/// logs every change (`tb_reconcile_run`, `tb_reconcile_change`) and returns them. A real run
/// first waits up to `waitSecs` (default 10, at most 300) for the order queue to drain: 409
/// `ORDERS_IN_QUEUE` if it does not. A dry run changes and logs nothing.
#[utoipa::path(
    post, path = "/admin/products/{id}/reconcile", tag = "admin", security(("adminToken" = [])),
    params(
        ("id" = u64, Path, description = "The product"),
        ("dryRun" = Option<bool>, Query, description = "Only say what would change"),
        ("waitSecs" = Option<u64>, Query, description = "How long to wait for the order queue to drain (default 10, at most 300)"),
    ),
    responses(
        (status = 200, description = "What was found and (unless dry) changed", body = Report),
        (status = 400, description = "`BAD_REQUEST`: bad id or flag", body = ErrorBody),
        (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
        (status = 404, description = "`NO_SUCH_PRODUCT`", body = ErrorBody),
        (status = 409, description = "`ORDERS_IN_QUEUE`: the queue did not drain in time; nothing changed", body = ErrorBody),
        (status = 503, description = "`UNAVAILABLE`: Redis, MySQL or the broker cannot answer", body = ErrorBody),
    )
)]
async fn reconcile(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Query(flags): Query<ReconcileFlags>,
) -> Result<Json<Report>, ApiError> {
    let id = product_id(&raw)?;
    let dry_run = flag("dryRun", flags.dry_run.as_deref())?;
    let max = MAX_QUEUE_WAIT.as_secs();
    let wait = match flags.wait_secs.as_deref() {
        None => 10,
        Some(raw) => raw.parse::<u64>().ok().filter(|s| *s <= max).ok_or_else(|| {
            ApiError::BadRequest(format!("waitSecs must be a whole number of seconds from 0 to {max}, got {raw:?}"))
        })?,
    };
    let reconciler = Reconciler {
        db: state.db(),
        stock: state.stock(),
        messaging: state.messaging(),
        rocketmq: &state.settings().rocketmq,
    };
    Ok(Json(reconciler.run(id, dry_run, std::time::Duration::from_secs(wait)).await?))
}

/// A product's stock in Redis and MySQL side by side.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StockView {
    pub product_id: u64,
    pub initial: u32,
    /// `null`: not preloaded (or lost by Redis).
    pub redis: Option<i64>,
    pub mysql: u32,
    /// Units Redis handed out that MySQL has not written yet (drains to 0 as the queue is
    /// consumed); `null` when Redis has no stock.
    pub in_flight: Option<i64>,
    /// Accepted buys this origin's relays have not sent to the broker yet.
    pub outbox: u64,
    pub orders: StatusCounts,
}

async fn stock_view(state: &AppState, product: &Product) -> Result<StockView, ApiError> {
    let id = product.id;
    let redis = state.stock().stock(id).await?;
    Ok(StockView {
        product_id: id,
        initial: product.initial_stock,
        redis,
        mysql: product.stock,
        in_flight: redis.map(|r| i64::from(product.stock) - r),
        outbox: state.stock().outbox_len(id).await?,
        orders: orders::count_by_status(state.db(), id).await?,
    })
}

/// `GET /admin/products/{id}/stock`: Redis and MySQL side by side.
#[utoipa::path(
    get, path = "/admin/products/{id}/stock", tag = "admin", security(("adminToken" = [])),
    params(("id" = u64, Path, description = "The product")),
    responses(
        (status = 200, description = "The product's stock", body = StockView),
        (status = 400, description = "`BAD_REQUEST`: bad id", body = ErrorBody),
        (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
        (status = 404, description = "`NO_SUCH_PRODUCT`", body = ErrorBody),
        (status = 503, description = "`UNAVAILABLE`: Redis or MySQL is down", body = ErrorBody),
    )
)]
async fn stock(State(state): State<AppState>, Path(raw): Path<String>) -> Result<Json<StockView>, ApiError> {
    let id = product_id(&raw)?;
    let product = products::find(state.db(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("NO_SUCH_PRODUCT", format!("no product {id}")))?;
    Ok(Json(stock_view(&state, &product).await?))
}

/// One sale as the console shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SaleOverview {
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
    /// As in [`StockView`].
    pub redis: Option<i64>,
    pub mysql: u32,
    pub in_flight: Option<i64>,
    pub outbox: u64,
    pub orders: StatusCounts,
}

/// How far behind one consumer group is.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsumerLag {
    pub group: String,
    /// Messages stored that the group has not finished; `null` when the broker cannot say.
    pub lag: Option<u64>,
    /// Why `lag` is `null`.
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterCounts {
    pub total: u64,
    /// Not replayed yet: each is an order message nobody has handled.
    pub unreplayed: u64,
}

/// Everything the console shows, in one answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Overview {
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
async fn overview(State(state): State<AppState>) -> Result<Json<Overview>, ApiError> {
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

/// The product, or 404 `NO_SUCH_PRODUCT`.
async fn existing_product(state: &AppState, raw: &str) -> Result<u64, ApiError> {
    let id = product_id(raw)?;
    products::find(state.db(), id)
        .await?
        .map(|p| p.id)
        .ok_or_else(|| ApiError::not_found("NO_SUCH_PRODUCT", format!("no product {id}")))
}

/// A sale's waiting room.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoomView {
    pub product_id: u64,
    /// `null`: no room, every buyer goes through.
    pub waiting_room: Option<RoomSettings>,
}

fn room_answer(id: u64, room: Option<&RoomSettings>) -> Json<RoomView> {
    Json(RoomView { product_id: id, waiting_room: room.copied() })
}

/// `GET /admin/products/{id}/waiting-room`: the sale's room settings, `null` when it has none.
#[utoipa::path(
    get, path = "/admin/products/{id}/waiting-room", tag = "admin", security(("adminToken" = [])),
    params(("id" = u64, Path, description = "The product")),
    responses(
        (status = 200, description = "The room", body = RoomView),
        (status = 400, description = "`BAD_REQUEST`: bad id", body = ErrorBody),
        (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
        (status = 404, description = "`NO_SUCH_PRODUCT`", body = ErrorBody),
    )
)]
async fn waiting_room(State(state): State<AppState>, Path(raw): Path<String>) -> Result<Json<RoomView>, ApiError> {
    let id = existing_product(&state, &raw).await?;
    Ok(room_answer(id, products::waiting_rooms(state.db()).await?.get(&id)))
}

/// `PUT /admin/products/{id}/waiting-room` with the room's settings: turns the room on or
/// changes it. The edge applies it once its product list refreshes (about a second); users
/// already admitted keep their passes.
#[utoipa::path(
    put, path = "/admin/products/{id}/waiting-room", tag = "admin", security(("adminToken" = [])),
    params(("id" = u64, Path, description = "The product")),
    request_body = RoomSettings,
    responses(
        (status = 200, description = "The room as stored", body = RoomView),
        (status = 400, description = "`BAD_REQUEST`: a setting is missing, unknown or out of bounds", body = ErrorBody),
        (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
        (status = 404, description = "`NO_SUCH_PRODUCT`", body = ErrorBody),
    )
)]
async fn set_waiting_room(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    body: Bytes,
) -> Result<Json<RoomView>, ApiError> {
    let id = existing_product(&state, &raw).await?;
    let room: RoomSettings = parse_json(&body)?;
    room.validate().map_err(ApiError::BadRequest)?;
    products::set_waiting_room(state.db(), id, Some(&room)).await?;
    Ok(room_answer(id, Some(&room)))
}

/// `DELETE /admin/products/{id}/waiting-room`: turns the room off (every buyer goes through).
#[utoipa::path(
    delete, path = "/admin/products/{id}/waiting-room", tag = "admin", security(("adminToken" = [])),
    params(("id" = u64, Path, description = "The product")),
    responses(
        (status = 200, description = "The room is off", body = RoomView),
        (status = 400, description = "`BAD_REQUEST`: bad id", body = ErrorBody),
        (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
        (status = 404, description = "`NO_SUCH_PRODUCT`", body = ErrorBody),
    )
)]
async fn remove_waiting_room(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<RoomView>, ApiError> {
    let id = existing_product(&state, &raw).await?;
    products::set_waiting_room(state.db(), id, None).await?;
    Ok(room_answer(id, None))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrderFilter {
    product_id: Option<String>,
    status: Option<String>,
    limit: Option<String>,
}

/// An order as MySQL holds it; times are epoch milliseconds.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminOrder {
    pub order_no: String,
    pub user_id: u64,
    pub product_id: u64,
    pub quantity: u32,
    #[schema(example = "6999.00")]
    pub amount: String,
    #[schema(example = "UNPAID")]
    pub status: String,
    pub created_at: i64,
    pub expire_at: i64,
    pub paid_at: Option<i64>,
    pub cancelled_at: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderList {
    pub orders: Vec<AdminOrder>,
}

/// `GET /admin/orders?productId=&status=&limit=` (newest first, limit ≤ 1000, default 100).
#[utoipa::path(
    get, path = "/admin/orders", tag = "admin", security(("adminToken" = [])),
    params(
        ("productId" = Option<u64>, Query, description = "Only this product's orders"),
        ("status" = Option<String>, Query, description = "UNPAID, PAID or CANCELLED"),
        ("limit" = Option<u32>, Query, description = "1 to 1000, default 100"),
    ),
    responses(
        (status = 200, description = "Orders, newest first", body = OrderList),
        (status = 400, description = "`BAD_REQUEST`: a filter is malformed", body = ErrorBody),
        (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
    )
)]
async fn list_orders(
    State(state): State<AppState>,
    Query(filter): Query<OrderFilter>,
) -> Result<Json<OrderList>, ApiError> {
    let product = filter.product_id.as_deref().map(product_id).transpose()?;
    let status = match filter.status.as_deref() {
        None => None,
        Some(s) => Some(
            OrderStatus::from_db(s)
                .ok_or_else(|| ApiError::BadRequest(format!("status must be UNPAID, PAID or CANCELLED, got {s:?}")))?,
        ),
    };
    let limit = parse_limit(filter.limit.as_deref())?;
    let rows = orders::list(state.db(), product, status, limit).await?;
    let millis = |t: chrono::NaiveDateTime| t.and_utc().timestamp_millis();
    let orders = rows
        .into_iter()
        .map(|o| AdminOrder {
            order_no: o.order_no,
            user_id: o.user_id,
            product_id: o.product_id,
            quantity: o.quantity,
            amount: o.amount.round_dp(2).to_string(),
            status: o.status,
            created_at: millis(o.created_at),
            expire_at: millis(o.expire_at),
            paid_at: o.paid_at.map(millis),
            cancelled_at: o.cancelled_at.map(millis),
        })
        .collect();
    Ok(Json(OrderList { orders }))
}

/// An order the writer refused for good.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RejectedOrder {
    pub order_no: String,
    pub user_id: u64,
    pub product_id: u64,
    pub quantity: u32,
    pub reason: String,
    pub detail: String,
    pub rejected_at: i64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RejectedOrderList {
    pub rejected_orders: Vec<RejectedOrder>,
}

/// `GET /admin/rejected-orders?productId=&limit=`: orders the writer refused for good, newest
/// first, with the reason; their buyers were released in Redis, and their units given back
/// unless MySQL never had them (`STOCK_SHORTAGE`, `NO_SUCH_PRODUCT`).
#[utoipa::path(
    get, path = "/admin/rejected-orders", tag = "admin", security(("adminToken" = [])),
    params(
        ("productId" = Option<u64>, Query, description = "Only this product's"),
        ("limit" = Option<u32>, Query, description = "1 to 1000, default 100"),
    ),
    responses(
        (status = 200, description = "Refused orders, newest first", body = RejectedOrderList),
        (status = 400, description = "`BAD_REQUEST`: a filter is malformed", body = ErrorBody),
        (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
    )
)]
async fn rejected_orders(
    State(state): State<AppState>,
    Query(filter): Query<OrderFilter>,
) -> Result<Json<RejectedOrderList>, ApiError> {
    let product = filter.product_id.as_deref().map(product_id).transpose()?;
    if filter.status.is_some() {
        return Err(ApiError::BadRequest("status is not a filter of rejected orders".into()));
    }
    let limit = parse_limit(filter.limit.as_deref())?;
    let rows: Vec<(String, u64, u64, u32, String, String, chrono::NaiveDateTime)> = sqlx::query_as(
        "SELECT order_no, user_id, product_id, quantity, reason, detail, created_at FROM tb_rejected_order \
         WHERE (? IS NULL OR product_id = ?) ORDER BY id DESC LIMIT ?",
    )
    .bind(product)
    .bind(product)
    .bind(limit)
    .fetch_all(state.db())
    .await?;
    let rejected_orders = rows
        .into_iter()
        .map(|(order_no, user_id, product_id, quantity, reason, detail, at)| RejectedOrder {
            order_no,
            user_id,
            product_id,
            quantity,
            reason,
            detail,
            rejected_at: at.and_utc().timestamp_millis(),
        })
        .collect();
    Ok(Json(RejectedOrderList { rejected_orders }))
}

fn parse_limit(raw: Option<&str>) -> Result<u32, ApiError> {
    match raw {
        None => Ok(100),
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::BadRequest(format!("limit must be between 1 and 1000, got {l:?}"))),
    }
}

/// `GET /admin/metrics`: this process's counters as JSON (the same registry `/metrics` exposes).
#[utoipa::path(
    get, path = "/admin/metrics", tag = "admin", security(("adminToken" = [])),
    responses(
        (status = 200, description = "This process's counters", body = MetricsSnapshot),
        (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
    )
)]
async fn metrics(State(state): State<AppState>) -> Json<MetricsSnapshot> {
    Json(state.metrics().snapshot())
}
