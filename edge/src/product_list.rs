//! The product list through the Workers Cache API (wasm only): `GET /api/products`, and what
//! a buy reads of it about its sale. The copy is fresh for `PRODUCTS_CACHE_SECS`; what is done
//! to a cached copy and read from the list is [`crate::products`].
//!
//! The last list the origin answered 200 with is also kept for a day (stale-while-error): when
//! the origin cannot give a list (MySQL slow, a 5xx, a timeout) the edge serves that copy, and
//! holds it as fresh for `PRODUCTS_CACHE_SECS` so the failing origin is asked once a period,
//! not once a buy. A buy never skips its sale's waiting room for want of a list: with no list
//! that has its sale, it is 503 ([`sale_in_list`]).

use worker::{console_warn, Cache, Date, Method, Response, Result};

use crate::answers::{EdgeError, DECIDED_BY_HEADER};
use crate::http::{edge_error, json_response};
use crate::origin_client::send_to_origin;
use crate::products::{
    sale_of, with_server_time_advanced, Sale, CACHED_AT_HEADER, LAST_GOOD_LIST_CACHE_KEY, LAST_GOOD_LIST_SECS,
    PRODUCT_LIST_CACHE_KEY, STALE_HEADER,
};
use crate::settings::Settings;

/// A product list as the edge has it.
struct List {
    status: u16,
    body: String,
    /// Served from the edge's cache, not the origin's answer to this request.
    from_cache: bool,
    /// The last good copy, served because the origin could not give a fresh one.
    stale: bool,
}

/// `GET /api/products`, served from the cache when a copy is younger than
/// `PRODUCTS_CACHE_SECS`, with `serverTime` moved forward by the copy's age; the last good copy
/// (marked `x-seckill-stale: 1`) when the origin fails.
pub(crate) async fn product_list(settings: &Settings) -> Result<Response> {
    match product_list_body(settings).await? {
        Ok(list) => {
            let mut headers = vec![(DECIDED_BY_HEADER, if list.from_cache { "edge" } else { "origin" }.to_owned())];
            if list.stale {
                headers.push((STALE_HEADER, "1".to_owned()));
            }
            json_response(list.status, list.body, &headers)
        }
        Err(failed) => edge_error(&failed),
    }
}

/// What the product list says about `product_id`'s sale: `Ok(None)` when a current list does
/// not have it (the origin then decides alone: it is ended, unknown or not loaded). When the
/// origin cannot give a list, the last good one answers; if that does not have the sale either
/// (or there is none), the buy is refused with 503: it may have a waiting room, and nobody
/// passes a room the edge cannot see.
pub(crate) async fn sale_in_list(
    settings: &Settings,
    product_id: u64,
) -> Result<std::result::Result<Option<Sale>, EdgeError>> {
    let list = match product_list_body(settings).await? {
        Ok(list) if list.status == 200 => list,
        Ok(List { status, .. }) => {
            console_warn!("product list answered {status} and no earlier list is kept; buy of {product_id} refused");
            return Ok(Err(EdgeError::list_unavailable()));
        }
        Err(failed) => {
            console_warn!(
                "product list unavailable ({}) and no earlier list is kept; buy of {product_id} refused",
                failed.message
            );
            return Ok(Err(EdgeError::list_unavailable()));
        }
    };
    match sale_of(&list.body, product_id) {
        Some(sale) => Ok(Ok(Some(sale))),
        None if list.stale => Ok(Err(EdgeError::list_unavailable())),
        None => Ok(Ok(None)),
    }
}

/// The product list: the cached copy while it is younger than `PRODUCTS_CACHE_SECS`, else the
/// origin's (cached when 200, and kept as the last good one), else the last good one.
async fn product_list_body(settings: &Settings) -> Result<std::result::Result<List, EdgeError>> {
    let cache = Cache::default();
    if settings.products_cache_secs > 0 {
        if let Ok(Some(mut copy)) = cache.get(PRODUCT_LIST_CACHE_KEY, false).await {
            let cached_at: Option<u64> = copy.headers().get(CACHED_AT_HEADER)?.and_then(|v| v.parse().ok());
            let stale = copy.headers().get(STALE_HEADER)?.is_some();
            let age_ms = cached_at.map_or(0, |t| Date::now().as_millis().saturating_sub(t));
            let body = with_server_time_advanced(&copy.text().await?, age_ms);
            return Ok(Ok(List { status: 200, body, from_cache: true, stale }));
        }
    }

    let answer = match send_to_origin(settings, Method::Get, "/api/products", None, None).await {
        Ok(mut answer) => Ok((answer.status_code(), answer.text().await?)),
        Err(failed) => Err(failed),
    };
    match answer {
        Ok((200, body)) => {
            let now = Date::now().as_millis();
            if settings.products_cache_secs > 0 {
                put_copy(&cache, PRODUCT_LIST_CACHE_KEY, &body, settings.products_cache_secs, now, false).await;
            }
            put_copy(&cache, LAST_GOOD_LIST_CACHE_KEY, &body, LAST_GOOD_LIST_SECS, now, false).await;
            Ok(Ok(List { status: 200, body, from_cache: false, stale: false }))
        }
        failed => {
            if let Ok(Some(mut copy)) = cache.get(LAST_GOOD_LIST_CACHE_KEY, false).await {
                let cached_at: u64 = copy.headers().get(CACHED_AT_HEADER)?.and_then(|v| v.parse().ok()).unwrap_or(0);
                let kept = copy.text().await?;
                // Held as fresh for a period: the failing origin is asked again after it.
                if settings.products_cache_secs > 0 {
                    put_copy(&cache, PRODUCT_LIST_CACHE_KEY, &kept, settings.products_cache_secs, cached_at, true)
                        .await;
                }
                let age_ms = Date::now().as_millis().saturating_sub(cached_at);
                let body = with_server_time_advanced(&kept, age_ms);
                return Ok(Ok(List { status: 200, body, from_cache: true, stale: true }));
            }
            Ok(failed.map(|(status, body)| List { status, body, from_cache: false, stale: false }))
        }
    }
}

/// Stores a copy of the list under `key` for `secs`, noting when the origin gave it
/// (`cached_at`, ms) and whether it is a stale copy held as fresh. A failure only costs a
/// later trip to the origin.
async fn put_copy(cache: &Cache, key: &str, body: &str, secs: u32, cached_at: u64, stale: bool) {
    let copy = Response::builder()
        .with_header("cache-control", &format!("max-age={secs}"))
        .and_then(|b| b.with_header("content-type", "application/json"))
        .and_then(|b| b.with_header(CACHED_AT_HEADER, &cached_at.to_string()))
        .and_then(|b| if stale { b.with_header(STALE_HEADER, "1") } else { Ok(b) })
        .map(|b| b.fixed(body.as_bytes().to_vec()));
    let stored = match copy {
        Ok(copy) => cache.put(key, copy).await,
        Err(e) => Err(e),
    };
    if let Err(e) = stored {
        console_warn!("could not cache the product list under {key}: {e}");
    }
}
