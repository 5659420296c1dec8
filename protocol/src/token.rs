//! The signed identity: a JWT (RFC 7519) signed with HMAC-SHA256.
//!
//! ```text
//! header  {"alg":"HS256","typ":"JWT","kid":"<key id>"}
//! claims  {"sub":"<userId>","aud":"<audience>","iat":<secs>,"exp":<secs>}
//! token   base64url(header) "." base64url(claims) "." base64url(HMAC-SHA256(key, first two parts))
//! ```
//!
//! `sub` is the buyer's user id as a decimal string (a number is accepted too); `aud` is a
//! string or an array of strings that must contain the configured audience; `exp - iat` is at
//! most [`MAX_LIFETIME_SECS`]. Keys are picked by `kid` from a [`KeySet`], so a new key can be
//! added, used for signing, and the old one dropped once its tokens have expired.
//!
//! Any identity provider that signs these claims with one of the keys plugs in as is.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Sha256;

/// The longest a token may live (`exp - iat`), in seconds.
pub const MAX_LIFETIME_SECS: u64 = 3600;

/// How far in the future `iat` may be (clock skew between signer and verifier), in seconds.
const MAX_CLOCK_SKEW_SECS: u64 = 60;

/// Shortest secret a key may have: HS256 keys shorter than the hash are easy to guess offline.
pub const MIN_SECRET_BYTES: usize = 32;

/// The development key set in `config/base.toml` and the stack's scripts: public, so the
/// origin refuses to start with it outside the local environment.
pub const DEV_KEYS: &str = "dev:seckill-local-development-signing-key-not-secret";

/// Why a token is refused. Every variant is a 401 `UNAUTHENTICATED`; the message says which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    Missing,
    Malformed(&'static str),
    UnsupportedAlgorithm(String),
    UnknownKey(String),
    BadSignature,
    Expired,
    NotYetValid,
    LifetimeTooLong,
    WrongAudience,
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenError::Missing => {
                write!(f, "sign in first: no token (Authorization: Bearer <token> or the seckill_token cookie)")
            }
            TokenError::Malformed(why) => write!(f, "token is malformed: {why}"),
            TokenError::UnsupportedAlgorithm(alg) => write!(f, "token algorithm {alg:?} is not accepted (HS256 only)"),
            TokenError::UnknownKey(kid) => write!(f, "token key {kid:?} is not known"),
            TokenError::BadSignature => write!(f, "token signature does not match"),
            TokenError::Expired => write!(f, "token has expired; sign in again"),
            TokenError::NotYetValid => write!(f, "token is issued in the future"),
            TokenError::LifetimeTooLong => write!(f, "token lives longer than {MAX_LIFETIME_SECS} s"),
            TokenError::WrongAudience => write!(f, "token is not meant for this service (aud)"),
        }
    }
}

/// A bad key configuration; the message names the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadKeys(pub String);

impl std::fmt::Display for BadKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The verified claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: u64,
    pub issued_at: u64,
    pub expires_at: u64,
}

/// Signing keys by `kid`, parsed from `"kid:secret[,kid:secret...]"`. The first one signs.
#[derive(Clone)]
pub struct KeySet {
    signing_kid: String,
    keys: BTreeMap<String, Key>,
}

/// One key: its secret, and the HMAC already keyed with it. Keying runs the key schedule (two
/// SHA-256 blocks); a clone of the keyed state skips it, so a key set built once (the edge's,
/// per isolate) signs and verifies without redoing it for every token.
#[derive(Clone)]
struct Key {
    secret: Vec<u8>,
    keyed: Hmac<Sha256>,
}

impl Key {
    fn new(secret: Vec<u8>) -> Self {
        let keyed = Hmac::<Sha256>::new_from_slice(&secret).expect("HMAC takes keys of any length");
        Self { secret, keyed }
    }

    /// The MAC of `message` under this key, ready to finalize or verify.
    fn mac(&self, message: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.keyed.clone();
        mac.update(message);
        mac
    }
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secrets.
        f.debug_struct("KeySet").field("signing_kid", &self.signing_kid).field("kids", &self.keys.keys()).finish()
    }
}

impl KeySet {
    /// Parses `"kid:secret[,kid:secret...]"`: kids are `[A-Za-z0-9._-]+` and distinct, secrets
    /// at least [`MIN_SECRET_BYTES`] long (they may contain `:` but not `,`).
    pub fn parse(text: &str) -> Result<Self, BadKeys> {
        let mut keys = BTreeMap::new();
        let mut signing_kid = None;
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (kid, secret) = entry.split_once(':').ok_or_else(|| BadKeys("each key must be kid:secret".into()))?;
            let valid_kid =
                !kid.is_empty() && kid.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
            if !valid_kid {
                return Err(BadKeys(format!("key id {kid:?} must be letters, digits, '.', '_' or '-'")));
            }
            if secret.len() < MIN_SECRET_BYTES {
                return Err(BadKeys(format!("the secret of key {kid:?} is shorter than {MIN_SECRET_BYTES} bytes")));
            }
            if keys.insert(kid.to_string(), Key::new(secret.as_bytes().to_vec())).is_some() {
                return Err(BadKeys(format!("key id {kid:?} appears twice")));
            }
            signing_kid.get_or_insert_with(|| kid.to_string());
        }
        let signing_kid = signing_kid.ok_or_else(|| BadKeys("no signing key configured".into()))?;
        Ok(Self { signing_kid, keys })
    }

    /// Whether any key's secret is one of the public development ones.
    pub fn has_development_key(&self) -> bool {
        let dev = KeySet::parse(DEV_KEYS).expect("the development keys parse");
        self.keys.values().any(|s| dev.keys.values().any(|d| d.secret == s.secret))
    }

    /// The same kids with keys for one `purpose` only: each secret becomes
    /// HMAC-SHA256(secret, "seckill-key:" + purpose). A token signed with them never verifies
    /// with the originals (or another purpose's), whatever its claims say; the waiting room's
    /// passes are signed with `derived("room-pass")`, so a pass is never an identity token
    /// and no identity token, whoever signed it, is a pass.
    pub fn derived(&self, purpose: &str) -> KeySet {
        let label = format!("seckill-key:{purpose}");
        let keys = self
            .keys
            .iter()
            .map(|(kid, key)| (kid.clone(), Key::new(key.mac(label.as_bytes()).finalize().into_bytes().to_vec())))
            .collect();
        KeySet { signing_kid: self.signing_kid.clone(), keys }
    }

    /// The kid new tokens are signed with.
    pub fn signing_kid(&self) -> &str {
        &self.signing_kid
    }

    /// A token for `user_id`, issued at `now` (seconds since the epoch), living `lifetime_secs`
    /// (capped at [`MAX_LIFETIME_SECS`]), signed with the first key.
    pub fn sign(&self, user_id: u64, audience: &str, now: u64, lifetime_secs: u64) -> String {
        let claims = json!({
            "sub": user_id.to_string(),
            "aud": audience,
            "iat": now,
            "exp": now + lifetime_secs.min(MAX_LIFETIME_SECS),
        });
        self.sign_claims(&self.signing_kid, &claims)
    }

    /// Signs arbitrary claims with the key `kid` (tests forge odd tokens with it).
    pub fn sign_claims(&self, kid: &str, claims: &Value) -> String {
        let header = json!({ "alg": "HS256", "typ": "JWT", "kid": kid });
        let signed = format!("{}.{}", encode(&header), encode(claims));
        let signature = self.keys[kid].mac(signed.as_bytes()).finalize().into_bytes();
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// Checks a token's form, key, signature, audience and times at `now` (seconds).
    pub fn verify(&self, token: &str, audience: &str, now: u64) -> Result<Identity, TokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed("not three dot-separated parts"));
        };
        let header: Header = decode(header, "header")?;
        if header.alg != "HS256" {
            return Err(TokenError::UnsupportedAlgorithm(header.alg));
        }
        let kid = header.kid.ok_or(TokenError::Malformed("header has no kid"))?;
        let key = self.keys.get(&kid).ok_or(TokenError::UnknownKey(kid))?;
        let signature =
            URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Malformed("signature is not base64url"))?;
        let signed_len = token.len() - token.rsplit('.').next().map_or(0, str::len) - 1;
        // verify_slice compares in constant time.
        key.mac(&token.as_bytes()[..signed_len]).verify_slice(&signature).map_err(|_| TokenError::BadSignature)?;

        let claims: Claims = decode(claims, "claims")?;
        let user_id = match &claims.sub {
            Value::String(s) if !s.starts_with('+') => s.parse::<u64>().ok(),
            Value::Number(n) => n.as_u64(),
            _ => None,
        }
        .filter(|u| *u >= 1)
        .ok_or(TokenError::Malformed("sub must be a positive integer user id"))?;
        let aud_ok = match &claims.aud {
            Value::String(a) => a == audience,
            Value::Array(all) => all.iter().any(|a| a.as_str() == Some(audience)),
            _ => false,
        };
        if !aud_ok {
            return Err(TokenError::WrongAudience);
        }
        if claims.iat > now + MAX_CLOCK_SKEW_SECS {
            return Err(TokenError::NotYetValid);
        }
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        if claims.exp.saturating_sub(claims.iat) > MAX_LIFETIME_SECS {
            return Err(TokenError::LifetimeTooLong);
        }
        Ok(Identity { user_id, issued_at: claims.iat, expires_at: claims.exp })
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    sub: Value,
    #[serde(default)]
    aud: Value,
    iat: u64,
    exp: u64,
}

fn encode(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("JSON values serialize"))
}

fn decode<T: serde::de::DeserializeOwned>(part: &str, what: &'static str) -> Result<T, TokenError> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| {
        TokenError::Malformed(if what == "header" { "header is not base64url" } else { "claims are not base64url" })
    })?;
    serde_json::from_slice(&bytes).map_err(|_| {
        TokenError::Malformed(if what == "header" {
            "header is not the expected JSON"
        } else {
            "claims are not the expected JSON (sub, aud, iat, exp)"
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_790_000_000;
    const AUD: &str = "seckill";

    fn keys() -> KeySet {
        KeySet::parse("k2:second-key-0123456789abcdef0123456789, k1:first-key-0123456789abcdef0123456789ab").unwrap()
    }

    #[test]
    fn a_signed_token_verifies_to_its_user() {
        let token = keys().sign(42, AUD, NOW, 600);
        let id = keys().verify(&token, AUD, NOW + 10).unwrap();
        assert_eq!(id, Identity { user_id: 42, issued_at: NOW, expires_at: NOW + 600 });
        assert_eq!(keys().signing_kid(), "k2", "the first key signs");
    }

    #[test]
    fn any_known_kid_verifies_so_keys_can_rotate() {
        let old = keys().sign_claims("k1", &json!({"sub": "7", "aud": AUD, "iat": NOW, "exp": NOW + 60}));
        assert_eq!(keys().verify(&old, AUD, NOW).unwrap().user_id, 7);
        let only_new = KeySet::parse("k2:second-key-0123456789abcdef0123456789").unwrap();
        assert_eq!(only_new.verify(&old, AUD, NOW), Err(TokenError::UnknownKey("k1".into())));
    }

    #[test]
    fn sub_may_be_a_number_and_aud_an_array() {
        let t = keys().sign_claims("k1", &json!({"sub": 7, "aud": ["other", AUD], "iat": NOW, "exp": NOW + 60}));
        assert_eq!(keys().verify(&t, AUD, NOW).unwrap().user_id, 7);
    }

    #[test]
    fn expired_future_and_long_lived_tokens_are_refused() {
        let t = keys().sign(1, AUD, NOW, 60);
        assert_eq!(keys().verify(&t, AUD, NOW + 60), Err(TokenError::Expired));
        assert_eq!(keys().verify(&t, AUD, NOW - 61), Err(TokenError::NotYetValid));
        assert!(keys().verify(&t, AUD, NOW - 60).is_ok(), "a minute of clock skew is tolerated");
        let long = keys().sign_claims("k1", &json!({"sub": "1", "aud": AUD, "iat": NOW, "exp": NOW + 3601}));
        assert_eq!(keys().verify(&long, AUD, NOW), Err(TokenError::LifetimeTooLong));
        let capped = keys().sign(1, AUD, NOW, 86_400);
        assert_eq!(keys().verify(&capped, AUD, NOW).unwrap().expires_at, NOW + MAX_LIFETIME_SECS);
    }

    #[test]
    fn tampered_tokens_are_refused() {
        let token = keys().sign(1, AUD, NOW, 60);
        let parts: Vec<&str> = token.split('.').collect();
        let claims_of_2 = encode(&json!({"sub": "2", "aud": AUD, "iat": NOW, "exp": NOW + 60}));
        let swapped = format!("{}.{}.{}", parts[0], claims_of_2, parts[2]);
        assert_eq!(keys().verify(&swapped, AUD, NOW), Err(TokenError::BadSignature));
        let mut sig = parts[2].to_string();
        sig.replace_range(0..1, if sig.starts_with('A') { "B" } else { "A" });
        assert_eq!(keys().verify(&format!("{}.{}.{sig}", parts[0], parts[1]), AUD, NOW), Err(TokenError::BadSignature));
        let other_key = KeySet::parse("k2:an-attackers-guess-0123456789abcdef012345").unwrap().sign(1, AUD, NOW, 60);
        assert_eq!(keys().verify(&other_key, AUD, NOW), Err(TokenError::BadSignature));
    }

    #[test]
    fn alg_none_and_other_algorithms_are_refused() {
        let claims = encode(&json!({"sub": "1", "aud": AUD, "iat": NOW, "exp": NOW + 60}));
        for alg in ["none", "HS512", "RS256"] {
            let header = encode(&json!({"alg": alg, "typ": "JWT", "kid": "k1"}));
            let token = format!("{header}.{claims}.");
            assert_eq!(keys().verify(&token, AUD, NOW), Err(TokenError::UnsupportedAlgorithm(alg.into())));
        }
    }

    #[test]
    fn wrong_audience_and_bad_subjects_are_refused() {
        let t = keys().sign(1, "another-service", NOW, 60);
        assert_eq!(keys().verify(&t, AUD, NOW), Err(TokenError::WrongAudience));
        for sub in [json!("0"), json!("-1"), json!("+1"), json!("abc"), json!(1.5), json!(null), json!("")] {
            let t = keys().sign_claims("k1", &json!({"sub": sub, "aud": AUD, "iat": NOW, "exp": NOW + 60}));
            assert!(matches!(keys().verify(&t, AUD, NOW), Err(TokenError::Malformed(_))), "sub {sub}");
        }
    }

    #[test]
    fn garbage_is_malformed() {
        for token in ["", "abc", "a.b", "a.b.c.d", "!!.!!.!!", "e30.e30.", "e30.e30.AAAA"] {
            let err = keys().verify(token, AUD, NOW).unwrap_err();
            assert!(matches!(err, TokenError::Malformed(_)), "{token:?}: {err:?}");
        }
    }

    #[test]
    fn key_sets_are_checked() {
        assert!(KeySet::parse("").is_err());
        assert!(KeySet::parse("nokid").is_err());
        assert!(KeySet::parse("k:short").unwrap_err().0.contains("shorter than 32"));
        assert!(KeySet::parse("bad kid:0123456789abcdef0123456789abcdef").is_err());
        let twice = "k:0123456789abcdef0123456789abcdef,k:0123456789abcdef0123456789abcdeX";
        assert!(KeySet::parse(twice).unwrap_err().0.contains("twice"));
        assert!(KeySet::parse("k:secret:with:colons-0123456789abcdef012345").is_ok());
        assert!(!format!("{:?}", keys()).contains("0123456789"), "Debug never shows secrets");
    }

    #[test]
    fn the_development_key_is_recognised() {
        assert!(KeySet::parse(DEV_KEYS).unwrap().has_development_key());
        let renamed = format!("prod:{}", DEV_KEYS.split_once(':').unwrap().1);
        assert!(KeySet::parse(&renamed).unwrap().has_development_key(), "by its secret, not its kid");
        assert!(!keys().has_development_key());
    }
}
