//! The waiting room's rules, over any [`RoomStore`]: the Durable Object keeps one shard of a
//! sale's room in its SQLite storage (`room_object`), and the tests here use [`MemoryRoom`].
//!
//! **The line.** A user who asks to enter is admitted at once while the current window still
//! has room for new users, fewer than `max_active_users` sessions are running and the room is
//! not paused; otherwise the user joins the end of the line. Each call admits the lowest
//! tickets first, as many as the window and the active cap allow, whether or not their holder
//! is the one asking. An admitted user keeps their admission until the session ends, so a lost
//! pass is handed out again without queueing. A user who stops asking for [`IDLE_REFRESHES`]
//! refresh intervals (plus a grace period) loses their place.
//!
//! **The pre-queue and the draw.** A room with `pre_queue_secs` opens that long before the sale's
//! start. Who asks before the start joins the pre-queue ([`Entry::PreQueued`], no position) under
//! a draw key: SHA-256 of the room's seed and the user id ([`draw_key`]). The seed is made when
//! the first user joins and kept in the room until the first call at or after the start, which
//! draws: every pre-queued user still there gets a ticket in the order of their keys (a uniformly
//! random order nobody could see in advance, since nobody knew the seed), before any later
//! arrival. The seed and the number drawn are recorded ([`RoomMeta`]) and logged, so anyone
//! with the seed and the users' ids can recompute the order afterwards.
//!
//! **Every call is O(1) in the size of the line.** The room keeps counters ([`RoomMeta`]): the
//! next ticket, the highest ticket admitted (`head`), the current window's admissions and the
//! running sessions. A queued user's position is `ticket - head`: tickets below the head were
//! all admitted or left, so it never goes up; users ahead who left still count until the head
//! passes them, so it is an upper bound that drops in steps.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use seckill_protocol::room::{pass_audience, pass_from_headers, RoomReport, RoomSettings};
use seckill_protocol::token::KeySet;

/// A queued user who has not asked for this many refresh intervals has left the line.
pub const IDLE_REFRESHES: u64 = 4;
/// Added to the idle limit, for clients on slow networks.
pub const IDLE_GRACE_MS: u64 = 10_000;

/// What the room says to a user who asks to enter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "outcome")]
pub enum Entry {
    /// In, until `until_ms` (the end of the session, ms since the epoch).
    Admitted { until_ms: u64 },
    /// In line. `ticket` is the user's place in the order of admission (it never changes while
    /// they wait); `position` is 1 for the next user to be admitted (an upper bound).
    Queued { ticket: u64, position: u64, estimated_wait_secs: u64, refresh_interval_secs: u32, paused: bool },
    /// In the pre-queue: the order is drawn at `draw_at_ms` (the sale's start).
    PreQueued { draw_at_ms: u64, refresh_interval_secs: u32 },
    /// Not let into the line: the room asks a solved challenge of a new user, and this one
    /// brought none (`reused: false`) or one the room has already let someone in with.
    ChallengeRefused { reused: bool },
}

/// A solution the edge checked ([`seckill_protocol::challenge::check`]), as the room records
/// it: the challenge's hash, and when it expires (ms since the epoch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChallengeProof {
    pub key: String,
    pub expires_at_ms: u64,
}

/// Where the user is, if they are waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// In the pre-queue, before the draw.
    PreQueue,
    /// In line with this ticket.
    Ticket(u64),
}

/// The room's counters and its draw, read and written once per call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomMeta {
    /// The last ticket handed out.
    pub next_ticket: u64,
    /// The highest ticket admitted: every ticket at or below it was admitted or left.
    pub head: u64,
    /// The window the count below is of (ms since the epoch).
    pub window_start_ms: u64,
    pub window_admitted: u64,
    /// Admissions whose session has not been seen to end.
    pub active: u64,
    /// The draw's seed (hex), made when the first user joins the pre-queue.
    pub seed: Option<String>,
    /// When the draw was made, and how many users it put in order.
    pub drawn_at_ms: Option<u64>,
    pub drawn: u64,
    /// Users waiting (the pre-queue and the line), and of those in the pre-queue.
    #[serde(default)]
    pub waiting: u64,
    #[serde(default)]
    pub pre_queued: u64,
    /// Users admitted since the room was made.
    #[serde(default)]
    pub admitted_total: u64,
    /// New users the room turned away for want of a solved challenge, or with a used one.
    #[serde(default)]
    pub challenges_refused: u64,
    /// Which room this is, and the settings it last enforced: what its report says.
    #[serde(default)]
    pub reporting: Option<Reporting>,
    /// A report to the origin is due (an alarm is set).
    #[serde(default)]
    pub report_due: bool,
}

/// What a room's report needs beyond its counters: which sale and shard it is, the share of
/// the settings it last enforced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reporting {
    pub product_id: u64,
    pub shard: u32,
    pub shards: u32,
    pub room: RoomSettings,
}

/// How often a busy room reports to the origin.
pub const REPORT_EVERY_MS: u64 = 5_000;

/// The report of a room whose counters are `meta`, at `now_ms`; `None` before its first user.
pub fn report(meta: &RoomMeta, now_ms: u64) -> Option<RoomReport> {
    let Reporting { product_id, shard, shards, room } = meta.reporting.clone()?;
    let in_line = meta.waiting.saturating_sub(meta.pre_queued);
    let interval_ms = u64::from(room.interval_secs) * 1000;
    let estimated_wait_ms =
        if in_line == 0 { 0 } else { estimated_wait_ms(&room, in_line, interval_ms - now_ms % interval_ms) };
    Some(RoomReport {
        product_id,
        shard,
        shards,
        pre_queued: meta.pre_queued,
        in_line,
        admitted_total: meta.admitted_total,
        challenges_refused: meta.challenges_refused,
        estimated_wait_secs: estimated_wait_ms.div_ceil(1000),
        paused: room.paused,
    })
}

/// Where a room keeps its line and its admissions. The Durable Object runs a whole [`enter`]
/// without yielding, so no other request interleaves; every method touches a bounded number of
/// rows but [`RoomStore::draw`] (once per room) and the sweeps (each row once).
pub trait RoomStore {
    type Error;
    fn meta(&mut self) -> Result<RoomMeta, Self::Error>;
    fn save_meta(&mut self, meta: &RoomMeta) -> Result<(), Self::Error>;
    /// When `user`'s admission ends, if the room admitted them and has not forgotten it.
    fn admission_of(&mut self, user: u64) -> Result<Option<u64>, Self::Error>;
    /// Where `user` waits, if they do.
    fn place_of(&mut self, user: u64) -> Result<Option<Place>, Self::Error>;
    /// Puts the user in the pre-queue under `draw_key`, seen at `now_ms`.
    fn join_pre_queue(&mut self, user: u64, draw_key: &str, now_ms: u64) -> Result<(), Self::Error>;
    /// Puts the user in line with `ticket`, seen at `now_ms`.
    fn join(&mut self, user: u64, ticket: u64, now_ms: u64) -> Result<(), Self::Error>;
    /// Notes that a waiting user asked again at `now_ms`.
    fn seen(&mut self, user: u64, now_ms: u64) -> Result<(), Self::Error>;
    /// Drops everyone waiting (pre-queue or line) last seen before `before_ms`; returns how many,
    /// and how many of those were in the pre-queue.
    fn forget_idle(&mut self, before_ms: u64) -> Result<(u64, u64), Self::Error>;
    /// Gives every pre-queued user a ticket from `first_ticket` on, in the order of their draw
    /// keys; returns how many.
    fn draw(&mut self, first_ticket: u64) -> Result<u64, Self::Error>;
    /// Drops admissions whose session ended by `now_ms`; returns how many.
    fn expire_admissions(&mut self, now_ms: u64) -> Result<u64, Self::Error>;
    /// The `count` lowest tickets in line: (user, ticket).
    fn first_in_line(&mut self, count: u64) -> Result<Vec<(u64, u64)>, Self::Error>;
    /// Moves `users` from the line to the admitted, until `until_ms`.
    fn admit(&mut self, users: &[u64], until_ms: u64) -> Result<(), Self::Error>;
    /// Records the solved challenge `proof` as used; false if it was used before. Forgets the
    /// records of challenges expired by `now_ms` (they are refused at the edge anyway).
    fn use_challenge(&mut self, proof: &ChallengeProof, now_ms: u64) -> Result<bool, Self::Error>;
}

/// The draw key of `user` under `seed`: lowercase hex SHA-256 of `"{seed}:{user}"`. Sorting
/// the pre-queue by it is the draw.
pub fn draw_key(seed: &str, user: u64) -> String {
    let digest = Sha256::digest(format!("{seed}:{user}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Who asks to enter a room, and when.
#[derive(Debug, Clone, Copy)]
pub struct Asking<'a> {
    pub user: u64,
    pub now_ms: u64,
    /// The solved challenge the request carried, checked by the edge.
    pub proof: Option<&'a ChallengeProof>,
}

/// Drops everyone waiting who has not asked for [`IDLE_REFRESHES`] refresh intervals of `room`
/// (plus [`IDLE_GRACE_MS`]) by `now_ms`, and takes them off `meta`'s counts.
pub fn forget_quiet<S: RoomStore>(
    store: &mut S,
    meta: &mut RoomMeta,
    room: &RoomSettings,
    now_ms: u64,
) -> Result<(), S::Error> {
    let refresh_ms = u64::from(room.refresh_interval_secs()) * 1000;
    let (gone, gone_pre) = store.forget_idle(now_ms.saturating_sub(IDLE_REFRESHES * refresh_ms + IDLE_GRACE_MS))?;
    meta.waiting = meta.waiting.saturating_sub(gone);
    meta.pre_queued = meta.pre_queued.saturating_sub(gone_pre);
    Ok(())
}

/// `asking.user` asks to enter `room` (this shard's share) of a sale starting at `start_ms` (if
/// it has a start). A room with a challenge lets a user who is not waiting yet join (the line or
/// the pre-queue) only with a solved challenge never used before. `fresh_seed` makes the draw's
/// seed when the first user joins the pre-queue: random and unguessable in the Durable Object,
/// fixed in tests.
pub fn enter<S: RoomStore>(
    store: &mut S,
    room: &RoomSettings,
    start_ms: Option<u64>,
    asking: Asking<'_>,
    fresh_seed: impl FnOnce() -> String,
) -> Result<Entry, S::Error> {
    let Asking { user, now_ms, proof } = asking;
    if let Some(until_ms) = store.admission_of(user)? {
        if until_ms > now_ms {
            return Ok(Entry::Admitted { until_ms });
        }
    }
    let mut meta = store.meta()?;
    forget_quiet(store, &mut meta, room, now_ms)?;
    let place = store.place_of(user)?;
    if place.is_none() && room.challenge.is_some() {
        let refused = match proof {
            None => Some(false),
            Some(proof) => (!store.use_challenge(proof, now_ms)?).then_some(true),
        };
        if let Some(reused) = refused {
            meta.challenges_refused += 1;
            store.save_meta(&meta)?;
            return Ok(Entry::ChallengeRefused { reused });
        }
    }

    // Before the start: the pre-queue (the edge asks only once it is open).
    if let Some(start_ms) = start_ms.filter(|&start| now_ms < start) {
        match place {
            Some(_) => store.seen(user, now_ms)?,
            None => {
                let seed = meta.seed.get_or_insert_with(fresh_seed).clone();
                store.join_pre_queue(user, &draw_key(&seed, user), now_ms)?;
                meta.waiting += 1;
                meta.pre_queued += 1;
            }
        }
        store.save_meta(&meta)?;
        return Ok(Entry::PreQueued { draw_at_ms: start_ms, refresh_interval_secs: room.refresh_interval_secs() });
    }
    // The first call at or after the start draws the pre-queue's order, once.
    if meta.seed.is_some() && meta.drawn_at_ms.is_none() {
        let drawn = store.draw(meta.next_ticket + 1)?;
        meta.next_ticket += drawn;
        meta.drawn = drawn;
        meta.drawn_at_ms = Some(now_ms);
        meta.pre_queued = 0;
    }

    let interval_ms = u64::from(room.interval_secs) * 1000;
    let window_start = now_ms - now_ms % interval_ms;
    if meta.window_start_ms != window_start {
        meta.window_start_ms = window_start;
        meta.window_admitted = 0;
    }
    meta.active = meta.active.saturating_sub(store.expire_admissions(now_ms)?);

    let ticket = match store.place_of(user)? {
        Some(Place::Ticket(ticket)) => {
            store.seen(user, now_ms)?;
            ticket
        }
        // Drawn above, or never seen: a pre-queued user left over cannot be (the draw took all).
        Some(Place::PreQueue) | None => {
            meta.next_ticket += 1;
            store.join(user, meta.next_ticket, now_ms)?;
            meta.waiting += 1;
            meta.next_ticket
        }
    };
    let new_left = u64::from(room.new_users_per_interval).saturating_sub(meta.window_admitted);
    let active_left = u64::from(room.max_active_users).saturating_sub(meta.active);
    let free = if room.paused { 0 } else { new_left.min(active_left) };
    let mut admitted = None;
    if free > 0 {
        let next = store.first_in_line(free)?;
        if !next.is_empty() {
            let until_ms = now_ms + u64::from(room.session_secs) * 1000;
            let users: Vec<u64> = next.iter().map(|&(u, _)| u).collect();
            store.admit(&users, until_ms)?;
            meta.window_admitted += next.len() as u64;
            meta.active += next.len() as u64;
            meta.waiting = meta.waiting.saturating_sub(next.len() as u64);
            meta.admitted_total += next.len() as u64;
            meta.head = meta.head.max(next.iter().map(|&(_, t)| t).max().unwrap_or(0));
            if users.contains(&user) {
                admitted = Some(until_ms);
            }
        }
    }
    store.save_meta(&meta)?;
    if let Some(until_ms) = admitted {
        return Ok(Entry::Admitted { until_ms });
    }
    let position = ticket.saturating_sub(meta.head).max(1);
    Ok(Entry::Queued {
        ticket,
        position,
        estimated_wait_secs: estimated_wait_ms(room, position, window_start + interval_ms - now_ms).div_ceil(1000),
        refresh_interval_secs: room.refresh_interval_secs(),
        paused: room.paused,
    })
}

/// The body of the 429 a queued user gets (with `Retry-After: refreshIntervalSecs`):
/// `{"code": "QUEUED", "message", "position", "ticket", "estimatedWaitSecs", "refreshIntervalSecs", "paused"}`.
pub fn queued_body(
    ticket: u64,
    position: u64,
    estimated_wait_secs: u64,
    refresh_interval_secs: u32,
    paused: bool,
) -> String {
    let message = if paused {
        format!("you are number {position} in line; the line is paused by the shop and you keep your place, try again in {refresh_interval_secs} s")
    } else {
        format!("you are number {position} in line; about {estimated_wait_secs} s to wait, try again in {refresh_interval_secs} s")
    };
    serde_json::json!({
        "code": "QUEUED",
        "message": message,
        "position": position,
        "ticket": ticket,
        "estimatedWaitSecs": estimated_wait_secs,
        "refreshIntervalSecs": refresh_interval_secs,
        "paused": paused,
    })
    .to_string()
}

/// The body of the 429 a user in the pre-queue gets (with `Retry-After: refreshIntervalSecs`):
/// `{"code": "PRE_QUEUE", "message", "drawAt", "refreshIntervalSecs"}`, no position: the order is
/// drawn at `drawAt` (the sale's start, ms since the epoch).
pub fn pre_queue_body(draw_at_ms: u64, refresh_interval_secs: u32) -> String {
    serde_json::json!({
        "code": "PRE_QUEUE",
        "message": format!(
            "you are in the line; the order is drawn at random when the sale starts ({draw_at_ms} ms), keep asking every {refresh_interval_secs} s"
        ),
        "drawAt": draw_at_ms,
        "refreshIntervalSecs": refresh_interval_secs,
    })
    .to_string()
}

/// When `room` of a sale starting at `start_at` opens (ms since the epoch): `preQueueSecs`
/// before the start; `None` for a sale without a start (open from the moment it is listed).
/// Before then the edge says `NOT_STARTED` itself; the room never admits before the start.
pub fn room_opens_at(room: &RoomSettings, start_at: Option<u64>) -> Option<u64> {
    start_at.map(|start| start.saturating_sub(u64::from(room.pre_queue_secs) * 1000))
}

/// Which of a room's `shards` Durable Objects keeps `user`'s place.
pub fn shard_of(user: u64, shards: u32) -> u32 {
    let shards = u64::from(shards.max(1));
    u32::try_from(crate::origins::fnv1a(&[&user.to_le_bytes()]) % shards).unwrap_or(0)
}

/// A queued user's position in the whole room, from their position in their shard: the shards
/// admit their shares side by side, so the users ahead are about `shards` times as many.
pub fn room_position(shard_position: u64, shards: u32) -> u64 {
    (shard_position - 1) * u64::from(shards.max(1)) + 1
}

/// Whether the request carries a valid pass for `product_id`'s room, issued to `user_id`, at
/// `now_secs`. A pass of another sale, of another user, expired or forged is no pass (the
/// user then asks the room, which hands a lost pass out again while the session lasts).
pub fn holds_pass(
    keys: &KeySet,
    pass_header: Option<&str>,
    cookie: Option<&str>,
    product_id: u64,
    user_id: u64,
    now_secs: u64,
) -> bool {
    pass_from_headers(pass_header, cookie, product_id).is_some_and(|pass| {
        keys.derived(PASS_KEY_PURPOSE)
            .verify(pass, &pass_audience(product_id), now_secs)
            .is_ok_and(|holder| holder.user_id == user_id)
    })
}

/// The pass for a user the room admitted until `until_ms`: a token for `product_id`'s room that
/// expires with the session, and the seconds it has left (the cookie's `Max-Age`).
pub fn issue_pass(keys: &KeySet, product_id: u64, user_id: u64, now_ms: u64, until_ms: u64) -> (String, u64) {
    let now_secs = now_ms / 1000;
    let left_secs = (until_ms / 1000).saturating_sub(now_secs);
    (keys.derived(PASS_KEY_PURPOSE).sign(user_id, &pass_audience(product_id), now_secs, left_secs), left_secs)
}

/// What the identity keys are derived for to sign passes ([`KeySet::derived`]).
const PASS_KEY_PURPOSE: &str = "room-pass";

/// The wait of the user at `position` if every window admits its full share: the rest of this
/// window, then one window per `new_users_per_interval` users ahead. When the active cap is
/// what holds the line, the wait is longer than this.
fn estimated_wait_ms(room: &RoomSettings, position: u64, rest_of_window_ms: u64) -> u64 {
    let windows = position.div_ceil(u64::from(room.new_users_per_interval));
    rest_of_window_ms + (windows - 1) * u64::from(room.interval_secs) * 1000
}

/// A room in memory, for tests and for reasoning: the same contract as the SQLite one.
#[derive(Debug, Default)]
pub struct MemoryRoom {
    meta: RoomMeta,
    /// user → (place, draw key, last seen)
    waiting: std::collections::HashMap<u64, (Place, String, u64)>,
    /// user → until
    admitted: std::collections::HashMap<u64, u64>,
    /// challenge key → expires at
    used_challenges: std::collections::HashMap<String, u64>,
}

impl RoomStore for MemoryRoom {
    type Error = std::convert::Infallible;

    fn meta(&mut self) -> Result<RoomMeta, Self::Error> {
        Ok(self.meta.clone())
    }
    fn save_meta(&mut self, meta: &RoomMeta) -> Result<(), Self::Error> {
        self.meta = meta.clone();
        Ok(())
    }
    fn admission_of(&mut self, user: u64) -> Result<Option<u64>, Self::Error> {
        Ok(self.admitted.get(&user).copied())
    }
    fn place_of(&mut self, user: u64) -> Result<Option<Place>, Self::Error> {
        Ok(self.waiting.get(&user).map(|(place, _, _)| *place))
    }
    fn join_pre_queue(&mut self, user: u64, draw_key: &str, now_ms: u64) -> Result<(), Self::Error> {
        self.waiting.insert(user, (Place::PreQueue, draw_key.to_owned(), now_ms));
        Ok(())
    }
    fn join(&mut self, user: u64, ticket: u64, now_ms: u64) -> Result<(), Self::Error> {
        self.waiting.insert(user, (Place::Ticket(ticket), String::new(), now_ms));
        Ok(())
    }
    fn seen(&mut self, user: u64, now_ms: u64) -> Result<(), Self::Error> {
        if let Some((_, _, seen)) = self.waiting.get_mut(&user) {
            *seen = now_ms;
        }
        Ok(())
    }
    fn forget_idle(&mut self, before_ms: u64) -> Result<(u64, u64), Self::Error> {
        let (mut gone, mut gone_pre) = (0, 0);
        self.waiting.retain(|_, (place, _, seen)| {
            let stays = *seen >= before_ms;
            if !stays {
                gone += 1;
                gone_pre += u64::from(*place == Place::PreQueue);
            }
            stays
        });
        Ok((gone, gone_pre))
    }
    fn draw(&mut self, first_ticket: u64) -> Result<u64, Self::Error> {
        let mut pre: Vec<(String, u64)> = self
            .waiting
            .iter()
            .filter(|(_, (place, _, _))| *place == Place::PreQueue)
            .map(|(user, (_, key, _))| (key.clone(), *user))
            .collect();
        pre.sort();
        for (i, (_, user)) in pre.iter().enumerate() {
            if let Some(entry) = self.waiting.get_mut(user) {
                entry.0 = Place::Ticket(first_ticket + i as u64);
            }
        }
        Ok(pre.len() as u64)
    }
    fn expire_admissions(&mut self, now_ms: u64) -> Result<u64, Self::Error> {
        let before = self.admitted.len();
        self.admitted.retain(|_, until| *until > now_ms);
        Ok((before - self.admitted.len()) as u64)
    }
    fn first_in_line(&mut self, count: u64) -> Result<Vec<(u64, u64)>, Self::Error> {
        let mut line: Vec<(u64, u64)> = self
            .waiting
            .iter()
            .filter_map(|(user, (place, _, _))| match place {
                Place::Ticket(t) => Some((*t, *user)),
                Place::PreQueue => None,
            })
            .collect();
        line.sort_unstable();
        Ok(line.into_iter().take(usize::try_from(count).unwrap_or(usize::MAX)).map(|(t, u)| (u, t)).collect())
    }
    fn admit(&mut self, users: &[u64], until_ms: u64) -> Result<(), Self::Error> {
        for &u in users {
            self.waiting.remove(&u);
            self.admitted.insert(u, until_ms);
        }
        Ok(())
    }
    fn use_challenge(&mut self, proof: &ChallengeProof, now_ms: u64) -> Result<bool, Self::Error> {
        self.used_challenges.retain(|_, expires| *expires > now_ms);
        Ok(self.used_challenges.insert(proof.key.clone(), proof.expires_at_ms).is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOM: RoomSettings = RoomSettings {
        new_users_per_interval: 20,
        interval_secs: 2,
        max_active_users: 1000,
        session_secs: 60,
        pre_queue_secs: 0,
        shards: 1,
        paused: false,
        challenge: None,
    };
    /// A window boundary, so tests start at the beginning of a window.
    const T0: u64 = 1_800_000_000_000;

    fn enter_at(room: &mut MemoryRoom, settings: &RoomSettings, user: u64, now: u64) -> Entry {
        enter_sale(room, settings, None, user, now)
    }

    /// `user` enters the room of a sale that starts at `start` (if it has a start).
    fn enter_sale(room: &mut MemoryRoom, settings: &RoomSettings, start: Option<u64>, user: u64, now: u64) -> Entry {
        match enter(room, settings, start, Asking { user, now_ms: now, proof: None }, || "test-seed".to_owned()) {
            Ok(entry) => entry,
            Err(never) => match never {},
        }
    }

    fn position(entry: Entry) -> Option<u64> {
        match entry {
            Entry::Queued { position, .. } => Some(position),
            Entry::Admitted { .. } | Entry::PreQueued { .. } | Entry::ChallengeRefused { .. } => None,
        }
    }

    #[test]
    fn a_pass_opens_one_sale_s_room_for_one_user_until_the_session_ends() {
        let keys = KeySet::parse(seckill_protocol::token::DEV_KEYS).unwrap();
        let now_ms = T0 + 500;
        let (pass, left) = issue_pass(&keys, 7, 42, now_ms, now_ms + 300_000);
        assert_eq!(left, 300);
        let now = now_ms / 1000;
        assert!(holds_pass(&keys, Some(&pass), None, 7, 42, now));
        assert!(holds_pass(&keys, None, Some(&format!("a=b; seckill_pass_7={pass}")), 7, 42, now));
        assert!(!holds_pass(&keys, Some(&pass), None, 8, 42, now), "another sale");
        assert!(!holds_pass(&keys, Some(&pass), None, 7, 43, now), "another user");
        assert!(!holds_pass(&keys, Some(&pass), None, 7, 42, now + 300), "after the session");
        assert!(
            !holds_pass(&keys, None, Some(&format!("seckill_pass_8={pass}")), 7, 42, now),
            "the cookie of another sale"
        );
        let identity = keys.sign(42, "seckill", now, 3600);
        assert!(!holds_pass(&keys, Some(&identity), None, 7, 42, now), "an identity token is no pass");
        // Signed with the identity keys and the pass's own audience: still no pass.
        let with_room_audience = keys.sign(42, &pass_audience(7), now, 3600);
        assert!(!holds_pass(&keys, Some(&with_room_audience), None, 7, 42, now), "the identity key signs no pass");
        assert!(keys.verify(&pass, &pass_audience(7), now).is_err(), "a pass is not signed with the identity key");
        let other_keys = KeySet::parse("other:a-completely-different-signing-key-of-32-bytes").unwrap();
        let forged = issue_pass(&other_keys, 7, 42, now_ms, now_ms + 300_000).0;
        assert!(!holds_pass(&keys, Some(&forged), None, 7, 42, now), "signed with an unknown key");
        assert!(!holds_pass(&keys, None, None, 7, 42, now));
    }

    #[test]
    fn the_queued_answer_names_the_position_and_when_to_come_back() {
        let body: serde_json::Value = serde_json::from_str(&queued_body(41, 7, 12, 2, false)).unwrap();
        assert_eq!(body["code"], "QUEUED");
        assert_eq!(body["paused"], false);
        let paused: serde_json::Value = serde_json::from_str(&queued_body(41, 7, 12, 2, true)).unwrap();
        assert!(paused["message"].as_str().unwrap().contains("paused"), "{paused}");
        let pre: serde_json::Value = serde_json::from_str(&pre_queue_body(T0, 5)).unwrap();
        assert_eq!((pre["code"].as_str(), pre["drawAt"].as_u64()), (Some("PRE_QUEUE"), Some(T0)));
        assert!(pre.get("position").is_none(), "no position before the draw");
        assert_eq!((body["position"].as_u64(), body["ticket"].as_u64()), (Some(7), Some(41)));
        assert_eq!((body["estimatedWaitSecs"].as_u64(), body["refreshIntervalSecs"].as_u64()), (Some(12), Some(2)));
        assert!(body["message"].as_str().unwrap().contains("number 7 in line"));
    }

    #[test]
    fn two_hundred_at_once_are_admitted_twenty_per_interval_in_arrival_order() {
        let mut room = MemoryRoom::default();
        let mut admitted_in = std::collections::BTreeMap::<u64, u64>::new(); // user → window
        let mut last_position = std::collections::HashMap::<u64, u64>::new();
        for user in 1..=200 {
            match enter_at(&mut room, &ROOM, user, T0 + user) {
                Entry::Admitted { until_ms } => {
                    assert_eq!(until_ms, T0 + user + 60_000);
                    admitted_in.insert(user, 0);
                }
                Entry::Queued { ticket, position, estimated_wait_secs, refresh_interval_secs, .. } => {
                    assert_eq!((ticket, position), (user, user - 20), "arrival order");
                    assert_eq!(refresh_interval_secs, 2);
                    // The rest of this window (~2 s) plus one window per 20 ahead.
                    assert_eq!(estimated_wait_secs, 2 + 2 * ((position - 1) / 20), "user {user}");
                    last_position.insert(user, position);
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(admitted_in.len(), 20);
        // Everyone in line asks again each second; each window admits the next 20.
        let mut now = T0;
        while admitted_in.len() < 200 {
            now += 1000;
            for user in 1..=200 {
                if admitted_in.contains_key(&user) {
                    continue;
                }
                match enter_at(&mut room, &ROOM, user, now) {
                    Entry::Admitted { .. } => {
                        admitted_in.insert(user, (now - T0) / 2000);
                    }
                    Entry::Queued { position, .. } => {
                        let before = last_position.insert(user, position).unwrap();
                        assert!(position <= before, "user {user}: position {before} → {position}");
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
        let mut per_window = std::collections::BTreeMap::<u64, u64>::new();
        for window in admitted_in.values() {
            *per_window.entry(*window).or_default() += 1;
        }
        assert!(per_window.values().all(|&n| n == 20), "{per_window:?}");
        let windows: Vec<u64> = admitted_in.values().copied().collect(); // by user = by arrival
        assert!(windows.windows(2).all(|w| w[0] <= w[1]), "admitted in arrival order: {windows:?}");
    }

    #[test]
    fn an_admitted_user_stays_admitted_for_the_session_and_then_queues_again() {
        let room_settings = RoomSettings { new_users_per_interval: 1, ..ROOM };
        let mut room = MemoryRoom::default();
        assert_eq!(enter_at(&mut room, &room_settings, 1, T0), Entry::Admitted { until_ms: T0 + 60_000 });
        assert_eq!(position(enter_at(&mut room, &room_settings, 2, T0 + 1)), Some(1));
        // User 1 asks again (a lost pass) while user 2 waits: still in, same session end.
        assert_eq!(enter_at(&mut room, &room_settings, 1, T0 + 1000), Entry::Admitted { until_ms: T0 + 60_000 });
        assert_eq!(enter_at(&mut room, &room_settings, 2, T0 + 2000), Entry::Admitted { until_ms: T0 + 62_000 });
        // After the session, user 1 is a new arrival.
        let mut now = T0 + 60_000;
        assert_eq!(enter_at(&mut room, &room_settings, 1, now), Entry::Admitted { until_ms: now + 60_000 });
        now += 1;
        assert_eq!(position(enter_at(&mut room, &room_settings, 3, now)), Some(1));
    }

    #[test]
    fn the_active_cap_holds_the_line_until_sessions_end() {
        let capped = RoomSettings { new_users_per_interval: 5, max_active_users: 5, session_secs: 10, ..ROOM };
        let mut room = MemoryRoom::default();
        for user in 1..=5 {
            assert!(matches!(enter_at(&mut room, &capped, user, T0), Entry::Admitted { .. }));
        }
        // Later windows have room for new users, but five sessions are running.
        for t in [2_000, 4_000, 9_999] {
            assert_eq!(position(enter_at(&mut room, &capped, 6, T0 + t)), Some(1), "at +{t} ms");
        }
        assert!(matches!(enter_at(&mut room, &capped, 6, T0 + 10_000), Entry::Admitted { .. }));
    }

    #[test]
    fn a_user_who_stops_asking_loses_their_place_to_those_behind() {
        // One session at a time, 150 s long.
        let one = RoomSettings {
            new_users_per_interval: 1,
            interval_secs: 60,
            max_active_users: 1,
            session_secs: 150,
            ..ROOM
        };
        let mut room = MemoryRoom::default();
        assert!(matches!(enter_at(&mut room, &one, 1, T0), Entry::Admitted { .. }));
        assert_eq!(position(enter_at(&mut room, &one, 2, T0)), Some(1));
        assert_eq!(position(enter_at(&mut room, &one, 3, T0)), Some(2));
        // The refresh interval is 30 s: user 2 is gone after 4 × 30 s + 10 s without asking,
        // while user 3, asking every 30 s, keeps their place (still counting user 2 ahead: a
        // position is an upper bound). When user 1's session ends, user 3 is next.
        for t in (30_000..150_000).step_by(30_000) {
            assert_eq!(position(enter_at(&mut room, &one, 3, T0 + t)), Some(2), "at +{t} ms");
        }
        assert!(matches!(enter_at(&mut room, &one, 3, T0 + 150_000), Entry::Admitted { .. }));
        // Back after that, user 2 is a new arrival.
        let Entry::Queued { ticket, .. } = enter_at(&mut room, &one, 2, T0 + 150_001) else { panic!() };
        assert_eq!(ticket, 4);
    }

    /// Spearman's rank correlation of `order` (users in the order they were admitted) with the
    /// order they arrived in (their ids): 1 for first come first served, near 0 for a draw.
    fn rank_correlation(order: &[u64]) -> f64 {
        let n = order.len() as f64;
        let mut by_arrival: Vec<u64> = order.to_vec();
        by_arrival.sort_unstable();
        let d2: f64 = order
            .iter()
            .enumerate()
            .map(|(admitted, user)| {
                let arrived = by_arrival.binary_search(user).unwrap() as f64;
                (admitted as f64 - arrived).powi(2)
            })
            .sum();
        1.0 - 6.0 * d2 / (n * (n * n - 1.0))
    }

    /// Users in the order `room` admits them, everyone in line asking once a second from `from`.
    fn admitted_order(
        room: &mut MemoryRoom,
        settings: &RoomSettings,
        start: Option<u64>,
        users: &[u64],
        from: u64,
    ) -> Vec<u64> {
        let mut order = Vec::new();
        let mut now = from;
        while order.len() < users.len() {
            for &user in users {
                if !order.contains(&user)
                    && matches!(enter_sale(room, settings, start, user, now), Entry::Admitted { .. })
                {
                    order.push(user);
                }
            }
            now += 1000;
            assert!(now < from + 3_600_000, "everyone is admitted within the hour");
        }
        order
    }

    #[test]
    fn the_pre_queue_is_admitted_in_a_drawn_order_and_late_arrivals_after_it_in_arrival_order() {
        let room_settings = RoomSettings { new_users_per_interval: 10, interval_secs: 1, pre_queue_secs: 600, ..ROOM };
        let start = T0 + 60_000;
        let mut room = MemoryRoom::default();
        // 300 users join the pre-queue one after the other, before the start: no position yet.
        for user in 1..=300 {
            let entry = enter_sale(&mut room, &room_settings, Some(start), user, T0 + user * 10);
            assert_eq!(entry, Entry::PreQueued { draw_at_ms: start, refresh_interval_secs: 1 });
        }
        // They keep asking until the start (idle users would leave before the draw).
        for user in 1..=300 {
            enter_sale(&mut room, &room_settings, Some(start), user, start - 1_000);
        }
        // 20 more arrive after the start: behind all 300, first come first served.
        let late: Vec<u64> = (301..=320).collect();
        for (i, &user) in late.iter().enumerate() {
            let entry = enter_sale(&mut room, &room_settings, Some(start), user, start + i as u64);
            assert!(matches!(entry, Entry::Admitted { .. } | Entry::Queued { .. }), "{entry:?}");
        }
        let meta = room.meta().unwrap();
        assert_eq!((meta.drawn, meta.drawn_at_ms, meta.seed.as_deref()), (300, Some(start), Some("test-seed")));
        let everyone: Vec<u64> = (1..=320).collect();
        let order = admitted_order(&mut room, &room_settings, Some(start), &everyone, start + 1_000);
        // Admitted at the start's first call: the first ten of the draw.
        let (pre_queue, after): (Vec<u64>, Vec<u64>) = order.iter().partition(|&&u| u <= 300);
        assert_eq!(after, late, "late arrivals come after the pre-queue, in arrival order");
        assert!(order.iter().position(|&u| u > 300).unwrap() >= 300 - 10, "no late arrival before the drawn pre-queue");
        let rho = rank_correlation(&pre_queue);
        assert!(rho.abs() < 0.2, "the drawn order is uncorrelated with arrival: {rho}");
        assert!((rank_correlation(&late) - 1.0).abs() < 1e-9);
        // The audit: the order is the draw keys' order under the recorded seed.
        let mut by_key: Vec<u64> = (1..=300).collect();
        by_key.sort_by_key(|&u| draw_key("test-seed", u));
        // (Within one window, users are recorded in the order they asked, so compare windows.)
        // The first 20 were admitted in the start's window and the next, and recorded together.
        let windows = |order: &[u64]| -> Vec<Vec<u64>> {
            let mut chunks = vec![order[..20].to_vec()];
            chunks.extend(order[20..].chunks(10).map(<[u64]>::to_vec));
            chunks.iter_mut().for_each(|w| w.sort_unstable());
            chunks
        };
        assert_eq!(windows(&pre_queue), windows(&by_key), "anyone with the seed recomputes the order");
    }

    #[test]
    fn first_come_first_served_fails_the_draw_s_bound() {
        let mut room = MemoryRoom::default();
        let settings = RoomSettings { new_users_per_interval: 10, interval_secs: 1, ..ROOM };
        let users: Vec<u64> = (1..=300).collect();
        for &user in &users {
            enter_at(&mut room, &settings, user, T0);
        }
        let order = admitted_order(&mut room, &settings, None, &users, T0 + 1_000);
        assert!(rank_correlation(&order) > 0.99, "the bound the draw is held to is one FIFO fails");
    }

    #[test]
    fn a_paused_room_admits_nobody_and_keeps_every_place_until_it_resumes() {
        let mut room = MemoryRoom::default();
        let paused = RoomSettings { paused: true, new_users_per_interval: 2, ..ROOM };
        for user in 1..=5 {
            let entry = enter_at(&mut room, &paused, user, T0 + user);
            assert!(matches!(entry, Entry::Queued { paused: true, .. }), "{entry:?}");
        }
        for t in [2_000, 10_000] {
            assert_eq!(position(enter_at(&mut room, &paused, 5, T0 + t)), Some(5), "held at +{t} ms");
        }
        // Resumed at a pace of 2 a window: users 1 and 2, then 3 and 4, in that order.
        let resumed = RoomSettings { paused: false, ..paused };
        let at = T0 + 12_000;
        assert!(matches!(enter_at(&mut room, &resumed, 5, at), Entry::Queued { position: 3, paused: false, .. }));
        assert!(matches!(enter_at(&mut room, &resumed, 1, at), Entry::Admitted { .. }));
        assert!(matches!(enter_at(&mut room, &resumed, 3, at), Entry::Queued { position: 1, .. }));
        assert!(matches!(enter_at(&mut room, &resumed, 3, at + 2_000), Entry::Admitted { .. }));
    }

    #[test]
    fn a_room_with_a_challenge_lets_a_user_join_once_per_solution() {
        let hard = RoomSettings {
            new_users_per_interval: 1,
            challenge: Some(seckill_protocol::room::ChallengeSettings { difficulty: 8 }),
            ..ROOM
        };
        let mut room = MemoryRoom::default();
        let ask = |room: &mut MemoryRoom, user, now_ms, proof| match enter(
            room,
            &hard,
            None,
            Asking { user, now_ms, proof },
            || "seed".to_owned(),
        ) {
            Ok(entry) => entry,
            Err(never) => match never {},
        };
        let proof = |key: &str| ChallengeProof { key: key.to_owned(), expires_at_ms: T0 + 120_000 };
        let (a, b, c) = (proof("a"), proof("b"), proof("c"));
        assert_eq!(ask(&mut room, 1, T0, None), Entry::ChallengeRefused { reused: false });
        assert!(matches!(ask(&mut room, 1, T0, Some(&a)), Entry::Admitted { .. }));
        assert!(matches!(ask(&mut room, 2, T0, Some(&b)), Entry::Queued { position: 1, .. }));
        // In line, user 2 asks again without one: their place needs none.
        assert!(matches!(ask(&mut room, 2, T0 + 500, None), Entry::Queued { position: 1, .. }));
        // A used solution lets nobody else in, nor the same user once they have left.
        assert_eq!(ask(&mut room, 3, T0, Some(&b)), Entry::ChallengeRefused { reused: true });
        assert!(matches!(ask(&mut room, 3, T0, Some(&c)), Entry::Queued { .. }));
    }

    #[test]
    fn the_room_counts_who_waits_and_who_was_let_in_for_its_report() {
        let settings = RoomSettings { new_users_per_interval: 2, interval_secs: 10, pre_queue_secs: 60, ..ROOM };
        let start = T0 + 30_000;
        let mut room = MemoryRoom::default();
        for user in 1..=5 {
            enter_sale(&mut room, &settings, Some(start), user, T0);
        }
        let mut meta = room.meta().unwrap();
        assert_eq!((meta.waiting, meta.pre_queued, meta.admitted_total), (5, 5, 0));
        assert_eq!(report(&meta, T0), None, "nothing to report before the room knows which it is");
        meta.reporting = Some(Reporting { product_id: 7, shard: 1, shards: 2, room: settings });
        let before = report(&meta, T0).unwrap();
        assert_eq!((before.pre_queued, before.in_line, before.estimated_wait_secs), (5, 0, 0));
        room.save_meta(&meta).unwrap();
        // The start: the draw, two admitted, a late arrival.
        enter_sale(&mut room, &settings, Some(start), 1, start);
        enter_sale(&mut room, &settings, Some(start), 6, start + 1);
        let after = report(&room.meta().unwrap(), start + 1).unwrap();
        assert_eq!((after.pre_queued, after.in_line, after.admitted_total), (0, 4, 2));
        // Four in line at two per 10 s window: this window's rest and one more.
        assert_eq!(after.estimated_wait_secs, 20);
        assert_eq!((after.product_id, after.shard, after.shards), (7, 1, 2));
        // Users who go quiet leave the count; user 6, still asking, is let in.
        enter_sale(&mut room, &settings, Some(start), 6, start + 200_000);
        let quiet = report(&room.meta().unwrap(), start + 200_000).unwrap();
        assert_eq!((quiet.in_line, quiet.admitted_total), (0, 3), "{quiet:?}");
    }

    #[test]
    fn users_spread_evenly_over_the_shards() {
        let mut counts = [0u32; 4];
        for user in 1..=4000 {
            counts[shard_of(user, 4) as usize] += 1;
        }
        assert!(counts.iter().all(|&n| (800..=1200).contains(&n)), "{counts:?}");
        assert!((1..=100).all(|u| shard_of(u, 1) == 0));
        assert_eq!(room_position(3, 4), 9);
        assert_eq!(room_position(1, 4), 1);
    }

    #[test]
    fn a_queued_user_is_told_to_wait_for_the_window_they_will_be_admitted_in() {
        let slow = RoomSettings { new_users_per_interval: 10, interval_secs: 60, ..ROOM };
        let mut room = MemoryRoom::default();
        for user in 1..=10 {
            enter_at(&mut room, &slow, user, T0);
        }
        let at = T0 + 45_000; // 15 s left in this window
        let wait = |room: &mut MemoryRoom, user| match enter_at(room, &slow, user, at) {
            Entry::Queued { estimated_wait_secs, refresh_interval_secs, .. } => {
                (estimated_wait_secs, refresh_interval_secs)
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(wait(&mut room, 11), (15, 30), "first in line: the next window");
        for user in 12..=20 {
            wait(&mut room, user);
        }
        assert_eq!(wait(&mut room, 21), (75, 30), "eleventh in line: the window after");
    }
}
