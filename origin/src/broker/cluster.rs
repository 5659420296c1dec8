//! The brokers the name servers know, each with its role and how far its slaves are behind,
//! read from the brokers themselves (`seckill-origin brokers`, which `make status` prints).

use rocketmq_client_rust::{DefaultMQAdminExt, MQAdminReadExt};
use serde::Serialize;

use super::Messaging;

/// One broker process as its name servers and its own runtime report it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BrokerStatus {
    /// The broker name a master and its slaves share (`seckill-dev`, `seckill-dev-b`).
    pub broker_name: String,
    /// 0 for the master, 1 and up for its slaves.
    pub broker_id: u64,
    pub address: String,
    /// `SYNC_MASTER`, `ASYNC_MASTER` or `SLAVE`, as the broker says; `None` if it did not answer.
    pub role: Option<String>,
    /// On a master: bytes its furthest-behind slave has not acknowledged (0 = in sync).
    pub replica_lag_bytes: Option<u64>,
    /// On a master: replicas that count as in sync, the master included.
    pub in_sync_replicas: Option<u64>,
    /// Messages consumers have pulled from this broker since it started, system topics not
    /// counted (the broker's `msgGetTotalTodayNow`): on a slave, reads it served for its master.
    pub messages_read: Option<u64>,
    /// Why the broker's runtime could not be read, if it could not.
    pub error: Option<String>,
}

/// Every broker the name servers list, masters before their slaves, each asked for its
/// runtime; a broker that does not answer is listed with its error.
pub async fn describe(messaging: &Messaging) -> anyhow::Result<Vec<BrokerStatus>> {
    // Each step boxed: the admin client's futures nest deep enough to overflow the compiler's
    // layout query of this function's body (clippy's future-size check computes it).
    let mut admin = Box::pin(messaging.admin("seckill-brokers-probe")).await?;
    let result = Box::pin(describe_with(&admin)).await;
    Box::pin(admin.shutdown()).await;
    result
}

async fn describe_with(admin: &DefaultMQAdminExt) -> anyhow::Result<Vec<BrokerStatus>> {
    let cluster = admin
        .examine_broker_cluster_info()
        .await
        .map_err(|e| anyhow::anyhow!("cannot read the cluster from the name servers: {e}"))?;
    let mut brokers = Vec::new();
    for (broker_name, data) in cluster.broker_addr_table.unwrap_or_default() {
        for (broker_id, address) in data.broker_addrs() {
            let mut status = BrokerStatus {
                broker_name: broker_name.to_string(),
                broker_id: *broker_id,
                address: address.to_string(),
                role: None,
                replica_lag_bytes: None,
                in_sync_replicas: None,
                messages_read: None,
                error: None,
            };
            match admin.fetch_broker_runtime_stats(address.clone()).await {
                Ok(stats) => {
                    let get = |key: &str| stats.table.get(key).map(|v| v.to_string());
                    status.role = get("brokerRole");
                    status.messages_read = get("msgGetTotalTodayNow").and_then(|v| v.parse().ok());
                    if *broker_id == 0 && get("haDiagnosticsSupported").as_deref() == Some("true") {
                        status.replica_lag_bytes = get("haMaxReplicaLagBytes").and_then(|v| v.parse().ok());
                        status.in_sync_replicas = get("haSyncStateSetSize").and_then(|v| v.parse().ok());
                    }
                }
                Err(e) => status.error = Some(e.to_string()),
            }
            brokers.push(status);
        }
    }
    brokers.sort_by(|a, b| (&a.broker_name, a.broker_id).cmp(&(&b.broker_name, b.broker_id)));
    Ok(brokers)
}

/// One line per broker, for an operator's terminal: name, id, address, role, and on a master
/// whether its slaves are in sync.
pub fn table(brokers: &[BrokerStatus]) -> String {
    let mut out = format!("{:<22} {:>2} {:<21} {:<13} {}\n", "BROKER", "ID", "ADDRESS", "ROLE", "REPLICATION");
    for b in brokers {
        let replication = match (&b.error, b.replica_lag_bytes, b.in_sync_replicas) {
            (Some(e), _, _) => format!("not answering: {e}"),
            (None, _, Some(n)) if n <= 1 && b.role.as_deref() != Some("SYNC_MASTER") => "no slave".to_string(),
            (None, Some(0), Some(n)) => format!("in sync ({n} replicas)"),
            (None, Some(lag), Some(n)) => format!("slave {lag} bytes behind ({n} in sync)"),
            (None, Some(lag), None) => format!("slave {lag} bytes behind"),
            (None, None, _) if b.broker_id == 0 => "no slave".to_string(),
            (None, None, _) => "-".to_string(),
        };
        let role = b.role.as_deref().unwrap_or("?");
        out.push_str(&format!(
            "{:<22} {:>2} {:<21} {:<13} {}\n",
            b.broker_name, b.broker_id, b.address, role, replication
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(id: u64, role: &str, lag: Option<u64>, in_sync: Option<u64>) -> BrokerStatus {
        BrokerStatus {
            broker_name: "seckill-dev".into(),
            broker_id: id,
            address: format!("127.0.0.1:{}", 10911 + 40 * id),
            role: Some(role.into()),
            replica_lag_bytes: lag,
            in_sync_replicas: in_sync,
            messages_read: None,
            error: None,
        }
    }

    #[test]
    fn the_table_says_whether_each_master_has_its_slave_in_sync() {
        let lone = table(&[broker(0, "ASYNC_MASTER", Some(0), Some(1))]);
        assert!(lone.lines().nth(1).unwrap().ends_with("no slave"), "{lone}");
        let synced = table(&[broker(0, "SYNC_MASTER", Some(0), Some(2)), broker(1, "SLAVE", None, None)]);
        assert!(synced.contains("in sync (2 replicas)"), "{synced}");
        assert!(synced.lines().nth(2).unwrap().ends_with('-'), "a slave reports nothing of its own: {synced}");
        let behind = table(&[broker(0, "SYNC_MASTER", Some(4096), Some(1))]);
        assert!(behind.contains("slave 4096 bytes behind (1 in sync)"), "{behind}");
        let mut down = broker(0, "SYNC_MASTER", None, None);
        down.role = None;
        down.error = Some("connection refused".into());
        let down = table(&[down]);
        assert!(down.contains("?") && down.contains("not answering: connection refused"), "{down}");
    }
}
