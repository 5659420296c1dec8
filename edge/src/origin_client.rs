//! The edge's calls to the origin (wasm only): a JSON request with the shared secret, the
//! caller's token and the request id, sent to the caller's origin and passed on to the next
//! when it cannot be reached, within `ORIGIN_TIMEOUT_MS`; and the forward of a request whose
//! answer goes back as the origin gave it. The order of the origins is [`crate::origins`].

use std::time::Duration;

use futures_util::future::{select, Either};
use seckill_protocol::wire::REQUEST_ID_HEADER;
use wasm_bindgen::JsValue;
use worker::{console_warn, AbortController, Delay, Fetch, Headers, Method, Request, RequestInit, Response, Result};

use crate::answers::{EdgeError, DECIDED_BY_HEADER, EDGE_SECRET_HEADER};
use crate::http::{edge_error, json_response};
use crate::origins;
use crate::settings::RequestSettings;

/// The signed-in user of a request, and the token that proves it (forwarded: the origin
/// checks it again).
pub(crate) struct Caller {
    pub(crate) user_id: u64,
    pub(crate) token: String,
}

/// Forwards a request unchanged in meaning and relays the origin's status, body and any
/// `Set-Cookie` (the local login's).
pub(crate) async fn forward(
    settings: &RequestSettings,
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
pub(crate) async fn send_to_origin(
    settings: &RequestSettings,
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
    settings: &RequestSettings,
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
    settings: &RequestSettings,
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
