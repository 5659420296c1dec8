//! How far a consumer group is behind: messages the broker stores that the group has not
//! finished (its topic and its retry topic), from the broker's own offsets.

use cheetah_string::CheetahString;
use rocketmq_client_rust::ConsumerAdmin;

use super::Messaging;

/// Messages of `topic` and of `group`'s retry topic that the broker holds and the group has not
/// committed: 0 means every message stored so far was handled (written, refused for good, or
/// dead-lettered). A message waiting in the broker's delay queue for its next retry is not
/// counted until it is due.
///
/// Name the topic: without it the broker counts only the topics the group has committed an
/// offset for, so a group that has not consumed yet (or a queue it never read) looks drained.
/// `None` counts just those (for groups whose topics this process does not know).
pub async fn group_lag(messaging: &Messaging, group: &str, topic: Option<&str>) -> anyhow::Result<u64> {
    let mut admin = messaging.admin(&format!("{group}-lag-probe")).await?;
    let group_name = CheetahString::from_string(group.to_string());
    let topics: Vec<Option<CheetahString>> = match topic {
        None => vec![None],
        Some(topic) => vec![Some(topic.to_string().into()), Some(format!("%RETRY%{group}").into())],
    };
    let mut lag = 0;
    let mut failure = None;
    for topic in topics {
        match admin.examine_consume_stats(group_name.clone(), topic, None, None, None).await {
            Ok(stats) => lag += u64::try_from(stats.compute_total_diff()).unwrap_or(0),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    admin.shutdown().await;
    match failure {
        Some(e) => Err(anyhow::anyhow!("cannot read the offsets of consumer group {group}: {e}")),
        None => Ok(lag),
    }
}
