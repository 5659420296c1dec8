//! `GET /api/challenge?productId=` (wasm only): a proof-of-work challenge for the signed-in user
//! at a sale whose waiting room asks one ([`seckill_protocol::challenge`]). The answer is
//! `{"challenge", "difficulty", "expiresAt", "productId"}`; the page solves it in a Web Worker
//! and sends `<challenge>:<nonce>` in `x-seckill-challenge` with the buy that joins the line.

use seckill_protocol::challenge::{issue, LIFETIME_SECS};
use worker::{Context, Date, Response, Result};

use crate::answers::{EdgeError, DECIDED_BY_HEADER};
use crate::http::{edge_error, json_response};
use crate::origin_client::Caller;
use crate::product_list::sale_in_list;
use crate::products::Sale;
use crate::settings::RequestSettings;

pub(crate) async fn challenge(
    settings: &RequestSettings,
    ctx: &Context,
    product_id: u64,
    caller: &Caller,
) -> Result<Response> {
    let difficulty = match sale_in_list(settings, ctx, product_id).await? {
        Ok(Some(Sale { waiting_room: Some(room), .. })) => room.challenge.map(|c| c.difficulty),
        Ok(_) => None,
        Err(unknown) => return edge_error(&unknown),
    };
    let Some(difficulty) = difficulty else {
        return edge_error(&EdgeError::no_challenge(product_id));
    };
    let now = Date::now().as_millis() / 1000;
    let body = serde_json::json!({
        "challenge": issue(&settings.token_keys, caller.user_id, product_id, now),
        "difficulty": difficulty,
        "expiresAt": (now + LIFETIME_SECS) * 1000,
        "productId": product_id,
    });
    json_response(200, body.to_string(), &[(DECIDED_BY_HEADER, "edge".to_owned())])
}
