//! Who is asking. The edge already refused requests without a valid token; the origin checks
//! again (defence in depth: a request that skipped the edge, or an edge misconfigured), with
//! the same rules (`seckill_protocol::token`) and keys.
//!
//! [`SignedIn`] is the extractor the user routes take; [`login`] is the local environment's
//! stand-in for an identity provider.

use axum::extract::{FromRequestParts, State};
use axum::http::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::Json;
use seckill_protocol::token::TokenError;
use seckill_protocol::wire::{token_cookie, token_from_headers};

use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::http::extract::JsonBody;
use crate::http::state::AppState;

/// The signed-in user of a request, from a verified token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedIn(pub u64);

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = |name| parts.headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
        let token = token_from_headers(header(AUTHORIZATION), header(COOKIE)).ok_or(TokenError::Missing);
        token
            .and_then(|t| state.token_keys().verify(t, &state.settings().auth.audience, now_secs()))
            .map(|identity| SignedIn(identity.user_id))
            .map_err(|e| ApiError::Unauthenticated(e.to_string()))
    }
}

impl SignedIn {
    /// The signed-in user, whom a body's `userId` may only repeat (absent is fine).
    pub fn named_in(self, user_id: Option<u64>) -> Result<u64, ApiError> {
        match user_id {
            None => Ok(self.0),
            Some(u) if u == self.0 => Ok(u),
            Some(0) => Err(ApiError::BadRequest("userId must be a positive integer".into())),
            Some(u) => Err(ApiError::Forbidden(format!(
                "userId {u} is not the signed-in user; leave it out or send {}",
                self.0
            ))),
        }
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The body of `POST /api/login`. `userId` is read as optional only so that its absence is
/// a 400 saying it is required; the document marks it required.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginRequest {
    #[schema(example = 1001, minimum = 1, required = true, nullable = false)]
    user_id: Option<u64>,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginAnswer {
    /// The identity token, for `Authorization: Bearer`.
    pub token: String,
    pub user_id: u64,
    /// When the token expires (epoch milliseconds).
    pub expires_at: u64,
}

/// `POST /api/login` `{"userId": u64}` → 200 `{"token", "userId", "expiresAt"}` (ms) and the
/// token as an HttpOnly, SameSite=Strict cookie. Local environment only (404 elsewhere): it
/// signs for whoever asks, which is what a demo and the tests need and nothing else should.
#[utoipa::path(
    post, path = "/api/login", tag = "shop", security(("edgeSecret" = [])),
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in; the token also comes as the HttpOnly `seckill_token` cookie", body = LoginAnswer),
        (status = 400, description = "`BAD_REQUEST`: userId missing or not a positive integer", body = ErrorBody),
        (status = 403, description = "`FORBIDDEN`: not through the edge", body = ErrorBody),
        (status = 404, description = "`NOT_FOUND`: the local login is off (`auth.local_login`), or this is not the local environment", body = ErrorBody),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    body: Result<JsonBody<LoginRequest>, Response>,
) -> Result<Response, ApiError> {
    // Unless switched on, and outside the local environment, the route does not exist,
    // whatever the body.
    if !state.settings().local_login() {
        return Err(ApiError::not_found(ErrorCode::NotFound, "no such route"));
    }
    let JsonBody(LoginRequest { user_id }) = match body {
        Ok(body) => body,
        Err(bad) => return Ok(bad),
    };
    let user_id = match user_id {
        None => return Err(ApiError::BadRequest("userId is required".into())),
        Some(0) => return Err(ApiError::BadRequest("userId must be a positive integer".into())),
        Some(id) => id,
    };
    let auth = &state.settings().auth;
    let now = now_secs();
    let token = state.token_keys().sign(user_id, &auth.audience, now, auth.login_token_secs);
    let lifetime = auth.login_token_secs.min(seckill_protocol::token::MAX_LIFETIME_SECS);
    let expires_at = (now + lifetime) * 1000;
    let mut response = Json(LoginAnswer { token: token.clone(), user_id, expires_at }).into_response();
    let cookie =
        HeaderValue::from_str(&token_cookie(&token, lifetime, false)).expect("a token is a valid header value");
    response.headers_mut().insert(SET_COOKIE, cookie);
    Ok(response)
}
