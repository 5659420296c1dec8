//! The waiting room's rules, over any [`RoomStore`]: the Durable Object keeps one room per sale
//! in its SQLite storage (`room_object`), and the tests here use [`MemoryRoom`].
//!
//! A user who asks to enter is admitted at once while the current window still has room for new
//! users and fewer than `max_active_users` sessions are running; otherwise the user joins the
//! end of the line. Each call admits the longest-waiting users first, as many as the window and
//! the active cap allow, so users are admitted in the order they arrived, whether or not they
//! are the one asking. A queued user's position counts only users ahead of them, who can only
//! leave (admitted, or gone quiet): positions only go down while the user keeps asking.
//!
//! A user who stops asking for [`IDLE_REFRESHES`] refresh intervals (plus a grace period) loses
//! their place; an admitted user keeps their admission until the session ends, so a lost pass
//! is handed out again without queueing.

use serde::{Deserialize, Serialize};

use seckill_protocol::room::{pass_audience, pass_from_headers, RoomSettings};
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
    /// In line. `ticket` is the user's number in the order of arrival (it never changes while
    /// they wait); `position` is 1 for the next user to be admitted.
    Queued { ticket: u64, position: u64, estimated_wait_secs: u64, refresh_interval_secs: u32 },
}

/// Where a room keeps its line and its admissions. Every method is one step of [`enter`]; the
/// Durable Object runs a whole [`enter`] without yielding, so no other request interleaves.
pub trait RoomStore {
    type Error;
    /// When `user`'s admission ends, if the room admitted them and has not forgotten it.
    fn admission_of(&mut self, user: u64) -> Result<Option<u64>, Self::Error>;
    /// The user's ticket, if they are in line.
    fn ticket_of(&mut self, user: u64) -> Result<Option<u64>, Self::Error>;
    /// Puts the user at the end of the line, seen at `now_ms`; returns their ticket, greater
    /// than every ticket handed out before.
    fn join(&mut self, user: u64, now_ms: u64) -> Result<u64, Self::Error>;
    /// Notes that a user in line asked again at `now_ms`.
    fn seen(&mut self, user: u64, now_ms: u64) -> Result<(), Self::Error>;
    /// Drops from the line everyone last seen before `before_ms`.
    fn forget_idle(&mut self, before_ms: u64) -> Result<(), Self::Error>;
    /// Drops admissions whose session ended by `now_ms` and that were made before `before_ms`
    /// (admissions of the current window stay: they still count against it).
    fn forget_ended(&mut self, now_ms: u64, before_ms: u64) -> Result<(), Self::Error>;
    /// How many users were admitted at or after `since_ms`.
    fn admitted_since(&mut self, since_ms: u64) -> Result<u64, Self::Error>;
    /// How many admissions are still running at `now_ms`.
    fn active_at(&mut self, now_ms: u64) -> Result<u64, Self::Error>;
    /// The first `count` users in line, longest waiting first.
    fn first_in_line(&mut self, count: u64) -> Result<Vec<u64>, Self::Error>;
    /// Moves `users` from the line to the admitted, from `now_ms` until `until_ms`.
    fn admit(&mut self, users: &[u64], now_ms: u64, until_ms: u64) -> Result<(), Self::Error>;
    /// How many users in line hold a ticket below `ticket`.
    fn ahead_of(&mut self, ticket: u64) -> Result<u64, Self::Error>;
}

/// `user` asks to enter `room` at `now_ms`.
pub fn enter<S: RoomStore>(store: &mut S, room: &RoomSettings, user: u64, now_ms: u64) -> Result<Entry, S::Error> {
    if let Some(until_ms) = store.admission_of(user)? {
        if until_ms > now_ms {
            return Ok(Entry::Admitted { until_ms });
        }
    }
    let interval_ms = u64::from(room.interval_secs) * 1000;
    let refresh_ms = u64::from(room.refresh_interval_secs()) * 1000;
    let window_start = now_ms - now_ms % interval_ms;
    store.forget_idle(now_ms.saturating_sub(IDLE_REFRESHES * refresh_ms + IDLE_GRACE_MS))?;
    store.forget_ended(now_ms, window_start)?;

    let ticket = match store.ticket_of(user)? {
        Some(ticket) => {
            store.seen(user, now_ms)?;
            ticket
        }
        None => store.join(user, now_ms)?,
    };
    let new_left = u64::from(room.new_users_per_interval).saturating_sub(store.admitted_since(window_start)?);
    let active_left = u64::from(room.max_active_users).saturating_sub(store.active_at(now_ms)?);
    let free = new_left.min(active_left);
    if free > 0 {
        let next = store.first_in_line(free)?;
        let until_ms = now_ms + u64::from(room.session_secs) * 1000;
        store.admit(&next, now_ms, until_ms)?;
        if next.contains(&user) {
            return Ok(Entry::Admitted { until_ms });
        }
    }

    let position = store.ahead_of(ticket)? + 1;
    Ok(Entry::Queued {
        ticket,
        position,
        estimated_wait_secs: estimated_wait_ms(room, position, window_start + interval_ms - now_ms).div_ceil(1000),
        refresh_interval_secs: room.refresh_interval_secs(),
    })
}

/// The body of the 429 a queued user gets (with `Retry-After: refreshIntervalSecs`):
/// `{"code": "QUEUED", "message", "position", "ticket", "estimatedWaitSecs", "refreshIntervalSecs"}`.
pub fn queued_body(ticket: u64, position: u64, estimated_wait_secs: u64, refresh_interval_secs: u32) -> String {
    serde_json::json!({
        "code": "QUEUED",
        "message": format!(
            "you are number {position} in line; about {estimated_wait_secs} s to wait, try again in {refresh_interval_secs} s"
        ),
        "position": position,
        "ticket": ticket,
        "estimatedWaitSecs": estimated_wait_secs,
        "refreshIntervalSecs": refresh_interval_secs,
    })
    .to_string()
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
    next_ticket: u64,
    /// ticket → (user, last seen)
    line: std::collections::BTreeMap<u64, (u64, u64)>,
    /// user → (admitted at, until)
    admitted: std::collections::HashMap<u64, (u64, u64)>,
}

impl RoomStore for MemoryRoom {
    type Error = std::convert::Infallible;

    fn admission_of(&mut self, user: u64) -> Result<Option<u64>, Self::Error> {
        Ok(self.admitted.get(&user).map(|&(_, until)| until))
    }
    fn ticket_of(&mut self, user: u64) -> Result<Option<u64>, Self::Error> {
        Ok(self.line.iter().find(|(_, &(u, _))| u == user).map(|(&t, _)| t))
    }
    fn join(&mut self, user: u64, now_ms: u64) -> Result<u64, Self::Error> {
        self.next_ticket += 1;
        self.line.insert(self.next_ticket, (user, now_ms));
        Ok(self.next_ticket)
    }
    fn seen(&mut self, user: u64, now_ms: u64) -> Result<(), Self::Error> {
        for (u, seen) in self.line.values_mut() {
            if *u == user {
                *seen = now_ms;
            }
        }
        Ok(())
    }
    fn forget_idle(&mut self, before_ms: u64) -> Result<(), Self::Error> {
        self.line.retain(|_, &mut (_, seen)| seen >= before_ms);
        Ok(())
    }
    fn forget_ended(&mut self, now_ms: u64, before_ms: u64) -> Result<(), Self::Error> {
        self.admitted.retain(|_, &mut (at, until)| until > now_ms || at >= before_ms);
        Ok(())
    }
    fn admitted_since(&mut self, since_ms: u64) -> Result<u64, Self::Error> {
        Ok(self.admitted.values().filter(|&&(at, _)| at >= since_ms).count() as u64)
    }
    fn active_at(&mut self, now_ms: u64) -> Result<u64, Self::Error> {
        Ok(self.admitted.values().filter(|&&(_, until)| until > now_ms).count() as u64)
    }
    fn first_in_line(&mut self, count: u64) -> Result<Vec<u64>, Self::Error> {
        Ok(self.line.values().take(usize::try_from(count).unwrap_or(usize::MAX)).map(|&(u, _)| u).collect())
    }
    fn admit(&mut self, users: &[u64], now_ms: u64, until_ms: u64) -> Result<(), Self::Error> {
        self.line.retain(|_, (u, _)| !users.contains(u));
        for &u in users {
            self.admitted.insert(u, (now_ms, until_ms));
        }
        Ok(())
    }
    fn ahead_of(&mut self, ticket: u64) -> Result<u64, Self::Error> {
        Ok(self.line.range(..ticket).count() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOM: RoomSettings =
        RoomSettings { new_users_per_interval: 20, interval_secs: 2, max_active_users: 1000, session_secs: 60 };
    /// A window boundary, so tests start at the beginning of a window.
    const T0: u64 = 1_800_000_000_000;

    fn enter_at(room: &mut MemoryRoom, settings: &RoomSettings, user: u64, now: u64) -> Entry {
        match enter(room, settings, user, now) {
            Ok(entry) => entry,
            Err(never) => match never {},
        }
    }

    fn position(entry: Entry) -> Option<u64> {
        match entry {
            Entry::Queued { position, .. } => Some(position),
            Entry::Admitted { .. } => None,
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
        let body: serde_json::Value = serde_json::from_str(&queued_body(41, 7, 12, 2)).unwrap();
        assert_eq!(body["code"], "QUEUED");
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
                Entry::Queued { ticket, position, estimated_wait_secs, refresh_interval_secs } => {
                    assert_eq!((ticket, position), (user, user - 20), "arrival order");
                    assert_eq!(refresh_interval_secs, 2);
                    // The rest of this window (~2 s) plus one window per 20 ahead.
                    assert_eq!(estimated_wait_secs, 2 + 2 * ((position - 1) / 20), "user {user}");
                    last_position.insert(user, position);
                }
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
    fn a_user_who_stops_asking_loses_their_place_and_those_behind_move_up() {
        // One session at a time, five minutes long: the line does not move on its own.
        let one = RoomSettings { new_users_per_interval: 1, interval_secs: 60, max_active_users: 1, session_secs: 300 };
        let mut room = MemoryRoom::default();
        assert!(matches!(enter_at(&mut room, &one, 1, T0), Entry::Admitted { .. }));
        assert_eq!(position(enter_at(&mut room, &one, 2, T0)), Some(1));
        assert_eq!(position(enter_at(&mut room, &one, 3, T0)), Some(2));
        // The refresh interval is 30 s: user 2 is gone after 4 × 30 s + 10 s without asking,
        // while user 3, asking every 30 s, keeps their place and moves up.
        for t in (30_000..=120_000).step_by(30_000) {
            assert_eq!(position(enter_at(&mut room, &one, 3, T0 + t)), Some(2), "at +{t} ms");
        }
        assert_eq!(position(enter_at(&mut room, &one, 3, T0 + 130_001)), Some(1));
        // Back after that, user 2 is a new arrival, behind user 3.
        let Entry::Queued { ticket, position, .. } = enter_at(&mut room, &one, 2, T0 + 130_002) else { panic!() };
        assert_eq!((ticket, position), (4, 2));
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
