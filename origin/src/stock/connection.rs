//! One Redis server or a Redis Cluster, behind the same commands.
//!
//! Every script and command of a product names only keys under the product's hash tag, so on a
//! cluster each runs on the one master that holds the product's slot; the one key that spans
//! products (the sweeper's lease) is read and written with single-key commands. Only [`RedisConnection::is_cluster`] callers that fetch
//! several products at once need to know which it is: a cluster refuses a pipeline across slots.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// How long connecting and each reply may take before the call fails (and the buy answers
/// 503 or 202, see the buy path).
const TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub enum RedisConnection {
    Single(ConnectionManager),
    /// Two connections to one cluster: scripts go through one that never retries (a script
    /// whose connection broke may have run, and running `buy.lua` or `release.lua` twice
    /// answers a buyer wrongly), every other command through one that retries twice.
    Cluster {
        scripts: ClusterConnection,
        others: ClusterConnection,
    },
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RedisConnection::Single(_) => "RedisConnection::Single",
            RedisConnection::Cluster { .. } => "RedisConnection::Cluster",
        })
    }
}

/// Whether `cmd` runs a script (EVAL, EVALSHA and their read-only forms).
fn is_script(cmd: &Cmd) -> bool {
    match cmd.args_iter().next() {
        Some(redis::Arg::Simple(name)) => name.len() >= 4 && name[..4].eq_ignore_ascii_case(b"EVAL"),
        _ => false,
    }
}

impl RedisConnection {
    /// `cluster_urls` (comma-separated seed nodes of a cluster) when not empty, else `url`.
    pub async fn connect(url: &str, cluster_urls: &str) -> redis::RedisResult<Self> {
        let seeds: Vec<&str> = cluster_urls.split(',').map(str::trim).filter(|u| !u.is_empty()).collect();
        if seeds.is_empty() {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(TIMEOUT)
                .set_response_timeout(TIMEOUT)
                .set_number_of_retries(1);
            let manager = ConnectionManager::new_with_config(redis::Client::open(url)?, config).await?;
            return Ok(Self::Single(manager));
        }
        let client = |retries| {
            ClusterClientBuilder::new(seeds.clone())
                .connection_timeout(TIMEOUT)
                .response_timeout(TIMEOUT)
                .retries(retries)
                .build()
        };
        let scripts = client(0)?.get_async_connection().await?;
        let others = client(2)?.get_async_connection().await?;
        Ok(Self::Cluster { scripts, others })
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster { .. })
    }

    /// Waits until `replicas` replicas of the master that serves `slot` hold every write this
    /// connection sent it so far, or `timeout_ms` passed; returns how many do (Redis `WAIT`).
    ///
    /// `WAIT` counts the writes of the connection it is sent on, so it goes down the one the
    /// scripts ran on: a cluster's script connection keeps one multiplexed connection per
    /// node, and is routed to the slot's master. (A connection that broke and was opened again
    /// between the script and the `WAIT` answers for the new one: the caller only trusts an
    /// answer when the script's own reply came back on this connection, which it did.)
    pub async fn wait_for_replicas(&self, slot: u16, replicas: u32, timeout_ms: u64) -> redis::RedisResult<u32> {
        let mut cmd = redis::cmd("WAIT");
        cmd.arg(replicas).arg(timeout_ms);
        let value = match self {
            Self::Single(c) => c.clone().req_packed_command(&cmd).await?,
            Self::Cluster { scripts, .. } => {
                let route =
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::new(slot, SlotAddr::Master)));
                scripts.clone().route_command(&cmd, route).await?
            }
        };
        redis::from_redis_value(&value)
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster { scripts, .. } if is_script(cmd) => scripts.req_packed_command(cmd),
            Self::Cluster { others, .. } => others.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster { others, .. } => others.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster { others, .. } => others.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_are_told_from_other_commands_by_their_name() {
        assert!(is_script(redis::cmd("EVALSHA").arg("abc").arg(0)));
        assert!(is_script(redis::cmd("eval").arg("return 1").arg(0)));
        assert!(is_script(redis::cmd("EVALSHA_RO").arg("abc").arg(0)));
        assert!(!is_script(redis::cmd("GET").arg("k")));
        assert!(!is_script(redis::cmd("EXISTS").arg("k")));
    }
}
