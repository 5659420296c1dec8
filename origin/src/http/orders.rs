//! The buyer's order routes (behind the edge secret, for the signed-in user): follow an order
//! and pay it ([`crate::orders::lookup`]).

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::http::extract::OptionalJsonBody;
use crate::http::extract::QueryParams;
use crate::http::identity::SignedIn;
use crate::http::state::AppState;
use crate::metrics::Metrics;
use crate::orders::lookup::{lookup, mark_paid, orders_of_buyer, OrderView};
use crate::orders::OrderStatus;

/// The body of `POST /api/orders/{orderNo}/pay`: empty, `{}`, or `{"userId"}` repeating the
/// signed-in user.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PayRequest {
    /// The signed-in user, if given; anyone else's id is 403.
    #[schema(minimum = 1)]
    pub user_id: Option<u64>,
}

/// A paid order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Paid {
    pub order_no: String,
    #[schema(example = "PAID")]
    pub status: &'static str,
}

/// `GET /api/orders`' one filter; an unknown parameter is a 400, not ignored.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct BuyerOrderFilter {
    /// The product whose orders to list (required).
    #[param(minimum = 1)]
    product_id: u64,
}

/// The signed-in user's orders of one product, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BuyerOrders {
    orders: Vec<OrderView>,
}

/// `GET /api/orders?productId=`: the signed-in user's orders of a product, newest first,
/// including one accepted and not written yet (`QUEUED`). A buyer whose buy answer was lost
/// (a timeout, a dropped connection) finds the order here and can pay it.
#[utoipa::path(
    get, path = "/api/orders", tag = "shop", security(("edgeSecret" = [], "identity" = [])),
    params(BuyerOrderFilter),
    responses(
        (status = 200, description = "The orders (empty when there are none)", body = BuyerOrders),
        (status = 400, description = "`BAD_REQUEST`: productId missing or malformed, or an unknown parameter", body = ErrorBody),
        (status = 401, description = "`UNAUTHENTICATED`: no valid identity token", body = ErrorBody),
        (status = 403, description = "`FORBIDDEN`: not through the edge", body = ErrorBody),
        (status = 503, description = "`UNAVAILABLE`", body = ErrorBody),
    )
)]
pub async fn list_orders(
    State(state): State<AppState>,
    SignedIn(user_id): SignedIn,
    QueryParams(filter): QueryParams<BuyerOrderFilter>,
) -> Result<Json<BuyerOrders>, ApiError> {
    if filter.product_id == 0 {
        return Err(ApiError::BadRequest("productId must be a positive integer".into()));
    }
    let orders = orders_of_buyer(state.db(), state.stock(), user_id, filter.product_id).await?;
    Ok(Json(BuyerOrders { orders }))
}

fn no_such_order(order_no: &str) -> ApiError {
    ApiError::not_found(ErrorCode::NoSuchOrder, format!("no order {order_no}"))
}

/// `GET /api/orders/{orderNo}`: the signed-in user's own order. Anyone else's is reported as
/// missing (404): order numbers are time-ordered and easy to guess, so they prove nothing.
#[utoipa::path(
    get, path = "/api/orders/{orderNo}", tag = "shop", security(("edgeSecret" = [], "identity" = [])),
    params(("orderNo" = String, Path, description = "The order number the buy answered")),
    responses(
        (status = 200, description = "The order", body = OrderView),
        (status = 401, description = "`UNAUTHENTICATED`: no valid identity token", body = ErrorBody),
        (status = 403, description = "`FORBIDDEN`: not through the edge", body = ErrorBody),
        (status = 404, description = "`NO_SUCH_ORDER`: no such order of the signed-in user", body = ErrorBody),
        (status = 503, description = "`UNAVAILABLE`", body = ErrorBody),
    )
)]
pub async fn get_order(
    State(state): State<AppState>,
    SignedIn(user_id): SignedIn,
    Path(order_no): Path<String>,
) -> Result<Json<OrderView>, ApiError> {
    match lookup(state.db(), state.stock(), &order_no).await? {
        Some(order) if order.user_id == user_id => Ok(Json(order)),
        _ => Err(no_such_order(&order_no)),
    }
}

/// `POST /api/orders/{orderNo}/pay` by the order's owner; the body may be empty or repeat the
/// signed-in `userId`. Paying a paid order answers PAID again. Pay and cancel are both
/// conditional on status UNPAID, so exactly one of them wins; pay is also conditional on the
/// order's `expireAt` not having passed (409 `ORDER_EXPIRED`), so a late pay cannot pin stock
/// that the cancel, due any moment, is about to give back.
#[utoipa::path(
    post, path = "/api/orders/{orderNo}/pay", tag = "shop", security(("edgeSecret" = [], "identity" = [])),
    params(("orderNo" = String, Path, description = "The order to pay")),
    request_body(content = PayRequest, description = "Empty, `{}`, or `{\"userId\"}` repeating the signed-in user", content_type = "application/json"),
    responses(
        (status = 200, description = "Paid (also when it already was)", body = Paid),
        (status = 400, description = "`BAD_REQUEST`: the body is not a JSON object or its userId is malformed", body = ErrorBody),
        (status = 401, description = "`UNAUTHENTICATED`", body = ErrorBody),
        (status = 403, description = "`FORBIDDEN`: userId names someone else, or not through the edge", body = ErrorBody),
        (status = 404, description = "`NO_SUCH_ORDER`", body = ErrorBody),
        (status = 409, description = "`ORDER_CANCELLED`, `ORDER_EXPIRED`, `ORDER_REFUSED` or `ORDER_PENDING`", body = ErrorBody),
        (status = 503, description = "`UNAVAILABLE`: the order is changing or MySQL is down; try again", body = ErrorBody),
    )
)]
pub async fn pay(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(order_no): Path<String>,
    OptionalJsonBody(body): OptionalJsonBody<PayRequest>,
) -> Result<Json<Paid>, ApiError> {
    let user_id = signed_in.named_in(body.user_id)?;
    if mark_paid(state.db(), &order_no, user_id).await? {
        Metrics::incr(&state.metrics().orders_paid);
        return Ok(Json(Paid { order_no, status: "PAID" }));
    }
    match lookup(state.db(), state.stock(), &order_no).await? {
        Some(o) if o.user_id == user_id => match o.status {
            OrderStatus::Paid => Ok(Json(Paid { order_no, status: "PAID" })),
            OrderStatus::Cancelled => Err(ApiError::conflict(
                ErrorCode::OrderCancelled,
                format!("order {order_no} was cancelled because it was not paid in time"),
            )),
            OrderStatus::Refused => Err(ApiError::conflict(
                ErrorCode::OrderRefused,
                format!("order {order_no} was refused and cannot be paid; nothing is owed"),
            )),
            OrderStatus::Queued => Err(ApiError::conflict(
                ErrorCode::OrderPending,
                format!("order {order_no} is still being placed; pay once its status is UNPAID"),
            )),
            OrderStatus::Unpaid if o.expire_at.is_some_and(|at| at <= chrono::Utc::now().timestamp_millis()) => {
                Err(ApiError::conflict(
                    ErrorCode::OrderExpired,
                    format!("order {order_no} was not paid before its expireAt; it is being cancelled"),
                ))
            }
            // Lost a race with a concurrent pay or cancel between our UPDATE and lookup.
            OrderStatus::Unpaid => Err(ApiError::unavailable(format!("order {order_no} is changing; try again"))),
        },
        _ => Err(no_such_order(&order_no)),
    }
}
