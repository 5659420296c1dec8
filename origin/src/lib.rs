//! The seckill origin: a thin HTTP server on the buy path, the consumers that write orders
//! to MySQL, and the admin API with its console and OpenAPI document. See docs/DESIGN.md for the whole picture.

pub mod admin;
pub mod api_docs;
pub mod broker;
pub mod configuration;
pub mod console;
pub mod dead_letters;
pub mod error;
pub mod fencing;
pub mod health;
pub mod http;
pub mod identity;
pub mod metrics;
pub mod orders;
pub mod preload;
pub mod products;
pub mod purchase;
pub mod reconcile;
pub mod startup;
pub mod state;
pub mod stock;
