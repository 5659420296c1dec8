//! `POST /api/seckill` (wasm only): the buy flow. Each step asks the plain-Rust modules
//! ([`crate::admission`], [`crate::waiting_room`], [`seckill_protocol::challenge`],
//! [`crate::limits`]) what to do and turns the buy away at the first that says no; a buy nothing
//! turned away goes to the origin, and its answer may set a flag.

use seckill_protocol::buy::{Buy, BuyBody, MAX_BUY_BODY_BYTES};
use seckill_protocol::challenge::{check, Refusal, SOLUTION_HEADER};
use seckill_protocol::errors::ErrorCode;
use seckill_protocol::room::{pass_cookie, PASS_HEADER};
use worker::{console_warn, Context, Date, Env, Method, Request, Response, Result};

use crate::admission::{flag_from_answer, flags_to_check};
use crate::answers::{EdgeError, DECIDED_BY_HEADER, FLAG_TTL_HEADER};
use crate::flag_cache::{flag_lookup, set_flag};
use crate::http::{edge_error, json_response, read_body, CODE_HEADER, PRODUCT_HEADER};
use crate::limit_bindings::{over_limit, within_limit};
use crate::limits::{self, USER_LIMITER};
use crate::origin_client::{send_to_origin, Caller};
use crate::product_list::sale_in_list;
use crate::products::Sale;
use crate::room_object::ask_room;
use crate::settings::RequestSettings;
use crate::waiting_room::{
    holds_pass, issue_pass, pre_queue_body, queued_body, room_opens_at, room_position, ChallengeProof, Entry,
};

/// `POST /api/seckill`: validate, settle the buyer, check the flags, pass the sale's waiting
/// room, check the user's rate limit, else forward and learn from the answer.
pub(crate) async fn buy(
    req: &mut Request,
    env: &Env,
    settings: &RequestSettings,
    ctx: &Context,
    caller: &Caller,
) -> Result<Response> {
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
    let mut answer = buy_of(req, env, settings, ctx, caller, &buy).await?;
    // What the edge decided about this sale is counted as the sale's (see `crate::refusals`).
    if answer.headers().has(CODE_HEADER)? {
        answer.headers_mut().set(PRODUCT_HEADER, &buy.product_id.to_string())?;
    }
    Ok(answer)
}

/// The buy once its body is read: the flags, the room, the user's limit, the origin.
async fn buy_of(
    req: &Request,
    env: &Env,
    settings: &RequestSettings,
    ctx: &Context,
    caller: &Caller,
    buy: &Buy,
) -> Result<Response> {
    // Both are answered from the isolate's memory nearly always (`crate::flag_memory`).
    for flag in flags_to_check(buy) {
        if let Some(stored) = flag_lookup(&flag).await {
            return edge_error(&flag.rejection(&stored));
        }
    }

    // Headers every answer from here on carries: a pass the room just handed out.
    let pass_headers = match through_the_room(req, env, settings, ctx, buy.product_id, caller.user_id).await? {
        Ok(pass_headers) => pass_headers,
        Err(turned_away) => return Ok(turned_away),
    };
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
    if let Some(to_set) = flag_from_answer(buy, status, &body, ttl.as_deref(), settings.max_flag_ttl_secs) {
        if let Some(share) = set_flag(&to_set) {
            ctx.wait_until(share);
        }
    }
    let mut extra = vec![(DECIDED_BY_HEADER, "origin".to_owned())];
    if let Some(ttl) = ttl {
        extra.push((FLAG_TTL_HEADER, ttl)); // clients (and tests) may read how long it holds
    }
    extra.extend(pass_headers);
    json_response(status, body, &extra)
}

/// The sale's waiting room, for a buy of `product_id` by `user_id`: `Ok` with the headers of a
/// pass it just handed out (none for a sale without a room, or a user who holds a pass), or
/// `Err` with the answer that turns the buy away (sold out, not started, a failed challenge,
/// queued, pre-queued, the room or the list unavailable).
async fn through_the_room(
    req: &Request,
    env: &Env,
    settings: &RequestSettings,
    ctx: &Context,
    product_id: u64,
    user_id: u64,
) -> Result<std::result::Result<Vec<(&'static str, String)>, Response>> {
    let refuse = |error: EdgeError| edge_error(&error).map(Err);
    let sale = match sale_in_list(settings, ctx, product_id).await? {
        Ok(sale) => sale,
        Err(unknown) => return refuse(unknown),
    };
    let Some(Sale { sold_out, waiting_room: Some(room), start_at }) = sale else {
        return Ok(Ok(Vec::new()));
    };
    // Nobody waits in line for stock that is gone (the list is at most PRODUCTS_CACHE_SECS old).
    if sold_out {
        return refuse(EdgeError::sold_out(product_id));
    }
    let now_ms = Date::now().as_millis();
    // Before the room opens (the pre-queue, else the start), the sale has not started: said
    // here, so the crowd that comes early never reaches the origin.
    if let Some(opens_at) = room_opens_at(&room, start_at).filter(|&opens| now_ms < opens) {
        return refuse(EdgeError::not_started(product_id, start_at.unwrap_or(opens_at)));
    }
    let keys = &settings.token_keys;
    let (pass_header, cookie) = (req.headers().get(PASS_HEADER)?, req.headers().get("cookie")?);
    if holds_pass(keys, pass_header.as_deref(), cookie.as_deref(), product_id, user_id, now_ms / 1000) {
        return Ok(Ok(Vec::new()));
    }
    // A solved challenge is checked here (signature, user, sale, expiry, the hash); the room
    // says whether a new user needs one and whether it was used before.
    let proof = match room.challenge {
        Some(challenge) => {
            let header = req.headers().get(SOLUTION_HEADER)?;
            match check(keys, header.as_deref(), user_id, product_id, challenge.difficulty, now_ms / 1000) {
                Ok(proof) => Some(ChallengeProof { key: proof.key, expires_at_ms: proof.expires_at * 1000 }),
                Err(Refusal::Missing) => None,
                Err(wrong) => return refuse(EdgeError::challenge_failed(wrong)),
            }
        }
        None => None,
    };
    let wait = |code: ErrorCode, body: String, refresh_interval_secs: u32| {
        let headers = [
            (DECIDED_BY_HEADER, "edge".to_owned()),
            ("retry-after", refresh_interval_secs.to_string()),
            (CODE_HEADER, code.as_str().to_owned()),
        ];
        json_response(429, body, &headers).map(Err)
    };
    match ask_room(env, product_id, user_id, room, start_at, proof).await {
        Ok(Entry::Admitted { until_ms }) => {
            let (pass, max_age) = issue_pass(keys, product_id, user_id, now_ms, until_ms);
            let secure = req.url().is_ok_and(|u| u.scheme() == "https");
            Ok(Ok(vec![("set-cookie", pass_cookie(&pass, product_id, max_age, secure)), (PASS_HEADER, pass)]))
        }
        Ok(Entry::Queued { ticket, position, estimated_wait_secs, refresh_interval_secs, paused }) => {
            let position = room_position(position, room.shards);
            let body = queued_body(ticket, position, estimated_wait_secs, refresh_interval_secs, paused);
            wait(ErrorCode::Queued, body, refresh_interval_secs)
        }
        Ok(Entry::PreQueued { draw_at_ms, refresh_interval_secs }) => {
            wait(ErrorCode::PreQueue, pre_queue_body(draw_at_ms, refresh_interval_secs), refresh_interval_secs)
        }
        Ok(Entry::ChallengeRefused { reused }) => {
            refuse(EdgeError::challenge_failed(if reused { Refusal::Reused } else { Refusal::Missing }))
        }
        Err(e) => {
            console_warn!("waiting room of product {product_id} failed: {e}");
            refuse(EdgeError::room_unavailable())
        }
    }
}
