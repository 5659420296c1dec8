//! The HTTP surface: [`app`] builds the router from the concept modules' handlers and guards
//! the public routes (edge secret) and the admin routes (bearer token).

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::error::{ApiError, EDGE_SECRET_HEADER};
use crate::state::AppState;
use crate::{admin, health, orders::routes as order_routes, purchase};

/// The whole origin API.
pub fn app(state: AppState) -> Router {
    let public = Router::new()
        .route("/api/seckill", post(purchase::buy))
        .route("/api/products", get(purchase::list_products))
        .route("/api/orders/{order_no}", get(order_routes::get_order))
        .route("/api/orders/{order_no}/pay", post(order_routes::pay))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_edge_secret));
    let admin = admin::routes().route_layer(middleware::from_fn_with_state(state.clone(), require_admin_token));
    Router::new()
        .merge(public)
        .merge(admin)
        .route("/health", get(health::health))
        .route("/livez", get(health::livez))
        .fallback(|| async { ApiError::not_found("NOT_FOUND", "no such route") })
        .with_state(state)
}

async fn require_edge_secret(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let expected = &state.settings().http.edge_secret;
    if !expected.is_empty() && !header_equals(request.headers(), EDGE_SECRET_HEADER, expected) {
        return ApiError::Forbidden.into_response();
    }
    next.run(request).await
}

async fn require_admin_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let expected = format!("Bearer {}", state.settings().http.admin_token);
    if !header_equals(request.headers(), "authorization", &expected) {
        return ApiError::Unauthorized.into_response();
    }
    next.run(request).await
}

/// Compares without stopping at the first differing byte, so timing does not leak the secret.
fn header_equals(headers: &HeaderMap, name: &str, expected: &str) -> bool {
    let Some(given) = headers.get(name).map(|v| v.as_bytes()) else { return false };
    let expected = expected.as_bytes();
    given.len() == expected.len() && given.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}
