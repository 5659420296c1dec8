//! The database tier: the origin's MySQL writes against MariaDB alone, no Redis and no broker.
//! Each test gets a fresh database with every migration applied (`#[sqlx::test]`, which reads
//! `DATABASE_URL` and needs a user that may create databases; `scripts/test.sh` sets it).
//! What the end-to-end suite checks through the whole path, checked here at the SQL itself:
//! a redelivered order is written once, the guarded decrement never sells what MySQL does not
//! have, one active order per user and product, a batch writes what single writes would, and a
//! cancel gives stock back once.

use std::time::Duration;

use rust_decimal::Decimal;
use seckill_origin::orders::canceller::{cancel_if_unpaid, CancelOutcome};
use seckill_origin::orders::node_lease;
use seckill_origin::orders::writer::{write, write_batch, Refusal, WriteError, Written};
use seckill_origin::orders::OrderMessage;
use seckill_origin::products::{self, ValidProduct};
use sqlx::MySqlPool;

const GROUP: &str = "seckill-order-writer";
const PAY_TIMEOUT: Duration = Duration::from_secs(1800);

async fn product(db: &MySqlPool, stock: u32, per_user_limit: u32) -> u64 {
    let product = ValidProduct {
        name: "Database tier".into(),
        price: Decimal::new(1000, 2),
        stock,
        start_at: None,
        end_at: None,
        per_user_limit,
        waiting_room: None,
        stock_buckets: 1,
    };
    products::create(db, &product).await.unwrap()
}

fn order(no: &str, user_id: u64, product_id: u64, quantity: u32) -> OrderMessage {
    OrderMessage {
        order_no: no.into(),
        user_id,
        product_id,
        quantity,
        price: Decimal::new(1000, 2),
        accepted_at: 1_700_000_000_000,
    }
}

async fn count(db: &MySqlPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(db).await.unwrap()
}

async fn stock(db: &MySqlPool, product_id: u64) -> i64 {
    sqlx::query_scalar("SELECT CAST(stock AS SIGNED) FROM tb_seckill_product WHERE id = ?")
        .bind(product_id)
        .fetch_one(db)
        .await
        .unwrap()
}

fn refusal(result: Result<Written, WriteError>) -> Refusal {
    match result {
        Err(WriteError::Refused { refusal, .. }) => refusal,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn a_redelivered_order_is_written_once(db: MySqlPool) {
    let id = product(&db, 5, 3).await;
    let msg = order("100-1", 7, id, 2);
    assert_eq!(write(&db, GROUP, &msg, PAY_TIMEOUT).await.unwrap(), Written::Created);
    assert_eq!(write(&db, GROUP, &msg, PAY_TIMEOUT).await.unwrap(), Written::AlreadyWritten);
    assert_eq!(stock(&db, id).await, 3);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM tb_seckill_order").await, 1);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM tb_stock_log").await, 1);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM tb_user_seckill").await, 1);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM tb_message_dedupe").await, 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn the_guarded_decrement_never_sells_what_mysql_does_not_have(db: MySqlPool) {
    let id = product(&db, 1, 1).await;
    assert_eq!(write(&db, GROUP, &order("200-1", 1, id, 1), PAY_TIMEOUT).await.unwrap(), Written::Created);
    let second = write(&db, GROUP, &order("200-2", 2, id, 1), PAY_TIMEOUT).await;
    assert_eq!(refusal(second), Refusal::StockShortage);
    assert_eq!(stock(&db, id).await, 0);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM tb_seckill_order").await, 1, "the refused order left no row");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM tb_stock_log").await, 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_user_holds_one_active_order_of_a_product(db: MySqlPool) {
    let id = product(&db, 10, 3).await;
    assert_eq!(write(&db, GROUP, &order("300-1", 9, id, 1), PAY_TIMEOUT).await.unwrap(), Written::Created);
    let again = write(&db, GROUP, &order("300-2", 9, id, 1), PAY_TIMEOUT).await;
    assert_eq!(refusal(again), Refusal::DuplicateActiveOrder);
    assert_eq!(stock(&db, id).await, 9, "the refused order took nothing");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM tb_seckill_order WHERE user_id = 9").await, 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_batch_writes_what_single_writes_would(db: MySqlPool) {
    let id = product(&db, 10, 3).await;
    let first = order("400-1", 1, id, 2);
    // Written before, by a single write: the batch's copy is a redelivery.
    assert_eq!(write(&db, GROUP, &first, PAY_TIMEOUT).await.unwrap(), Written::Created);
    let batch = [first, order("400-2", 2, id, 3), order("400-3", 3, id, 1), order("400-2", 2, id, 3)];
    let written = write_batch(&db, GROUP, &batch, PAY_TIMEOUT).await.unwrap();
    let mut created = written.created.clone();
    created.sort();
    assert_eq!(created, ["400-2", "400-3"]);
    assert_eq!(written.already_written.len(), 2, "{written:?}");
    assert_eq!(stock(&db, id).await, 10 - 2 - 3 - 1);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM tb_seckill_order").await, 3);
    let taken = "SELECT CAST(SUM(before_stock) - SUM(after_stock) AS SIGNED) FROM tb_stock_log WHERE reason = 'ORDER'";
    assert_eq!(count(&db, taken).await, 6, "the stock log accounts for every unit taken");
}

#[sqlx::test(migrations = "../migrations")]
async fn an_unpaid_order_is_cancelled_once_and_its_stock_comes_back_once(db: MySqlPool) {
    let id = product(&db, 4, 2).await;
    // Due at once: a pay timeout of zero.
    assert_eq!(write(&db, GROUP, &order("500-1", 4, id, 2), Duration::ZERO).await.unwrap(), Written::Created);
    assert_eq!(stock(&db, id).await, 2);
    assert_eq!(cancel_if_unpaid(&db, "500-1").await.unwrap(), CancelOutcome::Cancelled { product_id: id, quantity: 2 });
    assert_eq!(cancel_if_unpaid(&db, "500-1").await.unwrap(), CancelOutcome::AlreadyCancelled { product_id: id });
    assert_eq!(stock(&db, id).await, 4);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM tb_user_seckill").await, 0, "the buyer may buy again");
    assert_eq!(cancel_if_unpaid(&db, "no-such-order").await.unwrap(), CancelOutcome::Missing);
}

#[sqlx::test(migrations = "../migrations")]
async fn an_order_not_yet_due_is_not_cancelled(db: MySqlPool) {
    let id = product(&db, 4, 2).await;
    assert_eq!(write(&db, GROUP, &order("600-1", 4, id, 1), PAY_TIMEOUT).await.unwrap(), Written::Created);
    assert_eq!(cancel_if_unpaid(&db, "600-1").await.unwrap(), CancelOutcome::NotYetDue { product_id: id });
    assert_eq!(stock(&db, id).await, 3);
}

#[sqlx::test(migrations = "../migrations")]
async fn two_live_holders_never_share_an_order_number_node(db: MySqlPool) {
    let ttl = Duration::from_secs(30);
    let a = node_lease::claim(&db, "holder-a", ttl).await.unwrap();
    let b = node_lease::claim(&db, "holder-b", ttl).await.unwrap();
    assert_ne!(a.node, b.node);
}

#[sqlx::test(migrations = "../migrations")]
async fn the_shop_lists_live_and_upcoming_sales_not_ended_ones(db: MySqlPool) {
    let open = product(&db, 1, 1).await;
    let ending = product(&db, 1, 1).await;
    let ended = product(&db, 1, 1).await;
    let at = |s: &str| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap();
    for (id, end) in [(ending, "2030-01-01 00:00:00"), (ended, "2020-01-01 00:00:00")] {
        sqlx::query("UPDATE tb_seckill_product SET end_at = ? WHERE id = ?")
            .bind(at(end))
            .bind(id)
            .execute(&db)
            .await
            .unwrap();
    }
    let listed: Vec<u64> =
        products::open_at(&db, at("2026-12-05 12:00:00")).await.unwrap().iter().map(|p| p.id).collect();
    assert_eq!(listed, vec![open, ending]);
    let later: Vec<u64> =
        products::open_at(&db, at("2030-01-01 00:00:00")).await.unwrap().iter().map(|p| p.id).collect();
    assert_eq!(later, vec![open], "a sale is gone from the list at its end");
}
