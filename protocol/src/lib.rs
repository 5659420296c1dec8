//! What the seckill edge (wasm) and the origin (native) must agree on, defined once:
//!
//! * [`buy`]: the rules of a buy body, so the edge's 400 is the origin's 400;
//! * [`token`]: the signed identity (JWT HS256 with a `kid`), signed by the local login or an
//!   identity provider and verified by both the edge and the origin;
//! * [`room`]: a sale's waiting-room settings and the pass an admitted user carries;
//! * [`challenge`]: the proof of work a room may ask of a new user;
//! * [`wire`]: the headers and the cookie they exchange;
//! * [`errors`]: every error code an answer carries, its HTTP status and who may see it.
//! * [`json`]: integers as JSON Schema counts them (`3.0` is 3), read the same on both sides.
//!
//! No I/O and no clock: callers pass the current time, so `cargo test` checks it all natively.

pub mod buy;
pub mod challenge;
pub mod errors;
pub mod json;
pub mod room;
pub mod token;
pub mod wire;
