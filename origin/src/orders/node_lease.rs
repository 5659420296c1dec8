//! Node ids for order numbers, leased from MySQL (`tb_origin_node`).
//!
//! An origin claims the lowest free node id (never claimed, or its lease ran out on MySQL's
//! clock), renews the lease every third of its length, and stops minting order numbers the
//! moment it cannot prove it still holds the lease: a buy then gets 503 with nothing taken.
//! A node whose lease ran out is taken over with a floor: its new holder mints only
//! milliseconds after the old lease's end, when the old holder had already stopped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::MySqlPool;

use super::order_no::{OrderNoGenerator, MAX_NODES};

/// The largest difference an origin's clock may have with MySQL's: order numbers carry the
/// origin's clock while leases end on MySQL's, so a node's next holder mints only after the
/// old lease's end and the old holder's last minted millisecond plus this margin, and an origin
/// whose clock is further off refuses to start.
pub const MAX_CLOCK_SKEW_MS: u64 = 1_000;

/// A claimed node id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    pub node: u64,
    /// Milliseconds since the Unix epoch before which the node may have minted numbers for a
    /// previous holder (the later of its lease's end and its last minted ms, plus
    /// [`MAX_CLOCK_SKEW_MS`]), 0 for a node never claimed.
    pub floor_unix_ms: u64,
}

/// Claims a node id for `holder` for `ttl`. Fails (naming the table) if every one of the
/// [`MAX_NODES`] ids is held by a live lease.
pub async fn claim(db: &MySqlPool, holder: &str, ttl: Duration) -> anyhow::Result<Claim> {
    let ttl_us = u64::try_from(ttl.as_micros()).unwrap_or(u64::MAX);
    for _ in 0..MAX_NODES {
        // A lapsed lease first, read and taken under a row lock: the floor we read is the
        // lease we replace, whoever else is claiming.
        let mut tx = db.begin().await?;
        let lapsed: Option<(u16, i64)> = sqlx::query_as(
            "SELECT node_id, GREATEST(CAST(UNIX_TIMESTAMP(lease_until) * 1000 AS SIGNED), last_minted_ms) \
             FROM tb_origin_node WHERE lease_until < NOW(3) ORDER BY node_id LIMIT 1 FOR UPDATE",
        )
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((node, until_ms)) = lapsed {
            sqlx::query(
                "UPDATE tb_origin_node SET holder = ?, lease_until = NOW(3) + INTERVAL ? MICROSECOND, \
                 claimed_at = NOW(3) WHERE node_id = ?",
            )
            .bind(holder)
            .bind(ttl_us)
            .bind(node)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            let floor_unix_ms = u64::try_from(until_ms).unwrap_or(0) + MAX_CLOCK_SKEW_MS + 1;
            return Ok(Claim { node: u64::from(node), floor_unix_ms });
        }
        tx.rollback().await?;
        // No lapsed lease: a node id never claimed. The primary key settles a race.
        let next: Option<i64> =
            sqlx::query_scalar("SELECT CAST(MAX(node_id) + 1 AS SIGNED) FROM tb_origin_node").fetch_one(db).await?;
        let node = next.map_or(0, |n| u64::try_from(n).unwrap_or(0));
        if node >= MAX_NODES {
            anyhow::bail!(
                "every one of the {MAX_NODES} order-number node ids is leased by a running origin \
                 (tb_origin_node); stop one, or wait for a dead one's lease to run out"
            );
        }
        let inserted = sqlx::query(
            "INSERT IGNORE INTO tb_origin_node (node_id, holder, lease_until, claimed_at) \
             VALUES (?, ?, NOW(3) + INTERVAL ? MICROSECOND, NOW(3))",
        )
        .bind(node)
        .bind(holder)
        .bind(ttl_us)
        .execute(db)
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(Claim { node, floor_unix_ms: 0 });
        }
    }
    anyhow::bail!("could not claim an order-number node id in tb_origin_node: too many origins starting at once")
}

/// Renews `holder`'s lease of `node` for `ttl`, recording `last_minted_unix_ms`. `Ok(false)`:
/// the lease is gone (it ran out and another origin took the node over).
pub async fn renew(
    db: &MySqlPool,
    node: u64,
    holder: &str,
    ttl: Duration,
    last_minted_unix_ms: u64,
) -> sqlx::Result<bool> {
    let renewed = sqlx::query(
        "UPDATE tb_origin_node SET lease_until = GREATEST(lease_until, NOW(3) + INTERVAL ? MICROSECOND), \
         last_minted_ms = GREATEST(last_minted_ms, ?) WHERE node_id = ? AND holder = ?",
    )
    .bind(u64::try_from(ttl.as_micros()).unwrap_or(u64::MAX))
    .bind(last_minted_unix_ms)
    .bind(node)
    .bind(holder)
    .execute(db)
    .await?;
    // Found, not changed, is enough (sqlx asks MySQL for found rows); a row that is not found
    // belongs to someone else now.
    Ok(renewed.rows_affected() == 1)
}

/// Gives the node back at a clean stop (after minting stopped), so the next start can reuse it
/// at once, recording the last millisecond minted under it.
pub async fn release(db: &MySqlPool, node: u64, holder: &str, last_minted_unix_ms: u64) -> sqlx::Result<()> {
    // Ends now, not earlier, and says how far our clock minted: the next holder's floor is past
    // both, whichever clock is ahead.
    sqlx::query(
        "UPDATE tb_origin_node SET lease_until = NOW(3), last_minted_ms = GREATEST(last_minted_ms, ?) \
         WHERE node_id = ? AND holder = ?",
    )
    .bind(last_minted_unix_ms)
    .bind(node)
    .bind(holder)
    .execute(db)
    .await?;
    Ok(())
}

fn local_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Why this host's clock (`local_ms`) is too far from MySQL's (`mysql_ms`) to mint order
/// numbers, if it is.
pub fn clock_skew_problem(mysql_ms: i64, local_ms: i64) -> Option<String> {
    let skew = local_ms - mysql_ms;
    (skew.unsigned_abs() > MAX_CLOCK_SKEW_MS).then(|| {
        format!(
            "this host's clock is {skew} ms from MySQL's; order numbers need them within {MAX_CLOCK_SKEW_MS} ms \
             (run NTP on both)"
        )
    })
}

/// How long a lease written after `asked` (this process's clock) lets us mint: a little less
/// than its length, since MySQL set its end on its own clock after that instant, so we stop
/// first.
fn proven_until(asked: Instant, ttl: Duration) -> Instant {
    asked + ttl.mul_f64(0.9)
}

/// Claims a node for `holder` and returns a generator minting under it.
pub async fn start(db: &MySqlPool, holder: &str, ttl: Duration) -> anyhow::Result<Arc<OrderNoGenerator>> {
    let mysql_ms: i64 =
        sqlx::query_scalar("SELECT CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)").fetch_one(db).await?;
    if let Some(problem) = clock_skew_problem(mysql_ms, local_unix_ms()) {
        anyhow::bail!("{problem}");
    }
    let asked = Instant::now();
    let claim = claim(db, holder, ttl).await.context("claim an order-number node id")?;
    let generator = Arc::new(OrderNoGenerator::leased(claim.node, claim.floor_unix_ms));
    generator.extend_until(proven_until(asked, ttl));
    tracing::info!(node = claim.node, floor_unix_ms = claim.floor_unix_ms, "order-number node id leased");
    Ok(generator)
}

/// Keeps `generator`'s lease alive: renews every `ttl / 3`; when the lease is lost, claims a
/// new node (with its floor) and switches to it. Between losing one and getting another the
/// generator mints nothing. Runs until aborted.
pub async fn keep(db: MySqlPool, generator: Arc<OrderNoGenerator>, holder: String, ttl: Duration) {
    let mut tick = tokio::time::interval(ttl / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let started = Instant::now();
        let node = generator.node();
        match renew(&db, node, &holder, ttl, generator.last_minted_unix_ms()).await {
            Ok(true) => generator.extend_until(proven_until(started, ttl)),
            Ok(false) => {
                tracing::error!(node, "order-number node lease lost; claiming another");
                generator.revoke();
                match claim(&db, &holder, ttl).await {
                    Ok(claim) => {
                        generator.switch(claim.node, claim.floor_unix_ms);
                        generator.extend_until(proven_until(started, ttl));
                        tracing::warn!(node = claim.node, "order-number node id leased again");
                    }
                    Err(e) => tracing::error!(error = %e, "no order-number node id; buys are refused"),
                }
            }
            // MySQL unreachable: the lease may still be ours; the generator stops by itself
            // when the last proven lease runs out.
            Err(e) => tracing::warn!(node, error = %e, "cannot renew the order-number node lease"),
        }
    }
}

#[cfg(test)]
mod clock_tests {
    use super::*;

    #[test]
    fn a_clock_within_the_margin_of_mysqls_may_mint_and_one_beyond_it_is_named() {
        assert_eq!(clock_skew_problem(1_000_000, 1_000_000 + i64::try_from(MAX_CLOCK_SKEW_MS).unwrap()), None);
        assert_eq!(clock_skew_problem(1_000_000, 1_000_000 - i64::try_from(MAX_CLOCK_SKEW_MS).unwrap()), None);
        let ahead = clock_skew_problem(1_000_000, 1_002_500).unwrap();
        assert!(ahead.contains("2500 ms"), "{ahead}");
        assert!(clock_skew_problem(1_000_000, 998_000).unwrap().contains("-2000 ms"));
    }
}
