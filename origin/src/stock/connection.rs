//! One Redis server or a Redis Cluster, behind the same commands.
//!
//! Every script and command of a product names only keys under the product's hash tag, so on a
//! cluster each runs on the one master that holds the product's slot; the few keys that span
//! products (the set of preloaded products, the sweeper's lease) are single keys read and
//! written with single-key commands. Only [`RedisConnection::is_cluster`] callers that fetch
//! several products at once need to know which it is: a cluster refuses a pipeline across slots.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// How long connecting and each reply may take before the call fails (and the buy answers
/// 503 or 202, see the buy path).
const TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub enum RedisConnection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
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
        let client = ClusterClientBuilder::new(seeds)
            .connection_timeout(TIMEOUT)
            .response_timeout(TIMEOUT)
            .retries(2)
            .build()?;
        Ok(Self::Cluster(client.get_async_connection().await?))
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
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
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}
