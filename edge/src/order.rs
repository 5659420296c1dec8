//! The order reads (wasm only): `GET /api/orders/{orderNo}`, forwarded, and the read of an
//! order that ended without a purchase clears its buyer's flag
//! ([`crate::admission::flag_cleared_by_order`]); `GET /api/orders?productId=`, forwarded.

use worker::{Method, Response, Result};

use crate::admission::flag_cleared_by_order;
use crate::answers::DECIDED_BY_HEADER;
use crate::flag_cache::clear_flag;
use crate::http::{edge_error, json_response};
use crate::origin_client::{forward, send_to_origin, Caller};
use crate::settings::RequestSettings;

/// `GET /api/orders/{orderNo}`, forwarded; an order its buyer reads as REFUSED or CANCELLED
/// clears their bought flag before the answer goes back, so their next buy reaches the origin.
pub(crate) async fn order(settings: &RequestSettings, order_no: &str, caller: &Caller) -> Result<Response> {
    let path = format!("/api/orders/{order_no}");
    let mut answer = match send_to_origin(settings, Method::Get, &path, None, Some(caller)).await {
        Ok(answer) => answer,
        Err(failed) => return edge_error(&failed),
    };
    let status = answer.status_code();
    let body = answer.text().await?;
    if let Some(flag) = flag_cleared_by_order(caller.user_id, status, &body) {
        clear_flag(&flag);
    }
    json_response(status, body, &[(DECIDED_BY_HEADER, "origin".to_owned())])
}

/// `GET /api/orders?productId=`, forwarded with the checked product id: a buyer whose buy answer
/// was lost finds their order here.
pub(crate) async fn buyer_orders(settings: &RequestSettings, product_id: u64, caller: &Caller) -> Result<Response> {
    let path = format!("/api/orders?productId={product_id}");
    forward(settings, Method::Get, &path, None, Some(caller)).await
}
