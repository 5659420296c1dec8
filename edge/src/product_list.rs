//! The product list in the isolate's memory (wasm only): `GET /api/products`, and what a buy
//! reads of it about its sale. What is held, when it is refreshed and what it says about a sale
//! is [`crate::products`]; this module does the I/O.
//!
//! The list held is current for `PRODUCTS_CACHE_SECS`. Then the first request refreshes it,
//! and the others serve the copy held until that refresh is done (single flight). A refresh
//! takes the copy another isolate of the data centre shared in the Cache API when it is
//! current, else asks the origin and shares its answer after replying (`wait_until`).
//!
//! The last list the origin answered 200 with is also kept for a day (stale-while-error): when
//! the origin cannot give a list (MySQL slow, a 5xx, a timeout) the edge serves the one it
//! holds (or, having none, that copy), marked `x-seckill-stale: 1`, as current for a period
//! so the failing origin is asked once a period, not once a buy. A buy never skips its sale's
//! waiting room for want of a list: with no list that has its sale, it is 503.

use std::cell::RefCell;

use worker::{console_warn, Cache, Context, Date, Method, Response, Result};

use crate::answers::{EdgeError, DECIDED_BY_HEADER};
use crate::http::{edge_error, json_response};
use crate::origin_client::send_to_origin;
use crate::products::{
    ListMemory, ListPlan, ListSnapshot, Sale, SaleInList, CACHED_AT_HEADER, LAST_GOOD_LIST_CACHE_KEY,
    LAST_GOOD_LIST_SECS, PRODUCT_LIST_CACHE_KEY, STALE_HEADER,
};
use crate::settings::RequestSettings;

thread_local! {
    /// The isolate's product list (a Workers isolate runs one thread). Borrowed only between awaits.
    static LIST: RefCell<ListMemory> = RefCell::new(ListMemory::default());
}

/// Where the list a request serves came from.
enum Served {
    /// What the isolate held; `current` as [`ListPlan::Serve`] says.
    Held { current: bool },
    /// This request's refresh.
    Refreshed,
    /// No list: the origin's answer that was not one (relayed to `GET /api/products`), or why
    /// it could not be asked.
    Nothing(std::result::Result<(u16, String), EdgeError>),
}

/// `GET /api/products`: the list held, with `serverTime` moved forward by its age; the last
/// good one (marked `x-seckill-stale: 1`) when the origin fails.
pub(crate) async fn product_list(settings: &RequestSettings, ctx: &Context) -> Result<Response> {
    let decided_by = match list(settings, ctx).await? {
        Served::Held { .. } => "edge",
        Served::Refreshed => "origin",
        Served::Nothing(Ok((status, body))) => {
            return json_response(status, body, &[(DECIDED_BY_HEADER, "origin".to_owned())]);
        }
        Served::Nothing(Err(failed)) => return edge_error(&failed),
    };
    let Some((body, stale)) = LIST.with(|list| list.borrow().body_at(Date::now().as_millis())) else {
        return edge_error(&EdgeError::list_unavailable());
    };
    let mut headers = vec![(DECIDED_BY_HEADER, decided_by.to_owned())];
    if stale {
        headers.push((STALE_HEADER, "1".to_owned()));
    }
    json_response(200, body, &headers)
}

/// What the product list says about `product_id`'s sale: `Ok(None)` when a current list does
/// not have it (the origin then decides alone: it is ended, unknown or not loaded). A list
/// that is not current (the last good one, or one being refreshed) and does not have the sale,
/// or no list at all, refuses the buy with 503: it may have a waiting room, and nobody passes
/// a room the edge cannot see.
pub(crate) async fn sale_in_list(
    settings: &RequestSettings,
    ctx: &Context,
    product_id: u64,
) -> Result<std::result::Result<Option<Sale>, EdgeError>> {
    let current = match list(settings, ctx).await? {
        Served::Held { current } => current,
        Served::Refreshed => true,
        Served::Nothing(why) => {
            let why = match why {
                Ok((status, _)) => format!("it answered {status}"),
                Err(failed) => failed.message,
            };
            console_warn!("no product list ({why}) and none kept; buy of {product_id} refused");
            return Ok(Err(EdgeError::list_unavailable()));
        }
    };
    Ok(match LIST.with(|list| list.borrow().sale(product_id, current)) {
        SaleInList::Listed(sale) => Ok(Some(sale)),
        SaleInList::NotListed => Ok(None),
        SaleInList::Unknown => Err(EdgeError::list_unavailable()),
    })
}

/// Makes sure the isolate holds a list to serve, refreshing it if this request is the one to.
async fn list(settings: &RequestSettings, ctx: &Context) -> Result<Served> {
    let now = Date::now().as_millis();
    let period_ms = u64::from(settings.products_cache_secs) * 1000;
    let timeout_ms = u64::from(settings.origin_timeout_ms);
    if let ListPlan::Serve { current } = LIST.with(|list| list.borrow_mut().plan(now, timeout_ms)) {
        return Ok(Served::Held { current });
    }
    let cache = Cache::default();
    if period_ms > 0 {
        if let Some(shared) = copy_in_cache(&cache, PRODUCT_LIST_CACHE_KEY).await? {
            if now < shared.fetched_at_ms() + period_ms {
                LIST.with(|list| list.borrow_mut().refreshed(shared, period_ms));
                return Ok(Served::Refreshed);
            }
        }
    }

    let answer = match send_to_origin(settings, Method::Get, "/api/products", None, None).await {
        Ok(mut answer) => Ok((answer.status_code(), answer.text().await?)),
        Err(failed) => Err(failed),
    };
    let now = Date::now().as_millis();
    if let Ok((200, body)) = &answer {
        if let Some(fresh) = ListSnapshot::parse(body.clone(), now) {
            let body = fresh.body().to_owned();
            LIST.with(|list| list.borrow_mut().refreshed(fresh, period_ms));
            ctx.wait_until(async move {
                let cache = Cache::default();
                if period_ms > 0 {
                    put_copy(&cache, PRODUCT_LIST_CACHE_KEY, &body, period_ms / 1000, now).await;
                }
                put_copy(&cache, LAST_GOOD_LIST_CACHE_KEY, &body, u64::from(LAST_GOOD_LIST_SECS), now).await;
            });
            return Ok(Served::Refreshed);
        }
        console_warn!("the origin's product list does not parse");
    }
    if LIST.with(|list| list.borrow_mut().refresh_failed(now, period_ms)) {
        return Ok(Served::Held { current: true });
    }
    if let Some(last_good) = copy_in_cache(&cache, LAST_GOOD_LIST_CACHE_KEY).await? {
        LIST.with(|list| list.borrow_mut().adopt_last_good(last_good, now, period_ms));
        return Ok(Served::Held { current: true });
    }
    Ok(Served::Nothing(answer))
}

/// The copy of the list stored under `key`, if there is one that parses.
async fn copy_in_cache(cache: &Cache, key: &str) -> Result<Option<ListSnapshot>> {
    let Ok(Some(mut copy)) = cache.get(key, false).await else { return Ok(None) };
    let cached_at: u64 = copy.headers().get(CACHED_AT_HEADER)?.and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok(ListSnapshot::parse(copy.text().await?, cached_at))
}

/// Stores a copy of the list under `key` for `secs`, noting when the origin gave it
/// (`cached_at`, ms). A failure only costs another isolate a trip to the origin.
async fn put_copy(cache: &Cache, key: &str, body: &str, secs: u64, cached_at: u64) {
    let copy = Response::builder()
        .with_header("cache-control", &format!("max-age={secs}"))
        .and_then(|b| b.with_header("content-type", "application/json"))
        .and_then(|b| b.with_header(CACHED_AT_HEADER, &cached_at.to_string()))
        .map(|b| b.fixed(body.as_bytes().to_vec()));
    let stored = match copy {
        Ok(copy) => cache.put(key, copy).await,
        Err(e) => Err(e),
    };
    if let Err(e) = stored {
        console_warn!("could not share the product list under {key}: {e}");
    }
}
