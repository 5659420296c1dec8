//! A sale's price as the API takes it: a decimal string, read exactly and only in the form the
//! document's pattern states.

use rust_decimal::Decimal;
use serde::Deserialize;

use super::{price_within_bounds, MAX_PRICE};

/// The prices [`price_text`] reads, as the document states them: 1 to 999,999,999 with up to 2
/// decimals, 0.01 to 0.99, or 1,000,000,000 exactly. [`super::NewProduct`]'s schema repeats it (an
/// attribute takes a literal only); a test holds the two equal.
#[cfg(test)]
const PRICE_PATTERN: &str = r"^([1-9][0-9]{0,8}(\.[0-9]{1,2})?|0\.(0[1-9]|[1-9][0-9]?)|1000000000(\.00?)?)$";

/// Reads a price from the text [`PRICE_PATTERN`] describes, and nothing else: not a JSON number
/// (a float would round), not `1e3`, `+1`, `01` or `0`.
pub(super) fn price_text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
    use serde::de::Error;
    let text = String::deserialize(deserializer)?;
    let refuse = || {
        D::Error::custom(format!(
            "{text:?} is not a price: a decimal string above 0 and at most {MAX_PRICE}, with at most 2 decimals, like \"1299.00\""
        ))
    };
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let well_formed = !whole.is_empty()
        && digits(whole)
        && (whole == "0" || !whole.starts_with('0'))
        && digits(fraction)
        && (text.len() == whole.len() || (1..=2).contains(&fraction.len()));
    if !well_formed {
        return Err(refuse());
    }
    let price: Decimal = text.parse().map_err(|_| refuse())?;
    if !price_within_bounds(price) {
        return Err(refuse());
    }
    Ok(price)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_price_reader_takes_exactly_what_the_document_pattern_allows() {
        let pattern = regex::Regex::new(PRICE_PATTERN).unwrap();
        let read = |text: &str| price_text(serde_json::Value::String(text.into())).ok();
        let cases = [
            "1",
            "1.5",
            "1.50",
            "0.01",
            "0.1",
            "0.10",
            "0.99",
            "1299.00",
            "999999999.99",
            "1000000000",
            "1000000000.0",
            "1000000000.00",
            "0",
            "0.0",
            "0.00",
            "00.5",
            "01",
            ".5",
            "1.",
            "1.234",
            "+1",
            "-1",
            "1e3",
            " 1",
            "1000000000.01",
            "1000000001",
            "9999999999",
            "",
            "abc",
            "1,5",
            "0.001",
        ];
        for text in cases {
            assert_eq!(pattern.is_match(text), read(text).is_some(), "{text:?}");
        }
        assert_eq!(read("1299.50"), Some("1299.5".parse().unwrap()));
        assert!(price_text(serde_json::json!(12.5)).is_err(), "a JSON number is not a price");
        let schema = serde_json::to_value(<crate::products::NewProduct as utoipa::PartialSchema>::schema()).unwrap();
        assert_eq!(schema["properties"]["price"]["pattern"], PRICE_PATTERN, "the document's pattern");
    }
}
