//! The product list, held at the edge for about a second.
//!
//! Every browser polls `GET /api/products` for stock and countdowns; during a sale that is the
//! busiest read, and a one-second-old stock figure is fine. The countdown is not: the page
//! computes it from `serverTime`, so a held copy has its `serverTime` moved forward by the
//! time it has been held.
//!
//! A buy reads the same list for what the edge needs to know about its sale: whether it is sold
//! out and whether it has a waiting room ([`ListMemory::sale`]). So the list is parsed once per
//! refresh into the few fields a buy reads ([`ListSnapshot`]), kept in the isolate's memory
//! ([`ListMemory`]) and refreshed by one request at a time while the others serve the copy held.

use std::collections::HashMap;

use seckill_protocol::room::RoomSettings;
use serde::Deserialize;
use serde_json::Value;

/// The cache key of the product list in the Workers Cache API, where the isolates of a data
/// centre share the copy one of them fetched.
pub const PRODUCT_LIST_CACHE_KEY: &str = "https://seckill-cache.internal/api/products";

/// Header on the shared copy: when (ms since the epoch) the origin gave it.
pub const CACHED_AT_HEADER: &str = "x-seckill-cached-at";

/// The cache key of the last list the origin answered 200 with, served when it cannot answer.
pub const LAST_GOOD_LIST_CACHE_KEY: &str = "https://seckill-cache.internal/api/products/last-good";

/// How long the last good list is kept: a day, longer than any outage the edge should ride out
/// on it.
pub const LAST_GOOD_LIST_SECS: u32 = 86_400;

/// Header on a list answer that is the last good list, served because the origin could not give
/// a fresh one.
pub const STALE_HEADER: &str = "x-seckill-stale";

/// Default seconds a product list may be served from the edge (`PRODUCTS_CACHE_SECS` var).
pub const DEFAULT_PRODUCTS_CACHE_SECS: u32 = 1;

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

/// The fields of a listed product the edge reads; the rest of the body is passed on unread.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListedProduct {
    id: u64,
    #[serde(default)]
    state: String,
    /// Read leniently: a room the edge cannot read is taken as none, and the origin's stock
    /// still protects the sale.
    #[serde(default)]
    waiting_room: Value,
    #[serde(default)]
    start_at: Option<u64>,
}

#[derive(Deserialize)]
struct Listed {
    products: Vec<ListedProduct>,
}

/// A product list as the origin gave it, parsed once: the body (served as is, but for its
/// `serverTime`), the sales by id, and where in the body `serverTime` is.
#[derive(Debug, Clone)]
pub struct ListSnapshot {
    body: String,
    /// The byte range of `serverTime`'s digits in `body`, and their value.
    server_time: Option<(std::ops::Range<usize>, u64)>,
    sales: HashMap<u64, Sale>,
    /// When the origin gave it (ms since the epoch).
    fetched_at_ms: u64,
}

impl ListSnapshot {
    /// The list `body` the origin gave at `fetched_at_ms`; `None` when it is not a product list.
    pub fn parse(body: String, fetched_at_ms: u64) -> Option<Self> {
        let listed: Listed = serde_json::from_str(&body).ok()?;
        let sales = listed
            .products
            .into_iter()
            .map(|p| {
                let sale = Sale {
                    sold_out: p.state == "SOLD_OUT",
                    waiting_room: serde_json::from_value(p.waiting_room).ok().flatten(),
                    start_at: p.start_at,
                };
                (p.id, sale)
            })
            .collect();
        let server_time = server_time_in(&body);
        Some(Self { body, server_time, sales, fetched_at_ms })
    }

    /// When the origin gave it (ms since the epoch).
    pub fn fetched_at_ms(&self) -> u64 {
        self.fetched_at_ms
    }

    /// The body as the origin gave it.
    pub fn body(&self) -> &str {
        &self.body
    }

    /// The body as it would look at `now_ms`: `serverTime` moved forward by the list's age, so
    /// a page's countdown stays right. Only the number is replaced; nothing is re-serialized.
    pub fn body_at(&self, now_ms: u64) -> String {
        let Some((digits, server_time)) = &self.server_time else {
            return self.body.clone();
        };
        let age_ms = now_ms.saturating_sub(self.fetched_at_ms);
        let mut aged = String::with_capacity(self.body.len() + 4);
        aged.push_str(&self.body[..digits.start]);
        aged.push_str(&server_time.saturating_add(age_ms).to_string());
        aged.push_str(&self.body[digits.end..]);
        aged
    }

    /// The sale of `product_id`, if the list has it.
    pub fn sale(&self, product_id: u64) -> Option<&Sale> {
        self.sales.get(&product_id)
    }
}

/// The byte range and value of the top-level `serverTime` number in a product list body: the
/// origin writes it first, so the first `"serverTime":` is the one.
fn server_time_in(body: &str) -> Option<(std::ops::Range<usize>, u64)> {
    const KEY: &str = "\"serverTime\":";
    let after_key = body.find(KEY)? + KEY.len();
    let start = after_key + body[after_key..].len() - body[after_key..].trim_start().len();
    let len = body[start..].bytes().take_while(u8::is_ascii_digit).count();
    let value = body[start..start + len].parse().ok()?;
    Some((start..start + len, value))
}

/// What a buy learns of its sale from the list the isolate holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaleInList {
    /// The list has the sale.
    Listed(Sale),
    /// A current list does not have it (ended, unknown or not loaded): the origin decides alone.
    NotListed,
    /// The list held is not current (the last good one while the origin fails, or an expired
    /// one while another request refreshes it) and does not have the sale, or there is no list
    /// at all: the sale may have a waiting room nobody has seen, so the buy is refused.
    Unknown,
}

/// What to do about the list before serving it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListPlan {
    /// Serve what is held: `current` when it is younger than the period (else it is an expired
    /// list that another request is refreshing).
    Serve { current: bool },
    /// Refresh it (recorded as refreshing now), then serve.
    Refresh,
}

/// The isolate's product list: one refresh at a time (single flight); while it runs, other
/// requests serve the list held. Every method takes the time (ms since the epoch).
#[derive(Debug, Default)]
pub struct ListMemory {
    held: Option<ListSnapshot>,
    /// The list held is served as current until then.
    fresh_until_ms: u64,
    /// The list held is the last good one, served because the origin failed.
    stale: bool,
    /// A request is refreshing the list since then.
    refreshing_since_ms: Option<u64>,
}

impl ListMemory {
    /// Whether the list held can be served at `now_ms`, or this request refreshes it. A
    /// refresh older than `refresh_timeout_ms` is taken as abandoned (its request went away).
    pub fn plan(&mut self, now_ms: u64, refresh_timeout_ms: u64) -> ListPlan {
        if self.held.is_some() {
            if now_ms < self.fresh_until_ms {
                return ListPlan::Serve { current: true };
            }
            let refreshing = self.refreshing_since_ms.is_some_and(|t| now_ms < t.saturating_add(refresh_timeout_ms));
            if refreshing {
                return ListPlan::Serve { current: false };
            }
        }
        self.refreshing_since_ms = Some(now_ms);
        ListPlan::Refresh
    }

    /// A refresh got `list`: it is current for `period_ms` from when the origin gave it.
    pub fn refreshed(&mut self, list: ListSnapshot, period_ms: u64) {
        self.fresh_until_ms = list.fetched_at_ms.saturating_add(period_ms);
        self.held = Some(list);
        self.stale = false;
        self.refreshing_since_ms = None;
    }

    /// A refresh failed at `now_ms`: the list held, if any, is served as the last good one for
    /// a period, so the failing origin is asked again once a period, not once a request.
    /// Returns whether there is a list to serve.
    pub fn refresh_failed(&mut self, now_ms: u64, period_ms: u64) -> bool {
        self.refreshing_since_ms = None;
        if self.held.is_none() {
            return false;
        }
        self.stale = true;
        self.fresh_until_ms = now_ms.saturating_add(period_ms);
        true
    }

    /// Takes `last_good` (kept by another isolate, or this one before a restart) as the last
    /// good list after a failed refresh at `now_ms`.
    pub fn adopt_last_good(&mut self, last_good: ListSnapshot, now_ms: u64, period_ms: u64) {
        self.held = Some(last_good);
        self.refresh_failed(now_ms, period_ms);
    }

    /// The list body to answer `GET /api/products` with at `now_ms`, and whether it is the last
    /// good one.
    pub fn body_at(&self, now_ms: u64) -> Option<(String, bool)> {
        self.held.as_ref().map(|list| (list.body_at(now_ms), self.stale))
    }

    /// What the list held says about `product_id`; `current` as [`ListPlan::Serve`] said (or
    /// true right after a refresh).
    pub fn sale(&self, product_id: u64, current: bool) -> SaleInList {
        let Some(list) = &self.held else { return SaleInList::Unknown };
        match list.sale(product_id) {
            Some(sale) => SaleInList::Listed(sale.clone()),
            None if current && !self.stale => SaleInList::NotListed,
            None => SaleInList::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOM_LIST: &str = r#"{"serverTime":1000,"products":[
        {"id":1,"state":"ON_SALE","waitingRoom":null,"price":"6999.00","stockLeft":3},
        {"id":2,"state":"SOLD_OUT"},
        {"id":3,"state":"ON_SALE","startAt":1800000000000,"waitingRoom":{"newUsersPerInterval":20,"intervalSecs":2,"maxActiveUsers":200,"sessionSecs":300,"preQueueSecs":60}},
        {"id":4,"state":"ON_SALE","waitingRoom":{"newUsersPerInterval":"many"}}]}"#;

    fn snapshot(fetched_at_ms: u64) -> ListSnapshot {
        ListSnapshot::parse(ROOM_LIST.to_owned(), fetched_at_ms).unwrap()
    }

    #[test]
    fn advances_server_time_and_keeps_the_rest_byte_for_byte() {
        let list = snapshot(10_000);
        assert_eq!(list.body_at(10_250), ROOM_LIST.replacen("1000", "1250", 1));
        assert_eq!(list.body_at(9_000), ROOM_LIST, "never moved back");
        let spaced = ListSnapshot::parse(r#"{"serverTime": 7, "products":[]}"#.into(), 0).unwrap();
        assert_eq!(spaced.body_at(5), r#"{"serverTime": 12, "products":[]}"#);
        let none = ListSnapshot::parse(r#"{"products":[]}"#.into(), 0).unwrap();
        assert_eq!(none.body_at(5), r#"{"products":[]}"#, "no serverTime: unchanged");
    }

    #[test]
    fn only_product_lists_parse() {
        for body in ["not json", "[]", r#"{"serverTime":1}"#, r#"{"products":[{"state":"ON_SALE"}]}"#] {
            assert!(ListSnapshot::parse(body.into(), 0).is_none(), "{body}");
        }
    }

    #[test]
    fn a_buy_finds_its_sale_s_state_and_room() {
        let list = snapshot(0);
        assert_eq!(list.sale(1), Some(&Sale { sold_out: false, waiting_room: None, start_at: None }));
        assert_eq!(list.sale(2), Some(&Sale { sold_out: true, waiting_room: None, start_at: None }));
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
        assert_eq!(list.sale(3), Some(&sale));
        assert_eq!(list.sale(4).unwrap().waiting_room, None, "a room the edge cannot read is none");
        assert_eq!(list.sale(5), None);
    }

    #[test]
    fn one_request_refreshes_while_the_others_serve_the_list_held() {
        let mut memory = ListMemory::default();
        assert_eq!(memory.plan(0, 500), ListPlan::Refresh, "nothing held");
        assert_eq!(memory.plan(1, 500), ListPlan::Refresh, "nothing to serve: every request asks");
        memory.refreshed(snapshot(10), 1_000);
        assert_eq!(memory.plan(1_009, 500), ListPlan::Serve { current: true });
        assert_eq!(memory.plan(1_010, 500), ListPlan::Refresh, "expired: this request refreshes");
        assert_eq!(memory.plan(1_011, 500), ListPlan::Serve { current: false }, "the others serve the old one");
        assert_eq!(memory.plan(1_509, 500), ListPlan::Serve { current: false });
        assert_eq!(memory.plan(1_510, 500), ListPlan::Refresh, "a refresh that never ended is abandoned");
        memory.refreshed(snapshot(1_600), 1_000);
        assert_eq!(memory.plan(1_700, 500), ListPlan::Serve { current: true });
    }

    #[test]
    fn a_failed_refresh_serves_the_last_good_list_for_a_period() {
        let mut memory = ListMemory::default();
        assert!(!memory.refresh_failed(0, 1_000), "nothing to serve");
        assert_eq!(memory.sale(1, true), SaleInList::Unknown, "no list: no sale is known");
        memory.refreshed(snapshot(0), 1_000);
        assert_eq!(memory.plan(1_000, 500), ListPlan::Refresh);
        assert!(memory.refresh_failed(1_200, 1_000));
        assert_eq!(memory.plan(2_199, 500), ListPlan::Serve { current: true }, "the origin is asked once a period");
        assert!(memory.body_at(1_200).unwrap().1, "marked as the last good list");
        assert!(matches!(memory.sale(3, true), SaleInList::Listed(Sale { waiting_room: Some(_), .. })));
        assert_eq!(memory.sale(9, true), SaleInList::Unknown, "a sale the last good list lacks");
        memory.refreshed(snapshot(2_200), 1_000);
        assert!(!memory.body_at(2_300).unwrap().1);
        assert_eq!(memory.sale(9, true), SaleInList::NotListed, "a current list: the origin decides");
        assert_eq!(memory.sale(9, false), SaleInList::Unknown, "an expired one: nobody passes an unseen room");

        let mut cold = ListMemory::default();
        assert_eq!(cold.plan(0, 500), ListPlan::Refresh);
        cold.adopt_last_good(snapshot(0), 5_000, 1_000);
        assert_eq!(cold.plan(5_999, 500), ListPlan::Serve { current: true });
        assert_eq!(cold.body_at(5_000), Some((ROOM_LIST.replacen("1000", "6000", 1), true)));
    }
}
