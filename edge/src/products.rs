//! The product list, cached at the edge for about a second.
//!
//! Every browser polls `GET /api/products` for stock and countdowns; during a sale that is the
//! busiest read, and a one-second-old stock figure is fine. The countdown is not: the page
//! computes it from `serverTime`, so a cached copy has its `serverTime` moved forward by the
//! time it spent in the cache.
//!
//! A buy reads the same cached list for what the edge needs to know about its sale: whether
//! it is sold out and whether it has a waiting room ([`sale_of`]).

use seckill_protocol::room::RoomSettings;
use serde_json::Value;

/// The cache key of the product list in the Workers Cache API.
pub const PRODUCT_LIST_CACHE_KEY: &str = "https://seckill-cache.internal/api/products";

/// Header on the cached copy: when (ms since the epoch) the origin gave it.
pub const CACHED_AT_HEADER: &str = "x-seckill-cached-at";

/// The cache key of the last list the origin answered 200 with, served when it cannot answer.
pub const LAST_GOOD_LIST_CACHE_KEY: &str = "https://seckill-cache.internal/api/products/last-good";

/// How long the last good list is kept: a day, longer than any outage the edge should ride out
/// on it.
pub const LAST_GOOD_LIST_SECS: u32 = 86_400;

/// Header on a list answer (and on its cached copy) that is the last good list, served because
/// the origin could not give a fresh one.
pub const STALE_HEADER: &str = "x-seckill-stale";

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

/// What a buy needs to know about its sale, from the product list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sale {
    /// The list said `SOLD_OUT` (at most `PRODUCTS_CACHE_SECS` ago).
    pub sold_out: bool,
    /// The sale's waiting room, if it has one.
    pub waiting_room: Option<RoomSettings>,
    /// When the sale starts (ms since the epoch), if it has a start: a room's pre-queue opens
    /// `preQueueSecs` before it and the draw happens at it.
    pub start_at: Option<u64>,
}

/// The sale of `product_id` in the product list `body`; `None` when the list does not have it
/// (or is not a list): the origin then decides alone. A `waitingRoom` the edge cannot read is
/// taken as none, and the origin's stock still protects the sale.
pub fn sale_of(body: &str, product_id: u64) -> Option<Sale> {
    let list: Value = serde_json::from_str(body).ok()?;
    let product = list.get("products")?.as_array()?.iter().find(|p| p["id"].as_u64() == Some(product_id))?;
    Some(Sale {
        sold_out: product["state"] == "SOLD_OUT",
        waiting_room: serde_json::from_value(product["waitingRoom"].clone()).ok().flatten(),
        start_at: product["startAt"].as_u64(),
    })
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

    #[test]
    fn a_buy_finds_its_sale_s_state_and_room() {
        let body = r#"{"serverTime":1,"products":[
            {"id":1,"state":"ON_SALE","waitingRoom":null},
            {"id":2,"state":"SOLD_OUT"},
            {"id":3,"state":"ON_SALE","startAt":1800000000000,"waitingRoom":{"newUsersPerInterval":20,"intervalSecs":2,"maxActiveUsers":200,"sessionSecs":300,"preQueueSecs":60}}]}"#;
        assert_eq!(sale_of(body, 1), Some(Sale { sold_out: false, waiting_room: None, start_at: None }));
        assert_eq!(sale_of(body, 2), Some(Sale { sold_out: true, waiting_room: None, start_at: None }));
        let room = RoomSettings {
            new_users_per_interval: 20,
            interval_secs: 2,
            max_active_users: 200,
            session_secs: 300,
            pre_queue_secs: 60,
            shards: 1,
            paused: false,
            challenge: None,
        };
        let sale = Sale { sold_out: false, waiting_room: Some(room), start_at: Some(1_800_000_000_000) };
        assert_eq!(sale_of(body, 3), Some(sale));
        assert_eq!(sale_of(body, 4), None);
        assert_eq!(sale_of("not json", 1), None);
    }
}
