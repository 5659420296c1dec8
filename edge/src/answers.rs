//! Answers the edge gives on its own, and the headers it shares with the origin.

use seckill_protocol::errors::{already_bought_message, not_started_message, sold_out_message, ErrorCode};
use serde::Serialize;

pub use seckill_protocol::wire::{DECIDED_BY_HEADER, EDGE_SECRET_HEADER, FLAG_TTL_HEADER};

/// An error answer decided at the edge, in the origin's shape: `{"code": "...", "message": "..."}`,
/// and `"orderNo"` with `ALREADY_BOUGHT` when the edge knows the order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeError {
    pub code: ErrorCode,
    pub message: String,
    pub order_no: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    order_no: Option<&'a str>,
}

impl EdgeError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), order_no: None }
    }

    /// The answer's HTTP status: its code's.
    pub fn status(&self) -> u16 {
        self.code.status()
    }

    /// 400 `BAD_REQUEST`: the body breaks a rule the origin would also reject it for.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    /// 409 `SOLD_OUT`, from a cached product flag (worded as the origin words it).
    pub fn sold_out(product_id: u64) -> Self {
        Self::new(ErrorCode::SoldOut, sold_out_message(product_id))
    }

    /// 409 `ALREADY_BOUGHT`, from a cached (user, product) flag (worded as the origin words it),
    /// naming the order the flag was set for when the origin named it.
    pub fn already_bought(user_id: u64, product_id: u64, order_no: Option<String>) -> Self {
        Self { order_no, ..Self::new(ErrorCode::AlreadyBought, already_bought_message(user_id, product_id)) }
    }

    /// 409 `NOT_STARTED`: the sale's room is not open yet (worded as the origin words it).
    pub fn not_started(product_id: u64, start_ms: u64) -> Self {
        Self::new(ErrorCode::NotStarted, not_started_message(product_id, start_ms))
    }

    /// 404 `NOT_FOUND`: a challenge was asked for a sale whose room asks none (or that has no
    /// room, or is not listed).
    pub fn no_challenge(product_id: u64) -> Self {
        Self::new(ErrorCode::NotFound, format!("the sale of product {product_id} asks no challenge"))
    }

    /// 403 `CHALLENGE_FAILED`: the sale's room asks a solved challenge of a user joining its
    /// line; the message says what was wrong with this request's.
    pub fn challenge_failed(refusal: seckill_protocol::challenge::Refusal) -> Self {
        Self::new(ErrorCode::ChallengeFailed, refusal.to_string())
    }

    /// 401 `UNAUTHENTICATED`: no valid identity token; the message says what is wrong with it.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthenticated, message)
    }

    /// 403 `FORBIDDEN`: the request names a user other than the signed-in one.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// 504 `ORIGIN_TIMEOUT`: the origin did not answer in time. For a buy or a pay the outcome
    /// is unknown (it may have happened), so the client is told to look rather than to retry.
    pub fn origin_timeout() -> Self {
        Self::new(
            ErrorCode::OriginTimeout,
            "the shop did not answer in time; the outcome is unknown, look at your orders before trying again",
        )
    }

    /// 429 `RATE_LIMITED`: over a rate limit (the caller adds `Retry-After`).
    pub fn rate_limited(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::RateLimited, message)
    }

    /// 413 `PAYLOAD_TOO_LARGE`: the body is over the edge's cap for this route.
    pub fn payload_too_large(max_bytes: usize) -> Self {
        Self::new(ErrorCode::PayloadTooLarge, format!("body too large (at most {max_bytes} bytes)"))
    }

    /// 415 `UNSUPPORTED_MEDIA_TYPE`: the body is not of a type the route reads.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::UnsupportedMediaType, message)
    }

    /// 404 `NOT_FOUND`: no public route at this path (admin routes are never exposed here).
    pub fn not_found() -> Self {
        Self::new(ErrorCode::NotFound, "no such route")
    }

    /// 405 `METHOD_NOT_ALLOWED`: the path exists, the method does not.
    pub fn method_not_allowed() -> Self {
        Self::new(ErrorCode::MethodNotAllowed, "method not allowed on this route")
    }

    /// 503 `UNAVAILABLE`: the origin could not be reached (same code the origin uses when busy).
    pub fn origin_unreachable() -> Self {
        Self::new(ErrorCode::Unavailable, "the shop is busy, please try again")
    }

    /// 503 `UNAVAILABLE`: the sale's waiting room could not be asked. The room exists to keep
    /// the crowd off the origin, so nobody is let through without it.
    pub fn room_unavailable() -> Self {
        Self::new(ErrorCode::Unavailable, "the waiting room is busy, please try again")
    }

    /// 503 `UNAVAILABLE`: the edge has no product list that holds the sale, so it cannot tell
    /// whether the sale has a waiting room; nobody is let past a room the edge cannot see.
    pub fn list_unavailable() -> Self {
        Self::new(ErrorCode::Unavailable, "the shop cannot check this sale right now, please try again")
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        let body = ErrorBody { code: self.code.as_str(), message: &self.message, order_no: self.order_no.as_deref() };
        serde_json::to_string(&body).expect("a struct of strings always serializes")
    }
}

/// The `orderNo` of an origin answer: an accepted buy's, or the order an `ALREADY_BOUGHT` names.
pub fn order_no_of(body: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct OrderNoOnly {
        order_no: String,
    }
    serde_json::from_str::<OrderNoOnly>(body).ok().map(|b| b.order_no)
}

/// The code of an origin error body, if the body is one with a code this edge knows.
pub fn error_code(body: &str) -> Option<ErrorCode> {
    #[derive(serde::Deserialize)]
    struct CodeOnly {
        code: String,
    }
    serde_json::from_str::<CodeOnly>(body).ok().and_then(|b| ErrorCode::parse(&b.code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_has_the_origin_shape() {
        let body: serde_json::Value = serde_json::from_str(&EdgeError::sold_out(3).body()).unwrap();
        assert_eq!(body["code"], "SOLD_OUT");
        assert!(body["message"].is_string());
        assert_eq!(body.as_object().unwrap().len(), 2);
    }

    #[test]
    fn an_already_bought_answer_names_the_order_when_known() {
        let named: serde_json::Value =
            serde_json::from_str(&EdgeError::already_bought(7, 3, Some("123-3".into())).body()).unwrap();
        assert_eq!((named["code"].as_str(), named["orderNo"].as_str()), (Some("ALREADY_BOUGHT"), Some("123-3")));
        let unnamed: serde_json::Value = serde_json::from_str(&EdgeError::already_bought(7, 3, None).body()).unwrap();
        assert!(unnamed.get("orderNo").is_none());
        assert_eq!(order_no_of(r#"{"orderNo":"9-1","status":"QUEUED"}"#).as_deref(), Some("9-1"));
        assert_eq!(order_no_of(r#"{"code":"ALREADY_BOUGHT","message":"m","orderNo":"9-1"}"#).as_deref(), Some("9-1"));
        assert_eq!(order_no_of(r#"{"code":"SOLD_OUT","message":"m"}"#), None);
    }

    #[test]
    fn messages_are_json_escaped() {
        let body = EdgeError::bad_request("a \"quoted\" word").body();
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["message"], "a \"quoted\" word");
    }

    #[test]
    fn reads_the_code_of_an_origin_error() {
        assert_eq!(error_code(r#"{"code":"SOLD_OUT","message":"x"}"#), Some(ErrorCode::SoldOut));
        assert_eq!(error_code(r#"{"code":"NO_SUCH_CODE","message":"x"}"#), None);
        assert_eq!(error_code(r#"{"orderNo":"1","status":"QUEUED"}"#), None);
        assert_eq!(error_code("<html>bad gateway</html>"), None);
    }
}
