//! The HTTP surface, over the domain: [`routes()`] gathers the handlers, each with its OpenAPI
//! description, and guards the shop routes (edge secret) and the admin routes (bearer token);
//! [`app`] adds what every answer shares (JSON errors, request ids, tracing) and the document.
//!
//! A module per audience: [`shop`] and [`orders`] (buyers, through the edge; [`identity`] says
//! who they are), [`admin`] (operators, with the admin token), [`operations`] (probes and
//! metrics); [`state`] is what every handler shares, [`api_docs`] and [`console`] the document
//! and the admin page. Handlers parse and answer; the rules are the domain modules'.

pub mod admin;
pub mod api_docs;
pub mod console;
pub mod declared_query;
pub mod extract;
pub mod identity;
pub mod operations;
pub mod orders;
pub mod rooms;
pub mod serve;
pub mod shop;
pub mod state;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use seckill_protocol::wire::{is_valid_request_id, REQUEST_ID_HEADER};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::configuration::HttpSettings;
use crate::error::{ApiError, ErrorBody, ErrorCause, ErrorCode, EDGE_SECRET_HEADER};
use api_docs::{ApiDoc, Document};
use state::AppState;

/// Every route of the origin with its description, the shop routes guarded by `http`'s edge
/// secret and the admin routes by its admin token. A route is added here with `routes!`, which
/// also puts its `#[utoipa::path]` into the document.
pub fn routes(http: &HttpSettings) -> OpenApiRouter<AppState> {
    let edge_secret = EdgeSecret(http.edge_secret.as_str().into());
    let admin_authorization = AdminAuthorization(format!("Bearer {}", http.admin_token).into());
    let shop = OpenApiRouter::new()
        .routes(routes!(identity::login))
        .routes(routes!(shop::buy))
        .routes(routes!(shop::list_products))
        .routes(routes!(orders::list_orders))
        .routes(routes!(orders::get_order))
        .routes(routes!(orders::pay))
        .routes(routes!(rooms::report))
        .routes(routes!(rooms::refusals))
        .route_layer(middleware::from_fn_with_state(edge_secret, require_edge_secret));
    let admin = admin::routes().route_layer(middleware::from_fn_with_state(admin_authorization, require_admin_token));
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(shop)
        .merge(admin)
        .routes(routes!(operations::health))
        .routes(routes!(operations::livez))
        .routes(routes!(operations::metrics))
        .routes(routes!(api_docs::openapi_json))
        .routes(routes!(console::page))
}

/// The OpenAPI document of [`routes()`] as `GET /admin/openapi.json` serves it.
pub fn document(http: &HttpSettings) -> utoipa::openapi::OpenApi {
    api_docs::complete(routes(http).into_openapi())
}

/// The whole origin API.
pub fn app(state: AppState) -> Router {
    let http = &state.settings().http;
    let (routes, doc) = routes(http).split_for_parts();
    let doc = api_docs::complete(doc);
    declared_query::remember(&doc);
    let doc = Document(Arc::new(doc));
    let deadline = Duration::from_millis(http.request_deadline_ms.max(1));
    routes
        .merge(api_docs::swagger_ui())
        .fallback(|| async { ApiError::not_found(ErrorCode::NotFound, "no such route") })
        .layer(Extension(doc))
        .layer(TimeoutLayer::with_status_code(StatusCode::GATEWAY_TIMEOUT, deadline))
        .layer(middleware::map_response(error_answers))
        // Outermost last: a bad client id is dropped, a missing one made, the span carries it
        // (every log line of the request names it), and the answer returns it.
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(DefaultOnResponse::new().level(tracing::Level::DEBUG))
                // Failed answers are logged once, with their cause, by `error_answers`.
                .on_failure(()),
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

/// What every error answer gets, in one layer (one more per request costs the cheapest routes
/// a measurable share): a JSON body ([`json_errors`]), and a log line if it is a 5xx
/// ([`log_failure`]).
async fn error_answers(response: Response) -> Response {
    let mut response = json_errors(response).await;
    log_failure(&mut response);
    response
}

/// Logs a 5xx answer once, in the request's span (its id, method and path), with its cause
/// when the error carried one ([`ErrorCause`]): a fault of the server at ERROR, a service that
/// is down or busy at WARN. Conversions and handlers do not log what they return.
fn log_failure(response: &mut Response) {
    let status = response.status();
    if status.is_server_error() {
        let cause = response.extensions_mut().remove::<ErrorCause>().map(|c| c.0);
        let cause = cause.as_deref().unwrap_or("-");
        if status == axum::http::StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(status = status.as_u16(), cause, "request failed");
        } else {
            tracing::warn!(status = status.as_u16(), cause, "request failed");
        }
    }
}

/// Error answers the framework writes itself (405 for a wrong method, 413 for a body over the
/// limit, 400/415 from an extractor, ...) come as plain text or empty; this gives them the JSON
/// body of every other error: `{"code", "message"}`, the message kept from the original text.
async fn json_errors(response: Response) -> Response {
    let mut response = as_json_error(response).await;
    if response.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        // The body was left unread, so the server closes this connection after the answer;
        // saying so keeps a client from sending its next request down it (and losing it).
        response.headers_mut().insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
    }
    response
}

async fn as_json_error(response: Response) -> Response {
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
    // Every code comes from ErrorCode; a status none has (408, 422, 502, ...) gets its class's.
    let code = ErrorCode::for_status(status.as_u16()).unwrap_or(if status.is_client_error() {
        ErrorCode::BadRequest
    } else {
        ErrorCode::Internal
    });
    let mut json =
        (status, axum::Json(ErrorBody { code: code.as_str().into(), message, order_no: None })).into_response();
    for (name, value) in parts.headers.iter().filter(|(n, _)| *n == axum::http::header::ALLOW) {
        json.headers_mut().insert(name, value.clone());
    }
    json
}

/// The `x-seckill-edge-secret` a shop route needs; never empty (the start-up check refuses an
/// empty secret).
#[derive(Clone)]
struct EdgeSecret(Arc<str>);

/// The whole `Authorization` value an admin route needs: `Bearer <admin token>`.
#[derive(Clone)]
struct AdminAuthorization(Arc<str>);

async fn require_edge_secret(State(EdgeSecret(expected)): State<EdgeSecret>, request: Request, next: Next) -> Response {
    if !header_equals(request.headers(), EDGE_SECRET_HEADER, &expected) {
        return ApiError::Forbidden("requests must come through the edge".into()).into_response();
    }
    if let Some(unknown) = declared_query::refusal(&request) {
        return unknown.into_response();
    }
    next.run(request).await
}

async fn require_admin_token(
    State(AdminAuthorization(expected)): State<AdminAuthorization>,
    request: Request,
    next: Next,
) -> Response {
    if !header_equals(request.headers(), "authorization", &expected) {
        return ApiError::Unauthorized.into_response();
    }
    if let Some(unknown) = declared_query::refusal(&request) {
        return unknown.into_response();
    }
    next.run(request).await
}

/// Compares without stopping at the first differing byte, so timing does not leak the secret.
fn header_equals(headers: &HeaderMap, name: &str, expected: &str) -> bool {
    let Some(given) = headers.get(name).map(|v| v.as_bytes()) else { return false };
    let expected = expected.as_bytes();
    given.len() == expected.len() && given.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}
