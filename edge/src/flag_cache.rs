//! The flags in the Workers Cache API (wasm only): whether one is set, storing one for the TTL
//! the origin gave, clearing one. Which flags a buy checks, sets or an order read clears is
//! [`crate::admission`].

use worker::{console_warn, Cache, Response};

use crate::admission::{Flag, FlagToSet};

/// What was stored with the flag ([`FlagToSet::stored`]) if it is set. A cache hit means the
/// origin said so less than its TTL ago. Cache failures count as "not set": the edge then
/// forwards, and the origin, which is always right, decides.
pub(crate) async fn flag_lookup(cache: &Cache, flag: &Flag) -> Option<String> {
    match cache.get(flag.cache_key(), false).await {
        // Only a bought flag stores anything; the sold-out flag answers the flood unread.
        Ok(Some(mut hit)) if matches!(flag, Flag::Bought { .. }) => Some(hit.text().await.unwrap_or_default()),
        Ok(Some(_)) => Some(String::new()),
        Ok(None) => None,
        Err(e) => {
            console_warn!("flag lookup failed for {}: {e}", flag.cache_key());
            None
        }
    }
}

/// Stores the flag as a tiny cached response whose body is what goes with it: the Cache API
/// drops it after `max-age` seconds, so expiry needs no bookkeeping here. A failure only costs
/// a later trip to the origin.
pub(crate) async fn set_flag(cache: &Cache, to_set: FlagToSet) {
    let marker = Response::builder()
        .with_header("cache-control", &format!("max-age={}", to_set.ttl_secs))
        .map(|b| b.fixed(to_set.stored().as_bytes().to_vec()));
    let stored = match marker {
        Ok(marker) => cache.put(to_set.flag.cache_key(), marker).await,
        Err(e) => Err(e),
    };
    if let Err(e) = stored {
        console_warn!("could not store {:?}: {e}", to_set.flag);
    }
}

/// Drops the flag, so the next buy it would have answered reaches the origin. A failure is
/// only logged: the flag then lasts until its TTL ends.
pub(crate) async fn clear_flag(cache: &Cache, flag: &Flag) {
    if let Err(e) = cache.delete(flag.cache_key(), false).await {
        console_warn!("could not clear {flag:?}: {e}");
    }
}
