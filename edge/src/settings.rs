//! The Worker's settings: its `[vars]` and secrets (wrangler.toml, overridden by
//! `wrangler dev --var`), read and checked once per isolate (the environment of an isolate
//! never changes: new settings mean new isolates), and one request's id beside them.
//!
//! The Workers glue hands in how to look a name up; reading the values, their defaults and
//! their bounds is plain Rust, tested here.

use std::ops::Deref;
use std::rc::Rc;

use seckill_protocol::token::KeySet;

use crate::admission::DEFAULT_MAX_FLAG_TTL_SECS;
use crate::limits;
use crate::origins::parse_origin_urls;
use crate::products::DEFAULT_PRODUCTS_CACHE_SECS;

/// The worker's settings (`[vars]` in wrangler.toml, overridden by `wrangler dev --var`), read
/// once per isolate: the token keys are parsed and keyed once, not per request.
pub struct Settings {
    /// `ORIGIN_URLS` (comma-separated), else `ORIGIN_URL`, e.g. `http://127.0.0.1:8080`: the
    /// origins, each user sticky to one of them ([`crate::origins`]).
    pub origin_urls: Vec<String>,
    /// `EDGE_SECRET` (a secret in production, a var under `wrangler dev`); empty = not sent.
    pub edge_secret: String,
    /// `MAX_FLAG_TTL_SECS`: the most the edge trusts any `x-seckill-flag-ttl`; 0 turns flags off.
    pub max_flag_ttl_secs: u32,
    /// `PRODUCTS_CACHE_SECS`: how long a product list is served from the cache; 0 = never.
    pub products_cache_secs: u32,
    /// `TOKEN_KEYS` (a secret): `kid:secret[,kid:secret...]`, the keys identity tokens are
    /// verified with; the same keys the origin (and any identity provider) signs with.
    pub token_keys: KeySet,
    /// `TOKEN_AUDIENCE`: the `aud` a token must carry (default `seckill`).
    pub token_audience: String,
    /// `ORIGIN_TIMEOUT_MS`: how long the edge waits for the origin before answering 504.
    pub origin_timeout_ms: u32,
    /// `RATE_LIMIT_RETRY_AFTER_SECS`: the `Retry-After` of a 429 (the limiters' period).
    pub retry_after_secs: u32,
    /// `ENVIRONMENT` is `development` (`wrangler dev`, the tests): plain-http origins, a short
    /// edge secret and requests without `CF-Connecting-IP` are allowed. Anything else must be
    /// `production`, where they are not.
    pub development: bool,
}

/// The shortest `EDGE_SECRET` accepted outside development (the origin's own minimum).
pub const MIN_EDGE_SECRET_BYTES: usize = 32;

/// Default `ORIGIN_TIMEOUT_MS`: above the origin's own worst case (a broker send times out at 3 s).
const DEFAULT_ORIGIN_TIMEOUT_MS: u32 = 10_000;

impl Settings {
    /// The settings, `text(name)` being the value of the secret or var `name`, if set. A number
    /// that does not parse takes its default. The error names the setting that is missing or
    /// wrong (the origins, the token keys).
    pub fn read(text: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let number = |name: &str, default: u32| text(name).and_then(|v| v.trim().parse().ok()).unwrap_or(default);
        let development = match text("ENVIRONMENT").as_deref().map(str::trim) {
            Some("development") => true,
            Some("production") => false,
            Some(other) => return Err(format!("ENVIRONMENT: {other:?} is neither production nor development")),
            None => return Err("ENVIRONMENT is not set (production or development)".into()),
        };
        let origin_urls = parse_origin_urls(text("ORIGIN_URLS").as_deref(), text("ORIGIN_URL").as_deref())?;
        let edge_secret = text("EDGE_SECRET").unwrap_or_default();
        if !development {
            if let Some(plain) = origin_urls.iter().find(|url| !url.starts_with("https://")) {
                return Err(format!("ORIGIN_URLS/ORIGIN_URL: {plain} is not https:// (only development may use http)"));
            }
            if edge_secret.len() < MIN_EDGE_SECRET_BYTES {
                return Err(format!("EDGE_SECRET: at least {MIN_EDGE_SECRET_BYTES} bytes outside development"));
            }
        }
        Ok(Self {
            origin_urls,
            edge_secret,
            max_flag_ttl_secs: number("MAX_FLAG_TTL_SECS", DEFAULT_MAX_FLAG_TTL_SECS),
            products_cache_secs: number("PRODUCTS_CACHE_SECS", DEFAULT_PRODUCTS_CACHE_SECS),
            token_keys: KeySet::parse(&text("TOKEN_KEYS").unwrap_or_default())
                .map_err(|e| format!("TOKEN_KEYS: {e}"))?,
            token_audience: text("TOKEN_AUDIENCE").filter(|a| !a.is_empty()).unwrap_or_else(|| "seckill".into()),
            origin_timeout_ms: number("ORIGIN_TIMEOUT_MS", DEFAULT_ORIGIN_TIMEOUT_MS).max(1),
            retry_after_secs: number("RATE_LIMIT_RETRY_AFTER_SECS", limits::DEFAULT_RETRY_AFTER_SECS).max(1),
            development,
        })
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the edge secret (the token keys' own Debug hides theirs).
        f.debug_struct("Settings")
            .field("origin_urls", &self.origin_urls)
            .field("max_flag_ttl_secs", &self.max_flag_ttl_secs)
            .field("products_cache_secs", &self.products_cache_secs)
            .field("token_keys", &self.token_keys)
            .field("token_audience", &self.token_audience)
            .field("origin_timeout_ms", &self.origin_timeout_ms)
            .field("retry_after_secs", &self.retry_after_secs)
            .field("development", &self.development)
            .finish_non_exhaustive()
    }
}

/// The isolate's settings and one request's id: what a handler that calls the origin is given.
/// It derefs to the [`Settings`].
#[derive(Debug)]
pub struct RequestSettings {
    pub settings: Rc<Settings>,
    /// This request's `x-request-id`: the client's if valid, else a fresh one. Sent to the
    /// origin and returned on the answer.
    pub request_id: String,
}

impl Deref for RequestSettings {
    type Target = Settings;

    fn deref(&self) -> &Settings {
        &self.settings
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use seckill_protocol::token::DEV_KEYS;

    use super::*;

    /// The settings from `vars` (in development unless they say otherwise), as the worker would read them.
    fn read(vars: &[(&str, &str)]) -> Result<Settings, String> {
        let mut all: HashMap<String, String> = HashMap::from([("ENVIRONMENT".to_owned(), "development".to_owned())]);
        all.extend(vars.iter().map(|&(k, v)| (k.to_owned(), v.to_owned())));
        Settings::read(|name| all.get(name).cloned())
    }

    #[test]
    fn production_needs_https_origins_and_a_long_edge_secret() {
        let secret = "s".repeat(MIN_EDGE_SECRET_BYTES);
        let base = [("ENVIRONMENT", "production"), ("TOKEN_KEYS", DEV_KEYS)];
        let with = |extra: &[(&'static str, &str)]| {
            let mut vars = base.to_vec();
            vars.extend_from_slice(extra);
            read(&vars)
        };
        let ok = with(&[("ORIGIN_URL", "https://origin.example"), ("EDGE_SECRET", &secret)]).unwrap();
        assert!(!ok.development);
        let plain = with(&[("ORIGIN_URLS", "https://a.example,http://b.example"), ("EDGE_SECRET", &secret)]);
        assert!(plain.unwrap_err().contains("http://b.example is not https://"));
        let short = with(&[("ORIGIN_URL", "https://origin.example"), ("EDGE_SECRET", "shh")]);
        assert!(short.unwrap_err().starts_with("EDGE_SECRET: at least 32 bytes"));
        assert!(with(&[("ORIGIN_URL", "https://origin.example")]).unwrap_err().starts_with("EDGE_SECRET"));
        // Development allows both.
        let dev = read(&[("ORIGIN_URL", "http://127.0.0.1:8080"), ("TOKEN_KEYS", DEV_KEYS), ("EDGE_SECRET", "shh")]);
        assert!(dev.unwrap().development);
    }

    #[test]
    fn the_environment_is_required_and_named() {
        let vars = |env: Option<&str>| {
            let mut all = HashMap::from([("ORIGIN_URL", "http://o"), ("TOKEN_KEYS", DEV_KEYS)]);
            if let Some(env) = env {
                all.insert("ENVIRONMENT", env);
            }
            Settings::read(|name| all.get(name).map(|v| (*v).to_owned()))
        };
        assert!(vars(None).unwrap_err().starts_with("ENVIRONMENT is not set"));
        assert!(vars(Some("local")).unwrap_err().starts_with("ENVIRONMENT: \"local\""));
    }

    #[test]
    fn unset_values_take_their_defaults() {
        let s = read(&[("ORIGIN_URL", "http://127.0.0.1:8080/"), ("TOKEN_KEYS", DEV_KEYS)]).unwrap();
        assert_eq!(s.origin_urls, ["http://127.0.0.1:8080"]);
        assert_eq!(s.edge_secret, "", "no secret sent");
        assert_eq!(s.max_flag_ttl_secs, DEFAULT_MAX_FLAG_TTL_SECS);
        assert_eq!(s.products_cache_secs, DEFAULT_PRODUCTS_CACHE_SECS);
        assert_eq!(s.token_audience, "seckill");
        assert_eq!(s.origin_timeout_ms, DEFAULT_ORIGIN_TIMEOUT_MS);
        assert_eq!(s.retry_after_secs, limits::DEFAULT_RETRY_AFTER_SECS);
    }

    #[test]
    fn set_values_are_read_and_kept_in_bounds() {
        let s = read(&[
            ("ORIGIN_URLS", "http://a:1,http://b:2"),
            ("ORIGIN_URL", "http://ignored:3"),
            ("TOKEN_KEYS", DEV_KEYS),
            ("EDGE_SECRET", "shh"),
            ("MAX_FLAG_TTL_SECS", "0"),
            ("PRODUCTS_CACHE_SECS", " 5 "),
            ("TOKEN_AUDIENCE", "shop"),
            ("ORIGIN_TIMEOUT_MS", "0"),
            ("RATE_LIMIT_RETRY_AFTER_SECS", "0"),
        ])
        .unwrap();
        assert_eq!(s.origin_urls, ["http://a:1", "http://b:2"]);
        assert_eq!(s.edge_secret, "shh");
        assert_eq!(s.max_flag_ttl_secs, 0, "0 turns flags off");
        assert_eq!(s.products_cache_secs, 5);
        assert_eq!(s.token_audience, "shop");
        assert_eq!((s.origin_timeout_ms, s.retry_after_secs), (1, 1), "never 0");
    }

    #[test]
    fn a_number_that_does_not_parse_or_an_empty_audience_takes_the_default() {
        let s = read(&[
            ("ORIGIN_URL", "http://o"),
            ("TOKEN_KEYS", DEV_KEYS),
            ("PRODUCTS_CACHE_SECS", "soon"),
            ("ORIGIN_TIMEOUT_MS", "-5"),
            ("TOKEN_AUDIENCE", ""),
        ])
        .unwrap();
        assert_eq!(s.products_cache_secs, DEFAULT_PRODUCTS_CACHE_SECS);
        assert_eq!(s.origin_timeout_ms, DEFAULT_ORIGIN_TIMEOUT_MS);
        assert_eq!(s.token_audience, "seckill");
    }

    #[test]
    fn the_error_names_the_setting() {
        assert_eq!(read(&[("TOKEN_KEYS", DEV_KEYS)]).unwrap_err(), "neither ORIGIN_URLS nor ORIGIN_URL is set");
        let bad_keys = read(&[("ORIGIN_URL", "http://o"), ("TOKEN_KEYS", "dev:short")]).unwrap_err();
        assert!(bad_keys.starts_with("TOKEN_KEYS: "), "{bad_keys}");
        let no_keys = read(&[("ORIGIN_URL", "http://o")]).unwrap_err();
        assert!(no_keys.starts_with("TOKEN_KEYS: "), "{no_keys}");
    }

    #[test]
    fn debug_never_shows_the_edge_secret() {
        let s = read(&[("ORIGIN_URL", "http://o"), ("TOKEN_KEYS", DEV_KEYS), ("EDGE_SECRET", "hunter2")]).unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
