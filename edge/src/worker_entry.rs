//! The Worker's entry (wasm only): the `#[event(fetch)]` handler. It takes the isolate's
//! settings ([`crate::env_settings`]) and the request id, applies what every route shares (the
//! cross-site check, the query, the per-IP limit, the identity check, the per-user limit) and
//! dispatches each route to its handler: [`crate::buy`], [`crate::order`],
//! [`crate::challenge_route`], [`crate::product_list`], or a plain forward ([`crate::origin_client`]). It counts the answers the edge decided and sends
//! the counts to the origin now and then ([`crate::refusals`]).
//!
//! Like the other Workers glue, it does the I/O and makes no decision: the plain-Rust modules
//! ([`crate::routes`], [`crate::limits`], [`crate::identity`]...) do.

use seckill_protocol::wire::{is_valid_request_id, token_from_headers, REQUEST_ID_HEADER};
use std::cell::{Cell, RefCell};

use seckill_protocol::errors::ErrorCode;
use worker::{console_warn, event, Context, Date, Env, Method, Request, Response, Result};

use crate::answers::EdgeError;
use crate::buy::buy;
use crate::challenge_route::challenge;
use crate::cross_site;
use crate::env_settings::isolate_settings;
use crate::http::{edge_error, read_body, shop_page, CODE_HEADER, PRODUCT_HEADER};
use crate::identity::signed_in;
use crate::limit_bindings::{over_limit, within_limit};
use crate::limits::{self, IP_LIMITER};
use crate::order::{buyer_orders, order};
use crate::origin_client::{forward, send_to_origin, Caller};
use crate::product_list::product_list;
use crate::query::{self, Query};
use crate::refusals::RefusalTally;
use crate::routes::{route, Route};
use crate::settings::RequestSettings;

/// Largest body the edge relays on any other POST (login, pay): they carry a few fields.
const MAX_SMALL_BODY_BYTES: usize = 4 * 1024;

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    let sent = req.headers().get(REQUEST_ID_HEADER)?.filter(|id| is_valid_request_id(id));
    let request_id = sent.unwrap_or_else(fresh_request_id);
    let settings = RequestSettings { settings: isolate_settings(&env)?, request_id };
    if !CACHE_CHECKED.replace(true) {
        warn_if_the_cache_is_off(&req);
    }
    let mut answer = handle(req, env, &ctx, &settings).await?;
    if let Some(code) = answer.headers().get(CODE_HEADER)? {
        let product = answer.headers().get(PRODUCT_HEADER)?.and_then(|p| p.parse().ok());
        answer.headers_mut().delete(CODE_HEADER)?;
        answer.headers_mut().delete(PRODUCT_HEADER)?;
        if let Some(code) = ErrorCode::parse(&code) {
            TALLY.with(|tally| tally.borrow_mut().note(product, code.as_str()));
        }
    }
    answer.headers_mut().set(REQUEST_ID_HEADER, &settings.request_id)?;
    if let Some(counts) = TALLY.with(|tally| tally.borrow_mut().take_due(Date::now().as_millis())) {
        ctx.wait_until(async move {
            let body = serde_json::to_string(&counts).unwrap_or_default();
            match send_to_origin(&settings, Method::Post, "/api/edge/refusals", Some(body), None).await {
                Ok(answer) if answer.status_code() == 204 => {}
                Ok(answer) => console_warn!("the edge's refusal counts answered {}", answer.status_code()),
                Err(failed) => console_warn!("the edge's refusal counts not sent: {}", failed.message),
            }
        });
    }
    Ok(answer)
}

thread_local! {
    /// This instance's counts of the answers it decided (a Workers isolate runs one thread).
    static TALLY: RefCell<RefusalTally> = RefCell::new(RefusalTally::default());
    /// Whether this isolate has looked at where it runs ([`warn_if_the_cache_is_off`]).
    static CACHE_CHECKED: Cell<bool> = const { Cell::new(false) };
}

/// Says once per isolate, at its first request, when the edge is served from a workers.dev
/// subdomain: there the Cache API stores nothing, so the isolates do not share the sold-out
/// flag or the product list (each keeps its own in memory, and asks the origin for them).
/// wrangler.toml says how to route a custom domain.
fn warn_if_the_cache_is_off(req: &Request) {
    let host = req.url().ok().and_then(|url| url.host_str().map(str::to_owned)).unwrap_or_default();
    if host.ends_with(".workers.dev") {
        console_warn!(
            "served from {host}: the Cache API has no effect on workers.dev, so isolates share no flags or product \
             list; route a custom domain to the edge (wrangler.toml, routes)"
        );
    }
}

/// 106 random bits as 28 hex digits (the runtime's `Math.random` is backed by a CSPRNG in Workers).
#[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "a whole number in [0, 2^53)")]
fn fresh_request_id() -> String {
    let half = || (worker::js_sys::Math::random() * 2f64.powi(53)) as u64;
    format!("{:014x}{:014x}", half(), half())
}

async fn handle(mut req: Request, env: Env, ctx: &Context, settings: &RequestSettings) -> Result<Response> {
    // Parsed once: the path, the own origin and the query all come from it.
    let url = req.url()?;
    let route = route(req.method().as_ref(), url.path());
    // Reads (the product list, order polls) are never checked: no header read.
    if cross_site::is_checked(&route) {
        let own_origin = url.origin().ascii_serialization();
        let (content_type, origin, fetch_site) =
            (req.headers().get("content-type")?, req.headers().get("origin")?, req.headers().get("sec-fetch-site")?);
        let sent = cross_site::Sent {
            content_type: content_type.as_deref(),
            origin: origin.as_deref(),
            fetch_site: fetch_site.as_deref(),
        };
        if let Some(refused) = cross_site::refusal(&route, &own_origin, sent) {
            return edge_error(&refused);
        }
    }
    let query = match query::check(&route, url.query()) {
        Ok(query) => query,
        Err(refused) => return edge_error(&refused),
    };
    let limits = limits::for_route(&route);
    if limits.per_ip {
        let ip = req.headers().get("cf-connecting-ip")?;
        let key = match limits::ip_key(ip.as_deref(), settings.development) {
            Ok(key) => key,
            Err(refused) => return edge_error(&refused),
        };
        if !within_limit(&env, IP_LIMITER, key).await {
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
    if let (Some(limiter), Some(caller)) = (limits.per_user, &caller) {
        if !within_limit(&env, limiter, limits::user_key(caller.user_id)).await {
            return over_limit("user", settings, &[]);
        }
    }
    match (route, caller) {
        (Route::ShopPage, _) => shop_page(),
        (Route::Login, _) => match read_body(&mut req, MAX_SMALL_BODY_BYTES).await? {
            Ok(body) => forward(settings, Method::Post, "/api/login", Some(body), None).await,
            Err(too_big) => edge_error(&too_big),
        },
        (Route::ProductList, _) => product_list(settings, ctx).await,
        (Route::Buy, Some(caller)) => buy(&mut req, &env, settings, ctx, &caller).await,
        (Route::Order { order_no }, Some(caller)) => order(settings, order_no, &caller).await,
        (Route::Challenge, Some(caller)) => match query {
            Query::ProductId(product_id) => challenge(settings, ctx, product_id, &caller).await,
            Query::None => edge_error(&EdgeError::bad_request("productId is required")),
        },
        (Route::BuyerOrders, Some(caller)) => match query {
            Query::ProductId(product_id) => buyer_orders(settings, product_id, &caller).await,
            Query::None => edge_error(&EdgeError::bad_request("productId is required")),
        },
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
