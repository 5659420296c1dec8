//! Running a sale: create it, preload it into Redis, reconcile it, compare its stock in both
//! stores, and set its waiting room.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use seckill_protocol::room::RoomSettings;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::existing_product;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::fencing::reconcile::{Reconciler, Report, MAX_QUEUE_WAIT};
use crate::http::extract::{JsonBody, ProductId, QueryParams};
use crate::http::state::AppState;
use crate::orders::{self, StatusCounts};
use crate::preload::Preloaded;
use crate::products::{self, NewProduct, Product};

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Created {
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
        (status = 422, description = "`INVALID_COMBINATION`: fields within bounds that together break a rule (endAt after startAt, maxActiveUsers at least newUsersPerInterval, price × perUserLimit at most an order's largest amount)", body = ErrorBody),
        (status = 401, description = "`UNAUTHORIZED`: missing or wrong admin token", body = ErrorBody),
    )
)]
pub(super) async fn create_product(
    State(state): State<AppState>,
    JsonBody(new): JsonBody<NewProduct>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let valid = new.validate()?;
    let id = products::create(state.db(), &valid).await?;
    Ok((StatusCode::CREATED, Json(Created { id })))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct PreloadFlags {
    /// Preload even while the sale is live or after Redis lost it (default false).
    force: Option<bool>,
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
        ("id" = u64, Path, minimum = 1, description = "The product"),
        PreloadFlags,
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
pub(super) async fn preload(
    State(state): State<AppState>,
    ProductId(id): ProductId,
    QueryParams(flags): QueryParams<PreloadFlags>,
) -> Result<Json<Preloaded>, ApiError> {
    let force = flags.force.unwrap_or(false);
    Ok(Json(crate::preload::preload(state.db(), state.stock(), id, force).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub(super) struct ReconcileFlags {
    /// Only say what would change (default false).
    dry_run: Option<bool>,
    /// How long to wait for the order queue to drain, in seconds (default 10).
    #[param(minimum = 0, maximum = 300)]
    wait_secs: Option<u64>,
}

/// `POST /admin/products/{id}/reconcile[?dryRun=true][&waitSecs=N]`: sets the product's Redis
/// state (stock, window, buyers, deduction log) to MySQL's plus what Redis knows is in flight,
/// logs every change (`tb_reconcile_run`, `tb_reconcile_change`) and returns them. A real run
/// first waits up to `waitSecs` (default 10, at most 300) for the order queue to drain: 409
/// `ORDERS_IN_QUEUE` if it does not. A dry run changes and logs nothing.
#[utoipa::path(
    post, path = "/admin/products/{id}/reconcile", tag = "admin", security(("adminToken" = [])),
    params(
        ("id" = u64, Path, minimum = 1, description = "The product"),
        ReconcileFlags,
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
pub(super) async fn reconcile(
    State(state): State<AppState>,
    ProductId(id): ProductId,
    QueryParams(flags): QueryParams<ReconcileFlags>,
) -> Result<Json<Report>, ApiError> {
    let dry_run = flags.dry_run.unwrap_or(false);
    let max = MAX_QUEUE_WAIT.as_secs();
    let wait = match flags.wait_secs {
        None => 10,
        Some(secs) if secs <= max => secs,
        Some(secs) => {
            return Err(ApiError::BadRequest(format!(
                "waitSecs must be a whole number of seconds from 0 to {max}, got {secs}"
            )))
        }
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
pub(super) struct StockView {
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

pub(super) async fn stock_view(state: &AppState, product: &Product) -> Result<StockView, ApiError> {
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
    params(("id" = u64, Path, minimum = 1, description = "The product")),
    responses(
        (status = 200, description = "The product's stock", body = StockView),
        (status = 400, description = "`BAD_REQUEST`: bad id", body = ErrorBody),
        (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
        (status = 404, description = "`NO_SUCH_PRODUCT`", body = ErrorBody),
        (status = 503, description = "`UNAVAILABLE`: Redis or MySQL is down", body = ErrorBody),
    )
)]
pub(super) async fn stock(
    State(state): State<AppState>,
    ProductId(id): ProductId,
) -> Result<Json<StockView>, ApiError> {
    let product = products::find(state.db(), id)
        .await?
        .ok_or_else(|| ApiError::not_found(ErrorCode::NoSuchProduct, format!("no product {id}")))?;
    Ok(Json(stock_view(&state, &product).await?))
}

/// A sale's waiting room.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct RoomView {
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
    params(("id" = u64, Path, minimum = 1, description = "The product")),
    responses(
        (status = 200, description = "The room", body = RoomView),
        (status = 400, description = "`BAD_REQUEST`: bad id", body = ErrorBody),
        (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
        (status = 404, description = "`NO_SUCH_PRODUCT`", body = ErrorBody),
    )
)]
pub(super) async fn waiting_room(
    State(state): State<AppState>,
    ProductId(id): ProductId,
) -> Result<Json<RoomView>, ApiError> {
    let id = existing_product(&state, id).await?;
    Ok(room_answer(id, products::waiting_rooms(state.db()).await?.get(&id)))
}

/// `PUT /admin/products/{id}/waiting-room` with the room's settings: turns the room on or
/// changes it. The edge applies it once its product list refreshes (about a second); users
/// already admitted keep their passes.
#[utoipa::path(
    put, path = "/admin/products/{id}/waiting-room", tag = "admin", security(("adminToken" = [])),
    params(("id" = u64, Path, minimum = 1, description = "The product")),
    request_body = RoomSettings,
    responses(
        (status = 200, description = "The room as stored", body = RoomView),
        (status = 400, description = "`BAD_REQUEST`: a setting is missing, unknown or out of bounds", body = ErrorBody),
        (status = 422, description = "`INVALID_COMBINATION`: maxActiveUsers below newUsersPerInterval", body = ErrorBody),
        (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
        (status = 404, description = "`NO_SUCH_PRODUCT`", body = ErrorBody),
    )
)]
pub(super) async fn set_waiting_room(
    State(state): State<AppState>,
    ProductId(id): ProductId,
    JsonBody(room): JsonBody<RoomSettings>,
) -> Result<Json<RoomView>, ApiError> {
    let id = existing_product(&state, id).await?;
    room.validate()?;
    products::set_waiting_room(state.db(), id, Some(&room)).await?;
    Ok(room_answer(id, Some(&room)))
}

/// `DELETE /admin/products/{id}/waiting-room`: turns the room off (every buyer goes through).
#[utoipa::path(
    delete, path = "/admin/products/{id}/waiting-room", tag = "admin", security(("adminToken" = [])),
    params(("id" = u64, Path, minimum = 1, description = "The product")),
    responses(
        (status = 200, description = "The room is off", body = RoomView),
        (status = 400, description = "`BAD_REQUEST`: bad id", body = ErrorBody),
        (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
        (status = 404, description = "`NO_SUCH_PRODUCT`", body = ErrorBody),
    )
)]
pub(super) async fn remove_waiting_room(
    State(state): State<AppState>,
    ProductId(id): ProductId,
) -> Result<Json<RoomView>, ApiError> {
    let id = existing_product(&state, id).await?;
    products::set_waiting_room(state.db(), id, None).await?;
    Ok(room_answer(id, None))
}

/// Pauses or resumes `id`'s room, and answers the room as it now is.
async fn pause_or_resume(state: &AppState, id: u64, paused: bool) -> Result<Json<RoomView>, ApiError> {
    let id = existing_product(state, id).await?;
    if !products::set_room_paused(state.db(), id, paused).await? {
        return Err(ApiError::not_found(ErrorCode::NotFound, format!("product {id} has no waiting room")));
    }
    Ok(room_answer(id, products::waiting_rooms(state.db()).await?.get(&id)))
}

/// `POST /admin/products/{id}/waiting-room/pause`: nobody is admitted, everyone in line keeps
/// their place (users already admitted keep their passes). The edge applies it once its
/// product list refreshes (about a second). Pausing a paused room changes nothing.
#[utoipa::path(
    post, path = "/admin/products/{id}/waiting-room/pause", tag = "admin", security(("adminToken" = [])),
    params(("id" = u64, Path, minimum = 1, description = "The product")),
    responses(
        (status = 200, description = "The room, paused", body = RoomView),
        (status = 400, description = "`BAD_REQUEST`: bad id", body = ErrorBody),
        (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
        (status = 404, description = "`NO_SUCH_PRODUCT`, or `NOT_FOUND`: the sale has no waiting room", body = ErrorBody),
    )
)]
pub(super) async fn pause_waiting_room(
    State(state): State<AppState>,
    ProductId(id): ProductId,
) -> Result<Json<RoomView>, ApiError> {
    pause_or_resume(&state, id, true).await
}

/// `POST /admin/products/{id}/waiting-room/resume`: admissions start again, at the room's pace
/// (`PUT /admin/products/{id}/waiting-room` changes the pace, live).
#[utoipa::path(
    post, path = "/admin/products/{id}/waiting-room/resume", tag = "admin", security(("adminToken" = [])),
    params(("id" = u64, Path, minimum = 1, description = "The product")),
    responses(
        (status = 200, description = "The room, admitting again", body = RoomView),
        (status = 400, description = "`BAD_REQUEST`: bad id", body = ErrorBody),
        (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
        (status = 404, description = "`NO_SUCH_PRODUCT`, or `NOT_FOUND`: the sale has no waiting room", body = ErrorBody),
    )
)]
pub(super) async fn resume_waiting_room(
    State(state): State<AppState>,
    ProductId(id): ProductId,
) -> Result<Json<RoomView>, ApiError> {
    pause_or_resume(&state, id, false).await
}

/// The body of `POST /admin/products/{id}/waiting-room/revoke` and `/restore`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct RevokeRequest {
    #[schema(minimum = 1)]
    pub user_id: u64,
}

/// What a revoke or a restore left.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct Revocation {
    pub product_id: u64,
    pub user_id: u64,
    pub revoked: bool,
}

async fn set_revoked(state: &AppState, id: u64, user_id: u64, revoked: bool) -> Result<Json<Revocation>, ApiError> {
    let id = existing_product(state, id).await?;
    if user_id == 0 {
        return Err(ApiError::BadRequest("userId must be at least 1".into()));
    }
    state.stock().revoke(id, user_id, revoked).await?;
    Ok(Json(Revocation { product_id: id, user_id, revoked }))
}

/// `POST /admin/products/{id}/waiting-room/revoke` with `{"userId"}`: takes back the user's
/// place in the sale. Every buy of theirs is refused from then on (403 `PASS_REVOKED`, by the
/// buy script, whatever pass they hold), until `/restore`. Their orders stand.
#[utoipa::path(
    post, path = "/admin/products/{id}/waiting-room/revoke", tag = "admin", security(("adminToken" = [])),
    params(("id" = u64, Path, minimum = 1, description = "The product")),
    request_body = RevokeRequest,
    responses(
        (status = 200, description = "Revoked", body = Revocation),
        (status = 400, description = "`BAD_REQUEST`: bad id or body", body = ErrorBody),
        (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
        (status = 404, description = "`NO_SUCH_PRODUCT`", body = ErrorBody),
        (status = 503, description = "`UNAVAILABLE`: Redis is down", body = ErrorBody),
    )
)]
pub(super) async fn revoke_pass(
    State(state): State<AppState>,
    ProductId(id): ProductId,
    JsonBody(body): JsonBody<RevokeRequest>,
) -> Result<Json<Revocation>, ApiError> {
    set_revoked(&state, id, body.user_id, true).await
}

/// `POST /admin/products/{id}/waiting-room/restore` with `{"userId"}`: undoes a revoke.
#[utoipa::path(
    post, path = "/admin/products/{id}/waiting-room/restore", tag = "admin", security(("adminToken" = [])),
    params(("id" = u64, Path, minimum = 1, description = "The product")),
    request_body = RevokeRequest,
    responses(
        (status = 200, description = "Restored", body = Revocation),
        (status = 400, description = "`BAD_REQUEST`: bad id or body", body = ErrorBody),
        (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
        (status = 404, description = "`NO_SUCH_PRODUCT`", body = ErrorBody),
        (status = 503, description = "`UNAVAILABLE`: Redis is down", body = ErrorBody),
    )
)]
pub(super) async fn restore_pass(
    State(state): State<AppState>,
    ProductId(id): ProductId,
    JsonBody(body): JsonBody<RevokeRequest>,
) -> Result<Json<Revocation>, ApiError> {
    set_revoked(&state, id, body.user_id, false).await
}
