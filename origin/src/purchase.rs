//! The buy path: `POST /api/seckill` and the public product list.
//!
//! A request is checked against Redis first (one read-only script run) so that the many
//! requests a flash sale turns away never touch the broker; the survivors go through
//! [`BuyProducer::buy`](crate::broker::buy::BuyProducer::buy), where the same script,
//! in buy mode, is the authority.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{json, Value};

use crate::broker::buy::BuyError;
use crate::http::{ApiError, FLAG_TTL_HEADER};
use crate::metrics::Metrics;
use crate::orders::OrderMessage;
use crate::products::{self, SaleState};
use crate::startup::AppState;
use crate::stock::BuyOutcome;

/// A validated buy request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuyRequest {
    pub user_id: u64,
    pub product_id: u64,
    pub quantity: u32,
}

/// Validates `{"userId": u64 >= 1, "productId": u64 >= 1, "quantity": u32 >= 1 (default 1)}`.
/// The error names the field at fault. (The per-user limit is checked against Redis.)
pub fn parse_buy_request(body: &[u8]) -> Result<BuyRequest, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("body is not valid JSON: {e}"))?;
    let Value::Object(fields) = value else {
        return Err("body must be a JSON object".into());
    };
    let id = |name: &str| -> Result<u64, String> {
        match fields.get(name) {
            None | Some(Value::Null) => Err(format!("{name} is required")),
            Some(v) => match v.as_u64() {
                Some(n) if n >= 1 => Ok(n),
                _ => Err(format!("{name} must be a positive integer")),
            },
        }
    };
    let user_id = id("userId")?;
    let product_id = id("productId")?;
    let quantity = match fields.get("quantity") {
        None | Some(Value::Null) => 1,
        Some(v) => match v.as_u64() {
            Some(0) => return Err("quantity must be at least 1".into()),
            Some(n) if n <= u32::MAX as u64 => n as u32,
            _ => return Err("quantity must be a positive integer".into()),
        },
    };
    Ok(BuyRequest { user_id, product_id, quantity })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Queued {
    order_no: String,
    status: &'static str,
}

/// `POST /api/seckill`.
pub async fn buy(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let metrics = state.metrics();
    Metrics::incr(&metrics.buy_requests);
    let request = parse_buy_request(&body).map_err(|m| {
        Metrics::incr(&metrics.buy_bad_requests);
        ApiError::BadRequest(m)
    })?;
    let result = decide(&state, &request).await;
    match &result {
        Ok(_) => Metrics::incr(&metrics.buy_queued),
        Err(ApiError::Conflict { .. } | ApiError::NotFound { .. }) => Metrics::incr(&metrics.buy_rejected),
        Err(ApiError::BadRequest(_)) => Metrics::incr(&metrics.buy_bad_requests),
        Err(_) => Metrics::incr(&metrics.buy_unavailable),
    }
    let order_no = result?;
    let mut response = (StatusCode::OK, Json(Queued { order_no, status: "QUEUED" })).into_response();
    response.headers_mut().insert(FLAG_TTL_HEADER, HeaderValue::from(state.settings().http.buyer_flag_ttl_secs));
    Ok(response)
}

async fn decide(state: &AppState, r: &BuyRequest) -> Result<String, ApiError> {
    let (outcome, price) = state.stock().check(r.product_id, r.user_id, r.quantity).await?;
    if !matches!(outcome, BuyOutcome::Taken { .. }) {
        return Err(rejection(state, r, outcome));
    }
    let price: Decimal = price
        .parse()
        .map_err(|_| anyhow::anyhow!("product {} has no valid price in Redis; preload it again", r.product_id))?;
    let order_no = state.order_nos().next(r.product_id);
    let message = OrderMessage {
        order_no: order_no.clone(),
        user_id: r.user_id,
        product_id: r.product_id,
        quantity: r.quantity,
        price,
        accepted_at: chrono::Utc::now().timestamp_millis(),
    };
    match state.buy_producer().buy(message).await {
        Ok(BuyOutcome::Taken { .. }) => {
            state.broker_ok();
            Ok(order_no)
        }
        Ok(outcome) => {
            state.broker_ok();
            Err(rejection(state, r, outcome))
        }
        Err(BuyError::Broker(e)) => {
            state.broker_failed();
            tracing::warn!(error = %e, "order queue unavailable; nothing taken from stock");
            Err(ApiError::Unavailable("the order queue is unavailable; nothing was bought, try again shortly".into()))
        }
        Err(BuyError::Redis(e)) => {
            tracing::warn!(error = %e, "stock unavailable during buy");
            Err(ApiError::Unavailable("the stock service is unavailable; try again shortly".into()))
        }
    }
}

fn rejection(state: &AppState, r: &BuyRequest, outcome: BuyOutcome) -> ApiError {
    let http = &state.settings().http;
    match outcome {
        BuyOutcome::SoldOut { stock_left } if stock_left > 0 => ApiError::conflict(
            "SOLD_OUT",
            format!("only {stock_left} left of product {}, fewer than the {} asked for", r.product_id, r.quantity),
        ),
        BuyOutcome::SoldOut { .. } => ApiError::Conflict {
            code: "SOLD_OUT",
            message: format!("product {} is sold out", r.product_id),
            flag_ttl: Some(http.sold_out_flag_ttl_secs),
        },
        BuyOutcome::AlreadyBought => ApiError::Conflict {
            code: "ALREADY_BOUGHT",
            message: format!("user {} already holds an order of product {}", r.user_id, r.product_id),
            flag_ttl: Some(http.buyer_flag_ttl_secs),
        },
        BuyOutcome::NotStarted { start_ms } => {
            ApiError::conflict("NOT_STARTED", format!("the sale of product {} starts at {start_ms} (ms)", r.product_id))
        }
        BuyOutcome::Ended { end_ms } => {
            ApiError::conflict("ENDED", format!("the sale of product {} ended at {end_ms} (ms)", r.product_id))
        }
        BuyOutcome::OverLimit { limit } => ApiError::BadRequest(format!(
            "quantity {} is above the per-user limit of {limit} for product {}",
            r.quantity, r.product_id
        )),
        BuyOutcome::NoSuchProduct => {
            ApiError::not_found("NO_SUCH_PRODUCT", format!("product {} is not on sale", r.product_id))
        }
        BuyOutcome::Taken { .. } => unreachable!("a taken buy is not a rejection"),
    }
}

/// `GET /api/products`: every sale with its price, stock left in Redis and state.
pub async fn list_products(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let all = products::all(state.db()).await?;
    let ids: Vec<u64> = all.iter().map(|p| p.id).collect();
    let stocks = state.stock().stocks(&ids).await?;
    let now = chrono::Utc::now().timestamp_millis();
    let products: Vec<Value> = all
        .iter()
        .zip(stocks)
        .map(|(p, redis_stock)| {
            // Not preloaded yet: not on sale, whatever MySQL holds.
            let preloaded = redis_stock.is_some();
            let left = redis_stock.unwrap_or(0).max(0);
            let sale_state = if preloaded { products::sale_state(p, left, now) } else { SaleState::Upcoming };
            json!({
                "id": p.id,
                "name": p.name,
                "price": p.price.round_dp(2).to_string(),
                "initialStock": p.initial_stock,
                "stockLeft": left,
                "startAt": p.start_ms(),
                "endAt": p.end_ms(),
                "perUserLimit": p.per_user_limit,
                "state": sale_state,
            })
        })
        .collect();
    Ok(Json(json!({ "serverTime": now, "products": products })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_request_defaults_to_one_unit() {
        assert_eq!(
            parse_buy_request(br#"{"userId": 7, "productId": 1}"#),
            Ok(BuyRequest { user_id: 7, product_id: 1, quantity: 1 })
        );
    }

    #[test]
    fn every_bad_input_names_its_problem() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "JSON"),
            (b"{", "JSON"),
            (b"[1]", "object"),
            (br#"{"productId": 1}"#, "userId is required"),
            (br#"{"userId": 0, "productId": 1}"#, "userId must be a positive integer"),
            (br#"{"userId": -3, "productId": 1}"#, "userId must be a positive integer"),
            (br#"{"userId": "7", "productId": 1}"#, "userId must be a positive integer"),
            (br#"{"userId": 7}"#, "productId is required"),
            (br#"{"userId": 7, "productId": 0}"#, "productId must be a positive integer"),
            (br#"{"userId": 7, "productId": 1, "quantity": 0}"#, "quantity must be at least 1"),
            (br#"{"userId": 7, "productId": 1, "quantity": 1.5}"#, "quantity must be a positive integer"),
            (br#"{"userId": 7, "productId": 1, "quantity": 4294967296}"#, "quantity must be a positive integer"),
        ];
        for (body, expected) in cases {
            let err = parse_buy_request(body).unwrap_err();
            assert!(err.contains(expected), "{:?}: {err}", String::from_utf8_lossy(body));
        }
    }
}
