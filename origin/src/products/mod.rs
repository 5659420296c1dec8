//! Products on sale: the MySQL catalogue and the rules for a new sale.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use rust_decimal::Decimal;
use seckill_protocol::errors::Invalid;
use seckill_protocol::room::{ChallengeSettings, RoomSettings};
use serde::{Deserialize, Serialize};
use sqlx::MySqlPool;

use crate::stock::{Deduction, SaleSnapshot};

mod price;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Product {
    pub id: u64,
    pub name: String,
    pub price: Decimal,
    pub initial_stock: u32,
    pub stock: u32,
    pub per_user_limit: u32,
    pub start_at: Option<NaiveDateTime>,
    pub end_at: Option<NaiveDateTime>,
    /// Redis buckets the stock is split into (1 = not sharded).
    pub stock_buckets: u32,
}

impl Product {
    pub fn start_ms(&self) -> Option<i64> {
        self.start_at.map(|t| t.and_utc().timestamp_millis())
    }
    pub fn end_ms(&self) -> Option<i64> {
        self.end_at.map(|t| t.and_utc().timestamp_millis())
    }
}

/// Body of `POST /admin/products`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewProduct {
    /// 1 to 100 characters.
    #[schema(example = "Aurora Headphones", min_length = 1, max_length = 100)]
    pub name: String,
    /// A decimal string above 0 and at most 1,000,000,000, with at most 2 decimals and no sign,
    /// exponent or leading zero.
    #[schema(value_type = String, example = "1299.00", pattern = r"^([1-9][0-9]{0,8}(\.[0-9]{1,2})?|0\.(0[1-9]|[1-9][0-9]?)|1000000000(\.00?)?)$")]
    #[serde(deserialize_with = "price::price_text")]
    pub price: Decimal,
    /// Units on sale.
    #[schema(example = 100, minimum = 0, maximum = 100_000_000)]
    pub stock: i64,
    /// Epoch milliseconds; absent: on sale from the preload.
    #[schema(minimum = 1, maximum = 253_402_300_799_999_i64)]
    pub start_at: Option<i64>,
    /// Epoch milliseconds, after `startAt`; absent: no end.
    #[schema(minimum = 1, maximum = 253_402_300_799_999_i64)]
    pub end_at: Option<i64>,
    /// Units one user may buy (default 1).
    #[schema(minimum = 1, maximum = 1000)]
    pub per_user_limit: Option<i64>,
    /// The sale's waiting room; none (the default) lets every buyer through.
    pub waiting_room: Option<RoomSettings>,
    /// Hot-product sharding: split the Redis stock into this many buckets, each on its own
    /// Redis Cluster slot, 1 to 64 (default 1, not split). Fixed for the sale's life.
    #[schema(example = 1, minimum = 1, maximum = 64)]
    pub stock_buckets: Option<i64>,
}

/// A [`NewProduct`] that passed [`NewProduct::validate`].
#[derive(Debug, Clone, PartialEq)]
pub struct ValidProduct {
    pub name: String,
    pub price: Decimal,
    pub stock: u32,
    pub start_at: Option<NaiveDateTime>,
    pub end_at: Option<NaiveDateTime>,
    pub per_user_limit: u32,
    pub waiting_room: Option<RoomSettings>,
    pub stock_buckets: u32,
}

const MAX_STOCK: i64 = 100_000_000;
const MAX_PRICE: i64 = 1_000_000_000;

/// Whether `price` is above 0 and at most [`MAX_PRICE`]: what [`NewProduct::validate`] and the
/// reader of the body's price text ([`price::price_text`]) both require.
fn price_within_bounds(price: Decimal) -> bool {
    price > Decimal::ZERO && price <= Decimal::from(MAX_PRICE)
}
const MAX_BUCKETS: i64 = 64;
/// The largest order amount `tb_seckill_order.amount` (DECIMAL(14,2)) holds.
const MAX_AMOUNT: &str = "999999999999.99";
/// The last millisecond a MySQL DATETIME holds (9999-12-31 23:59:59.999 UTC).
const MAX_DATETIME_MS: i64 = 253_402_300_799_999;

impl NewProduct {
    /// Checks every field; the error names the field and what is wrong with it.
    pub fn validate(self) -> Result<ValidProduct, Invalid> {
        let field = |m: String| Err(Invalid::Field(m));
        let name = self.name.trim().to_string();
        if name.is_empty() || name.chars().count() > 100 {
            return field("name must be 1 to 100 characters".into());
        }
        if !price_within_bounds(self.price) {
            return field(format!("price must be above 0 and at most {MAX_PRICE}"));
        }
        if self.price.normalize().scale() > 2 {
            return field("price must have at most 2 decimal places".into());
        }
        if !(0..=MAX_STOCK).contains(&self.stock) {
            return field(format!("stock must be between 0 and {MAX_STOCK}"));
        }
        let limit = self.per_user_limit.unwrap_or(1);
        if !(1..=1000).contains(&limit) {
            return field("perUserLimit must be between 1 and 1000".into());
        }
        // The largest order a buyer can place must fit its amount column; checked here, an order
        // the writer could never store is never offered.
        let max_amount: Decimal = MAX_AMOUNT.parse().expect("a decimal");
        if self.price * Decimal::from(limit) > max_amount {
            return Err(Invalid::Combination(format!(
                "price × perUserLimit must be at most {MAX_AMOUNT} (the largest order amount), got {} × {limit}",
                self.price
            )));
        }
        let when = |ms: Option<i64>, field: &str| -> Result<Option<NaiveDateTime>, Invalid> {
            match ms {
                None => Ok(None),
                Some(ms) if ms > MAX_DATETIME_MS => Err(Invalid::Field(format!(
                    "{field} must be at most {MAX_DATETIME_MS} (9999-12-31, the last date MySQL holds)"
                ))),
                Some(ms) if ms > 0 => DateTime::<Utc>::from_timestamp_millis(ms)
                    .map(|t| Some(t.naive_utc()))
                    .ok_or_else(|| Invalid::Field(format!("{field} is out of range"))),
                Some(_) => Err(Invalid::Field(format!("{field} must be milliseconds since the Unix epoch, above 0"))),
            }
        };
        let start_at = when(self.start_at, "startAt")?;
        let end_at = when(self.end_at, "endAt")?;
        if let (Some(s), Some(e)) = (start_at, end_at) {
            if e <= s {
                return Err(Invalid::Combination("endAt must be after startAt".into()));
            }
        }
        if let Some(room) = &self.waiting_room {
            room.validate().map_err(|e| e.within("waitingRoom."))?;
        }
        let buckets = self.stock_buckets.unwrap_or(1);
        if !(1..=MAX_BUCKETS).contains(&buckets) {
            return Err(Invalid::Field(format!("stockBuckets must be between 1 and {MAX_BUCKETS}")));
        }
        Ok(ValidProduct {
            name,
            price: self.price.round_dp(2),
            stock: u32::try_from(self.stock).expect("checked above: 0..=MAX_STOCK"),
            start_at,
            end_at,
            per_user_limit: u32::try_from(limit).expect("checked above: 1..=1000"),
            waiting_room: self.waiting_room,
            stock_buckets: u32::try_from(buckets).expect("checked above: 1..=MAX_BUCKETS"),
        })
    }
}

const COLUMNS: &str = "id, name, price, initial_stock, stock, per_user_limit, start_at, end_at, stock_buckets";

/// Inserts the product and, if it has one, its waiting room, in one transaction.
pub async fn create(pool: &MySqlPool, p: &ValidProduct) -> sqlx::Result<u64> {
    let mut tx = pool.begin().await?;
    let result = sqlx::query(
        "INSERT INTO tb_seckill_product \
         (name, price, initial_stock, stock, per_user_limit, start_at, end_at, stock_buckets) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&p.name)
    .bind(p.price)
    .bind(p.stock)
    .bind(p.stock)
    .bind(p.per_user_limit)
    .bind(p.start_at)
    .bind(p.end_at)
    .bind(p.stock_buckets)
    .execute(&mut *tx)
    .await?;
    let id = result.last_insert_id();
    if let Some(room) = &p.waiting_room {
        set_waiting_room(&mut *tx, id, Some(room)).await?;
    }
    tx.commit().await?;
    Ok(id)
}

/// Turns the product's waiting room on with `room`, changes it, or (`None`) turns it off.
pub async fn set_waiting_room<'e, E: sqlx::MySqlExecutor<'e>>(
    db: E,
    id: u64,
    room: Option<&RoomSettings>,
) -> sqlx::Result<()> {
    match room {
        Some(r) => sqlx::query(
            "INSERT INTO tb_waiting_room \
             (product_id, new_users_per_interval, interval_secs, max_active_users, session_secs, \
              pre_queue_secs, shards, paused, challenge_difficulty) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON DUPLICATE KEY UPDATE new_users_per_interval = VALUES(new_users_per_interval), \
             interval_secs = VALUES(interval_secs), max_active_users = VALUES(max_active_users), \
             session_secs = VALUES(session_secs), pre_queue_secs = VALUES(pre_queue_secs), \
             shards = VALUES(shards), paused = VALUES(paused), \
             challenge_difficulty = VALUES(challenge_difficulty), updated_at = CURRENT_TIMESTAMP(3)",
        )
        .bind(id)
        .bind(r.new_users_per_interval)
        .bind(r.interval_secs)
        .bind(r.max_active_users)
        .bind(r.session_secs)
        .bind(r.pre_queue_secs)
        .bind(r.shards)
        .bind(r.paused)
        .bind(r.challenge.map(|c| c.difficulty)),
        None => sqlx::query("DELETE FROM tb_waiting_room WHERE product_id = ?").bind(id),
    }
    .execute(db)
    .await?;
    Ok(())
}

/// Pauses (`true`) or resumes the product's waiting room; false if it has none.
pub async fn set_room_paused(db: &MySqlPool, id: u64, paused: bool) -> sqlx::Result<bool> {
    let found = sqlx::query("SELECT 1 FROM tb_waiting_room WHERE product_id = ? FOR UPDATE");
    let mut tx = db.begin().await?;
    if found.bind(id).fetch_optional(&mut *tx).await?.is_none() {
        return Ok(false);
    }
    sqlx::query("UPDATE tb_waiting_room SET paused = ?, updated_at = CURRENT_TIMESTAMP(3) WHERE product_id = ?")
        .bind(paused)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// Every waiting room that is on, by product id.
pub async fn waiting_rooms(pool: &MySqlPool) -> sqlx::Result<HashMap<u64, RoomSettings>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        product_id: u64,
        new_users_per_interval: u32,
        interval_secs: u32,
        max_active_users: u32,
        session_secs: u32,
        pre_queue_secs: u32,
        shards: u32,
        paused: bool,
        challenge_difficulty: Option<u8>,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT product_id, new_users_per_interval, interval_secs, max_active_users, session_secs, \
         pre_queue_secs, shards, paused, challenge_difficulty FROM tb_waiting_room",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let room = RoomSettings {
                new_users_per_interval: r.new_users_per_interval,
                interval_secs: r.interval_secs,
                max_active_users: r.max_active_users,
                session_secs: r.session_secs,
                pre_queue_secs: r.pre_queue_secs,
                shards: r.shards,
                paused: r.paused,
                challenge: r.challenge_difficulty.map(|difficulty| ChallengeSettings { difficulty }),
            };
            (r.product_id, room)
        })
        .collect())
}

pub async fn find<'e, E: sqlx::MySqlExecutor<'e>>(db: E, id: u64) -> sqlx::Result<Option<Product>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM tb_seckill_product WHERE id = ?")).bind(id).fetch_optional(db).await
}

/// The product and its sale as MySQL sees it (stock and active orders), read in one snapshot
/// (InnoDB's default REPEATABLE READ: every read of a transaction sees the first one's
/// snapshot), so an order the writer commits meanwhile is in both or in neither.
pub async fn sale_snapshot(db: &MySqlPool, id: u64) -> sqlx::Result<Option<(Product, SaleSnapshot)>> {
    let mut tx = db.begin().await?;
    let Some(product) = find(&mut *tx, id).await? else {
        return Ok(None);
    };
    let active = crate::orders::active(&mut *tx, id).await?;
    tx.commit().await?;
    let snapshot = SaleSnapshot {
        stock: i64::from(product.stock),
        start_ms: product.start_ms().unwrap_or(0),
        end_ms: product.end_ms().unwrap_or(0),
        per_user_limit: i64::from(product.per_user_limit),
        price: product.price.round_dp(2).to_string(),
        buckets: product.stock_buckets.max(1),
        orders: active
            .into_iter()
            .map(|(order_no, user_id, quantity)| (order_no, Deduction { user_id, quantity }))
            .collect(),
    };
    Ok(Some((product, snapshot)))
}

/// The sales the shop shows at `now`: live and upcoming ones; an ended sale is no longer listed.
pub async fn open_at(pool: &MySqlPool, now: NaiveDateTime) -> sqlx::Result<Vec<Product>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM tb_seckill_product WHERE end_at IS NULL OR end_at > ? ORDER BY id"))
        .bind(now)
        .fetch_all(pool)
        .await
}

pub async fn all(pool: &MySqlPool) -> sqlx::Result<Vec<Product>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM tb_seckill_product ORDER BY id")).fetch_all(pool).await
}

/// Where a sale stands, as the shop page shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SaleState {
    Upcoming,
    OnSale,
    SoldOut,
    Ended,
}

pub fn sale_state(p: &Product, stock_left: i64, now_ms: i64) -> SaleState {
    if p.end_ms().is_some_and(|end| now_ms >= end) {
        SaleState::Ended
    } else if p.start_ms().is_some_and(|start| now_ms < start) {
        SaleState::Upcoming
    } else if stock_left <= 0 {
        SaleState::SoldOut
    } else {
        SaleState::OnSale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(price: &str, stock: i64) -> NewProduct {
        NewProduct {
            name: "Phone".into(),
            price: price.parse().unwrap(),
            stock,
            start_at: None,
            end_at: None,
            per_user_limit: None,
            waiting_room: None,
            stock_buckets: None,
        }
    }

    #[test]
    fn a_plain_product_is_valid_with_a_limit_of_one() {
        let p = new("6999.00", 100).validate().unwrap();
        assert_eq!((p.stock, p.per_user_limit), (100, 1));
    }

    #[test]
    fn each_bad_field_is_named() {
        assert!(new("0", 1).validate().unwrap_err().to_string().contains("price"));
        assert!(new("1.234", 1).validate().unwrap_err().to_string().contains("decimal"));
        assert!(new("1", -1).validate().unwrap_err().to_string().contains("stock"));
        let mut p = new("1", 1);
        p.name = "  ".into();
        assert!(p.validate().unwrap_err().to_string().contains("name"));
        let mut p = new("1", 1);
        p.start_at = Some(2_000);
        p.end_at = Some(1_000);
        assert_eq!(p.validate().unwrap_err(), Invalid::Combination("endAt must be after startAt".into()));
        let mut p = new("1", 1);
        p.per_user_limit = Some(0);
        assert!(p.validate().unwrap_err().to_string().contains("perUserLimit"));
        let mut p = new("1", 1);
        p.waiting_room = Some(RoomSettings {
            new_users_per_interval: 0,
            interval_secs: 1,
            max_active_users: 1,
            session_secs: 60,
            pre_queue_secs: 0,
            shards: 1,
            paused: false,
            challenge: None,
        });
        assert!(p.validate().unwrap_err().to_string().starts_with("waitingRoom.newUsersPerInterval"));
        for buckets in [0, 65] {
            let mut p = new("1", 1);
            p.stock_buckets = Some(buckets);
            assert!(p.validate().unwrap_err().to_string().contains("stockBuckets"), "{buckets}");
        }
    }
}
