//! The seckill edge: a Cloudflare Worker (Rust compiled to wasm) in front of the origin.
//!
//! It serves the shop page and the public API. Buys, pays, logins and order reads are rate
//! limited per client IP and per user ([`limits`], 429). Every `/api/*` route but the login and the
//! product list needs a signed identity ([`identity`]): without a valid token the edge answers
//! 401 itself. On `POST /api/seckill` it turns away, without calling the origin, every buy it
//! already knows will fail:
//!
//! * a body naming another user (403 `FORBIDDEN`),
//! * a malformed body (400 `BAD_REQUEST`, the origin's rules — one definition, in
//!   `seckill-protocol` — and error shape),
//! * a product the origin recently said is sold out (409 `SOLD_OUT`),
//! * a signed-in user the origin recently said holds an order of this product (409
//!   `ALREADY_BOUGHT`, naming that order).
//!
//! A sale with a waiting room ([`waiting_room`], Durable Objects sharded by user) lets buyers
//! through at the pace it is set to and answers the rest 429 `QUEUED` with their place in line
//! (before the start, 429 `PRE_QUEUE`: the order is drawn at the start); it may ask a solved
//! proof-of-work challenge of each user who joins. An admitted user carries a signed pass and
//! never queues again during the session. A buy of a sale the edge has no product list for is
//! 503: no buy goes around a room the edge cannot see.
//!
//! Everything else is forwarded to the origin with the shared-secret header, and the origin's
//! answer may set one of those flags for as long as the origin says (`x-seckill-flag-ttl`).
//! With several origins (`ORIGIN_URLS`) each user sticks to one and moves to the next when it
//! cannot be reached ([`origins`]).
//!
//! Login, buy and pay refuse what another site's page can make a browser send ([`cross_site`]).
//!
//! The decisions live in plain Rust ([`admission`], [`cross_site`], [`identity`], [`routes`],
//! [`query`], [`limits`], [`origins`], [`products`], [`refusals`], [`settings`], [`waiting_room`];
//! the challenge's check is `seckill_protocol::challenge`) so that `cargo test -p seckill-edge`
//! checks them natively. The Workers glue exists only when compiling to wasm, one job a module:
//! `worker_entry` (the fetch event and the dispatch of routes), `buy`, `order` and
//! `challenge_route` (their routes), `product_list` and `flag_cache` (the Cache API),
//! `origin_client` (calls to the origins), `limit_bindings` (the rate limiters), `http` (bodies
//! and answers) and `room_object` (the waiting room's Durable Objects and their reports).

pub mod admission;
pub mod answers;
pub mod cross_site;
pub mod flag_memory;
pub mod identity;
pub mod limits;
pub mod origins;
pub mod page;
pub mod products;
pub mod query;
pub mod refusals;
pub mod routes;
pub mod settings;
pub mod waiting_room;

#[cfg(target_arch = "wasm32")]
mod buy;
#[cfg(target_arch = "wasm32")]
mod challenge_route;
#[cfg(target_arch = "wasm32")]
mod env_settings;
#[cfg(target_arch = "wasm32")]
mod flag_cache;
#[cfg(target_arch = "wasm32")]
mod http;
#[cfg(target_arch = "wasm32")]
mod limit_bindings;
#[cfg(target_arch = "wasm32")]
mod order;
#[cfg(target_arch = "wasm32")]
mod origin_client;
#[cfg(target_arch = "wasm32")]
mod product_list;
#[cfg(target_arch = "wasm32")]
mod room_object;
#[cfg(target_arch = "wasm32")]
mod worker_entry;
