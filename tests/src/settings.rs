//! Settings for an isolated test app: the origin's own settings (`config/base.toml` +
//! `APP_…` variables) with a database, Redis key prefix, topics and consumer groups of the
//! app's own, and the secrets the tests present to it.

use seckill_origin::configuration::{self, Settings};

/// The admin token of every test app (`http.admin_token`); 32 bytes or more, so an app may run
/// outside the local environment with it.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";
/// The edge secret of every test app (`http.edge_secret`), sent as `x-seckill-edge-secret`.
pub const EDGE_SECRET: &str = "test-edge-secret-0123456789abcdef";

/// Settings for a fresh, isolated app (nothing started yet).
pub fn isolated_settings() -> (String, Settings) {
    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    let mut s = configuration::load().expect("load settings");
    s.http.port = 0;
    s.http.admin_token = ADMIN_TOKEN.into();
    s.http.edge_secret = EDGE_SECRET.into();
    s.consumer.port = 0;
    s.mysql.database = format!("seckill_test_{id}");
    s.redis.key_prefix = format!("seckill-test-{id}");
    let mq = &mut s.rocketmq;
    mq.order_topic = format!("seckill-order-{id}");
    mq.cancel_topic = format!("seckill-cancel-{id}");
    mq.event_topic = format!("seckill-order-event-{id}");
    mq.producer_group = format!("seckill-origin-{id}");
    mq.order_writer_group = format!("seckill-order-writer-{id}");
    mq.canceller_group = format!("seckill-order-canceller-{id}");
    mq.queue_nums = 4;
    // On the test broker level 18 is 2 h: orders stay UNPAID while a test looks at them.
    // Tests of the order's life use [`TestApp::spawn_lifecycle`], which sends level 16 (3 s).
    mq.cancel_delay_level = 18;
    (id, s)
}
