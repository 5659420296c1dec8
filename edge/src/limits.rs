//! Rate limits at the edge, on the routes that change something (buy and pay): first per client
//! IP (before the token is even read, so a flood of bad tokens is cheap to turn away), then per
//! signed-in user. Each is a Workers Rate Limiting binding (`[[ratelimits]]` in wrangler.toml,
//! simulated under `wrangler dev`), whose limit and period are configuration.
//!
//! A request over a limit is 429 `RATE_LIMITED` with `Retry-After` and never reaches the origin.
//! If a binding is missing the edge lets the request through (and logs it): the origin still
//! protects the stock, and a missing limiter should not close the shop.

use crate::answers::EdgeError;
use crate::routes::Route;

/// The binding that limits per client IP.
pub const IP_LIMITER: &str = "IP_RATE_LIMITER";
/// The binding that limits per signed-in user.
pub const USER_LIMITER: &str = "USER_RATE_LIMITER";
/// Default `RATE_LIMIT_RETRY_AFTER_SECS`: the limiters' period (a client waiting this long
/// starts a fresh window).
pub const DEFAULT_RETRY_AFTER_SECS: u32 = 10;

/// Whether `route` is rate limited: the ones that take stock or change an order.
pub fn is_limited(route: &Route<'_>) -> bool {
    matches!(route, Route::Buy | Route::PayOrder { .. })
}

/// The IP limiter's key: the client address Cloudflare puts in `CF-Connecting-IP`.
pub fn ip_key(connecting_ip: Option<&str>) -> String {
    format!("ip:{}", connecting_ip.map(str::trim).filter(|ip| !ip.is_empty()).unwrap_or("unknown"))
}

/// The user limiter's key.
pub fn user_key(user_id: u64) -> String {
    format!("user:{user_id}")
}

/// The answer to a request over a limit; `Retry-After` carries `retry_after_secs`.
pub fn rate_limited(per: &str, retry_after_secs: u32) -> EdgeError {
    EdgeError::rate_limited(format!("too many requests from this {per}; try again in {retry_after_secs} s"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::route;
    use seckill_protocol::errors::ErrorCode;

    #[test]
    fn only_buy_and_pay_are_limited() {
        assert!(is_limited(&route("POST", "/api/seckill")));
        assert!(is_limited(&route("POST", "/api/orders/A1/pay")));
        for (method, path) in
            [("GET", "/"), ("GET", "/api/products"), ("GET", "/api/orders/A1"), ("POST", "/api/login")]
        {
            assert!(!is_limited(&route(method, path)), "{method} {path}");
        }
    }

    #[test]
    fn keys_name_the_ip_or_the_user() {
        assert_eq!(ip_key(Some("203.0.113.7")), "ip:203.0.113.7");
        assert_eq!(ip_key(Some(" ")), "ip:unknown");
        assert_eq!(ip_key(None), "ip:unknown");
        assert_eq!(user_key(42), "user:42");
        assert_ne!(ip_key(Some("42")), user_key(42), "the two limiters' keys never collide");
    }

    #[test]
    fn the_answer_is_429_rate_limited() {
        let e = rate_limited("user", 10);
        assert_eq!((e.status(), e.code), (429, ErrorCode::RateLimited));
        assert!(e.message.contains("10 s"));
    }
}
