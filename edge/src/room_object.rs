//! The waiting room's Durable Objects (wasm only): a sale's room is spread over
//! [`RoomSettings::shards`] objects, named `product-<id>` (one shard) or
//! `product-<id>/shard-<k>-of-<n>`, each keeping the line and admissions of the users its hash
//! picks ([`crate::waiting_room::shard_of`]) in the object's SQLite storage, so they survive a
//! restart of the worker (and, under `wrangler dev`, live under the stack's `--persist-to`).
//!
//! The worker asks a shard `POST /enter` with `{"userId", "room", "startAt"}` ([`ask_room`], the
//! one call the worker makes to it; `room` is the shard's share of the settings); it answers an
//! [`Entry`]. The rules are [`crate::waiting_room::enter`]; this file only maps its store onto
//! SQL. SQL calls on a Durable Object are synchronous and nothing here awaits between reading the
//! request and answering, so no two requests interleave and the writes of one call commit
//! together.

use serde::{Deserialize, Serialize};
use std::time::Duration;
use wasm_bindgen::JsValue;

use worker::{
    console_error, console_log, console_warn, durable_object, Date, DurableObject, Env, Method, Request, RequestInit,
    Response, Result, SqlStorage, SqlStorageValue, State,
};

use crate::env_settings::isolate_settings;
use crate::origin_client::send_to_origin;
use crate::settings::RequestSettings;
use crate::waiting_room::{
    enter, forget_quiet, report, shard_of, Asking, ChallengeProof, Entry, Place, Reporting, RoomMeta, RoomStore,
    REPORT_EVERY_MS,
};
use seckill_protocol::room::RoomSettings;

/// The binding of the Durable Object namespace (wrangler.toml `[[durable_objects.bindings]]`).
const BINDING: &str = "WAITING_ROOM";

/// The name of shard `shard` of `shards` of `product_id`'s room.
fn room_name(product_id: u64, shard: u32, shards: u32) -> String {
    if shards <= 1 {
        format!("product-{product_id}")
    } else {
        format!("product-{product_id}/shard-{shard}-of-{shards}")
    }
}

/// What the worker sends the room.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EnterRequest {
    /// Which room, and which of its shards this object is: for its reports.
    product_id: u64,
    shard: u32,
    shards: u32,
    user_id: u64,
    /// The shard's share of the room's settings.
    room: RoomSettings,
    /// The sale's start (ms since the epoch), if it has one: the draw's time.
    start_at: Option<u64>,
    /// The solved challenge the request carried, checked by the worker.
    proof: Option<ChallengeProof>,
}

/// Asks the shard of `product_id`'s room that keeps `user_id`'s place to let them in.
pub(crate) async fn ask_room(
    env: &Env,
    product_id: u64,
    user_id: u64,
    room: RoomSettings,
    start_at: Option<u64>,
    proof: Option<ChallengeProof>,
) -> Result<Entry> {
    let shard = shard_of(user_id, room.shards);
    let name = room_name(product_id, shard, room.shards);
    let stub = env.durable_object(BINDING)?.id_from_name(&name)?.get_stub()?;
    let request = EnterRequest {
        product_id,
        shard,
        shards: room.shards,
        user_id,
        room: room.shard_share(shard),
        start_at,
        proof,
    };
    let body = serde_json::to_string(&request)?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(JsValue::from_str(&body)));
    let mut answer =
        stub.fetch_with_request(Request::new_with_init("https://waiting-room.internal/enter", &init)?).await?;
    if answer.status_code() != 200 {
        return Err(format!("answered {}: {}", answer.status_code(), answer.text().await.unwrap_or_default()).into());
    }
    answer.json().await
}

/// User ids are stored as text: they are u64, SQLite and JavaScript numbers are not. `ticket`
/// is NULL while the user waits in the pre-queue (`draw_key` orders them at the draw); its
/// UNIQUE index serves the admissions (lowest tickets first). `meta` holds one row, the room's
/// counters ([`RoomMeta`]) as JSON.
const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS waiting (
        user_id   TEXT    PRIMARY KEY,
        ticket    INTEGER UNIQUE,
        draw_key  TEXT,
        last_seen INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS waiting_last_seen ON waiting (last_seen)",
    "CREATE TABLE IF NOT EXISTS passes (
        user_id  TEXT    PRIMARY KEY,
        until_ms INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS passes_until ON passes (until_ms)",
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS used_challenges (
        challenge  TEXT    PRIMARY KEY,
        expires_ms INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS used_challenges_expiry ON used_challenges (expires_ms)",
];

#[durable_object]
pub struct WaitingRoom {
    state: State,
    env: Env,
}

impl std::fmt::Debug for WaitingRoom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitingRoom").finish_non_exhaustive()
    }
}

impl DurableObject for WaitingRoom {
    fn new(state: State, env: Env) -> Self {
        let sql = state.storage().sql();
        for statement in SCHEMA {
            if let Err(e) = sql.exec(statement, None) {
                console_error!("waiting room schema: {e}");
            }
        }
        Self { state, env }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let ask: EnterRequest = match req.json().await {
            Ok(ask) => ask,
            Err(e) => return Response::error(format!("bad enter request: {e}"), 400),
        };
        let mut store = SqlRoom { sql: self.state.storage().sql() };
        let now_ms = Date::now().as_millis();
        let asking = Asking { user: ask.user_id, now_ms, proof: ask.proof.as_ref() };
        let entry = match enter(&mut store, &ask.room, ask.start_at, asking, fresh_seed) {
            Ok(entry) => entry,
            Err(e) => {
                console_error!("waiting room: {e}");
                return Response::error(format!("waiting room storage failed: {e}"), 500);
            }
        };
        let mut meta = store.meta()?;
        if let RoomMeta { seed: Some(seed), drawn_at_ms: Some(at), drawn, .. } = &meta {
            if *at == now_ms {
                // The audit trail of a draw: its seed, time and size, logged once.
                console_log!("waiting room draw: seed {seed}, at {at} ms, {drawn} users put in order");
            }
        }
        // A report is due a few seconds after the first call since the last one.
        let reporting = Reporting { product_id: ask.product_id, shard: ask.shard, shards: ask.shards, room: ask.room };
        if !meta.report_due || meta.reporting.as_ref() != Some(&reporting) {
            if !meta.report_due {
                self.state.storage().set_alarm(Duration::from_millis(REPORT_EVERY_MS)).await?;
            }
            meta.report_due = true;
            meta.reporting = Some(reporting);
            store.save_meta(&meta)?;
        }
        Response::from_json(&entry)
    }

    /// Sends the room's report to the origin, and another in [`REPORT_EVERY_MS`] while anyone
    /// is still waiting (sweeping those who went quiet first, so the counts fall with nobody
    /// asking). A report that cannot be sent is only logged: the next one says the same.
    async fn alarm(&self) -> Result<Response> {
        let mut store = SqlRoom { sql: self.state.storage().sql() };
        let mut meta = store.meta()?;
        let now_ms = Date::now().as_millis();
        if let Some(Reporting { room, .. }) = meta.reporting.clone() {
            forget_quiet(&mut store, &mut meta, &room, now_ms)?;
        }
        if let Some(report) = report(&meta, now_ms) {
            let request_id = format!("room-report-{}-{}", report.product_id, report.shard);
            match isolate_settings(&self.env) {
                Ok(settings) => {
                    let settings = RequestSettings { settings, request_id };
                    let body = serde_json::to_string(&report)?;
                    match send_to_origin(&settings, Method::Post, "/api/rooms/report", Some(body), None).await {
                        Ok(answer) if answer.status_code() == 204 => {}
                        Ok(answer) => console_warn!(
                            "room report of product {} answered {}",
                            report.product_id,
                            answer.status_code()
                        ),
                        Err(failed) => {
                            console_warn!("room report of product {} not sent: {}", report.product_id, failed.message)
                        }
                    }
                }
                Err(e) => console_error!("room report: the worker's settings: {e}"),
            }
        }
        meta.report_due = meta.waiting > 0;
        if meta.report_due {
            self.state.storage().set_alarm(Duration::from_millis(REPORT_EVERY_MS)).await?;
        }
        store.save_meta(&meta)?;
        Response::empty()
    }
}

/// 212 random bits as hex (the runtime's `Math.random` is backed by a CSPRNG in Workers): the
/// draw's seed, secret until the draw.
#[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "a whole number in [0, 2^53)")]
fn fresh_seed() -> String {
    let part = || (worker::js_sys::Math::random() * 2f64.powi(53)) as u64;
    format!("{:014x}{:014x}{:014x}{:014x}", part(), part(), part(), part())
}

/// [`RoomStore`] on the Durable Object's SQLite database.
struct SqlRoom {
    sql: SqlStorage,
}

#[derive(Deserialize)]
struct Value {
    value: String,
}

#[derive(Deserialize)]
struct Waiting {
    ticket: Option<f64>,
}

#[derive(Deserialize)]
struct Until {
    until_ms: f64,
}

#[derive(Deserialize)]
struct InLine {
    user_id: String,
    ticket: f64,
}

fn user(id: u64) -> SqlStorageValue {
    SqlStorageValue::String(id.to_string())
}

/// Times (ms since the epoch), tickets and counts are far inside JavaScript's safe integers.
fn int(n: u64) -> SqlStorageValue {
    SqlStorageValue::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

/// SQLite's integers reach Rust as JavaScript numbers: ours (times in ms, tickets, counts) are
/// whole, not negative and below 2^53, so the conversion is exact.
#[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "whole, not negative, below 2^53")]
fn whole(n: f64) -> u64 {
    n as u64
}

impl RoomStore for SqlRoom {
    type Error = worker::Error;

    fn meta(&mut self) -> Result<RoomMeta> {
        let rows: Vec<Value> = self.sql.exec("SELECT value FROM meta WHERE name = 'room'", None)?.to_array()?;
        match rows.first() {
            Some(row) => Ok(serde_json::from_str(&row.value)?),
            None => Ok(RoomMeta::default()),
        }
    }

    fn save_meta(&mut self, meta: &RoomMeta) -> Result<()> {
        let value = SqlStorageValue::String(serde_json::to_string(meta)?);
        self.sql.exec("INSERT OR REPLACE INTO meta (name, value) VALUES ('room', ?)", vec![value])?;
        Ok(())
    }

    fn admission_of(&mut self, user_id: u64) -> Result<Option<u64>> {
        let rows: Vec<Until> =
            self.sql.exec("SELECT until_ms FROM passes WHERE user_id = ?", vec![user(user_id)])?.to_array()?;
        Ok(rows.first().map(|r| whole(r.until_ms)))
    }

    fn place_of(&mut self, user_id: u64) -> Result<Option<Place>> {
        let rows: Vec<Waiting> =
            self.sql.exec("SELECT ticket FROM waiting WHERE user_id = ?", vec![user(user_id)])?.to_array()?;
        Ok(rows.first().map(|r| r.ticket.map_or(Place::PreQueue, |t| Place::Ticket(whole(t)))))
    }

    fn join_pre_queue(&mut self, user_id: u64, draw_key: &str, now_ms: u64) -> Result<()> {
        self.sql.exec(
            "INSERT OR REPLACE INTO waiting (user_id, ticket, draw_key, last_seen) VALUES (?, NULL, ?, ?)",
            vec![user(user_id), SqlStorageValue::String(draw_key.to_owned()), int(now_ms)],
        )?;
        Ok(())
    }

    fn join(&mut self, user_id: u64, ticket: u64, now_ms: u64) -> Result<()> {
        self.sql.exec(
            "INSERT OR REPLACE INTO waiting (user_id, ticket, draw_key, last_seen) VALUES (?, ?, NULL, ?)",
            vec![user(user_id), int(ticket), int(now_ms)],
        )?;
        Ok(())
    }

    fn seen(&mut self, user_id: u64, now_ms: u64) -> Result<()> {
        self.sql.exec("UPDATE waiting SET last_seen = ? WHERE user_id = ?", vec![int(now_ms), user(user_id)])?;
        Ok(())
    }

    fn forget_idle(&mut self, before_ms: u64) -> Result<(u64, u64)> {
        let gone: Vec<Waiting> = self
            .sql
            .exec("DELETE FROM waiting WHERE last_seen < ? RETURNING ticket", vec![int(before_ms)])?
            .to_array()?;
        let pre_queued = gone.iter().filter(|w| w.ticket.is_none()).count();
        Ok((gone.len() as u64, pre_queued as u64))
    }

    fn draw(&mut self, first_ticket: u64) -> Result<u64> {
        // One statement: each pre-queued user's ticket is its rank by draw key.
        let drawn: Vec<Waiting> = self
            .sql
            .exec(
                "UPDATE waiting SET ticket = ? - 1 + ranked.r, draw_key = NULL \
                 FROM (SELECT user_id AS u, ROW_NUMBER() OVER (ORDER BY draw_key) AS r \
                       FROM waiting WHERE ticket IS NULL) AS ranked \
                 WHERE waiting.user_id = ranked.u RETURNING ticket",
                vec![int(first_ticket)],
            )?
            .to_array()?;
        Ok(drawn.len() as u64)
    }

    fn expire_admissions(&mut self, now_ms: u64) -> Result<u64> {
        let gone: Vec<Until> = self
            .sql
            .exec("DELETE FROM passes WHERE until_ms <= ? RETURNING until_ms", vec![int(now_ms)])?
            .to_array()?;
        Ok(gone.len() as u64)
    }

    fn first_in_line(&mut self, count: u64) -> Result<Vec<(u64, u64)>> {
        let rows: Vec<InLine> = self
            .sql
            .exec(
                "SELECT user_id, ticket FROM waiting WHERE ticket IS NOT NULL ORDER BY ticket LIMIT ?",
                vec![int(count)],
            )?
            .to_array()?;
        Ok(rows.iter().filter_map(|r| r.user_id.parse().ok().map(|u| (u, whole(r.ticket)))).collect())
    }

    fn use_challenge(&mut self, proof: &ChallengeProof, now_ms: u64) -> Result<bool> {
        self.sql.exec("DELETE FROM used_challenges WHERE expires_ms <= ?", vec![int(now_ms)])?;
        let fresh: Vec<Until> = self
            .sql
            .exec(
                "INSERT INTO used_challenges (challenge, expires_ms) VALUES (?, ?) \
                 ON CONFLICT (challenge) DO NOTHING RETURNING expires_ms AS until_ms",
                vec![SqlStorageValue::String(proof.key.clone()), int(proof.expires_at_ms)],
            )?
            .to_array()?;
        Ok(!fresh.is_empty())
    }

    fn admit(&mut self, users: &[u64], until_ms: u64) -> Result<()> {
        for &u in users {
            self.sql.exec("DELETE FROM waiting WHERE user_id = ?", vec![user(u)])?;
            self.sql.exec(
                "INSERT OR REPLACE INTO passes (user_id, until_ms) VALUES (?, ?)",
                vec![user(u), int(until_ms)],
            )?;
        }
        Ok(())
    }
}
