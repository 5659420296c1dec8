//! A Redis Cluster master killed -9 while its replica lagged, and the replica promoted: the
//! failover forgets writes the master had acknowledged. Each test runs on a cluster of its
//! own (three masters, a replica each), cuts the replica of the sale's master off so that it
//! falls behind, sells, kills the master and lets the stale replica take over.
//!
//! - Default durability: the origin sees the master change (the cluster's identity is every
//!   master's run id and replication id), freezes the sale and heals it from MySQL once the
//!   queue drained; buys that met the stale state before the freeze end as visible refusals.
//!   Nothing is sold twice.
//! - Strict durability (`redis.replica_acks` = 1): a buy is QUEUED only once the replica
//!   holds it, so the failover forgets no QUEUED order; buys the replica did not confirm are
//!   answered 202 PENDING and end as an order or as nothing, never as a refusal.

use std::time::Duration;

use seckill_e2e::redis_faults::{
    buyers_arrive, every_queued_answer_is_an_order_or_a_visible_refusal, pending_answers_settled, sell_to, wait_healed,
};
use seckill_e2e::torture::redis_cluster::RedisCluster;
use seckill_e2e::{isolated_settings, TestApp};
use seckill_origin::stock::buckets::slot_of_tag;

const STOCK: u64 = 60;

/// A sale of [`STOCK`] units on a cluster of the test's own; returns the app, the cluster, the
/// product, and the ports of the sale's master and of its replica.
async fn sale_on_own_cluster(replica_acks: u32) -> (TestApp, RedisCluster, u64, u16, u16) {
    let (id, mut settings) = isolated_settings();
    settings.redis.replica_acks = replica_acks;
    let (app, cluster) = TestApp::spawn_on_own_cluster(id, settings).await;
    let product = app.create_product(STOCK).await;
    let slot = slot_of_tag(&product.to_string()) as u16;
    let (master, replica) = cluster.master_and_replica_of_slot(slot).await.unwrap();
    (app, cluster, product, master, replica)
}

/// Kills `master` -9, lets the cut-off `replica` run again and waits until it took over.
async fn fail_over_to_the_stale_replica(cluster: &mut RedisCluster, master: u16, replica: u16) {
    cluster.kill(master).unwrap();
    cluster.resume(replica).unwrap();
    assert!(cluster.wait_promoted(replica, Duration::from_secs(30)).await, "replica {replica} was not promoted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failover_to_a_lagging_replica_is_fenced_and_healed_and_nothing_is_sold_twice() {
    let (app, mut cluster, product, master, replica) = sale_on_own_cluster(0).await;
    let mut queued = Vec::new();
    sell_to(&app, product, 1..21, &mut queued).await;
    cluster.wait_caught_up(master, replica).await.unwrap();

    // The replica falls behind: 40 more orders, written to MySQL, that only the master holds.
    cluster.cut_off(master, replica).await.unwrap();
    sell_to(&app, product, 21..61, &mut queued).await;
    assert_eq!(queued.len() as u64, STOCK, "the sale sold out on the master");
    for order_no in &queued {
        app.wait_order_status(order_no, "UNPAID", 30).await;
    }
    fail_over_to_the_stale_replica(&mut cluster, master, replica).await;

    // Buyers arrive: some the promoted replica forgot, and new ones. Until the fence sees the
    // new master they may buy from its stale stock; every such order is refused by MySQL's
    // guard, visibly, and nobody holds two active orders.
    let arrivals = buyers_arrive(&app, product, (21..=40).chain(100..140)).await;
    wait_healed(&app, product, 90).await;
    let (pending_placed, pending_nothing) = pending_answers_settled(&app, &arrivals.pending).await;
    queued.extend(arrivals.queued.iter().cloned());
    queued.extend(pending_placed);
    let (orders, refusals) = every_queued_answer_is_an_order_or_a_visible_refusal(&app, &queued).await;
    eprintln!(
        "failover (default): {orders} orders, {refusals} refusals, {} QUEUED and {} PENDING ({pending_nothing} came to nothing) after the failover, {} SALE_FROZEN",
        arrivals.queued.len(),
        arrivals.pending.len(),
        arrivals.frozen
    );
    assert_eq!(orders as u64, STOCK, "every unit sold once, none twice");
    // Healed from MySQL: the sale stays sold out.
    for user in 300..305 {
        let (status, body) = app.buy(user, product).await;
        assert_eq!((status, body["code"].as_str()), (409, Some("SOLD_OUT")), "{body}");
    }
    app.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_strict_durability_a_failover_forgets_no_queued_order_and_refuses_none() {
    let (app, mut cluster, product, master, replica) = sale_on_own_cluster(1).await;
    // With a healthy replica buys are QUEUED; on a loaded machine one may miss the 200 ms for
    // its confirmation and be answered PENDING instead (the sweeper sends it once confirmed).
    let healthy = buyers_arrive(&app, product, 1..21).await;
    let mut queued = healthy.queued.clone();
    let mut pending = healthy.pending.clone();
    assert_eq!(queued.len() + pending.len(), 20, "{healthy:?}");
    cluster.wait_caught_up(master, replica).await.unwrap();

    // The replica stops confirming: no buy is QUEUED now. Each is answered 202 PENDING and
    // left in the outbox, which the sweeper does not send while the replica lags.
    cluster.cut_off(master, replica).await.unwrap();
    let while_lagging = buyers_arrive(&app, product, 21..41).await;
    assert!(while_lagging.queued.is_empty(), "QUEUED without a replica's confirmation: {:?}", while_lagging.queued);
    assert_eq!(while_lagging.pending.len(), 20, "{while_lagging:?}");
    fail_over_to_the_stale_replica(&mut cluster, master, replica).await;
    // The old master comes back as the new one's replica, so buys can be confirmed again.
    cluster.restart(master).await.unwrap();

    let arrivals = buyers_arrive(&app, product, 100..120).await;
    wait_healed(&app, product, 90).await;
    let (lagging_placed, lagging_nothing) = pending_answers_settled(&app, &while_lagging.pending).await;
    queued.extend(arrivals.queued.iter().cloned());
    pending.extend(arrivals.pending.iter().cloned());
    // The rest sells once the old master, now a replica, has caught up.
    cluster.wait_caught_up(replica, master).await.unwrap();
    let rest = buyers_arrive(&app, product, 200..280).await;
    queued.extend(rest.queued.iter().cloned());
    pending.extend(rest.pending.iter().cloned());
    let (placed, _) = pending_answers_settled(&app, &pending).await;
    queued.extend(lagging_placed.iter().cloned());
    queued.extend(placed);
    let (orders, refusals) = every_queued_answer_is_an_order_or_a_visible_refusal(&app, &queued).await;
    eprintln!(
        "failover (strict): {orders} orders, {refusals} refusals; of 20 PENDING while the replica lagged {} became orders, {lagging_nothing} nothing; {} SALE_FROZEN",
        lagging_placed.len(),
        arrivals.frozen
    );
    assert_eq!(refusals, 0, "strict durability: the failover forgot no order, so none was refused");
    assert_eq!(orders as u64, STOCK, "every unit sold once, none twice");
    app.check().await;
}
