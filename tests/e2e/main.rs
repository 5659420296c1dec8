//! The end-to-end suite: one test binary, a module per concern, each test against the real
//! services (Redis, MySQL, RocketMQ) with its own database. `scripts/test.sh` runs the modules one
//! after another (`cargo test --test e2e -- <module>::`), so the tests that kill or stall a shared
//! service never overlap another module's; docs/TESTING.md says more.

// Test code: its counts, durations and shares are far from their types' limits (tests/src/lib.rs).
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    reason = "test code; see the comment above"
)]

mod ambiguous_outcomes;
mod broker_disk;
mod broker_failover;
mod broker_replication;
mod broker_restart;
mod bursts;
mod buy_path;
mod http_errors;
mod identity;
mod lifecycle;
mod lost_answers;
mod metrics;
mod mysql_outage;
mod openapi;
mod order_numbers;
mod origin_killed;
mod origin_limits;
mod overload;
mod preload;
mod reconcile;
mod redelivery;
mod redis_failover;
mod redis_loss;
mod request_ids;
mod sharded_sales;
mod waiting_room;
mod writer_batches;
