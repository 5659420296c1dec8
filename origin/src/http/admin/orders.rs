//! The orders MySQL holds, and those the writer refused for good.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::list_limit;
use crate::error::{ApiError, ErrorBody};
use crate::http::extract::{query_id, QueryParams};
use crate::http::state::AppState;
use crate::orders::{self, OrderStatus};

/// The statuses an order row can have (`QUEUED` and `REFUSED` orders have none).
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(super) enum RowStatus {
    Unpaid,
    Paid,
    Cancelled,
}

impl From<RowStatus> for OrderStatus {
    fn from(status: RowStatus) -> Self {
        match status {
            RowStatus::Unpaid => OrderStatus::Unpaid,
            RowStatus::Paid => OrderStatus::Paid,
            RowStatus::Cancelled => OrderStatus::Cancelled,
        }
    }
}

/// `GET /admin/orders`' filters; an unknown one is a 400, not ignored.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub(super) struct OrderFilter {
    /// Only this product's orders.
    #[param(minimum = 1)]
    product_id: Option<u64>,
    #[param(inline)]
    status: Option<RowStatus>,
    /// 1 to 1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// `GET /admin/rejected-orders`' filters; an unknown one is a 400, not ignored.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub(super) struct RejectedFilter {
    /// Only this product's refusals.
    #[param(minimum = 1)]
    product_id: Option<u64>,
    /// 1 to 1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
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
    params(OrderFilter),
    responses(
        (status = 200, description = "Orders, newest first", body = OrderList),
        (status = 400, description = "`BAD_REQUEST`: a filter is malformed", body = ErrorBody),
        (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
    )
)]
pub(super) async fn list_orders(
    State(state): State<AppState>,
    QueryParams(filter): QueryParams<OrderFilter>,
) -> Result<Json<OrderList>, ApiError> {
    let product = query_id(filter.product_id, "productId")?;
    let status = filter.status.map(OrderStatus::from);
    let limit = list_limit(filter.limit)?;
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
    params(RejectedFilter),
    responses(
        (status = 200, description = "Refused orders, newest first", body = RejectedOrderList),
        (status = 400, description = "`BAD_REQUEST`: a filter is malformed", body = ErrorBody),
        (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
    )
)]
pub(super) async fn rejected_orders(
    State(state): State<AppState>,
    QueryParams(filter): QueryParams<RejectedFilter>,
) -> Result<Json<RejectedOrderList>, ApiError> {
    let product = query_id(filter.product_id, "productId")?;
    let limit = list_limit(filter.limit)?;
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
