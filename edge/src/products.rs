//! The product list, cached at the edge for about a second.
//!
//! Every browser polls `GET /api/products` for stock and countdowns; during a sale that is the
//! busiest read, and a one-second-old stock figure is fine. The countdown is not: the page
//! computes it from `serverTime`, so a cached copy has its `serverTime` moved forward by the
//! time it spent in the cache.

use serde_json::Value;

/// The cache key of the product list in the Workers Cache API.
pub const PRODUCT_LIST_CACHE_KEY: &str = "https://seckill-cache.internal/api/products";

/// Header on the cached copy: when (ms since the epoch) the edge stored it.
pub const CACHED_AT_HEADER: &str = "x-seckill-cached-at";

/// Default seconds a product list may be served from the cache (`PRODUCTS_CACHE_SECS` var).
pub const DEFAULT_PRODUCTS_CACHE_SECS: u32 = 1;

/// The product list `body` as it would look `age_ms` later: `serverTime` + `age_ms`.
/// A body without a numeric `serverTime` is returned unchanged.
pub fn with_server_time_advanced(body: &str, age_ms: u64) -> String {
    let Ok(mut list) = serde_json::from_str::<Value>(body) else {
        return body.to_owned();
    };
    let Some(server_time) = list.get("serverTime").and_then(Value::as_u64) else {
        return body.to_owned();
    };
    list["serverTime"] = Value::from(server_time.saturating_add(age_ms));
    list.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advances_server_time_and_keeps_the_rest() {
        let body = r#"{"serverTime":1000,"products":[{"id":1,"price":"6999.00","stockLeft":3}]}"#;
        let aged: Value = serde_json::from_str(&with_server_time_advanced(body, 250)).unwrap();
        assert_eq!(aged["serverTime"], 1250);
        assert_eq!(aged["products"][0]["price"], "6999.00");
        assert_eq!(aged["products"][0]["stockLeft"], 3);
    }

    #[test]
    fn leaves_other_bodies_alone() {
        for body in ["not json", r#"{"products":[]}"#, r#"{"serverTime":"soon"}"#, "[]"] {
            assert_eq!(with_server_time_advanced(body, 5), body);
        }
    }
}
