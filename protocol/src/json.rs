//! Integers however JSON writes them. JSON has one number type, and JSON Schema (so the
//! origin's OpenAPI document) counts `3.0`, `3e2` and `-0.0` as integers, while serde reads a
//! `u64` only from plain digits. [`plain_integers`] rewrites every number in a body that
//! denotes an integer into plain digits before it is parsed, so a body the document allows is
//! read as written, and a number with a real fraction (`3.5`) is still refused by the typed
//! parse. Exact for any size: it works on the digits, never through `f64`.

use std::borrow::Cow;

/// Longest integer a rewrite writes: a number past this (`1e400`) is left as it was, and the
/// typed parse refuses it as out of range. Bounds the work an adversarial exponent can cause.
const MAX_INTEGER_DIGITS: usize = 40;

/// `body` with every number that denotes an integer written as plain digits (`3.0` → `3`,
/// `25e-1` stays, `2.5e1` → `25`, `-0.0` → `0`); borrowed when nothing needed rewriting.
/// Strings, and text that is not JSON, are left as they are: the parse that follows judges them.
pub fn plain_integers(body: &[u8]) -> Cow<'_, [u8]> {
    let mut out: Vec<u8> = Vec::new();
    // `body[..copied]` is in `out` (as written or rewritten); empty until a first rewrite.
    let mut copied = 0;
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'"' => i = end_of_string(body, i),
            b if is_token_byte(b) => {
                let end = end_of_token(body, i);
                if let Some(integer) = as_integer(&body[i..end]) {
                    out.extend_from_slice(&body[copied..i]);
                    out.extend_from_slice(integer.as_bytes());
                    copied = end;
                }
                i = end;
            }
            _ => i += 1,
        }
    }
    if copied == 0 {
        return Cow::Borrowed(body);
    }
    out.extend_from_slice(&body[copied..]);
    Cow::Owned(out)
}

/// `token` (a query value, a path segment) as plain digits if it is a number that denotes an
/// integer written with a fraction or exponent (`"3.0"` → `"3"`); otherwise as it is.
pub fn plain_integer(token: &str) -> Cow<'_, str> {
    match as_integer(token.as_bytes()) {
        Some(integer) => Cow::Owned(integer),
        None => Cow::Borrowed(token),
    }
}

/// One past the string starting at the quote at `start` (or the end of the text).
fn end_of_string(body: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < body.len() {
        match body[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    body.len()
}

/// A byte of a bare token: a number, `true`, `false`, `null`, or a typo (`+3`, `3.`).
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-')
}

/// One past the bare token starting at `start`. Taken whole, so that only a token that is a
/// number from its first byte is rewritten (`+3.0` and `x3.0` are left for the parse to refuse).
fn end_of_token(body: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < body.len() && is_token_byte(body[i]) {
        i += 1;
    }
    i
}

/// The plain digits of `token` if it is a JSON number with a fraction or exponent that denotes
/// an integer; `None` for plain digits (nothing to do), a real fraction, or not a number.
fn as_integer(token: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(token).ok()?;
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (mantissa, None),
    };
    if fraction.is_none() && exponent.is_none() {
        return None;
    }
    // JSON's grammar: int = "0" / digit1-9 *digit; frac = "." 1*digit; exp = e [+-] 1*digit.
    let digits_only = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits_only(whole) || (whole.len() > 1 && whole.starts_with('0')) {
        return None;
    }
    if fraction.is_some_and(|f| !digits_only(f)) {
        return None;
    }
    let shift: i64 = match exponent {
        None => 0,
        Some(e) => {
            let unsigned_e = e.strip_prefix(['+', '-']).unwrap_or(e);
            if !digits_only(unsigned_e) || unsigned_e.len() > 6 {
                return None;
            }
            e.parse().ok()?
        }
    };
    let fraction = fraction.unwrap_or("");
    let digits: String = [whole, fraction].concat();
    // The decimal point sits after `point` of `digits` (before them if negative).
    let point = i64::try_from(whole.len()).ok()? + shift;
    let integer = if point <= 0 {
        if !digits.bytes().all(|b| b == b'0') {
            return None;
        }
        String::from("0")
    } else {
        let point = usize::try_from(point).ok()?;
        if point > MAX_INTEGER_DIGITS + digits.len() {
            return None;
        }
        if point >= digits.len() {
            format!("{digits}{}", "0".repeat(point - digits.len()))
        } else {
            if !digits[point..].bytes().all(|b| b == b'0') {
                return None;
            }
            digits[..point].to_string()
        }
    };
    let integer = integer.trim_start_matches('0');
    if integer.is_empty() {
        return Some("0".into());
    }
    if integer.len() > MAX_INTEGER_DIGITS {
        return None;
    }
    Some(if negative { format!("-{integer}") } else { integer.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(body: &str) -> String {
        String::from_utf8(plain_integers(body.as_bytes()).into_owned()).unwrap()
    }

    #[test]
    fn integers_written_with_a_fraction_or_exponent_become_plain_digits() {
        assert_eq!(
            rewritten(r#"{"a": 3.0, "b": -2.00, "c": 2.5e1, "d": 1E3, "e": -0.0, "f": 0.0e5}"#),
            r#"{"a": 3, "b": -2, "c": 25, "d": 1000, "e": 0, "f": 0}"#
        );
        assert_eq!(rewritten("[18446744073709551615.0,1921.0]"), "[18446744073709551615,1921]");
        assert_eq!(rewritten("120e-1"), "12");
        assert_eq!(rewritten("1.8446744073709551616e19"), "18446744073709551616");
    }

    #[test]
    fn everything_else_is_left_as_written() {
        for body in [
            r#"{"a": 3, "b": -2, "c": [1, 20, 300]}"#,
            r#"{"a": 3.5, "b": 25e-1, "c": 0.001}"#,
            r#"{"s": "3.0 and 1e3", "t": "a \" 2.0 \\", "u": 4.0e}"#,
            r#"{"lead": 03.0, "dot": 3., "sign": +3.0, "big": 1e999999}"#,
            "{not json 1.0.0 -",
            "",
        ] {
            let out = plain_integers(body.as_bytes());
            assert_eq!(String::from_utf8_lossy(&out), body, "{body}");
        }
        assert!(matches!(plain_integers(br#"{"a": 1}"#), Cow::Borrowed(_)));
    }

    #[test]
    fn one_token_is_rewritten_the_same_way() {
        assert_eq!(plain_integer("3.0"), "3");
        assert_eq!(plain_integer("3"), "3");
        assert_eq!(plain_integer("3.5"), "3.5");
        assert_eq!(plain_integer("x"), "x");
    }

    #[test]
    fn strings_keep_their_numbers_while_numbers_around_them_are_rewritten() {
        assert_eq!(
            rewritten(r#"{"id": "7.0", "n": 7.0, "m": "\"8.0\"", "k": 8.0}"#),
            r#"{"id": "7.0", "n": 7, "m": "\"8.0\"", "k": 8}"#
        );
    }

    #[test]
    fn a_huge_exponent_costs_nothing_and_is_left_for_the_parse_to_refuse() {
        assert_eq!(rewritten("1e100"), "1e100");
        assert_eq!(rewritten("1e39"), format!("1{}", "0".repeat(39)));
        assert_eq!(rewritten("1e40"), "1e40");
    }
}
