//! Admission of `POST /api/seckill` at the edge: body validation and the cached flags.
//!
//! Order of checks, cheapest and widest first:
//! 1. the signed-in user ([`crate::identity`]) → 401/403 at the edge;
//! 2. the body ([`seckill_protocol::buy::BuyBody`], the origin's own rules) → 400 at the edge;
//! 3. the product's sold-out flag → 409 `SOLD_OUT` at the edge;
//! 4. the (signed-in user, product) bought flag → 409 `ALREADY_BOUGHT` at the edge;
//! 5. otherwise forward, and let the origin's answer set a flag ([`flag_from_answer`]).
//!
//! An order's answer may clear one: a buyer who reads their order as `REFUSED` (Redis had
//! sold a unit it did not have, and the sale was frozen and healed) or `CANCELLED` holds no
//! active order of the product, so the bought flag goes at once ([`flag_cleared_by_order`])
//! instead of turning them away for the rest of its TTL.
//!
//! A flag only ever turns buys away, so a stale one costs a wrong rejection, never an oversell.
//! That is why each lives no longer than the origin allows: stock comes back when unpaid orders
//! are cancelled, and a user whose order was cancelled may buy again.

use seckill_protocol::buy::Buy;
use seckill_protocol::errors::ErrorCode;

use crate::answers::{error_code, order_no_of, EdgeError};

/// Upper bound on any TTL the edge accepts from the origin, whatever the header says, so that
/// one bad header cannot pin a flag for days. Overridable by the `MAX_FLAG_TTL_SECS` var.
pub const DEFAULT_MAX_FLAG_TTL_SECS: u32 = 3600;

/// The flags to look up before forwarding `buy`, in the order they are checked.
pub fn flags_to_check(buy: &Buy) -> [Flag; 2] {
    [Flag::SoldOut { product_id: buy.product_id }, Flag::Bought { user_id: buy.user_id, product_id: buy.product_id }]
}

/// Something the origin told the edge, cached for a while so the edge can answer alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// The origin answered `SOLD_OUT` for this product.
    SoldOut { product_id: u64 },
    /// The origin accepted (`QUEUED`) or refused as `ALREADY_BOUGHT` this user for this product.
    Bought { user_id: u64, product_id: u64 },
}

impl Flag {
    /// Where the flag is shared between the isolates of a data centre: the synthetic URL it is
    /// stored under in the Workers Cache API (the host is never resolved: the Cache API just
    /// needs an absolute http(s) URL as a key). Only the sold-out flag is: it is written once
    /// per TTL and answers every buyer. A bought flag concerns one buyer and would cost a cache
    /// write on every accepted buy; it stays in the isolate's memory
    /// ([`crate::flag_memory`]), and a repeat that lands on another isolate costs the origin
    /// one Redis call, which refuses it.
    pub fn shared_cache_key(&self) -> Option<String> {
        match self {
            Flag::SoldOut { product_id } => Some(format!("https://seckill-flags.internal/sold-out/{product_id}")),
            Flag::Bought { .. } => None,
        }
    }

    /// The answer the edge gives when this flag is present; `stored` is what was stored with
    /// it ([`FlagToSet::stored`]): a bought flag's order number, so the buyer learns it again.
    pub fn rejection(&self, stored: &str) -> EdgeError {
        match *self {
            Flag::SoldOut { product_id } => EdgeError::sold_out(product_id),
            Flag::Bought { user_id, product_id } => {
                let order_no = Some(stored.trim()).filter(|no| is_order_no(no)).map(str::to_owned);
                EdgeError::already_bought(user_id, product_id, order_no)
            }
        }
    }
}

/// A flag to store after a forwarded buy, for how many seconds (`Cache-Control: max-age`), and
/// the order number the origin named with it (a bought flag's; the edge's own `ALREADY_BOUGHT`
/// hands it back, so a buyer whose first answer was lost still learns their order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagToSet {
    pub flag: Flag,
    pub ttl_secs: u32,
    pub order_no: Option<String>,
}

impl FlagToSet {
    /// What is stored with the flag: the order number, or nothing.
    pub fn stored(&self) -> &str {
        self.order_no.as_deref().unwrap_or_default()
    }
}

/// Which flag, if any, the origin's answer to `buy` sets:
///
/// * 200 (`QUEUED`) and 409 `ALREADY_BOUGHT` → the (user, product) flag;
/// * 409 `SOLD_OUT` → the product flag;
/// * anything else, or no usable `x-seckill-flag-ttl` header → nothing (the origin decides
///   whether an answer may be cached, the edge never guesses a TTL).
pub fn flag_from_answer(
    buy: &Buy,
    status: u16,
    body: &str,
    ttl_header: Option<&str>,
    max_ttl_secs: u32,
) -> Option<FlagToSet> {
    let ttl_secs = parse_flag_ttl(ttl_header, max_ttl_secs)?;
    let bought = Flag::Bought { user_id: buy.user_id, product_id: buy.product_id };
    let flag = match status {
        200 => bought,
        409 => match error_code(body) {
            Some(ErrorCode::AlreadyBought) => bought,
            Some(ErrorCode::SoldOut) => Flag::SoldOut { product_id: buy.product_id },
            _ => return None,
        },
        _ => return None,
    };
    let order_no = (flag == bought).then(|| order_no_of(body)).flatten().filter(|no| is_order_no(no));
    Some(FlagToSet { flag, ttl_secs, order_no })
}

/// An order number as the origin mints them (`{flake}-{productId}`): stored and repeated only
/// if it looks like one, so a cached answer can carry nothing else.
fn is_order_no(s: &str) -> bool {
    !s.is_empty() && s.len() <= 40 && s.bytes().all(|b| b.is_ascii_digit() || b == b'-')
}

/// Which flag, if any, the origin's answer to `GET /api/orders/{orderNo}` for `user_id` clears:
/// the (user, product) bought flag when the order is `REFUSED` or `CANCELLED`.
pub fn flag_cleared_by_order(user_id: u64, status: u16, body: &str) -> Option<Flag> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct OrderState {
        status: String,
        product_id: u64,
        user_id: u64,
    }
    if status != 200 {
        return None;
    }
    let order: OrderState = serde_json::from_str(body).ok()?;
    let gone = matches!(order.status.as_str(), "REFUSED" | "CANCELLED");
    (gone && order.user_id == user_id).then_some(Flag::Bought { user_id, product_id: order.product_id })
}

/// Reads `x-seckill-flag-ttl`: whole seconds, at least 1, capped at `max_ttl_secs`.
/// Missing, empty, zero, negative or non-numeric → `None` (do not cache).
pub fn parse_flag_ttl(header: Option<&str>, max_ttl_secs: u32) -> Option<u32> {
    let secs: u64 = header?.trim().parse().ok()?;
    if secs == 0 || max_ttl_secs == 0 {
        return None;
    }
    Some(u32::try_from(secs).unwrap_or(max_ttl_secs).min(max_ttl_secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_the_product_flag_before_the_user_flag() {
        let buy = Buy { user_id: 9, product_id: 4, quantity: 1 };
        assert_eq!(flags_to_check(&buy), [Flag::SoldOut { product_id: 4 }, Flag::Bought { user_id: 9, product_id: 4 }]);
    }

    #[test]
    fn flags_reject_with_the_origin_codes() {
        let sold_out = Flag::SoldOut { product_id: 1 }.rejection("");
        assert_eq!((sold_out.status(), sold_out.code), (409, ErrorCode::SoldOut));
        let bought = Flag::Bought { user_id: 1, product_id: 1 }.rejection("77-1");
        assert_eq!((bought.status(), bought.code), (409, ErrorCode::AlreadyBought));
        assert_eq!(bought.order_no.as_deref(), Some("77-1"), "the order the flag was set for");
        let unknown = Flag::Bought { user_id: 1, product_id: 1 }.rejection("<script>");
        assert_eq!(unknown.order_no, None, "only an order number is repeated");
    }

    #[test]
    fn only_the_sold_out_flag_is_shared_and_its_keys_are_distinct_absolute_urls() {
        let keys: Vec<String> =
            [12, 1, 2].iter().filter_map(|&product_id| Flag::SoldOut { product_id }.shared_cache_key()).collect();
        assert_eq!(keys.len(), 3);
        for (i, a) in keys.iter().enumerate() {
            assert!(a.starts_with("https://"), "{a}");
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(Flag::Bought { user_id: 1, product_id: 2 }.shared_cache_key(), None);
    }

    const BUY: Buy = Buy { user_id: 5, product_id: 8, quantity: 1 };
    const BOUGHT: Flag = Flag::Bought { user_id: 5, product_id: 8 };
    const SOLD_OUT: Flag = Flag::SoldOut { product_id: 8 };

    fn answer(status: u16, body: &str, ttl: Option<&str>) -> Option<FlagToSet> {
        flag_from_answer(&BUY, status, body, ttl, DEFAULT_MAX_FLAG_TTL_SECS)
    }

    #[test]
    fn queued_sets_the_user_flag() {
        let set = answer(200, r#"{"orderNo":"41-8","status":"QUEUED"}"#, Some("60"));
        assert_eq!(set, Some(FlagToSet { flag: BOUGHT, ttl_secs: 60, order_no: Some("41-8".into()) }));
    }

    #[test]
    fn already_bought_sets_the_user_flag() {
        let set = answer(409, r#"{"code":"ALREADY_BOUGHT","message":"x","orderNo":"41-8"}"#, Some("60"));
        assert_eq!(set, Some(FlagToSet { flag: BOUGHT, ttl_secs: 60, order_no: Some("41-8".into()) }));
        let set = answer(409, r#"{"code":"ALREADY_BOUGHT","message":"x"}"#, Some("60"));
        assert_eq!(set, Some(FlagToSet { flag: BOUGHT, ttl_secs: 60, order_no: None }));
    }

    #[test]
    fn sold_out_sets_the_product_flag() {
        let set = answer(409, r#"{"code":"SOLD_OUT","message":"x"}"#, Some("2"));
        assert_eq!(set, Some(FlagToSet { flag: SOLD_OUT, ttl_secs: 2, order_no: None }));
    }

    #[test]
    fn no_ttl_header_means_no_flag() {
        assert_eq!(answer(200, r#"{"orderNo":"A1","status":"QUEUED"}"#, None), None);
        assert_eq!(answer(409, r#"{"code":"SOLD_OUT","message":"x"}"#, None), None);
        assert_eq!(answer(409, r#"{"code":"SOLD_OUT","message":"x"}"#, Some("0")), None);
    }

    #[test]
    fn other_answers_set_no_flag_even_with_a_ttl() {
        for (status, body) in [
            (409, r#"{"code":"NOT_STARTED","message":"x"}"#),
            (409, r#"{"code":"ENDED","message":"x"}"#),
            (404, r#"{"code":"NO_SUCH_PRODUCT","message":"x"}"#),
            (400, r#"{"code":"BAD_REQUEST","message":"quantity above limit"}"#),
            (503, r#"{"code":"UNAVAILABLE","message":"x"}"#),
            (403, r#"{"code":"FORBIDDEN","message":"x"}"#),
            (409, "not json"),
            (500, ""),
        ] {
            assert_eq!(answer(status, body, Some("60")), None, "{status} {body}");
        }
    }

    #[test]
    fn parses_ttl_headers() {
        assert_eq!(parse_flag_ttl(Some("2"), 3600), Some(2));
        assert_eq!(parse_flag_ttl(Some(" 60 "), 3600), Some(60));
        assert_eq!(parse_flag_ttl(Some("86400"), 3600), Some(3600), "capped");
        assert_eq!(parse_flag_ttl(Some("99999999999999999999"), 3600), None, "overflow");
        for bad in ["", "0", "-5", "1.5", "abc", "2s", "max-age=2"] {
            assert_eq!(parse_flag_ttl(Some(bad), 3600), None, "{bad:?}");
        }
        assert_eq!(parse_flag_ttl(None, 3600), None);
        assert_eq!(parse_flag_ttl(Some("5"), 0), None, "a cap of 0 turns flags off");
    }

    #[test]
    fn a_refused_or_cancelled_order_clears_its_buyers_bought_flag() {
        let order =
            |status: &str| format!(r#"{{"orderNo":"1-1","userId":42,"productId":8,"quantity":1,"status":"{status}"}}"#);
        let bought = Flag::Bought { user_id: 42, product_id: 8 };
        assert_eq!(flag_cleared_by_order(42, 200, &order("REFUSED")), Some(bought));
        assert_eq!(flag_cleared_by_order(42, 200, &order("CANCELLED")), Some(bought));
        for active in ["QUEUED", "UNPAID", "PAID"] {
            assert_eq!(flag_cleared_by_order(42, 200, &order(active)), None, "{active}");
        }
        assert_eq!(flag_cleared_by_order(7, 200, &order("REFUSED")), None, "another user's order clears nothing");
        assert_eq!(flag_cleared_by_order(42, 404, r#"{"code":"NO_SUCH_ORDER","message":"x"}"#), None);
        assert_eq!(flag_cleared_by_order(42, 200, "not json"), None);
    }
}
