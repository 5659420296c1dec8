//! Rate limits at the edge ([`for_route`]): on the routes that change something (buy and pay),
//! sign in (login) or read an order (the order routes cost the origin a MySQL query each),
//! first per client IP (before the token is even read, so a flood of bad tokens is cheap to
//! turn away), then per signed-in user. Each is a Workers Rate Limiting binding
//! (`[[ratelimits]]` in wrangler.toml, simulated under `wrangler dev`), whose limit and period
//! are configuration.
//!
//! The client IP is Cloudflare's `CF-Connecting-IP`. A request without one is refused outside
//! development ([`ip_key`]): every such request would otherwise share one bucket, and one
//! client could spend it for all.
//!
//! A request over a limit is 429 `RATE_LIMITED` with `Retry-After` and never reaches the origin.
//! If a binding is missing the edge lets the request through (and logs it): the origin still
//! protects the stock, and a missing limiter should not close the shop.

use crate::answers::EdgeError;
use crate::routes::Route;

/// The binding that limits per client IP.
pub const IP_LIMITER: &str = "IP_RATE_LIMITER";
/// The binding that limits buys and pays per signed-in user.
pub const USER_LIMITER: &str = "USER_RATE_LIMITER";
/// The binding that limits order reads per signed-in user (a page polls its order).
pub const LOOKUP_LIMITER: &str = "LOOKUP_RATE_LIMITER";
/// Default `RATE_LIMIT_RETRY_AFTER_SECS`: the limiters' period (a client waiting this long
/// starts a fresh window).
pub const DEFAULT_RETRY_AFTER_SECS: u32 = 10;

/// Which limiters a route passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteLimits {
    /// The per-IP limiter, before the token is read.
    pub per_ip: bool,
    /// The per-user limiter checked once the user is known. A buy's is `None` here: it is
    /// checked only where the buy would reach the origin (a queued user's tries are paced by
    /// the room, and flag answers cost the origin nothing).
    pub per_user: Option<&'static str>,
}

/// The limiters of `route`: buy and pay (per IP, per user), login (per IP: it has no user
/// yet) and the order reads (per IP, per user on their own, looser, limiter).
pub fn for_route(route: &Route<'_>) -> RouteLimits {
    let (per_ip, per_user) = match route {
        Route::Buy => (true, None),
        Route::PayOrder { .. } => (true, Some(USER_LIMITER)),
        Route::Login => (true, None),
        Route::Order { .. } | Route::BuyerOrders | Route::Challenge => (true, Some(LOOKUP_LIMITER)),
        Route::ShopPage | Route::ProductList | Route::MethodNotAllowed | Route::NotFound => (false, None),
    };
    RouteLimits { per_ip, per_user }
}

/// The IP limiter's key: the client address Cloudflare puts in `CF-Connecting-IP`. Without
/// one, development (`wrangler dev`, tests) shares one local bucket; anywhere else the
/// request is refused (400), as Cloudflare always sets it.
pub fn ip_key(connecting_ip: Option<&str>, development: bool) -> Result<String, EdgeError> {
    match connecting_ip.map(str::trim).filter(|ip| !ip.is_empty()) {
        Some(ip) => Ok(format!("ip:{ip}")),
        None if development => Ok("ip:local".to_owned()),
        None => {
            Err(EdgeError::bad_request("the request carries no CF-Connecting-IP; it did not come through Cloudflare"))
        }
    }
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
    fn writes_logins_and_order_reads_are_limited() {
        let limits = |method, path| for_route(&route(method, path));
        assert_eq!(limits("POST", "/api/seckill"), RouteLimits { per_ip: true, per_user: None });
        assert_eq!(limits("POST", "/api/orders/A1/pay"), RouteLimits { per_ip: true, per_user: Some(USER_LIMITER) });
        assert_eq!(limits("POST", "/api/login"), RouteLimits { per_ip: true, per_user: None });
        for path in ["/api/orders/A1", "/api/orders", "/api/challenge"] {
            assert_eq!(limits("GET", path), RouteLimits { per_ip: true, per_user: Some(LOOKUP_LIMITER) }, "{path}");
        }
        for (method, path) in [("GET", "/"), ("GET", "/api/products"), ("GET", "/nowhere")] {
            assert_eq!(limits(method, path), RouteLimits { per_ip: false, per_user: None }, "{method} {path}");
        }
    }

    #[test]
    fn keys_name_the_ip_or_the_user() {
        assert_eq!(ip_key(Some("203.0.113.7"), false).unwrap(), "ip:203.0.113.7");
        assert_eq!(ip_key(None, true).unwrap(), "ip:local", "development shares one local bucket");
        for missing in [None, Some(" ")] {
            let refused = ip_key(missing, false).unwrap_err();
            assert_eq!(refused.status(), 400, "no shared bucket outside development");
            assert!(refused.message.contains("CF-Connecting-IP"));
        }
        assert_eq!(user_key(42), "user:42");
        assert_ne!(ip_key(Some("42"), false).unwrap(), user_key(42), "the two limiters' keys never collide");
    }

    #[test]
    fn the_answer_is_429_rate_limited() {
        let e = rate_limited("user", 10);
        assert_eq!((e.status(), e.code), (429, ErrorCode::RateLimited));
        assert!(e.message.contains("10 s"));
    }
}
