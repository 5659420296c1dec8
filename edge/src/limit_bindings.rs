//! The rate-limit bindings (wasm only): asks them whether a key is within its limit, and
//! answers 429 when it is not. Which routes and keys are limited is [`crate::limits`].

use worker::{console_warn, Env, Response, Result};

use crate::answers::DECIDED_BY_HEADER;
use crate::http::{json_response, CODE_HEADER};
use crate::limits;
use crate::settings::Settings;

/// Asks the rate-limit binding `binding` about `key`. A missing or failing binding lets the
/// request through (see [`crate::limits`]).
pub(crate) async fn within_limit(env: &Env, binding: &str, key: String) -> bool {
    let limiter = match env.rate_limiter(binding) {
        Ok(limiter) => limiter,
        Err(e) => {
            console_warn!("rate limiter {binding} is not bound ({e}); not limiting");
            return true;
        }
    };
    match limiter.limit(key).await {
        Ok(outcome) => outcome.success,
        Err(e) => {
            console_warn!("rate limiter {binding} failed ({e}); not limiting");
            true
        }
    }
}

/// The 429 of a request over the limit `per` client address or user, with `Retry-After` and
/// `extra` headers.
pub(crate) fn over_limit(per: &str, settings: &Settings, extra: &[(&str, String)]) -> Result<Response> {
    let error = limits::rate_limited(per, settings.retry_after_secs);
    let mut headers = vec![
        (DECIDED_BY_HEADER, "edge".to_owned()),
        ("retry-after", settings.retry_after_secs.to_string()),
        (CODE_HEADER, error.code.as_str().to_owned()),
    ];
    headers.extend_from_slice(extra);
    json_response(error.status(), error.body(), &headers)
}
