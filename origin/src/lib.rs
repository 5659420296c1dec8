//! The seckill origin: a thin HTTP server on the buy path, the consumers that write orders
//! to MySQL, and the admin API with its console and OpenAPI document. See docs/DESIGN.md for the whole picture.
//!
//! The modules are layered; each depends only on the layers below it, never in a circle (a test
//! in `layers.rs` reads this crate's source and keeps it so):
//! - wiring: [`startup`] (the `serve` and `consume` processes);
//! - the edges of the process: [`http`] (the routes, their state, extractors and answers) and
//!   [`consume`] (the consumers' handlers and the consume side's gauges);
//! - domain: [`purchase`], [`fencing`] (with reconcile and the fence's watch), [`preload`],
//!   [`products`], [`orders`], [`dead_letters`];
//! - infrastructure: [`stock`] (Redis and its scripts), [`broker`] (RocketMQ);
//! - shared by all: [`configuration`], [`metrics`], [`error`].

pub mod broker;
pub mod configuration;
pub mod consume;
pub mod dead_letters;
pub mod error;
pub mod fencing;
pub mod http;
pub mod metrics;
pub mod orders;
pub mod preload;
pub mod products;
pub mod purchase;
pub mod rooms;
pub mod startup;
pub mod stock;

#[cfg(test)]
mod layers;
