//! Names on the wire that the edge, the origin and the page share.

/// Set on every answer the edge decided itself (value `edge`) and on every answer it relayed
/// from the origin (value `origin`), so clients and tests can tell who decided.
pub const DECIDED_BY_HEADER: &str = "x-seckill-decided-by";

/// Carries the secret shared between the edge and the origin on every request the edge
/// forwards; the origin refuses `/api/*` without it (403 `FORBIDDEN`).
pub const EDGE_SECRET_HEADER: &str = "x-seckill-edge-secret";

/// Sent by the origin on the buy answers that set a flag: how many seconds the edge may trust it.
pub const FLAG_TTL_HEADER: &str = "x-seckill-flag-ttl";

/// Ties one request's answer at the edge to the origin's log lines: the edge keeps a valid one
/// the client sent or makes one, forwards it, and both return it.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Whether a client-sent request id may be kept: 1 to 64 of `[A-Za-z0-9._-]`, so it cannot
/// break a log line or a header. Anything else is replaced by a fresh one.
pub fn is_valid_request_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The cookie the local login sets (HttpOnly, SameSite=Strict) and the page's requests carry.
pub const TOKEN_COOKIE: &str = "seckill_token";

/// The identity token of a request: `Authorization: Bearer <token>` first, else the
/// [`TOKEN_COOKIE`] in the `Cookie` header. `None` when neither carries one.
pub fn token_from_headers<'a>(authorization: Option<&'a str>, cookie: Option<&'a str>) -> Option<&'a str> {
    if let Some(auth) = authorization {
        let (scheme, token) = auth.trim().split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty());
    }
    cookie?
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == TOKEN_COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|t| !t.is_empty())
}

/// The `Set-Cookie` value that hands a browser its token: HttpOnly (no script reads it),
/// SameSite=Strict (no other site's page sends it), for the whole site, gone when the token is.
pub fn token_cookie(token: &str, max_age_secs: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{TOKEN_COOKIE}={token}; Max-Age={max_age_secs}; Path=/; HttpOnly; SameSite=Strict{secure}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_header_wins_over_the_cookie() {
        assert_eq!(token_from_headers(Some("Bearer abc"), Some("seckill_token=def")), Some("abc"));
        assert_eq!(token_from_headers(Some("bearer  abc "), None), Some("abc"));
        assert_eq!(token_from_headers(None, Some("a=1; seckill_token=def; b=2")), Some("def"));
        assert_eq!(token_from_headers(None, Some("seckill_token=def")), Some("def"));
    }

    #[test]
    fn other_schemes_and_empty_values_carry_no_token() {
        assert_eq!(token_from_headers(Some("Basic abc"), Some("seckill_token=def")), None);
        assert_eq!(token_from_headers(Some("Bearer"), None), None);
        assert_eq!(token_from_headers(Some("Bearer "), None), None);
        assert_eq!(token_from_headers(None, Some("seckill_token=")), None);
        assert_eq!(token_from_headers(None, Some("not_seckill_token=x; seckill_tokens=y")), None);
        assert_eq!(token_from_headers(None, None), None);
    }

    #[test]
    fn request_ids_are_short_plain_tokens() {
        assert!(is_valid_request_id("3f2a-9c.x_1"));
        assert!(is_valid_request_id(&"a".repeat(64)));
        for bad in ["", "a b", "a\nb", "<script>", "ä", &"a".repeat(65)] {
            assert!(!is_valid_request_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_cookie_is_http_only_and_strict() {
        let c = token_cookie("t", 3600, false);
        assert_eq!(c, "seckill_token=t; Max-Age=3600; Path=/; HttpOnly; SameSite=Strict");
        assert!(token_cookie("t", 60, true).ends_with("; Secure"));
    }
}
