//! The one error type every handler returns, mapped to a status and a JSON body
//! `{"code", "message"}` that names the problem without leaking internals.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

pub use seckill_protocol::errors::{ErrorCode, Invalid};
pub use seckill_protocol::wire::{EDGE_SECRET_HEADER, FLAG_TTL_HEADER};

/// The body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// What went wrong, for programs: one of [`ErrorCode`]'s codes.
    #[schema(schema_with = code_schema)]
    pub code: String,
    /// What went wrong, for people; never internals.
    pub message: String,
    /// With `ALREADY_BOUGHT`: the order the user holds, so a buyer whose first answer was lost
    /// can follow and pay it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_no: Option<String>,
}

use seckill_protocol::errors::code_schema;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    /// Each field within bounds, together breaking a rule (422: `INVALID_COMBINATION`,
    /// `OVER_LIMIT`); nothing changed.
    #[error("{message}")]
    Unprocessable { code: ErrorCode, message: String },
    #[error("missing or wrong admin token")]
    Unauthorized,
    /// No valid identity token; the message says what is wrong with it.
    #[error("{0}")]
    Unauthenticated(String),
    /// Not allowed: no edge secret, or a request naming a user other than the signed-in one.
    #[error("{0}")]
    Forbidden(String),
    #[error("{message}")]
    NotFound { code: ErrorCode, message: String },
    /// A business rule said no. `flag_ttl` (seconds) tells the edge it may cache this answer.
    #[error("{message}")]
    Conflict { code: ErrorCode, message: String, flag_ttl: Option<u64> },
    /// The user holds an active order of the product (409 `ALREADY_BOUGHT`), named in the body.
    /// `flag_ttl` as for [`ApiError::Conflict`].
    #[error("{message}")]
    AlreadyBought { message: String, order_no: String, flag_ttl: u64 },
    /// A service is down (503); `cause` is what failed, for the log, never for the client.
    #[error("{message}")]
    Unavailable { message: String, cause: Option<String> },
    /// Not now, and nothing was done: try again in a few seconds (503 with `Retry-After`),
    /// e.g. `SALE_FROZEN` while a sale's Redis state is being healed.
    #[error("{message}")]
    TryLater { code: ErrorCode, message: String },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// What caused a 5xx answer, carried in the response's extensions to the layer that logs it;
/// never sent to the client.
#[derive(Debug, Clone)]
pub struct ErrorCause(pub String);

/// The `Retry-After` of a [`ApiError::TryLater`] answer.
pub const RETRY_LATER_SECS: u64 = 2;

impl ApiError {
    pub fn not_found(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError::NotFound { code, message: message.into() }
    }
    pub fn conflict(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError::Conflict { code, message: message.into(), flag_ttl: None }
    }
    /// A 503 `UNAVAILABLE` whose message says all there is (no cause to log).
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError::Unavailable { message: message.into(), cause: None }
    }
}

impl From<Invalid> for ApiError {
    fn from(invalid: Invalid) -> Self {
        match invalid {
            Invalid::Field(message) => ApiError::BadRequest(message),
            Invalid::Combination(message) => ApiError::Unprocessable { code: ErrorCode::InvalidCombination, message },
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => ApiError::Unavailable {
                message: "the order database is unavailable; try again shortly".into(),
                cause: Some(format!("mysql: {e}")),
            },
            other => ApiError::Internal(other.into()),
        }
    }
}

impl From<redis::RedisError> for ApiError {
    fn from(e: redis::RedisError) -> Self {
        ApiError::Unavailable {
            message: "the stock service is unavailable; try again shortly".into(),
            cause: Some(format!("redis: {e}")),
        }
    }
}

impl ApiError {
    /// The body's code; the answer's HTTP status is the code's ([`ErrorCode::status`]).
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::BadRequest(_) => ErrorCode::BadRequest,
            ApiError::Unauthorized => ErrorCode::Unauthorized,
            ApiError::Unauthenticated(_) => ErrorCode::Unauthenticated,
            ApiError::Forbidden(_) => ErrorCode::Forbidden,
            ApiError::NotFound { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::TryLater { code, .. }
            | ApiError::Unprocessable { code, .. } => *code,
            ApiError::AlreadyBought { .. } => ErrorCode::AlreadyBought,
            ApiError::Unavailable { .. } => ErrorCode::Unavailable,
            ApiError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The answer's HTTP status.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code().status()).expect("every code's status is a valid one")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = (self.status(), self.code());
        let (message, cause) = match &self {
            ApiError::Internal(e) => ("internal error".to_string(), Some(format!("{e:?}"))),
            ApiError::Unavailable { message, cause } => (message.clone(), cause.clone()),
            other => (other.to_string(), None),
        };
        let order_no = match &self {
            ApiError::AlreadyBought { order_no, .. } => Some(order_no.clone()),
            _ => None,
        };
        let mut response = (status, Json(ErrorBody { code: code.as_str().into(), message, order_no })).into_response();
        if let Some(cause) = cause {
            // Logged once, by the layer that logs every failed answer (`http::error_answers`).
            response.extensions_mut().insert(ErrorCause(cause));
        }
        match self {
            ApiError::Conflict { flag_ttl: Some(ttl), .. } | ApiError::AlreadyBought { flag_ttl: ttl, .. } => {
                response.headers_mut().insert(FLAG_TTL_HEADER, HeaderValue::from(ttl));
            }
            ApiError::TryLater { .. } => {
                response.headers_mut().insert(axum::http::header::RETRY_AFTER, HeaderValue::from(RETRY_LATER_SECS));
            }
            _ => {}
        }
        response
    }
}

/// Parses a JSON body into `T`, or a 400 that says what is wrong with it.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // Every body of this API is an object (serde would also take a struct from an array).
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        None => return Err(ApiError::BadRequest("request body must be a JSON object".into())),
        Some(_) => {
            return Err(match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                Ok(_) => ApiError::BadRequest("request body must be a JSON object".into()),
                Err(e) => ApiError::BadRequest(format!("invalid JSON body: {e}")),
            })
        }
    }
    // `3.0` is an integer to JSON Schema, so to the document: read it as 3.
    let body = seckill_protocol::json::plain_integers(body);
    let mut reader = serde_json::Deserializer::from_slice(&body);
    serde_path_to_error::deserialize(&mut reader).map_err(|e| naming_the_field("invalid JSON body", e))
}

/// A 400 for input serde could not read, naming the field at fault ("invalid JSON body:
/// stockBuckets: invalid type: ..."); serde alone says only where in the text it is.
pub fn naming_the_field<E: std::fmt::Display>(what: &str, e: serde_path_to_error::Error<E>) -> ApiError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    match path.as_str() {
        "." | "" => ApiError::BadRequest(format!("{what}: {inner}")),
        field => ApiError::BadRequest(format!("{what}: {field}: {inner}")),
    }
}
