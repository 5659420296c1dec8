//! The fault schedule: at fixed shares of the requests sent, each fault injected into the
//! running stack and recorded with the state it hit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::stack::Stack;
use super::Fault;
use crate::services;

/// The schedule: at fixed shares of the requests sent, one fault after another.
pub(super) async fn inject_faults(stack: &mut Stack, total: u64, sent: &AtomicU64, started: Instant) -> Vec<Fault> {
    let mut faults = Vec::new();
    let reached = |share: f64| {
        let target = (total as f64 * share) as u64;
        async move {
            while sent.load(Ordering::SeqCst) < target {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    let mut record = |what: String, detail: String| {
        let fault = Fault { at: started.elapsed(), sent: sent.load(Ordering::SeqCst), what, detail };
        eprintln!("[torture] {:>6.1} s  {}: {}", fault.at.as_secs_f64(), fault.what, fault.detail);
        faults.push(fault);
    };

    reached(0.15).await;
    let detail = kill_consumer(stack, 0).await;
    record("consumer 1 killed -9 mid-drain, restarted 2 s later".into(), detail);

    reached(0.30).await;
    // Mid-burst: once an order sits between its script and the broker (up to 5 s).
    let mut outbox = None;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && outbox.is_none_or(|o: u64| o == 0) {
        outbox = stack.outbox_len().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let at = Instant::now();
    stack.origins[1].kill_9();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stack.origins[1].restart().await;
    record(
        "origin 2 killed -9 mid-burst, restarted".into(),
        format!(
            "{} orders in the outbox at the kill; away {:.1} s",
            outbox.map_or("?".into(), |o| o.to_string()),
            at.elapsed().as_secs_f64()
        ),
    );

    reached(0.45).await;
    let detail = restart_broker(stack, "pair", false).await;
    record("broker master a restarted (SIGTERM, then started again)".into(), detail);

    reached(0.55).await;
    let detail = restart_broker(stack, "pair-b", true).await;
    record("broker master b killed -9, started again 5 s later".into(), detail);

    reached(0.65).await;
    let keys_before = dbsize(stack).await;
    let detail = match stack.redis.restart().await {
        Ok(away) => format!(
            "{} keys before, {} after loading the AOF; away {:.1} s",
            keys_before.map_or("?".into(), |k| k.to_string()),
            dbsize(stack).await.map_or("?".into(), |k| k.to_string()),
            away.as_secs_f64()
        ),
        Err(e) => format!("RESTART FAILED: {e:#}"),
    };
    record("Redis restarted (SIGTERM, AOF on)".into(), detail);

    reached(0.70).await;
    let detail = fail_over_to_a_lagging_replica(stack).await.unwrap_or_else(|e| format!("FAILOVER FAILED: {e:#}"));
    record("Redis primary killed -9 after its replica was cut off for 1 s; the replica promoted".into(), detail);

    reached(0.75).await;
    let keys_before = dbsize(stack).await;
    let flushed = stack.redis_do::<()>(&redis::cmd("FLUSHALL")).await;
    record(
        "FLUSHALL mid-sale".into(),
        match flushed {
            Ok(()) => format!("{} keys gone", keys_before.map_or("?".into(), |k| k.to_string())),
            Err(e) => format!("FLUSHALL FAILED: {e}"),
        },
    );

    reached(0.85).await;
    let detail = kill_consumer(stack, 1).await;
    record("consumer 2 killed -9 mid-drain, restarted 2 s later".into(), detail);
    faults
}

/// A failover to a replica one second behind: the replica is cut off from the primary, the
/// sale goes on for a second, the primary is killed -9, the replica is promoted and the address
/// the origins use moves to it (as a virtual IP or a Sentinel-aware proxy would). Says what the
/// replica lost.
async fn fail_over_to_a_lagging_replica(stack: &mut Stack) -> anyhow::Result<String> {
    let mut replica = stack.replica.take().context("no replica left")?;
    replica.wait_in_sync(&stack.redis).await?;
    replica.cut_off_from(&stack.redis).await?;
    let stock_at_cut = stack.redis_stock().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stock_at_crash = stack.redis_stock().await;
    let at = Instant::now();
    stack.redis.kill()?;
    replica.promote().await?;
    stack.address.move_to(&replica.url());
    // The old primary's folder goes with it.
    drop(std::mem::replace(&mut stack.redis, replica));
    Ok(format!(
        "Redis stock {} at the cut, {} at the crash, {} on the promoted replica; away {:.1} s",
        stock_at_cut.map_or("?".into(), |s| s.to_string()),
        stock_at_crash.map_or("?".into(), |s| s.to_string()),
        stack.redis_stock().await.map_or("?".into(), |s| s.to_string()),
        at.elapsed().as_secs_f64()
    ))
}

/// Stops broker master `which` of the pair profile (`pair` is a, `pair-b` is b), with SIGTERM
/// or -9, and starts it again (after 5 s if killed: long enough for the producers to have
/// failed on it and moved to the other master); says what was waiting and how long it was away.
async fn restart_broker(stack: &Stack, which: &'static str, kill_9: bool) -> String {
    let lag = stack.lag(&stack.settings.rocketmq.order_writer_group, Some(&stack.settings.rocketmq.order_topic)).await;
    let outbox = stack.outbox_len().await;
    let at = Instant::now();
    let restarted = tokio::task::spawn_blocking(move || {
        if kill_9 {
            services(&["kill-broker", which]);
            std::thread::sleep(Duration::from_secs(5));
        } else {
            services(&["stop", &format!("broker-{which}")]);
        }
        services(&["start", "broker", which]);
    })
    .await;
    format!(
        "writer lag {}, {} orders in the outbox at the {}; away {:.1} s{}",
        lag.map_or("?".into(), |l| l.to_string()),
        outbox.map_or("?".into(), |o| o.to_string()),
        if kill_9 { "kill" } else { "stop" },
        at.elapsed().as_secs_f64(),
        if restarted.is_err() { "; RESTART FAILED" } else { "" }
    )
}

/// Kills consumer `n` -9 once orders are waiting to be written (up to 5 s), restarts it 2 s
/// later; says what was waiting.
async fn kill_consumer(stack: &mut Stack, n: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut waiting = None;
    while Instant::now() < deadline {
        waiting = stack.in_flight().await;
        if waiting.is_some_and(|(_, unwritten)| unwritten > 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stack.consumers[n].kill_9();
    let lag = stack.lag(&stack.settings.rocketmq.order_writer_group, Some(&stack.settings.rocketmq.order_topic)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stack.consumers[n].restart().await;
    format!(
        "{} orders taken in Redis and not yet in MySQL at the kill; writer lag {} just after",
        waiting.map_or("?".into(), |(_, u)| u.to_string()),
        lag.map_or("?".into(), |l| l.to_string())
    )
}

async fn dbsize(stack: &Stack) -> Option<u64> {
    let mut c =
        redis::Client::open(stack.settings.redis.url.as_str()).ok()?.get_multiplexed_async_connection().await.ok()?;
    redis::cmd("DBSIZE").query_async(&mut c).await.ok()
}
