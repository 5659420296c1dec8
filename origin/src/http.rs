//! The HTTP surface: [`app`] builds the router from the concept modules' handlers and guards
//! the public routes (edge secret) and the admin routes (bearer token).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use seckill_protocol::wire::{is_valid_request_id, REQUEST_ID_HEADER};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnFailure, DefaultOnResponse, TraceLayer};

use crate::error::{ApiError, EDGE_SECRET_HEADER};
use crate::state::AppState;
use crate::{admin, health, identity, orders::routes as order_routes, purchase};

/// The whole origin API.
pub fn app(state: AppState) -> Router {
    let public = Router::new()
        .route("/api/login", post(identity::login))
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
        .route("/metrics", get(|State(state): State<AppState>| async move { state.metrics().response() }))
        .fallback(|| async { ApiError::not_found("NOT_FOUND", "no such route") })
        .layer(middleware::map_response(json_errors))
        // Outermost last: a bad client id is dropped, a missing one made, the span carries it
        // (every log line of the request names it), and the answer returns it.
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(DefaultOnResponse::new().level(tracing::Level::DEBUG))
                .on_failure(DefaultOnFailure::new().level(tracing::Level::WARN)),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
        .layer(middleware::map_request(drop_invalid_request_id))
        .with_state(state)
}

static REQUEST_ID: HeaderName = HeaderName::from_static(REQUEST_ID_HEADER);

fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let id = request.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
    tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path())
}

/// A client-sent id that is not a short plain token is dropped (a fresh one replaces it).
async fn drop_invalid_request_id(mut request: Request) -> Request {
    let valid = request.headers().get(&REQUEST_ID).map(|v| v.to_str().is_ok_and(is_valid_request_id));
    if valid == Some(false) {
        request.headers_mut().remove(&REQUEST_ID);
    }
    request
}

/// Error answers the framework writes itself (405 for a wrong method, 413 for a body over the
/// limit, 400/415 from an extractor, ...) come as plain text or empty; this gives them the JSON
/// body of every other error: `{"code", "message"}`, the message kept from the original text.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.map(|b| String::from_utf8_lossy(&b).trim().to_string());
    let reason = status.canonical_reason().unwrap_or("error");
    let message = match text {
        Ok(text) if !text.is_empty() => text,
        _ => reason.to_lowercase(),
    };
    let code = reason.to_uppercase().replace([' ', '-'], "_");
    let mut json = (status, axum::Json(serde_json::json!({ "code": code, "message": message }))).into_response();
    for (name, value) in parts.headers.iter().filter(|(n, _)| *n == axum::http::header::ALLOW) {
        json.headers_mut().insert(name, value.clone());
    }
    json
}

async fn require_edge_secret(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // Never empty: the start-up check refuses an empty secret.
    let expected = &state.settings().http.edge_secret;
    if !header_equals(request.headers(), EDGE_SECRET_HEADER, expected) {
        return ApiError::Forbidden("requests must come through the edge".into()).into_response();
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
