//! The consumer-lag gauge (`seckill_consumer_lag_messages`): each group's lag
//! ([`crate::broker::lag::group_lag`]) read every `consumer.lag_interval_ms`.

use std::sync::Arc;
use std::time::Duration;

use crate::broker::lag::group_lag;
use crate::broker::Messaging;
use crate::metrics::Metrics;

/// Reads the lag of each of `groups` (group, its topic) once and sets it in `metrics`; a group
/// whose offsets cannot be read keeps its last value.
pub async fn refresh(messaging: &Messaging, groups: &[(String, String)], metrics: &Metrics) {
    for (group, topic) in groups {
        match group_lag(messaging, group, Some(topic)).await {
            Ok(lag) => metrics.set_lag(group, lag),
            Err(e) => tracing::debug!(error = %e, group, "consumer lag not read"),
        }
    }
}

/// [`refresh`] every `every`, for as long as the task runs.
pub async fn watch(messaging: Arc<Messaging>, groups: Vec<(String, String)>, metrics: Arc<Metrics>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        refresh(&messaging, &groups, &metrics).await;
    }
}
