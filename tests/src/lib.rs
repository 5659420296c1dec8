//! Test harness: each [`TestApp`] is a whole origin (HTTP server + order writer) running in the
//! test process against the real Redis, MySQL and RocketMQ, isolated from every other test by
//! its own database, Redis key prefix, topics and consumer groups.
//!
//! Services come from the same settings as the origin (`config/base.toml` + `APP_…`
//! variables); `make test` points them at the test broker.
//!
//! The crate root only declares modules and re-exports what the tests use from it: the app
//! (`app`), its settings and tokens (`settings`, `tokens`), the origin as a process
//! (`origin_process`), the shared services (`services`), a lossy Redis proxy
//! (`lossy_redis_proxy`), and small helpers (`response`, `wait`, `metrics`).

// Test and bench tooling: its counts, durations and shares are far from their types' limits,
// and a wrong one fails a run rather than a buyer. The origin and the edge convert checked.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    reason = "test and bench tooling; see the comment above"
)]

mod app;
mod broker_faults;
pub mod invariants;
mod lossy_redis_proxy;
mod metrics;
mod origin_process;
pub mod redis_faults;
mod response;
mod services;
mod settings;
mod tokens;
pub mod torture;
mod wait;

pub use app::TestApp;
pub use broker_faults::{accepted_orders, assert_exactly_the_accepted_orders, burst_with_a_kill};
pub use lossy_redis_proxy::LossyRedisProxy;
pub use metrics::metric_value;
pub use origin_process::{origin_command, OriginProcess};
pub use response::read;
pub use services::{pair_namesrv_addr, services, services_data_dir, services_script, wait_pair_slaves_know};
pub use settings::{isolated_settings, ADMIN_TOKEN, EDGE_SECRET};
pub use tokens::{token_for, Tokens};
pub use wait::wait_until;
