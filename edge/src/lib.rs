//! The seckill edge: a Cloudflare Worker (Rust compiled to wasm) in front of the origin.
//!
//! It serves the shop page and the public API. On `POST /api/seckill` it turns away, without
//! calling the origin, every buy it already knows will fail:
//!
//! * a malformed body (400 `BAD_REQUEST`, the origin's rules and error shape),
//! * a product the origin recently said is sold out (409 `SOLD_OUT`),
//! * a user the origin recently said holds an order of this product (409 `ALREADY_BOUGHT`).
//!
//! Everything else is forwarded to the origin with the shared-secret header, and the origin's
//! answer may set one of those flags for as long as the origin says (`x-seckill-flag-ttl`).
//!
//! The decisions live in plain Rust ([`admission`], [`routes`], [`products`]) so that
//! `cargo test -p seckill-edge` checks them natively; the Workers glue (`worker_entry`) exists
//! only when compiling to wasm.

pub mod admission;
pub mod answers;
pub mod page;
pub mod products;
pub mod routes;

#[cfg(target_arch = "wasm32")]
mod worker_entry;
