//! The admin API (behind the bearer token): create sales, preload them into Redis, compare
//! Redis and MySQL stock, list orders, read metrics.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use seckill_protocol::room::RoomSettings;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::dead_letters;
use crate::error::{parse_json, ApiError};
use crate::orders::{self, OrderStatus};
use crate::products::{self, NewProduct};
use crate::reconcile::{Reconciler, Report, MAX_QUEUE_WAIT};
use crate::state::AppState;
use crate::stock::PreloadOutcome;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/products", post(create_product))
        .route("/admin/products/{id}/preload", post(preload))
        .route("/admin/products/{id}/reconcile", post(reconcile))
        .route("/admin/products/{id}/stock", get(stock))
        .route("/admin/products/{id}/waiting-room", get(waiting_room).put(set_waiting_room).delete(remove_waiting_room))
        .route("/admin/orders", get(list_orders))
        .route("/admin/metrics", get(metrics))
        .route("/admin/rejected-orders", get(rejected_orders))
        .route("/admin/dead-letters", get(dead_letters::list))
        .route("/admin/dead-letters/{id}/replay", post(dead_letters::replay))
}

fn product_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse::<u64>()
        .ok()
        .filter(|id| *id >= 1)
        .ok_or_else(|| ApiError::BadRequest(format!("product id must be a positive integer, got {raw:?}")))
}

/// `POST /admin/products` → 201 `{"id"}`.
async fn create_product(State(state): State<AppState>, body: Bytes) -> Result<(StatusCode, Json<Value>), ApiError> {
    let new: NewProduct = parse_json(&body)?;
    let valid = new.validate().map_err(ApiError::BadRequest)?;
    let id = products::create(state.db(), &valid).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))))
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
/// Redis lost a product it had loaded, unless forced: orders of a lost state may still be in
/// the queue, invisible to both Redis and MySQL; [`reconcile`] waits for the queue to drain.
async fn preload(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Query(flags): Query<PreloadFlags>,
) -> Result<Json<Value>, ApiError> {
    let id = product_id(&raw)?;
    let force = flag("force", flags.force.as_deref())?;
    let (product, snapshot) = products::sale_snapshot(state.db(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("NO_SUCH_PRODUCT", format!("no product {id}")))?;
    let stock = state.stock();
    if !force && stock.stock(id).await?.is_none() && stock.was_preloaded(id).await? {
        return Err(ApiError::conflict(
            "REDIS_STATE_LOST",
            format!(
                "Redis lost product {id}'s sale state; orders may still be in the queue. Repair it with \
                 POST /admin/products/{id}/reconcile, which waits for the queue to drain"
            ),
        ));
    }
    match stock.preload(id, &snapshot, force).await? {
        PreloadOutcome::Loaded { stock, in_flight_units, in_flight_orders } => Ok(Json(json!({
            "stock": stock,
            "mysqlStock": product.stock,
            "inFlightUnits": in_flight_units,
            "inFlightOrders": in_flight_orders,
        }))),
        PreloadOutcome::SaleLive { .. } => Err(ApiError::conflict(
            "SALE_LIVE",
            format!("product {id}'s sale is live; preloading it now needs ?force=true"),
        )),
        PreloadOutcome::Inconsistent { stock, in_flight_units } => Err(ApiError::conflict(
            "INCONSISTENT",
            format!(
                "Redis holds {in_flight_units} units of product {id} in flight but MySQL has only {} left \
                 (would load {stock}); nothing was changed",
                product.stock
            ),
        )),
    }
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
        writer_group: &state.settings().rocketmq.order_writer_group,
    };
    Ok(Json(reconciler.run(id, dry_run, std::time::Duration::from_secs(wait)).await?))
}

/// `GET /admin/products/{id}/stock`: Redis and MySQL side by side. `inFlight` is stock Redis
/// has handed out that MySQL has not written yet (it drains to 0 as the queue is consumed).
async fn stock(State(state): State<AppState>, Path(raw): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = product_id(&raw)?;
    let product = products::find(state.db(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("NO_SUCH_PRODUCT", format!("no product {id}")))?;
    let redis = state.stock().stock(id).await?;
    let outbox = state.stock().outbox_len(id).await?;
    let counts = orders::count_by_status(state.db(), id).await?;
    Ok(Json(json!({
        "productId": id,
        "initial": product.initial_stock,
        "redis": redis,
        "mysql": product.stock,
        "inFlight": redis.map(|r| product.stock as i64 - r),
        "outbox": outbox,
        "orders": counts,
    })))
}

/// The product, or 404 `NO_SUCH_PRODUCT`.
async fn existing_product(state: &AppState, raw: &str) -> Result<u64, ApiError> {
    let id = product_id(raw)?;
    products::find(state.db(), id)
        .await?
        .map(|p| p.id)
        .ok_or_else(|| ApiError::not_found("NO_SUCH_PRODUCT", format!("no product {id}")))
}

fn room_answer(id: u64, room: Option<&RoomSettings>) -> Json<Value> {
    Json(json!({ "productId": id, "waitingRoom": room }))
}

/// `GET /admin/products/{id}/waiting-room`: the sale's room settings, `null` when it has none.
async fn waiting_room(State(state): State<AppState>, Path(raw): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = existing_product(&state, &raw).await?;
    Ok(room_answer(id, products::waiting_rooms(state.db()).await?.get(&id)))
}

/// `PUT /admin/products/{id}/waiting-room` with the room's settings: turns the room on or
/// changes it. The edge applies it once its product list refreshes (about a second); users
/// already admitted keep their passes.
async fn set_waiting_room(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let id = existing_product(&state, &raw).await?;
    let room: RoomSettings = parse_json(&body)?;
    room.validate().map_err(ApiError::BadRequest)?;
    products::set_waiting_room(state.db(), id, Some(&room)).await?;
    Ok(room_answer(id, Some(&room)))
}

/// `DELETE /admin/products/{id}/waiting-room`: turns the room off (every buyer goes through).
async fn remove_waiting_room(State(state): State<AppState>, Path(raw): Path<String>) -> Result<Json<Value>, ApiError> {
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

/// `GET /admin/orders?productId=&status=&limit=` (newest first, limit ≤ 1000, default 100).
async fn list_orders(
    State(state): State<AppState>,
    Query(filter): Query<OrderFilter>,
) -> Result<Json<Value>, ApiError> {
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
    let orders: Vec<Value> = rows
        .into_iter()
        .map(|o| {
            json!({
                "orderNo": o.order_no,
                "userId": o.user_id,
                "productId": o.product_id,
                "quantity": o.quantity,
                "amount": o.amount.round_dp(2).to_string(),
                "status": o.status,
                "createdAt": o.created_at.and_utc().timestamp_millis(),
                "expireAt": o.expire_at.and_utc().timestamp_millis(),
                "paidAt": o.paid_at.map(|t| t.and_utc().timestamp_millis()),
                "cancelledAt": o.cancelled_at.map(|t| t.and_utc().timestamp_millis()),
            })
        })
        .collect();
    Ok(Json(json!({ "orders": orders })))
}

/// `GET /admin/rejected-orders?productId=&limit=`: orders the writer refused for good, newest
/// first, with the reason; their stock went back to Redis.
async fn rejected_orders(
    State(state): State<AppState>,
    Query(filter): Query<OrderFilter>,
) -> Result<Json<Value>, ApiError> {
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
    let rejected: Vec<Value> = rows
        .into_iter()
        .map(|(order_no, user_id, product_id, quantity, reason, detail, at)| {
            json!({
                "orderNo": order_no, "userId": user_id, "productId": product_id, "quantity": quantity,
                "reason": reason, "detail": detail, "rejectedAt": at.and_utc().timestamp_millis(),
            })
        })
        .collect();
    Ok(Json(json!({ "rejectedOrders": rejected })))
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

async fn metrics(State(state): State<AppState>) -> Json<Value> {
    Json(serde_json::to_value(state.metrics().snapshot()).expect("metrics serialize"))
}
