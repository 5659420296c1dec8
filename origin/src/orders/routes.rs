//! Public order routes: status lookup and payment.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use serde_json::Value;

use super::events::{self, OrderEvent};
use super::{order_no, OrderStatus};
use crate::error::{parse_json, ApiError, ErrorBody};
use crate::identity::SignedIn;
use crate::metrics::Metrics;
use crate::state::AppState;

/// An order as its owner sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderView {
    pub order_no: String,
    pub user_id: u64,
    pub product_id: u64,
    pub quantity: u32,
    /// `QUEUED` while only Redis knows it (accepted, not written to MySQL yet).
    pub status: OrderStatus,
    /// Absent while `QUEUED`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "6999.00")]
    pub amount: Option<String>,
    /// When an unpaid order is cancelled (epoch milliseconds); absent while `QUEUED`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expire_at: Option<i64>,
    /// Why a `REFUSED` order could not be placed: its reason code (`STOCK_SHORTAGE`,
    /// `DUPLICATE_ACTIVE_ORDER`, `NO_SUCH_PRODUCT`, `AMOUNT_TOO_LARGE`) and what it means.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<RefusalView>,
}

/// Why an order was refused, as its buyer sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefusalView {
    #[schema(example = "STOCK_SHORTAGE")]
    pub reason: String,
    pub message: String,
}

/// What a refusal reason means to the buyer.
fn refusal_message(reason: &str) -> &'static str {
    match reason {
        "STOCK_SHORTAGE" => "the last units were sold twice during a stock-service failure; this order could not be placed and nothing is owed",
        "DUPLICATE_ACTIVE_ORDER" => "you already hold an order of this product; this second one was not placed",
        "NO_SUCH_PRODUCT" => "the product is no longer sold; this order could not be placed",
        "AMOUNT_TOO_LARGE" => "the order's amount is too large to record; it was not placed",
        _ => "this order could not be placed",
    }
}

/// A paid order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Paid {
    pub order_no: String,
    #[schema(example = "PAID")]
    pub status: &'static str,
}

fn no_such_order(order_no: &str) -> ApiError {
    ApiError::not_found("NO_SUCH_ORDER", format!("no order {order_no}"))
}

/// Finds an order in MySQL, or, if it is not written yet, in its product's Redis deduction log
/// (status QUEUED).
pub async fn lookup(state: &AppState, order_no: &str) -> Result<Option<OrderView>, ApiError> {
    let Some(product_id) = order_no::product_of(order_no) else {
        return Ok(None);
    };
    if let Some(row) = super::find(state.db(), order_no).await? {
        let status = OrderStatus::from_db(&row.status)
            .ok_or_else(|| anyhow::anyhow!("order {order_no} has unknown status {}", row.status))?;
        return Ok(Some(OrderView {
            order_no: row.order_no,
            user_id: row.user_id,
            product_id: row.product_id,
            quantity: row.quantity,
            status,
            amount: Some(row.amount.round_dp(2).to_string()),
            expire_at: Some(row.expire_at.and_utc().timestamp_millis()),
            refusal: None,
        }));
    }
    let refused: Option<(u64, u64, u32, String)> =
        sqlx::query_as("SELECT user_id, product_id, quantity, reason FROM tb_rejected_order WHERE order_no = ?")
            .bind(order_no)
            .fetch_optional(state.db())
            .await?;
    if let Some((user_id, product_id, quantity, reason)) = refused {
        return Ok(Some(OrderView {
            order_no: order_no.to_string(),
            user_id,
            product_id,
            quantity,
            status: OrderStatus::Refused,
            amount: None,
            expire_at: None,
            refusal: Some(RefusalView { message: refusal_message(&reason).to_string(), reason }),
        }));
    }
    Ok(state.stock().deduction(product_id, order_no).await?.map(|d| OrderView {
        order_no: order_no.to_string(),
        user_id: d.user_id,
        product_id,
        quantity: d.quantity,
        status: OrderStatus::Queued,
        amount: None,
        expire_at: None,
        refusal: None,
    }))
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
    match lookup(&state, &order_no).await? {
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
    request_body(content = Object, description = "Empty, `{}`, or `{\"userId\"}` repeating the signed-in user", content_type = "application/json"),
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
    body: Bytes,
) -> Result<Json<Paid>, ApiError> {
    let body: Value =
        if body.iter().all(u8::is_ascii_whitespace) { Value::Object(Default::default()) } else { parse_json(&body)? };
    if !body.is_object() {
        return Err(ApiError::BadRequest("body must be a JSON object (or empty)".into()));
    }
    let user_id = signed_in.named_in(&body)?;
    if mark_paid(&state, &order_no, user_id).await? {
        Metrics::incr(&state.metrics().orders_paid);
        return Ok(Json(Paid { order_no, status: "PAID" }));
    }
    match lookup(&state, &order_no).await? {
        Some(o) if o.user_id == user_id => match o.status {
            OrderStatus::Paid => Ok(Json(Paid { order_no, status: "PAID" })),
            OrderStatus::Cancelled => Err(ApiError::conflict(
                "ORDER_CANCELLED",
                format!("order {order_no} was cancelled because it was not paid in time"),
            )),
            OrderStatus::Refused => Err(ApiError::conflict(
                "ORDER_REFUSED",
                format!("order {order_no} was refused and cannot be paid; nothing is owed"),
            )),
            OrderStatus::Queued => Err(ApiError::conflict(
                "ORDER_PENDING",
                format!("order {order_no} is still being placed; pay once its status is UNPAID"),
            )),
            OrderStatus::Unpaid if o.expire_at.is_some_and(|at| at <= chrono::Utc::now().timestamp_millis()) => {
                Err(ApiError::conflict(
                    "ORDER_EXPIRED",
                    format!("order {order_no} was not paid before its expireAt; it is being cancelled"),
                ))
            }
            // Lost a race with a concurrent pay or cancel between our UPDATE and lookup.
            OrderStatus::Unpaid => Err(ApiError::Unavailable(format!("order {order_no} is changing; try again"))),
        },
        _ => Err(no_such_order(&order_no)),
    }
}

/// UNPAID → PAID for the order's own user before its `expire_at`, with a PAID event, in one
/// transaction. False if the order is not UNPAID, has expired, or is not this user's.
async fn mark_paid(state: &AppState, order_no: &str, user_id: u64) -> Result<bool, ApiError> {
    let mut tx = state.db().begin().await?;
    let now = chrono::Utc::now().naive_utc();
    let paid = sqlx::query(
        "UPDATE tb_seckill_order SET status = 'PAID', paid_at = ? \
         WHERE order_no = ? AND user_id = ? AND status = 'UNPAID' AND expire_at > ?",
    )
    .bind(now)
    .bind(order_no)
    .bind(user_id)
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !paid {
        tx.rollback().await?;
        return Ok(false);
    }
    let (product_id, quantity): (u64, u32) =
        sqlx::query_as("SELECT product_id, quantity FROM tb_seckill_order WHERE order_no = ?")
            .bind(order_no)
            .fetch_one(&mut *tx)
            .await?;
    events::record(&mut tx, order_no, OrderEvent::Paid, user_id, product_id, quantity).await?;
    tx.commit().await?;
    Ok(true)
}
