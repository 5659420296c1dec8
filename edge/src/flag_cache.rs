//! The flags (wasm only): the isolate's memory first ([`crate::flag_memory`]), and for the
//! sold-out flag the Workers Cache API behind it, where the isolates of a data centre share it.
//! Which flags a buy checks, sets or an order read clears is [`crate::admission`].

use std::cell::RefCell;
use std::future::Future;

use worker::{console_warn, Cache, Date, Response};

use crate::admission::{Flag, FlagToSet};
use crate::flag_memory::{FlagMemory, Lookup};

thread_local! {
    /// The isolate's flags (a Workers isolate runs one thread). Borrowed only between awaits.
    static FLAGS: RefCell<FlagMemory> = RefCell::new(FlagMemory::default());
}

/// What was stored with the flag ([`FlagToSet::stored`]) if it is set. A hit means the origin
/// said so less than its TTL ago. Cache failures count as "not set": the edge then forwards,
/// and the origin, which is always right, decides.
pub(crate) async fn flag_lookup(flag: &Flag) -> Option<String> {
    let now = Date::now().as_millis();
    match FLAGS.with(|memory| memory.borrow_mut().look_up(flag, now)) {
        Lookup::Set(stored) => return Some(stored),
        Lookup::NotSet => return None,
        Lookup::AskSharedCache => {}
    }
    let key = flag.shared_cache_key()?;
    match Cache::default().get(key.as_str(), false).await {
        Ok(Some(mut hit)) => {
            // The body is the flag's expiry (ms): this isolate holds it exactly as long.
            let until_ms: u64 = hit.text().await.ok()?.trim().parse().ok()?;
            let now = Date::now().as_millis();
            if until_ms <= now {
                return None;
            }
            FLAGS.with(|memory| memory.borrow_mut().remember(flag, until_ms, ""));
            Some(String::new())
        }
        Ok(None) => None,
        Err(e) => {
            console_warn!("flag lookup failed for {key}: {e}");
            None
        }
    }
}

/// Sets the flag in memory at once, so the next buy in this isolate is answered from it; for a
/// flag other isolates share, also returns the Cache API write, which the caller runs after the
/// answer (`wait_until`): a write that lands a few milliseconds late only lets a buy of another
/// isolate through to the origin, which refuses it.
pub(crate) fn set_flag(to_set: &FlagToSet) -> Option<impl Future<Output = ()> + 'static> {
    let until_ms = Date::now().as_millis() + u64::from(to_set.ttl_secs) * 1000;
    FLAGS.with(|memory| memory.borrow_mut().remember(&to_set.flag, until_ms, to_set.stored()));
    let key = to_set.flag.shared_cache_key()?;
    let ttl_secs = to_set.ttl_secs;
    Some(async move {
        // A tiny cached response whose body is the expiry: the Cache API drops it after
        // `max-age` seconds, so expiry needs no bookkeeping here.
        let marker = Response::builder()
            .with_header("cache-control", &format!("max-age={ttl_secs}"))
            .map(|b| b.fixed(until_ms.to_string().into_bytes()));
        let stored = match marker {
            Ok(marker) => Cache::default().put(key.as_str(), marker).await,
            Err(e) => Err(e),
        };
        if let Err(e) = stored {
            console_warn!("could not share the flag {key}: {e}");
        }
    })
}

/// Drops the flag, so the next buy it would have answered reaches the origin. Only a bought
/// flag is ever cleared, and it lives in this isolate's memory alone.
pub(crate) fn clear_flag(flag: &Flag) {
    FLAGS.with(|memory| memory.borrow_mut().forget(flag));
}
