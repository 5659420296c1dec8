//! The product list through the Workers Cache API (wasm only): `GET /api/products`, and what
//! a buy reads of it about its sale. The copy is fresh for `PRODUCTS_CACHE_SECS`; what is done
//! to a cached copy and read from the list is [`crate::products`].

use worker::{console_warn, Cache, Date, Method, Response, Result};

use crate::answers::{EdgeError, DECIDED_BY_HEADER};
use crate::http::{edge_error, json_response};
use crate::origin_client::send_to_origin;
use crate::products::{sale_of, with_server_time_advanced, Sale, CACHED_AT_HEADER, PRODUCT_LIST_CACHE_KEY};
use crate::settings::Settings;

/// `GET /api/products`, served from the cache when a copy is younger than
/// `PRODUCTS_CACHE_SECS`, with `serverTime` moved forward by the copy's age.
pub(crate) async fn product_list(settings: &Settings) -> Result<Response> {
    match product_list_body(settings).await? {
        Ok((status, body, from_cache)) => {
            json_response(status, body, &[(DECIDED_BY_HEADER, if from_cache { "edge" } else { "origin" }.to_owned())])
        }
        Err(failed) => edge_error(&failed),
    }
}

/// What the (cached) product list says about `product_id`'s sale. Without a list (the origin
/// is down) there is no room to apply, and the buy goes on to the origin, which decides.
pub(crate) async fn sale_in_list(settings: &Settings, product_id: u64) -> Result<Option<Sale>> {
    match product_list_body(settings).await? {
        Ok((200, body, _)) => Ok(sale_of(&body, product_id)),
        Ok((status, _, _)) => {
            console_warn!("product list answered {status}; no waiting room applied");
            Ok(None)
        }
        Err(failed) => {
            console_warn!("product list unavailable ({}); no waiting room applied", failed.message);
            Ok(None)
        }
    }
}

/// The product list's status and body, and whether it came from the cache: the cached copy
/// while it is younger than `PRODUCTS_CACHE_SECS`, else the origin's (cached when 200).
async fn product_list_body(settings: &Settings) -> Result<std::result::Result<(u16, String, bool), EdgeError>> {
    let cache = Cache::default();
    if settings.products_cache_secs > 0 {
        if let Ok(Some(mut copy)) = cache.get(PRODUCT_LIST_CACHE_KEY, false).await {
            let cached_at: Option<u64> = copy.headers().get(CACHED_AT_HEADER)?.and_then(|v| v.parse().ok());
            let age_ms = cached_at.map_or(0, |t| Date::now().as_millis().saturating_sub(t));
            return Ok(Ok((200, with_server_time_advanced(&copy.text().await?, age_ms), true)));
        }
    }

    let mut answer = match send_to_origin(settings, Method::Get, "/api/products", None, None).await {
        Ok(answer) => answer,
        Err(failed) => return Ok(Err(failed)),
    };
    let status = answer.status_code();
    let body = answer.text().await?;
    if status == 200 && settings.products_cache_secs > 0 {
        let copy = Response::builder()
            .with_header("cache-control", &format!("max-age={}", settings.products_cache_secs))?
            .with_header("content-type", "application/json")?
            .with_header(CACHED_AT_HEADER, &Date::now().as_millis().to_string())?
            .fixed(body.clone().into_bytes());
        if let Err(e) = cache.put(PRODUCT_LIST_CACHE_KEY, copy).await {
            console_warn!("could not cache the product list: {e}");
        }
    }
    Ok(Ok((status, body, false)))
}
