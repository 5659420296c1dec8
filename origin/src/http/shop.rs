//! The shop's routes (behind the edge secret): `POST /api/seckill` and `GET /api/products`.
//! The rules are the domain's ([`crate::purchase`], [`crate::products`]); this says them in HTTP.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use seckill_protocol::buy::BuyBody;
use seckill_protocol::errors::{already_bought_message, not_started_message, sold_out_message};
use seckill_protocol::room::RoomSettings;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody, ErrorCode, FLAG_TTL_HEADER};
use crate::http::extract::BuyJson;
use crate::http::identity::SignedIn;
use crate::http::state::AppState;
use crate::metrics::Metrics;
use crate::products::{self, SaleState};
use crate::purchase::{Buy, BuyFailure, Placed};
use crate::stock::BuyOutcome;

/// An accepted buy.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    /// Follow it at `/api/orders/{orderNo}`.
    order_no: String,
    /// `QUEUED` (200) or `PENDING` (202).
    #[schema(example = "QUEUED")]
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'static str>,
}

/// `POST /api/seckill`: 200 QUEUED, 202 PENDING (outcome not confirmed yet; follow the order
/// number), 409/404/400 rejections, 503 when surely nothing was taken.
#[utoipa::path(
    post, path = "/api/seckill", tag = "shop", security(("edgeSecret" = [], "identity" = [])),
    request_body = BuyBody,
    responses(
        (status = 200, description = "`QUEUED`: the stock is taken and the order will be written", body = Accepted,
         headers(("x-seckill-flag-ttl" = u64, description = "Seconds the edge may remember this user bought"))),
        (status = 202, description = "`PENDING`: stock may be taken, the queue has not confirmed; follow the order", body = Accepted),
        (status = 400, description = "`BAD_REQUEST`: the body breaks a rule", body = ErrorBody),
        (status = 422, description = "`OVER_LIMIT`: quantity is over the sale's per-user limit; nothing was bought", body = ErrorBody),
        (status = 401, description = "`UNAUTHENTICATED`: no valid identity token", body = ErrorBody),
        (status = 403, description = "`FORBIDDEN`: userId names someone else, or not through the edge; `PASS_REVOKED`: the operator revoked this user's place in the sale", body = ErrorBody),
        (status = 404, description = "`NO_SUCH_PRODUCT`: not on sale", body = ErrorBody),
        (status = 409, description = "`SOLD_OUT`, `ALREADY_BOUGHT`, `NOT_STARTED` or `ENDED`", body = ErrorBody,
         headers(("x-seckill-flag-ttl" = u64, description = "Seconds the edge may cache this answer"))),
        (status = 503, description = "`UNAVAILABLE`: a service is down; `BUSY`: too many buys waiting; `SALE_FROZEN`: the sale is paused while Redis is healed. Nothing was taken; `Retry-After` says when to try again (BUSY, SALE_FROZEN)", body = ErrorBody),
    )
)]
pub async fn buy(
    State(state): State<AppState>,
    signed_in: Result<SignedIn, ApiError>,
    BuyJson(body): BuyJson,
) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    let answer = answer_buy(&state, signed_in, body).await;
    state.metrics().buy_seconds.observe(started.elapsed().as_secs_f64());
    answer
}

async fn answer_buy(
    state: &AppState,
    signed_in: Result<SignedIn, ApiError>,
    body: Result<BuyBody, ApiError>,
) -> Result<Response, ApiError> {
    let metrics = state.metrics();
    Metrics::incr(&metrics.buy_requests);
    let refuse = |error: ApiError| {
        metrics.rejected(error.code());
        error
    };
    let SignedIn(user_id) = signed_in.map_err(refuse)?;
    // After the caller's identity: without a token, a buy is 401 whatever its body.
    let body = body.inspect_err(|_| Metrics::incr(&metrics.buy_bad_requests))?;
    let request = body.buyer(user_id).map_err(|other| refuse(ApiError::Forbidden(other.to_string())))?;
    if state.sold_out().is_sold_out(request.product_id) {
        let error = rejection(state, &request, BuyOutcome::SoldOut { stock_left: 0 });
        metrics.rejected(error.code());
        return Err(error);
    }
    let result = state.buyer().place(&request, state.order_nos(), state.stock(), state.broker()).await;
    let http = &state.settings().http;
    let (status, body) = match result {
        Ok(Placed::Queued(order_no)) => {
            Metrics::incr(&metrics.buy_queued);
            (StatusCode::OK, Accepted { order_no, status: "QUEUED", message: None })
        }
        Ok(Placed::Pending(order_no)) => {
            Metrics::incr(&metrics.buy_pending);
            let message = Some(
                "the order queue has not confirmed this order yet; it is kept and will be placed, \
                 follow it at /api/orders/{orderNo}",
            );
            (StatusCode::ACCEPTED, Accepted { order_no, status: "PENDING", message })
        }
        Err(BuyFailure::Rejected(mut outcome)) => {
            if outcome == (BuyOutcome::SoldOut { stock_left: 0 }) {
                state.sold_out().remember(request.product_id);
            }
            // Not in Redis, yet MySQL loaded it: Redis lost it and the fence is about to
            // freeze it. Try again shortly, not "no such product".
            if outcome == BuyOutcome::NoSuchProduct && state.was_loaded(request.product_id) {
                outcome = BuyOutcome::Frozen;
            }
            let error = rejection(state, &request, outcome);
            match error {
                ApiError::BadRequest(_) | ApiError::Unprocessable { .. } => Metrics::incr(&metrics.buy_bad_requests),
                _ => metrics.rejected(error.code()),
            }
            return Err(error);
        }
        Err(BuyFailure::Unavailable(message)) => {
            Metrics::incr(&metrics.buy_unavailable);
            return Err(ApiError::unavailable(message));
        }
        Err(BuyFailure::Busy(message)) => {
            Metrics::incr(&metrics.buy_unavailable);
            return Err(ApiError::TryLater { code: ErrorCode::Busy, message: message.into() });
        }
    };
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(FLAG_TTL_HEADER, HeaderValue::from(http.buyer_flag_ttl_secs));
    Ok(response)
}

fn rejection(state: &AppState, r: &Buy, outcome: BuyOutcome) -> ApiError {
    let http = &state.settings().http;
    match outcome {
        BuyOutcome::SoldOut { stock_left } if stock_left > 0 => ApiError::conflict(
            ErrorCode::SoldOut,
            format!("only {stock_left} left of product {}, fewer than the {} asked for", r.product_id, r.quantity),
        ),
        BuyOutcome::SoldOut { .. } => ApiError::Conflict {
            code: ErrorCode::SoldOut,
            message: sold_out_message(r.product_id),
            flag_ttl: Some(http.sold_out_flag_ttl_secs),
        },
        BuyOutcome::AlreadyBought { order_no } => ApiError::AlreadyBought {
            message: already_bought_message(r.user_id, r.product_id),
            order_no,
            flag_ttl: http.buyer_flag_ttl_secs,
        },
        BuyOutcome::NotStarted { start_ms } => {
            ApiError::conflict(ErrorCode::NotStarted, not_started_message(r.product_id, start_ms.max(0).unsigned_abs()))
        }
        BuyOutcome::Ended { end_ms } => {
            ApiError::conflict(ErrorCode::Ended, format!("the sale of product {} ended at {end_ms} (ms)", r.product_id))
        }
        BuyOutcome::OverLimit { limit } => ApiError::Unprocessable {
            code: ErrorCode::OverLimit,
            message: format!(
                "quantity {} is above the per-user limit of {limit} for product {}",
                r.quantity, r.product_id
            ),
        },
        BuyOutcome::NoSuchProduct => {
            ApiError::not_found(ErrorCode::NoSuchProduct, format!("product {} is not on sale", r.product_id))
        }
        BuyOutcome::Revoked => ApiError::conflict(
            ErrorCode::PassRevoked,
            format!(
                "the shop revoked user {}'s place in the sale of product {}; nothing was bought",
                r.user_id, r.product_id
            ),
        ),
        BuyOutcome::Frozen => ApiError::TryLater {
            code: ErrorCode::SaleFrozen,
            message: format!(
                "the sale of product {} is paused while its stock is checked against the order database; \
                 nothing was bought, try again in a few seconds",
                r.product_id
            ),
        },
        // Redis failed a moment ago (UNAVAILABLE, as when it refuses): nothing is known to be
        // wrong with the sale itself, and the fence's next check lifts the hold.
        BuyOutcome::Held => ApiError::TryLater {
            code: ErrorCode::Unavailable,
            message: "the stock service failed a moment ago and is being checked; nothing was bought, \
                      try again shortly"
                .into(),
        },
        BuyOutcome::Taken { .. } => unreachable!("a taken buy is not a rejection"),
    }
}

/// A sale as the shop shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductView {
    pub id: u64,
    pub name: String,
    #[schema(example = "6999.00")]
    pub price: String,
    pub initial_stock: u32,
    /// Units left in Redis (0 before the preload).
    pub stock_left: i64,
    /// Epoch milliseconds.
    pub start_at: Option<i64>,
    pub end_at: Option<i64>,
    pub per_user_limit: u32,
    pub state: SaleState,
    /// `null`: no waiting room.
    pub waiting_room: Option<RoomSettings>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductList {
    /// The origin's clock (epoch milliseconds), for countdowns.
    pub server_time: i64,
    pub products: Vec<ProductView>,
}

/// `GET /api/products`: every live or upcoming sale with its price, stock left in Redis and
/// state (an ended sale is not listed).
#[utoipa::path(
    get, path = "/api/products", tag = "shop", security(("edgeSecret" = [])),
    responses(
        (status = 200, description = "Every live or upcoming sale", body = ProductList),
        (status = 403, description = "`FORBIDDEN`: not through the edge", body = ErrorBody),
        (status = 503, description = "`UNAVAILABLE`", body = ErrorBody),
    )
)]
pub async fn list_products(State(state): State<AppState>) -> Result<Json<ProductList>, ApiError> {
    let at = chrono::Utc::now();
    let all = products::open_at(state.db(), at.naive_utc()).await?;
    let ids: Vec<u64> = all.iter().map(|p| p.id).collect();
    let stocks = state.stock().stocks(&ids).await?;
    let rooms = products::waiting_rooms(state.db()).await?;
    let now = at.timestamp_millis();
    let products = all
        .iter()
        .zip(stocks)
        .map(|(p, redis_stock)| {
            // Not preloaded yet: not on sale, whatever MySQL holds.
            let preloaded = redis_stock.is_some();
            let left = redis_stock.unwrap_or(0).max(0);
            ProductView {
                id: p.id,
                name: p.name.clone(),
                price: p.price.round_dp(2).to_string(),
                initial_stock: p.initial_stock,
                stock_left: left,
                start_at: p.start_ms(),
                end_at: p.end_ms(),
                per_user_limit: p.per_user_limit,
                state: if preloaded { products::sale_state(p, left, now) } else { SaleState::Upcoming },
                waiting_room: rooms.get(&p.id).copied(),
            }
        })
        .collect();
    Ok(Json(ProductList { server_time: now, products }))
}
