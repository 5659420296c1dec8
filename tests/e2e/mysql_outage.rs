//! MariaDB goes away for ~10 s while the queue drains 1,000 orders: once it is back every
//! order is written exactly once. A module of its own (`make test` runs one module at a time): it
//! stops the shared MariaDB.

use std::time::Duration;

use seckill_e2e::{services, services_script, wait_until, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mysql_outage_during_the_drain_loses_no_order_and_writes_none_twice() {
    let app = std::sync::Arc::new(TestApp::spawn_lifecycle().await);
    let product = app.create_product(1000).await;
    let tasks: Vec<_> = (1..=1000u64)
        .map(|user| {
            let app = std::sync::Arc::clone(&app);
            tokio::spawn(async move { app.buy(user, product).await })
        })
        .collect();
    // Stop MariaDB while the buys are still arriving and the writer is draining.
    tokio::time::sleep(Duration::from_millis(300)).await;
    services(&["stop", "mysql"]);
    let _restart = MysqlBackOnDrop;
    let mut queued = 0;
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 200, "the buy path does not need MySQL: {body}");
        queued += 1;
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    services(&["start", "mysql"]);

    let drained = wait_until(Duration::from_secs(240), || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM tb_seckill_order")
            .fetch_one(&app.db)
            .await
            .is_ok_and(|n| n >= 1000)
    })
    .await;
    assert!(drained, "not every order was written after MySQL came back");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(queued, 1000);
    let failures = app.workers().metrics.order_write_failures.get();
    assert!(failures > 0, "the outage did not hit the drain; the test proves nothing");
    assert_eq!(app.count("SELECT COUNT(*) FROM tb_seckill_order").await, 1000);
    assert_eq!(app.count("SELECT COUNT(DISTINCT order_no) FROM tb_seckill_order").await, 1000);
    assert_eq!(app.count("SELECT COUNT(*) FROM tb_stock_log WHERE reason = 'ORDER'").await, 1000);
    // Nobody pays, and the test broker fires each cancel 3 s after its write: once every order
    // is cancelled, every unit must be back, in MySQL and in Redis, exactly once.
    let all_cancelled = wait_until(Duration::from_secs(120), || async {
        app.count("SELECT COUNT(*) FROM tb_seckill_order WHERE status = 'CANCELLED'").await == 1000
    })
    .await;
    assert!(all_cancelled, "not every unpaid order was cancelled");
    assert_eq!(app.count("SELECT COUNT(*) FROM tb_stock_log WHERE reason = 'CANCEL'").await, 1000);
    assert_eq!(app.count("SELECT COUNT(*) FROM tb_user_seckill").await, 0);
    let settled = wait_until(Duration::from_secs(30), || async {
        let stock = app.stock(product).await;
        stock["mysql"].as_i64() == Some(1000) && stock["redis"].as_i64() == Some(1000)
    })
    .await;
    assert!(settled, "stock did not all come back: {}", app.stock(product).await);
    let (_, letters) = app.admin_get("/admin/dead-letters").await;
    assert_eq!(letters["deadLetters"].as_array().map(Vec::len), Some(0), "{letters}");
    app.check().await;
}

/// Starts MariaDB again if the test ends (a failed assertion) while it is stopped: every later
/// module needs it. `start mysql` does nothing when it is already up.
struct MysqlBackOnDrop;

impl Drop for MysqlBackOnDrop {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Not `services`, which panics on failure: a panic while panicking aborts.
            let _ = std::process::Command::new("bash").arg(services_script()).args(["start", "mysql"]).status();
        }
    }
}
