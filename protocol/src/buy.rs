//! The buy body, `POST /api/seckill`: `{"productId": u64 >= 1, "quantity": u32 >= 1,
//! "userId": u64 >= 1}`. `quantity` is optional (default 1). `userId` is optional: the buyer is
//! the signed token's user, and a `userId` that names anyone else is refused ([`BuyBody::buyer`]).
//! Unknown fields are ignored and never forwarded. Integers may be written `3.0` or `3e0`, as
//! JSON Schema allows ([`crate::json`]).
//!
//! The per-user limit on `quantity` is the origin's to check: only it knows the product.

use serde::Serialize;
use serde_json::{Map, Value};

/// Largest buy body the edge reads. A real one is under 100 bytes; the cap keeps a flood of
/// huge bodies from costing the edge CPU.
pub const MAX_BUY_BODY_BYTES: usize = 16 * 1024;

/// A buy body that follows the rules; the buyer is not settled until [`BuyBody::buyer`].
/// [`BuyBody::parse`] reads it (the origin's document describes this type: `openapi` feature).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(rename_all = "camelCase"))]
pub struct BuyBody {
    /// Optional: the buyer is the token's user, whom this may only repeat.
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub user_id: Option<u64>,
    #[cfg_attr(feature = "openapi", schema(minimum = 1, example = 1))]
    pub product_id: u64,
    /// At most the sale's per-user limit.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, default = 1, required = false))]
    pub quantity: u32,
}

/// A buy whose buyer is the signed-in user: what the edge forwards and the origin takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Buy {
    pub user_id: u64,
    pub product_id: u64,
    pub quantity: u32,
}

/// Why a body is refused: 400 `BAD_REQUEST` with this message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadBody(pub String);

/// The body names a user other than the signed-in one: 403 `FORBIDDEN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotTheSignedInUser {
    pub named: u64,
    pub signed_in: u64,
}

impl std::fmt::Display for NotTheSignedInUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "userId {} is not the signed-in user; leave it out or send {}", self.named, self.signed_in)
    }
}

impl BuyBody {
    /// Checks a raw body against the rules; the error says which rule it breaks.
    pub fn parse(body: &[u8]) -> Result<Self, BadBody> {
        let bad = |m: String| Err(BadBody(m));
        if body.len() > MAX_BUY_BODY_BYTES {
            return bad(format!("body too large (at most {MAX_BUY_BODY_BYTES} bytes)"));
        }
        let value: Value = match serde_json::from_slice(&crate::json::plain_integers(body)) {
            Ok(v) => v,
            Err(e) => return bad(format!("body is not valid JSON: {e}")),
        };
        let Value::Object(fields) = value else {
            return bad("body must be a JSON object".into());
        };
        let user_id = optional_id(&fields, "userId")?;
        let product_id = optional_id(&fields, "productId")?.ok_or_else(|| BadBody("productId is required".into()))?;
        let quantity = match fields.get("quantity") {
            None | Some(Value::Null) => 1,
            Some(q) => match q.as_u64().map(u32::try_from) {
                Some(Ok(0)) => return bad("quantity must be at least 1".into()),
                Some(Ok(q)) => q,
                _ => return bad("quantity must be a positive integer".into()),
            },
        };
        Ok(Self { user_id, product_id, quantity })
    }

    /// The buy with its buyer settled: the signed-in user, whom `userId` may only repeat.
    pub fn buyer(self, signed_in: u64) -> Result<Buy, NotTheSignedInUser> {
        match self.user_id {
            Some(named) if named != signed_in => Err(NotTheSignedInUser { named, signed_in }),
            _ => Ok(Buy { user_id: signed_in, product_id: self.product_id, quantity: self.quantity }),
        }
    }
}

impl Buy {
    /// The body forwarded to the origin: exactly what was checked, nothing the client added.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("three integers always serialize")
    }
}

fn optional_id(fields: &Map<String, Value>, name: &str) -> Result<Option<u64>, BadBody> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|id| *id >= 1)
            .map(Some)
            .ok_or_else(|| BadBody(format!("{name} must be a positive integer"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<BuyBody, BadBody> {
        BuyBody::parse(body.as_bytes())
    }

    fn rejected_with(body: &str) -> String {
        parse(body).expect_err(body).0
    }

    #[test]
    fn accepts_a_full_body() {
        let buy = parse(r#"{"userId": 7, "productId": 3, "quantity": 2}"#).unwrap();
        assert_eq!(buy, BuyBody { user_id: Some(7), product_id: 3, quantity: 2 });
    }

    #[test]
    fn user_id_and_quantity_are_optional() {
        assert_eq!(parse(r#"{"productId":3}"#).unwrap(), BuyBody { user_id: None, product_id: 3, quantity: 1 });
        let nulls = parse(r#"{"userId":null,"productId":3,"quantity":null}"#).unwrap();
        assert_eq!(nulls, BuyBody { user_id: None, product_id: 3, quantity: 1 });
    }

    #[test]
    fn the_buyer_is_the_signed_in_user() {
        let body = parse(r#"{"productId":3}"#).unwrap();
        assert_eq!(body.buyer(9), Ok(Buy { user_id: 9, product_id: 3, quantity: 1 }));
        let same = parse(r#"{"userId":9,"productId":3}"#).unwrap();
        assert_eq!(same.buyer(9).unwrap().user_id, 9);
        let other = parse(r#"{"userId":8,"productId":3}"#).unwrap();
        let refused = other.buyer(9).unwrap_err();
        assert_eq!(refused, NotTheSignedInUser { named: 8, signed_in: 9 });
        assert!(refused.to_string().contains("userId 8 is not the signed-in user"));
    }

    #[test]
    fn forwards_only_what_was_checked() {
        let buy = parse(r#"{"productId":3,"price":"0.01"}"#).unwrap().buyer(7).unwrap();
        assert_eq!(buy.to_json(), r#"{"userId":7,"productId":3,"quantity":1}"#);
    }

    #[test]
    fn accepts_the_largest_ids() {
        let body = format!(r#"{{"userId":{},"productId":{},"quantity":{}}}"#, u64::MAX, u64::MAX, u32::MAX);
        let buy = parse(&body).unwrap();
        assert_eq!((buy.user_id, buy.product_id, buy.quantity), (Some(u64::MAX), u64::MAX, u32::MAX));
    }

    #[test]
    fn rejects_bodies_that_are_not_a_json_object() {
        for body in ["", "not json", "{", r#"{"userId":1,"productId":1"#] {
            assert!(rejected_with(body).starts_with("body is not valid JSON: "), "{body:?}");
        }
        for body in ["[1,2]", "42", "null", r#""x""#] {
            assert_eq!(rejected_with(body), "body must be a JSON object", "{body:?}");
        }
    }

    #[test]
    fn rejects_a_missing_product_and_non_positive_ids() {
        assert_eq!(rejected_with(r#"{"userId":1}"#), "productId is required");
        assert_eq!(rejected_with(r#"{"productId":null}"#), "productId is required");
        for bad in [
            "0",
            "0.0",
            "-1",
            "1.5",
            "1e-1",
            r#""1""#,
            "true",
            "[]",
            "{}",
            "18446744073709551616",
            "1.8446744073709551616e19",
        ] {
            let msg = rejected_with(&format!(r#"{{"userId":{bad},"productId":1}}"#));
            assert_eq!(msg, "userId must be a positive integer", "userId {bad}");
            let msg = rejected_with(&format!(r#"{{"userId":1,"productId":{bad}}}"#));
            assert_eq!(msg, "productId must be a positive integer", "productId {bad}");
        }
    }

    #[test]
    fn reads_integers_as_json_schema_writes_them() {
        let body = parse(r#"{"userId":7.0,"productId":3e0,"quantity":0.2e1}"#).unwrap();
        assert_eq!(body, BuyBody { user_id: Some(7), product_id: 3, quantity: 2 });
        let big = parse(r#"{"productId":1.8446744073709551615e19}"#).unwrap();
        assert_eq!(big.product_id, u64::MAX);
    }

    #[test]
    fn rejects_bad_quantities() {
        assert_eq!(rejected_with(r#"{"productId":1,"quantity":0}"#), "quantity must be at least 1");
        for bad in ["-1", "2.5", r#""2""#, "4294967296", "false"] {
            let msg = rejected_with(&format!(r#"{{"productId":1,"quantity":{bad}}}"#));
            assert_eq!(msg, "quantity must be a positive integer", "quantity {bad}");
        }
    }

    #[test]
    fn rejects_oversized_bodies_before_parsing() {
        let body = format!(r#"{{"productId":1,"pad":"{}"}}"#, "x".repeat(MAX_BUY_BODY_BYTES));
        assert!(rejected_with(&body).starts_with("body too large"));
    }
}
