//! The processes and clients of one run, and what the run reads through them: the product's
//! state, its Redis keys, the admin API and the consumers' lag.

use seckill_origin::broker::lag::group_lag;
use seckill_origin::broker::Messaging;
use seckill_origin::configuration::Settings;
use serde_json::Value;
use sqlx::MySqlPool;

use super::redis_address::RedisAddress;
use super::redis_server::RedisServer;
use crate::invariants::ProductState;
use crate::{OriginProcess, ADMIN_TOKEN};

/// The processes and clients of one run.
pub(super) struct Stack {
    pub(super) settings: Settings,
    /// The primary the origins use, through `address`.
    pub(super) redis: RedisServer,
    /// Its replica, until the failover promotes it.
    pub(super) replica: Option<RedisServer>,
    /// What the origins know Redis by; the failover moves it to the replica.
    pub(super) address: RedisAddress,
    pub(super) origins: Vec<OriginProcess>,
    pub(super) consumers: Vec<OriginProcess>,
    pub(super) messaging: Messaging,
    pub(super) db: MySqlPool,
    pub(super) http: reqwest::Client,
    pub(super) product: u64,
    /// Reconnects by itself after Redis restarts: for polling.
    pub(super) watcher: redis::aio::ConnectionManager,
}

impl Stack {
    /// A fresh connection each time: Redis restarts during the run.
    pub(super) async fn product_state(&self) -> anyhow::Result<ProductState> {
        let redis = seckill_origin::stock::RedisConnection::connect(
            &self.settings.redis.url,
            &self.settings.redis.cluster_urls,
        )
        .await?;
        Ok(ProductState {
            db: self.db.clone(),
            redis,
            key_prefix: self.settings.redis.key_prefix.clone(),
            product: self.product,
        })
    }

    /// (outbox entries, deductions not yet written), or None while Redis is away.
    pub(super) async fn in_flight(&self) -> Option<(u64, i64)> {
        let state = self.product_state().await.ok()?;
        Some(state.in_flight().await)
    }

    /// Runs `cmd` on the run's Redis, once more if the first try fails: the watcher's
    /// connection hears of a restart only when its next command breaks.
    pub(super) async fn redis_do<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        match cmd.query_async(&mut self.watcher.clone()).await {
            Ok(reply) => Ok(reply),
            Err(_) => cmd.query_async(&mut self.watcher.clone()).await,
        }
    }

    /// The product's Redis stock (None while Redis is away or does not hold it).
    pub(super) async fn redis_stock(&self) -> Option<i64> {
        let key = seckill_origin::stock::product_key(&self.settings.redis.key_prefix, self.product, "stock");
        self.redis_do::<Option<i64>>(redis::cmd("GET").arg(key)).await.ok().flatten()
    }

    /// Entries in the product's outbox (None while Redis is away).
    pub(super) async fn outbox_len(&self) -> Option<u64> {
        let key = seckill_origin::stock::product_key(&self.settings.redis.key_prefix, self.product, "outbox");
        redis::cmd("XLEN").arg(key).query_async(&mut self.watcher.clone()).await.ok()
    }

    pub(super) async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self.http.request(method, format!("{}{path}", self.origins[0].url)).bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        Ok(crate::read(request.send().await?).await)
    }

    pub(super) async fn lag(&self, group: &str, topic: Option<&str>) -> Option<u64> {
        group_lag(&self.messaging, group, topic).await.ok()
    }
}
