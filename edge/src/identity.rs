//! Who is asking: the signed-in user of a request, decided at the edge alone.
//!
//! The token comes from `Authorization: Bearer` or the `seckill_token` cookie
//! ([`seckill_protocol::wire::token_from_headers`]) and is verified with the shared rules
//! ([`seckill_protocol::token`]). A request without a valid one never reaches the origin.

use seckill_protocol::token::{KeySet, TokenError};
use seckill_protocol::wire::token_from_headers;

use crate::answers::EdgeError;

/// The user a request is signed in as, or the 401 that refuses it.
pub fn signed_in(
    keys: &KeySet,
    audience: &str,
    authorization: Option<&str>,
    cookie: Option<&str>,
    now_secs: u64,
) -> Result<u64, EdgeError> {
    let token = token_from_headers(authorization, cookie).ok_or(TokenError::Missing);
    token
        .and_then(|t| keys.verify(t, audience, now_secs))
        .map(|identity| identity.user_id)
        .map_err(|e| EdgeError::unauthenticated(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use seckill_protocol::errors::ErrorCode;

    const NOW: u64 = 1_790_000_000;

    fn keys() -> KeySet {
        KeySet::parse("k1:edge-test-key-0123456789abcdef0123456789").unwrap()
    }

    #[test]
    fn a_valid_token_in_either_place_names_the_user() {
        let token = keys().sign(77, "seckill", NOW, 600);
        assert_eq!(signed_in(&keys(), "seckill", Some(&format!("Bearer {token}")), None, NOW), Ok(77));
        assert_eq!(signed_in(&keys(), "seckill", None, Some(&format!("seckill_token={token}")), NOW), Ok(77));
    }

    #[test]
    fn missing_expired_or_tampered_is_401() {
        let token = keys().sign(77, "seckill", NOW, 600);
        let expired = signed_in(&keys(), "seckill", Some(&format!("Bearer {token}")), None, NOW + 600).unwrap_err();
        assert_eq!((expired.status(), expired.code), (401, ErrorCode::Unauthenticated));
        assert!(expired.message.contains("expired"), "{}", expired.message);
        let missing = signed_in(&keys(), "seckill", None, None, NOW).unwrap_err();
        assert_eq!((missing.status(), missing.code), (401, ErrorCode::Unauthenticated));
        let tampered = format!("Bearer {token}x");
        assert_eq!(signed_in(&keys(), "seckill", Some(&tampered), None, NOW).unwrap_err().status(), 401);
        let other_audience = keys().sign(77, "elsewhere", NOW, 600);
        assert_eq!(
            signed_in(&keys(), "seckill", Some(&format!("Bearer {other_audience}")), None, NOW).unwrap_err().status(),
            401
        );
    }
}
