//! The orders MySQL holds, and those the writer refused for good.

use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{parse_limit, product_id};
use crate::error::{ApiError, ErrorBody};
use crate::http::state::AppState;
use crate::orders::{self, OrderStatus};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct OrderFilter {
    product_id: Option<String>,
    status: Option<String>,
    limit: Option<String>,
}

/// An order as MySQL holds it; times are epoch milliseconds.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct AdminOrder {
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
pub(super) struct OrderList {
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
pub(super) async fn list_orders(
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
pub(super) struct RejectedOrder {
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
pub(super) struct RejectedOrderList {
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
pub(super) async fn rejected_orders(
    State(state): State<AppState>,
    Query(filter): Query<OrderFilter>,
) -> Result<Json<RejectedOrderList>, ApiError> {
    let product = filter.product_id.as_deref().map(product_id).transpose()?;
    if filter.status.is_some() {
        return Err(ApiError::BadRequest("status is not a filter of rejected orders".into()));
    }
    let limit = parse_limit(filter.limit.as_deref())?;
    let rejected_orders = orders::rejected(state.db(), product, limit)
        .await?
        .into_iter()
        .map(|r| RejectedOrder {
            order_no: r.order_no,
            user_id: r.user_id,
            product_id: r.product_id,
            quantity: r.quantity,
            reason: r.reason,
            detail: r.detail,
            rejected_at: r.rejected_at.and_utc().timestamp_millis(),
        })
        .collect();
    Ok(Json(RejectedOrderList { rejected_orders }))
}
