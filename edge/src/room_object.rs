//! The waiting room's Durable Object (wasm only): one instance per sale (named
//! `product-<id>`), its line and admissions in the object's SQLite storage, so they survive a
//! restart of the worker (and, under `wrangler dev`, live under the stack's `--persist-to`).
//!
//! The worker asks it `POST /enter` with `{"userId", "room"}` ([`ask_room`], the one call the
//! worker makes to it); it answers an [`Entry`]. The rules are [`crate::waiting_room::enter`];
//! this file only maps its store onto SQL. SQL calls on a Durable Object are synchronous and nothing
//! here awaits between reading the request and answering, so no two requests interleave and
//! the writes of one call commit together.

use serde::{Deserialize, Serialize};
use wasm_bindgen::JsValue;
use worker::{
    console_error, durable_object, Date, DurableObject, Env, Method, Request, RequestInit, Response, Result,
    SqlStorage, SqlStorageValue, State,
};

use crate::waiting_room::{enter, Entry, RoomStore};
use seckill_protocol::room::RoomSettings;

/// The binding of the Durable Object namespace (wrangler.toml `[[durable_objects.bindings]]`).
const BINDING: &str = "WAITING_ROOM";

/// The name of `product_id`'s room.
fn room_name(product_id: u64) -> String {
    format!("product-{product_id}")
}

/// What the worker sends the room.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EnterRequest {
    user_id: u64,
    room: RoomSettings,
}

/// Asks `product_id`'s room (its Durable Object) to let `user_id` in.
pub(crate) async fn ask_room(env: &Env, product_id: u64, user_id: u64, room: RoomSettings) -> Result<Entry> {
    let stub = env.durable_object(BINDING)?.id_from_name(&room_name(product_id))?.get_stub()?;
    let body = serde_json::to_string(&EnterRequest { user_id, room })?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(JsValue::from_str(&body)));
    let mut answer =
        stub.fetch_with_request(Request::new_with_init("https://waiting-room.internal/enter", &init)?).await?;
    if answer.status_code() != 200 {
        return Err(format!("answered {}: {}", answer.status_code(), answer.text().await.unwrap_or_default()).into());
    }
    answer.json().await
}

/// User ids are stored as text: they are u64, SQLite and JavaScript numbers are not.
const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS line (
        ticket    INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id   TEXT    NOT NULL UNIQUE,
        last_seen INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS line_last_seen ON line (last_seen)",
    "CREATE TABLE IF NOT EXISTS admitted (
        user_id     TEXT    PRIMARY KEY,
        admitted_at INTEGER NOT NULL,
        until_ms    INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS admitted_at ON admitted (admitted_at)",
    "CREATE INDEX IF NOT EXISTS admitted_until ON admitted (until_ms)",
];

#[durable_object]
pub struct WaitingRoom {
    state: State,
}

impl std::fmt::Debug for WaitingRoom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitingRoom").finish_non_exhaustive()
    }
}

impl DurableObject for WaitingRoom {
    fn new(state: State, _env: Env) -> Self {
        let sql = state.storage().sql();
        for statement in SCHEMA {
            if let Err(e) = sql.exec(statement, None) {
                console_error!("waiting room schema: {e}");
            }
        }
        Self { state }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let ask: EnterRequest = match req.json().await {
            Ok(ask) => ask,
            Err(e) => return Response::error(format!("bad enter request: {e}"), 400),
        };
        let mut store = SqlRoom { sql: self.state.storage().sql() };
        match enter(&mut store, &ask.room, ask.user_id, Date::now().as_millis()) {
            Ok(entry) => Response::from_json(&entry),
            Err(e) => {
                console_error!("waiting room: {e}");
                Response::error(format!("waiting room storage failed: {e}"), 500)
            }
        }
    }
}

/// [`RoomStore`] on the Durable Object's SQLite database.
struct SqlRoom {
    sql: SqlStorage,
}

#[derive(Deserialize)]
struct Count {
    n: f64,
}

#[derive(Deserialize)]
struct Ticket {
    ticket: f64,
}

#[derive(Deserialize)]
struct Until {
    until_ms: f64,
}

#[derive(Deserialize)]
struct User {
    user_id: String,
}

fn user(id: u64) -> SqlStorageValue {
    SqlStorageValue::String(id.to_string())
}

/// Times (ms since the epoch) and counts are far inside JavaScript's safe integers.
fn int(n: u64) -> SqlStorageValue {
    SqlStorageValue::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

/// SQLite's integers reach Rust as JavaScript numbers: ours (times in ms, tickets, counts) are
/// whole, not negative and below 2^53, so the conversion is exact.
#[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "whole, not negative, below 2^53")]
fn whole(n: f64) -> u64 {
    n as u64
}

impl SqlRoom {
    fn count(&self, query: &str, bindings: Vec<SqlStorageValue>) -> Result<u64> {
        Ok(whole(self.sql.exec(query, bindings)?.one::<Count>()?.n))
    }
}

impl RoomStore for SqlRoom {
    type Error = worker::Error;

    fn admission_of(&mut self, user_id: u64) -> Result<Option<u64>> {
        let rows: Vec<Until> =
            self.sql.exec("SELECT until_ms FROM admitted WHERE user_id = ?", vec![user(user_id)])?.to_array()?;
        Ok(rows.first().map(|r| whole(r.until_ms)))
    }

    fn ticket_of(&mut self, user_id: u64) -> Result<Option<u64>> {
        let rows: Vec<Ticket> =
            self.sql.exec("SELECT ticket FROM line WHERE user_id = ?", vec![user(user_id)])?.to_array()?;
        Ok(rows.first().map(|r| whole(r.ticket)))
    }

    fn join(&mut self, user_id: u64, now_ms: u64) -> Result<u64> {
        // AUTOINCREMENT never reuses a ticket, even of a row deleted since.
        let row: Ticket = self
            .sql
            .exec(
                "INSERT INTO line (user_id, last_seen) VALUES (?, ?) RETURNING ticket",
                vec![user(user_id), int(now_ms)],
            )?
            .one()?;
        Ok(whole(row.ticket))
    }

    fn seen(&mut self, user_id: u64, now_ms: u64) -> Result<()> {
        self.sql.exec("UPDATE line SET last_seen = ? WHERE user_id = ?", vec![int(now_ms), user(user_id)])?;
        Ok(())
    }

    fn forget_idle(&mut self, before_ms: u64) -> Result<()> {
        self.sql.exec("DELETE FROM line WHERE last_seen < ?", vec![int(before_ms)])?;
        Ok(())
    }

    fn forget_ended(&mut self, now_ms: u64, before_ms: u64) -> Result<()> {
        self.sql
            .exec("DELETE FROM admitted WHERE until_ms <= ? AND admitted_at < ?", vec![int(now_ms), int(before_ms)])?;
        Ok(())
    }

    fn admitted_since(&mut self, since_ms: u64) -> Result<u64> {
        self.count("SELECT COUNT(*) AS n FROM admitted WHERE admitted_at >= ?", vec![int(since_ms)])
    }

    fn active_at(&mut self, now_ms: u64) -> Result<u64> {
        self.count("SELECT COUNT(*) AS n FROM admitted WHERE until_ms > ?", vec![int(now_ms)])
    }

    fn first_in_line(&mut self, count: u64) -> Result<Vec<u64>> {
        let rows: Vec<User> =
            self.sql.exec("SELECT user_id FROM line ORDER BY ticket LIMIT ?", vec![int(count)])?.to_array()?;
        Ok(rows.iter().filter_map(|r| r.user_id.parse().ok()).collect())
    }

    fn admit(&mut self, users: &[u64], now_ms: u64, until_ms: u64) -> Result<()> {
        for &u in users {
            self.sql.exec("DELETE FROM line WHERE user_id = ?", vec![user(u)])?;
            self.sql.exec(
                "INSERT OR REPLACE INTO admitted (user_id, admitted_at, until_ms) VALUES (?, ?, ?)",
                vec![user(u), int(now_ms), int(until_ms)],
            )?;
        }
        Ok(())
    }

    fn ahead_of(&mut self, ticket: u64) -> Result<u64> {
        self.count("SELECT COUNT(*) AS n FROM line WHERE ticket < ?", vec![int(ticket)])
    }
}
