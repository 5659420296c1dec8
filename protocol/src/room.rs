//! A sale's waiting room: the settings the admin API stores at the origin and the product list
//! publishes, which the edge enforces; and the pass an admitted user carries, so that the user's
//! later requests never touch the room again.
//!
//! A pass is an identity token (see [`crate::token`], same keys) whose audience is
//! [`pass_audience`] of the product and whose `exp` is the end of the user's session. The edge
//! signs it when the room admits the user and returns it both in [`PASS_HEADER`] (API clients
//! send it back in that header) and as the cookie [`pass_cookie_name`] (the page's browser does).

use serde::{Deserialize, Serialize};

use crate::errors::Invalid;
use crate::token::MAX_LIFETIME_SECS;

/// How a sale's room admits users: at most `new_users_per_interval` new users in each
/// `interval_secs` window (windows are aligned to the epoch), never more than `max_active_users`
/// whose session (`session_secs` from admission) has not ended, and nobody while `paused`.
///
/// With `pre_queue_secs`, the room opens that long before the sale's start: who arrives then
/// waits in a pre-queue and is put in a random order at the start (the draw); who arrives
/// later queues behind them, first come, first served. `shards` spreads the room over that many
/// Durable Objects (by a hash of the user), each admitting its share. The three are left out of
/// the JSON at their defaults (0, 1, false).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoomSettings {
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1_000_000))]
    pub new_users_per_interval: u32,
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 3600))]
    pub interval_secs: u32,
    /// At least `newUsersPerInterval`.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100_000_000))]
    pub max_active_users: u32,
    #[cfg_attr(feature = "openapi", schema(minimum = 10, maximum = 3600))]
    pub session_secs: u32,
    /// Seconds before the sale's start the pre-queue opens; 0: no pre-queue.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 86_400))]
    pub pre_queue_secs: u32,
    /// Durable Objects the room is spread over; at most `newUsersPerInterval`. Change it only
    /// before the room opens: a user's place is kept by the object their hash picks.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 32, default = 1))]
    pub shards: u32,
    /// Paused by the operator: everyone in line keeps their place and nobody is admitted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    /// A proof of work asked of every user who joins the line ([`crate::challenge`]); `null` or
    /// absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge: Option<ChallengeSettings>,
}

/// The proof of work a room asks of a new user: `difficulty` leading zero bits of SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChallengeSettings {
    /// About 2^difficulty hashes to solve; a browser does about 2^19 a second.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 32))]
    pub difficulty: u8,
}

// serde's `skip_serializing_if` and `default` take paths to functions.
#[expect(clippy::trivially_copy_pass_by_ref, reason = "serde passes a reference")]
fn is_zero(n: &u32) -> bool {
    *n == 0
}
#[expect(clippy::trivially_copy_pass_by_ref, reason = "serde passes a reference")]
fn is_one(n: &u32) -> bool {
    *n == 1
}
fn one() -> u32 {
    1
}

/// Bounds of each setting, checked by [`RoomSettings::validate`].
pub const MAX_NEW_USERS_PER_INTERVAL: u32 = 1_000_000;
pub const MAX_INTERVAL_SECS: u32 = 3600;
pub const MAX_ACTIVE_USERS: u32 = 100_000_000;
/// The shortest session: a user needs time to send the buy after being admitted.
pub const MIN_SESSION_SECS: u32 = 10;
/// The longest pre-queue: a day before the start.
pub const MAX_PRE_QUEUE_SECS: u32 = 86_400;
/// The most Durable Objects one room is spread over.
pub const MAX_SHARDS: u32 = 32;
/// A queued client is told to come back at most this long after its last try.
pub const MAX_REFRESH_SECS: u32 = 30;

impl RoomSettings {
    /// Checks every setting; the error names the field and its bounds.
    pub fn validate(&self) -> Result<(), Invalid> {
        let field = |m: String| Err(Invalid::Field(m));
        if !(1..=MAX_NEW_USERS_PER_INTERVAL).contains(&self.new_users_per_interval) {
            return field(format!("newUsersPerInterval must be between 1 and {MAX_NEW_USERS_PER_INTERVAL}"));
        }
        if !(1..=MAX_INTERVAL_SECS).contains(&self.interval_secs) {
            return field(format!("intervalSecs must be between 1 and {MAX_INTERVAL_SECS}"));
        }
        if !(1..=MAX_ACTIVE_USERS).contains(&self.max_active_users) {
            return field(format!("maxActiveUsers must be between 1 and {MAX_ACTIVE_USERS}"));
        }
        // A room that admits more users in one interval than it lets be active at once.
        if self.max_active_users < self.new_users_per_interval {
            return Err(Invalid::Combination(format!(
                "maxActiveUsers ({}) must be at least newUsersPerInterval ({})",
                self.max_active_users, self.new_users_per_interval
            )));
        }
        if self.pre_queue_secs > MAX_PRE_QUEUE_SECS {
            return field(format!("preQueueSecs must be between 0 and {MAX_PRE_QUEUE_SECS}"));
        }
        if !(1..=MAX_SHARDS).contains(&self.shards) {
            return field(format!("shards must be between 1 and {MAX_SHARDS}"));
        }
        // Each object admits its share of every interval: a share of 0 would admit nobody.
        if self.shards > self.new_users_per_interval {
            return Err(Invalid::Combination(format!(
                "shards ({}) must be at most newUsersPerInterval ({})",
                self.shards, self.new_users_per_interval
            )));
        }
        if let Some(challenge) = self.challenge {
            if !(1..=crate::challenge::MAX_DIFFICULTY).contains(&challenge.difficulty) {
                return field(format!(
                    "challenge.difficulty must be between 1 and {}",
                    crate::challenge::MAX_DIFFICULTY
                ));
            }
        }
        // The pass is a token, and no token outlives MAX_LIFETIME_SECS.
        if !(u64::from(MIN_SESSION_SECS)..=MAX_LIFETIME_SECS).contains(&u64::from(self.session_secs)) {
            return field(format!("sessionSecs must be between {MIN_SESSION_SECS} and {MAX_LIFETIME_SECS}"));
        }
        Ok(())
    }

    /// The settings shard `shard` of [`RoomSettings::shards`] enforces: its share of the new
    /// users per interval and of the active cap (the shares add up to the whole), the rest alike.
    pub fn shard_share(&self, shard: u32) -> RoomSettings {
        let n = self.shards.max(1);
        let share = |total: u32| total / n + u32::from(shard < total % n);
        RoomSettings {
            new_users_per_interval: share(self.new_users_per_interval),
            max_active_users: share(self.max_active_users),
            shards: 1,
            ..*self
        }
    }

    /// How long a queued client should wait before asking again: one interval (a new batch is
    /// admitted each interval), at most [`MAX_REFRESH_SECS`].
    pub fn refresh_interval_secs(&self) -> u32 {
        self.interval_secs.clamp(1, MAX_REFRESH_SECS)
    }
}

/// What one Durable Object of a sale's room tells the origin about itself, a few seconds apart
/// while it is busy (`POST /api/rooms/report`, with the edge secret): the origin shows it on the
/// console and in Prometheus, summed over the room's shards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoomReport {
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub product_id: u64,
    /// This object's index among the room's `shards`.
    #[cfg_attr(feature = "openapi", schema(maximum = 31))]
    pub shard: u32,
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 32))]
    pub shards: u32,
    /// Users waiting for the draw.
    pub pre_queued: u64,
    /// Users in line (drawn or arrived after the start), not admitted yet.
    pub in_line: u64,
    /// Users admitted since the room was made.
    pub admitted_total: u64,
    /// New users turned away for want of a solved challenge, or with a used one.
    pub challenges_refused: u64,
    /// The wait of the last user in line if every window admits its full share.
    pub estimated_wait_secs: u64,
    pub paused: bool,
}

impl RoomReport {
    /// Checks the report's ids; the error names the field.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.product_id == 0 {
            return Err(Invalid::Field("productId must be at least 1".into()));
        }
        if !(1..=MAX_SHARDS).contains(&self.shards) {
            return Err(Invalid::Field(format!("shards must be between 1 and {MAX_SHARDS}")));
        }
        if self.shard >= self.shards {
            return Err(Invalid::Combination(format!("shard ({}) must be below shards ({})", self.shard, self.shards)));
        }
        Ok(())
    }
}

/// The header an API client sends its pass in, and the edge returns a new pass in.
pub const PASS_HEADER: &str = "x-seckill-pass";

/// The audience of the pass for `product_id`'s room: a pass opens one sale's room only, and an
/// identity token (audience `seckill`) is never a pass.
pub fn pass_audience(product_id: u64) -> String {
    format!("room:{product_id}")
}

/// The cookie that carries the pass for `product_id` (one per sale, so passes of several sales
/// live side by side).
pub fn pass_cookie_name(product_id: u64) -> String {
    format!("seckill_pass_{product_id}")
}

/// The pass of a request for `product_id`: the [`PASS_HEADER`] first, else its cookie.
pub fn pass_from_headers<'a>(header: Option<&'a str>, cookie: Option<&'a str>, product_id: u64) -> Option<&'a str> {
    if let Some(pass) = header.map(str::trim).filter(|p| !p.is_empty()) {
        return Some(pass);
    }
    let name = pass_cookie_name(product_id);
    cookie?
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.trim())
        .filter(|p| !p.is_empty())
}

/// The `Set-Cookie` value that hands a browser its pass: HttpOnly, SameSite=Strict, sent only
/// to the API, gone when the session ends.
pub fn pass_cookie(pass: &str, product_id: u64, max_age_secs: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    let name = pass_cookie_name(product_id);
    format!("{name}={pass}; Max-Age={max_age_secs}; Path=/api; HttpOnly; SameSite=Strict{secure}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room() -> RoomSettings {
        RoomSettings {
            new_users_per_interval: 20,
            interval_secs: 2,
            max_active_users: 200,
            session_secs: 300,
            pre_queue_secs: 0,
            shards: 1,
            paused: false,
            challenge: None,
        }
    }

    #[test]
    fn shards_share_the_admissions_and_add_up_to_the_whole() {
        let r = RoomSettings { new_users_per_interval: 21, max_active_users: 202, shards: 4, ..room() };
        let shares: Vec<RoomSettings> = (0..4).map(|k| r.shard_share(k)).collect();
        assert_eq!(shares.iter().map(|s| s.new_users_per_interval).collect::<Vec<_>>(), [6, 5, 5, 5]);
        assert_eq!(shares.iter().map(|s| s.max_active_users).sum::<u32>(), 202);
        assert!(shares.iter().all(|s| s.shards == 1 && s.interval_secs == 2 && s.new_users_per_interval >= 1));
        let too_many = RoomSettings { new_users_per_interval: 3, max_active_users: 3, shards: 4, ..room() };
        assert!(matches!(too_many.validate(), Err(Invalid::Combination(m)) if m.starts_with("shards")));
    }

    #[test]
    fn the_new_settings_default_and_stay_out_of_the_json_at_their_defaults() {
        let json = r#"{"newUsersPerInterval":20,"intervalSecs":2,"maxActiveUsers":200,"sessionSecs":300,"preQueueSecs":60,"shards":4,"paused":true,"challenge":{"difficulty":18}}"#;
        let full: RoomSettings = serde_json::from_str(json).unwrap();
        let challenge = Some(ChallengeSettings { difficulty: 18 });
        assert_eq!(full, RoomSettings { pre_queue_secs: 60, shards: 4, paused: true, challenge, ..room() });
        for difficulty in [0, 33] {
            let hard = RoomSettings { challenge: Some(ChallengeSettings { difficulty }), ..room() };
            assert!(hard.validate().unwrap_err().to_string().starts_with("challenge.difficulty"));
        }
        assert_eq!(serde_json::to_string(&full).unwrap(), json);
        assert_eq!(full.validate(), Ok(()));
        assert!(RoomSettings { pre_queue_secs: MAX_PRE_QUEUE_SECS + 1, ..room() }.validate().is_err());
        assert!(RoomSettings { shards: 0, ..room() }.validate().is_err());
        assert!(RoomSettings { shards: MAX_SHARDS + 1, new_users_per_interval: 100, ..room() }.validate().is_err());
    }

    #[test]
    fn settings_out_of_bounds_name_their_field() {
        assert_eq!(room().validate(), Ok(()));
        type Change = fn(&mut RoomSettings);
        let cases: [(Change, &str); 7] = [
            (|r| r.new_users_per_interval = 0, "newUsersPerInterval"),
            (|r| r.interval_secs = 0, "intervalSecs"),
            (|r| r.interval_secs = 3601, "intervalSecs"),
            (|r| r.max_active_users = 19, "maxActiveUsers"),
            (|r| r.max_active_users = MAX_ACTIVE_USERS + 1, "maxActiveUsers"),
            (|r| r.session_secs = 9, "sessionSecs"),
            (|r| r.session_secs = 3601, "sessionSecs"),
        ];
        for (change, field) in cases {
            let mut r = room();
            change(&mut r);
            let error = r.validate().unwrap_err();
            assert!(error.to_string().starts_with(field), "{error}");
            let combination = matches!(error, Invalid::Combination(_));
            assert_eq!(combination, r.max_active_users == 19, "{error}");
        }
    }

    #[test]
    fn settings_are_camel_case_json_and_refuse_unknown_fields() {
        let json = r#"{"newUsersPerInterval":20,"intervalSecs":2,"maxActiveUsers":200,"sessionSecs":300}"#;
        assert_eq!(serde_json::from_str::<RoomSettings>(json).unwrap(), room());
        assert_eq!(serde_json::to_string(&room()).unwrap(), json);
        assert!(serde_json::from_str::<RoomSettings>(&json.replace("}", r#","extra":1}"#)).is_err());
        assert!(serde_json::from_str::<RoomSettings>(&json.replace("20,", "-1,")).is_err());
    }

    #[test]
    fn the_client_refreshes_each_interval_but_at_least_every_30_s() {
        assert_eq!(room().refresh_interval_secs(), 2);
        assert_eq!(RoomSettings { interval_secs: 600, ..room() }.refresh_interval_secs(), 30);
    }

    #[test]
    fn the_pass_header_wins_over_the_sale_s_cookie() {
        assert_eq!(pass_from_headers(Some("p1"), Some("seckill_pass_7=p2"), 7), Some("p1"));
        assert_eq!(pass_from_headers(None, Some("a=1; seckill_pass_7=p2; seckill_pass_8=p3"), 7), Some("p2"));
        assert_eq!(pass_from_headers(None, Some("seckill_pass_8=p3"), 7), None);
        assert_eq!(pass_from_headers(Some(" "), Some("seckill_pass_70=p3"), 7), None);
        assert_eq!(pass_from_headers(None, None, 7), None);
    }

    #[test]
    fn the_pass_cookie_is_http_only_strict_and_api_only() {
        let c = pass_cookie("t", 7, 300, false);
        assert_eq!(c, "seckill_pass_7=t; Max-Age=300; Path=/api; HttpOnly; SameSite=Strict");
        assert!(pass_cookie("t", 7, 300, true).ends_with("; Secure"));
    }
}
