//! The Workers glue (wasm only): reads the request, asks the plain-Rust modules what to do,
//! and does the I/O (Cache API, fetch to the origin). No decision is made here.

use std::time::Duration;

use futures_util::future::{select, Either};
use seckill_protocol::buy::{BuyBody, MAX_BUY_BODY_BYTES};
use seckill_protocol::room::{pass_cookie, RoomSettings, PASS_HEADER};
use seckill_protocol::token::KeySet;
use seckill_protocol::wire::{is_valid_request_id, token_from_headers, REQUEST_ID_HEADER};
use wasm_bindgen::JsValue;
use worker::{
    console_warn, event, AbortController, Cache, Context, Date, Delay, Env, Fetch, Headers, Method, Request,
    RequestInit, Response, Result,
};

use crate::admission::{
    flag_cleared_by_order, flag_from_answer, flags_to_check, Flag, FlagToSet, DEFAULT_MAX_FLAG_TTL_SECS,
};
use crate::answers::{EdgeError, DECIDED_BY_HEADER, EDGE_SECRET_HEADER, FLAG_TTL_HEADER};
use crate::identity::signed_in;
use crate::limits::{self, IP_LIMITER, USER_LIMITER};
use crate::origins::{self, parse_origin_urls};
use crate::page::SHOP_PAGE_HTML;
use crate::products::{
    sale_of, with_server_time_advanced, Sale, CACHED_AT_HEADER, DEFAULT_PRODUCTS_CACHE_SECS, PRODUCT_LIST_CACHE_KEY,
};
use crate::room_object::{self, EnterRequest};
use crate::routes::{route, Route};
use crate::waiting_room::{holds_pass, issue_pass, queued_body, Entry};

/// The page may only talk to its own origin and runs only its own inline script and style.
const SHOP_PAGE_CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; \
    style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// The worker's settings (`[vars]` in wrangler.toml, overridden by `wrangler dev --var`), read
/// for each request, with that request's id.
struct Settings {
    /// This request's `x-request-id`: the client's if valid, else a fresh one. Sent to the
    /// origin and returned on the answer.
    request_id: String,
    /// `ORIGIN_URLS` (comma-separated), else `ORIGIN_URL`, e.g. `http://127.0.0.1:8080`: the
    /// origins, each user sticky to one of them ([`origins`]).
    origin_urls: Vec<String>,
    /// `EDGE_SECRET` (a secret in production, a var under `wrangler dev`); empty = not sent.
    edge_secret: String,
    /// `MAX_FLAG_TTL_SECS`: the most the edge trusts any `x-seckill-flag-ttl`; 0 turns flags off.
    max_flag_ttl_secs: u32,
    /// `PRODUCTS_CACHE_SECS`: how long a product list is served from the cache; 0 = never.
    products_cache_secs: u32,
    /// `TOKEN_KEYS` (a secret): `kid:secret[,kid:secret...]`, the keys identity tokens are
    /// verified with; the same keys the origin (and any identity provider) signs with.
    token_keys: KeySet,
    /// `TOKEN_AUDIENCE`: the `aud` a token must carry (default `seckill`).
    token_audience: String,
    /// `ORIGIN_TIMEOUT_MS`: how long the edge waits for the origin before answering 504.
    origin_timeout_ms: u32,
    /// `RATE_LIMIT_RETRY_AFTER_SECS`: the `Retry-After` of a 429 (the limiters' period).
    retry_after_secs: u32,
}

/// Default `ORIGIN_TIMEOUT_MS`: above the origin's own worst case (a broker send times out at 3 s).
const DEFAULT_ORIGIN_TIMEOUT_MS: u32 = 10_000;

/// Largest body the edge relays on any other POST (login, pay): they carry a few fields.
const MAX_SMALL_BODY_BYTES: usize = 4 * 1024;

impl Settings {
    fn from_env(env: &Env, request_id: String) -> Result<Self> {
        let text = |name: &str| env.secret(name).or_else(|_| env.var(name)).map(|value| value.to_string()).ok();
        let number = |name: &str, default: u32| text(name).and_then(|v| v.trim().parse().ok()).unwrap_or(default);
        let origin_urls = parse_origin_urls(text("ORIGIN_URLS").as_deref(), text("ORIGIN_URL").as_deref())?;
        Ok(Self {
            request_id,
            origin_urls,
            edge_secret: text("EDGE_SECRET").unwrap_or_default(),
            max_flag_ttl_secs: number("MAX_FLAG_TTL_SECS", DEFAULT_MAX_FLAG_TTL_SECS),
            products_cache_secs: number("PRODUCTS_CACHE_SECS", DEFAULT_PRODUCTS_CACHE_SECS),
            token_keys: KeySet::parse(&text("TOKEN_KEYS").unwrap_or_default())
                .map_err(|e| format!("TOKEN_KEYS: {e}"))?,
            token_audience: text("TOKEN_AUDIENCE").filter(|a| !a.is_empty()).unwrap_or_else(|| "seckill".into()),
            origin_timeout_ms: number("ORIGIN_TIMEOUT_MS", DEFAULT_ORIGIN_TIMEOUT_MS).max(1),
            retry_after_secs: number("RATE_LIMIT_RETRY_AFTER_SECS", limits::DEFAULT_RETRY_AFTER_SECS).max(1),
        })
    }
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    let sent = req.headers().get(REQUEST_ID_HEADER)?.filter(|id| is_valid_request_id(id));
    let request_id = sent.unwrap_or_else(fresh_request_id);
    let settings = Settings::from_env(&env, request_id)?;
    let mut answer = handle(req, env, ctx, &settings).await?;
    answer.headers_mut().set(REQUEST_ID_HEADER, &settings.request_id)?;
    Ok(answer)
}

/// 106 random bits as 28 hex digits (the runtime's `Math.random` is backed by a CSPRNG in Workers).
#[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "a whole number in [0, 2^53)")]
fn fresh_request_id() -> String {
    let half = || (worker::js_sys::Math::random() * 2f64.powi(53)) as u64;
    format!("{:014x}{:014x}", half(), half())
}

async fn handle(mut req: Request, env: Env, ctx: Context, settings: &Settings) -> Result<Response> {
    let path = req.path();
    let route = route(req.method().as_ref(), &path);
    let limited = limits::is_limited(&route);
    if limited {
        let ip = req.headers().get("cf-connecting-ip")?;
        if !within_limit(&env, IP_LIMITER, limits::ip_key(ip.as_deref())).await {
            return over_limit("address", settings, &[]);
        }
    }
    // The token is checked before anything else is read: without one, nothing reaches the origin.
    let caller = if route.needs_identity() {
        let authorization = req.headers().get("authorization")?;
        let cookie = req.headers().get("cookie")?;
        let now = Date::now().as_millis() / 1000;
        match signed_in(
            &settings.token_keys,
            &settings.token_audience,
            authorization.as_deref(),
            cookie.as_deref(),
            now,
        ) {
            Ok(user_id) => {
                let token = token_from_headers(authorization.as_deref(), cookie.as_deref()).unwrap_or_default();
                Some(Caller { user_id, token: token.to_owned() })
            }
            Err(refused) => return edge_error(&refused),
        }
    } else {
        None
    };
    // A buy is limited per user only where it would reach the origin (in `buy`): a queued
    // user's tries are paced by the room, and flag answers cost the origin nothing.
    if let (true, false, Some(caller)) = (limited, route == Route::Buy, &caller) {
        if !within_limit(&env, USER_LIMITER, limits::user_key(caller.user_id)).await {
            return over_limit("user", settings, &[]);
        }
    }
    match (route, caller) {
        (Route::ShopPage, _) => shop_page(),
        (Route::Login, _) => match read_body(&mut req, MAX_SMALL_BODY_BYTES).await? {
            Ok(body) => forward(settings, Method::Post, "/api/login", Some(body), None).await,
            Err(too_big) => edge_error(&too_big),
        },
        (Route::ProductList, _) => product_list(settings).await,
        (Route::Buy, Some(caller)) => buy(&mut req, &env, settings, &ctx, &caller).await,
        (Route::Order { order_no }, Some(caller)) => order(settings, order_no, &caller).await,
        (Route::PayOrder { order_no }, Some(caller)) => match read_body(&mut req, MAX_SMALL_BODY_BYTES).await? {
            Ok(body) => {
                let path = format!("/api/orders/{order_no}/pay");
                forward(settings, Method::Post, &path, Some(body), Some(&caller)).await
            }
            Err(too_big) => edge_error(&too_big),
        },
        (Route::MethodNotAllowed, _) => edge_error(&EdgeError::method_not_allowed()),
        (Route::NotFound, _) | (_, None) => edge_error(&EdgeError::not_found()),
    }
}

/// Asks the rate-limit binding `binding` about `key`. A missing or failing binding lets the
/// request through (see [`crate::limits`]).
async fn within_limit(env: &Env, binding: &str, key: String) -> bool {
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

fn over_limit(per: &str, settings: &Settings, extra: &[(&str, String)]) -> Result<Response> {
    let error = limits::rate_limited(per, settings.retry_after_secs);
    let mut headers =
        vec![(DECIDED_BY_HEADER, "edge".to_owned()), ("retry-after", settings.retry_after_secs.to_string())];
    headers.extend_from_slice(extra);
    json_response(error.status, error.body(), &headers)
}

/// The signed-in user of a request, and the token that proves it (forwarded: the origin
/// checks it again).
struct Caller {
    user_id: u64,
    token: String,
}

/// Reads a body of at most `max` bytes. A declared `Content-Length` over the cap is refused
/// before anything is read; a body that turns out longer is refused after.
async fn read_body(req: &mut Request, max: usize) -> Result<std::result::Result<String, EdgeError>> {
    let declared: Option<usize> = req.headers().get("content-length")?.and_then(|v| v.trim().parse().ok());
    let too_big = || EdgeError::payload_too_large(max);
    if declared.is_some_and(|n| n > max) {
        return Ok(Err(too_big()));
    }
    let bytes = req.bytes().await?;
    if bytes.len() > max {
        return Ok(Err(too_big()));
    }
    Ok(String::from_utf8(bytes).map_err(|_| EdgeError::bad_request("body is not UTF-8")))
}

/// `POST /api/seckill`: validate, settle the buyer, check the flags, pass the sale's waiting
/// room, check the user's rate limit, else forward and learn from the answer.
async fn buy(req: &mut Request, env: &Env, settings: &Settings, ctx: &Context, caller: &Caller) -> Result<Response> {
    let body = match read_body(req, MAX_BUY_BODY_BYTES).await? {
        Ok(body) => body,
        Err(too_big) => return edge_error(&too_big),
    };
    let buy = match BuyBody::parse(body.as_bytes()) {
        Ok(body) => match body.buyer(caller.user_id) {
            Ok(buy) => buy,
            Err(someone_else) => return edge_error(&EdgeError::forbidden(someone_else.to_string())),
        },
        Err(bad_body) => return edge_error(&EdgeError::bad_request(bad_body.0)),
    };
    let cache = Cache::default();
    // One lookup after the other, not both at once: in a sell-out flood the first one answers
    // nearly every buy, and a parallel second lookup would double the cache work of exactly those.
    for flag in flags_to_check(&buy) {
        if flag_is_set(&cache, &flag).await {
            return edge_error(&flag.rejection());
        }
    }

    // Headers every answer from here on carries: a pass the room just handed out.
    let mut pass_headers: Vec<(&str, String)> = Vec::new();
    if let Some(Sale { sold_out, waiting_room: Some(room) }) = sale_in_list(settings, buy.product_id).await? {
        // Nobody waits in line for stock that is gone (the list is at most PRODUCTS_CACHE_SECS old).
        if sold_out {
            return edge_error(&EdgeError::sold_out(buy.product_id));
        }
        let now_ms = Date::now().as_millis();
        let pass_header = req.headers().get(PASS_HEADER)?;
        let cookie = req.headers().get("cookie")?;
        let (keys, product_id, user_id) = (&settings.token_keys, buy.product_id, caller.user_id);
        if !holds_pass(keys, pass_header.as_deref(), cookie.as_deref(), product_id, user_id, now_ms / 1000) {
            match ask_room(env, product_id, user_id, room).await {
                Ok(Entry::Admitted { until_ms }) => {
                    let (pass, max_age) = issue_pass(keys, product_id, user_id, now_ms, until_ms);
                    let secure = req.url().is_ok_and(|u| u.scheme() == "https");
                    pass_headers.push(("set-cookie", pass_cookie(&pass, product_id, max_age, secure)));
                    pass_headers.push((PASS_HEADER, pass));
                }
                Ok(Entry::Queued { ticket, position, estimated_wait_secs, refresh_interval_secs }) => {
                    let body = queued_body(ticket, position, estimated_wait_secs, refresh_interval_secs);
                    let headers =
                        [(DECIDED_BY_HEADER, "edge".to_owned()), ("retry-after", refresh_interval_secs.to_string())];
                    return json_response(429, body, &headers);
                }
                Err(e) => {
                    console_warn!("waiting room of product {product_id} failed: {e}");
                    return edge_error(&EdgeError::room_unavailable());
                }
            }
        }
    }
    if !within_limit(env, USER_LIMITER, limits::user_key(caller.user_id)).await {
        return over_limit("user", settings, &pass_headers);
    }

    let mut answer =
        match send_to_origin(settings, Method::Post, "/api/seckill", Some(buy.to_json()), Some(caller)).await {
            Ok(answer) => answer,
            Err(failed) => return edge_error(&failed),
        };
    let status = answer.status_code();
    let ttl = answer.headers().get(FLAG_TTL_HEADER)?;
    let body = answer.text().await?;
    if let Some(to_set) = flag_from_answer(&buy, status, &body, ttl.as_deref(), settings.max_flag_ttl_secs) {
        if to_set.flag.store_before_answering() {
            set_flag(&cache, to_set).await;
        } else {
            // Stored just after the answer (see `Flag::store_before_answering`).
            ctx.wait_until(async move { set_flag(&Cache::default(), to_set).await });
        }
    }
    let mut extra = vec![(DECIDED_BY_HEADER, "origin".to_owned())];
    if let Some(ttl) = ttl {
        extra.push((FLAG_TTL_HEADER, ttl)); // clients (and tests) may read how long it holds
    }
    extra.extend(pass_headers);
    json_response(status, body, &extra)
}

/// `GET /api/orders/{orderNo}`, forwarded; an order its buyer reads as REFUSED or CANCELLED
/// clears their bought flag before the answer goes back, so their next buy reaches the origin.
async fn order(settings: &Settings, order_no: &str, caller: &Caller) -> Result<Response> {
    let path = format!("/api/orders/{order_no}");
    let mut answer = match send_to_origin(settings, Method::Get, &path, None, Some(caller)).await {
        Ok(answer) => answer,
        Err(failed) => return edge_error(&failed),
    };
    let status = answer.status_code();
    let body = answer.text().await?;
    if let Some(flag) = flag_cleared_by_order(caller.user_id, status, &body) {
        if let Err(e) = Cache::default().delete(flag.cache_key(), false).await {
            console_warn!("could not clear {flag:?}: {e}");
        }
    }
    json_response(status, body, &[(DECIDED_BY_HEADER, "origin".to_owned())])
}

/// What the (cached) product list says about `product_id`'s sale. Without a list (the origin
/// is down) there is no room to apply, and the buy goes on to the origin, which decides.
async fn sale_in_list(settings: &Settings, product_id: u64) -> Result<Option<Sale>> {
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

/// Asks `product_id`'s room (its Durable Object) to let `user_id` in.
async fn ask_room(env: &Env, product_id: u64, user_id: u64, room: RoomSettings) -> Result<Entry> {
    let stub =
        env.durable_object(room_object::BINDING)?.id_from_name(&room_object::room_name(product_id))?.get_stub()?;
    let body = serde_json::to_string(&EnterRequest { user_id, room })?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(JsValue::from_str(&body)));
    let mut answer =
        stub.fetch_with_request(Request::new_with_init("https://waiting-room.internal/enter", &init)?).await?;
    if answer.status_code() != 200 {
        return Err(format!("answered {}: {}", answer.status_code(), answer.text().await.unwrap_or_default()).into());
    }
    answer.json().await
}

/// A cache hit means the origin said so less than its TTL ago. Cache failures count as
/// "not set": the edge then forwards, and the origin, which is always right, decides.
async fn flag_is_set(cache: &Cache, flag: &Flag) -> bool {
    match cache.get(flag.cache_key(), false).await {
        Ok(hit) => hit.is_some(),
        Err(e) => {
            console_warn!("flag lookup failed for {}: {e}", flag.cache_key());
            false
        }
    }
}

/// Stores the flag as a tiny cached response: the Cache API drops it after `max-age` seconds,
/// so expiry needs no bookkeeping here. A failure only costs a later trip to the origin.
async fn set_flag(cache: &Cache, to_set: FlagToSet) {
    let marker = Response::builder()
        .with_header("cache-control", &format!("max-age={}", to_set.ttl_secs))
        .map(|b| b.fixed(format!("{:?} for {}s", to_set.flag, to_set.ttl_secs).into_bytes()));
    let stored = match marker {
        Ok(marker) => cache.put(to_set.flag.cache_key(), marker).await,
        Err(e) => Err(e),
    };
    if let Err(e) = stored {
        console_warn!("could not store {:?}: {e}", to_set.flag);
    }
}

/// `GET /api/products`, served from the cache when a copy is younger than
/// `PRODUCTS_CACHE_SECS`, with `serverTime` moved forward by the copy's age.
async fn product_list(settings: &Settings) -> Result<Response> {
    match product_list_body(settings).await? {
        Ok((status, body, from_cache)) => {
            json_response(status, body, &[(DECIDED_BY_HEADER, if from_cache { "edge" } else { "origin" }.to_owned())])
        }
        Err(failed) => edge_error(&failed),
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

/// Forwards a request unchanged in meaning and relays the origin's status, body and any
/// `Set-Cookie` (the local login's).
async fn forward(
    settings: &Settings,
    method: Method,
    path: &str,
    body: Option<String>,
    caller: Option<&Caller>,
) -> Result<Response> {
    match send_to_origin(settings, method, path, body, caller).await {
        Ok(mut answer) => {
            let status = answer.status_code();
            let cookie = answer.headers().get("set-cookie")?;
            let body = answer.text().await?;
            let mut extra = vec![(DECIDED_BY_HEADER, "origin".to_owned())];
            extra.extend(cookie.map(|c| ("set-cookie", c)));
            json_response(status, body, &extra)
        }
        Err(failed) => edge_error(&failed),
    }
}

/// Sends a JSON request to the caller's origin (sticky by user, [`origins::preference`]) with
/// the shared secret and the caller's token; an origin that cannot be reached is passed over
/// for the next one (see [`origins`] for why that is safe). Gives up after `ORIGIN_TIMEOUT_MS`
/// on one origin (504: the outcome is unknown, so it is not retried elsewhere) and answers 503
/// when no origin can be reached.
async fn send_to_origin(
    settings: &Settings,
    method: Method,
    path: &str,
    body: Option<String>,
    caller: Option<&Caller>,
) -> std::result::Result<Response, EdgeError> {
    let key = caller.map_or_else(|| settings.request_id.clone(), |c| c.user_id.to_string());
    for index in origins::preference(&key, &settings.origin_urls) {
        let url = format!("{}{}", settings.origin_urls[index], path);
        match send_once(settings, &url, method.clone(), body.clone(), caller).await {
            Ok(answer) => return Ok(answer),
            Err(Unanswered::Unreachable) => continue,
            Err(Unanswered::TimedOut) => return Err(EdgeError::origin_timeout()),
        }
    }
    Err(EdgeError::origin_unreachable())
}

/// Why one origin gave no answer.
enum Unanswered {
    /// The fetch failed (or the request could not be built): try the next origin.
    Unreachable,
    /// No answer within `ORIGIN_TIMEOUT_MS`: the outcome is unknown.
    TimedOut,
}

async fn send_once(
    settings: &Settings,
    url: &str,
    method: Method,
    body: Option<String>,
    caller: Option<&Caller>,
) -> std::result::Result<Response, Unanswered> {
    let request = origin_request(settings, url, method, body, caller).map_err(|e| {
        console_warn!("could not build the origin request {url}: {e}");
        Unanswered::Unreachable
    })?;
    let controller = AbortController::default();
    let signal = controller.signal();
    let sent = Box::pin(async move { Fetch::Request(request).send_with_signal(&signal).await });
    let timeout = Delay::from(Duration::from_millis(u64::from(settings.origin_timeout_ms)));
    match select(sent, timeout).await {
        Either::Left((Ok(answer), _)) => Ok(answer),
        Either::Left((Err(e), _)) => {
            console_warn!("origin request {url} failed: {e}");
            Err(Unanswered::Unreachable)
        }
        Either::Right(((), _)) => {
            controller.abort();
            console_warn!("origin request {url} timed out after {} ms", settings.origin_timeout_ms);
            Err(Unanswered::TimedOut)
        }
    }
}

fn origin_request(
    settings: &Settings,
    url: &str,
    method: Method,
    body: Option<String>,
    caller: Option<&Caller>,
) -> Result<Request> {
    let headers = Headers::new();
    headers.set("accept", "application/json")?;
    if !settings.edge_secret.is_empty() {
        headers.set(EDGE_SECRET_HEADER, &settings.edge_secret)?;
    }
    if let Some(caller) = caller {
        headers.set("authorization", &format!("Bearer {}", caller.token))?;
    }
    headers.set(REQUEST_ID_HEADER, &settings.request_id)?;
    if body.is_some() {
        headers.set("content-type", "application/json")?;
    }
    let mut init = RequestInit::new();
    init.with_method(method).with_headers(headers).with_body(body.as_deref().map(JsValue::from_str));
    Request::new_with_init(url, &init)
}

fn shop_page() -> Result<Response> {
    Ok(Response::from_html(SHOP_PAGE_HTML)?.with_headers(Headers::from_iter([
        ("content-type", "text/html; charset=utf-8"),
        ("cache-control", "no-cache"),
        ("content-security-policy", SHOP_PAGE_CSP),
        ("x-content-type-options", "nosniff"),
        (DECIDED_BY_HEADER, "edge"),
    ])))
}

fn edge_error(error: &EdgeError) -> Result<Response> {
    json_response(error.status, error.body(), &[(DECIDED_BY_HEADER, "edge".to_owned())])
}

fn json_response(status: u16, body: String, extra_headers: &[(&str, String)]) -> Result<Response> {
    let mut builder = Response::builder()
        .with_status(status)
        .with_header("content-type", "application/json")?
        .with_header("cache-control", "no-store")?;
    for (name, value) in extra_headers {
        builder = builder.with_header(name, value)?;
    }
    Ok(builder.fixed(body.into_bytes()))
}
