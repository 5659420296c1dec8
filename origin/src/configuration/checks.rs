//! What the origin checks of its settings before it starts: that the unpaid-order cancel can
//! work as configured, and that nothing public or weak is served outside the local environment.

use super::Settings;

/// The admin token `config/base.toml` ships with (public: local use only).
pub const DEV_ADMIN_TOKEN: &str = "dev-admin-token";

impl Settings {
    /// Whether this is the local environment: development secrets and the local login allowed.
    pub fn is_local(&self) -> bool {
        self.environment == LOCAL_ENVIRONMENT
    }

    /// Whether `POST /api/login` answers: switched on, and only in the local environment.
    pub fn local_login(&self) -> bool {
        self.auth.local_login && self.is_local()
    }

    /// Why the unpaid-order cancel cannot work as configured, naming the settings: its delay
    /// level must wait at least `orders.pay_timeout_secs`, else every cancel arrives while
    /// its order may still be paid.
    pub fn cancel_timing_problem(&self) -> Option<String> {
        let mq = &self.rocketmq;
        let delay = match mq.delay_of(mq.cancel_delay_level) {
            Ok(delay) => delay,
            Err(e) => return Some(format!("rocketmq.cancel_delay_level {}: {e}", mq.cancel_delay_level)),
        };
        if let Err(e) = mq.delay_of(mq.cancel_retry_delay_level) {
            return Some(format!("rocketmq.cancel_retry_delay_level {}: {e}", mq.cancel_retry_delay_level));
        }
        (delay.as_secs() < self.orders.pay_timeout_secs).then(|| {
            format!(
                "rocketmq.cancel_delay_level {} waits {} s on the broker (rocketmq.delay_levels) but \
                 orders.pay_timeout_secs is {}: the cancel would come before the order expires",
                mq.cancel_delay_level,
                delay.as_secs(),
                self.orders.pay_timeout_secs
            )
        })
    }

    /// What makes these settings unsafe to serve with, each naming its setting: an empty edge
    /// secret (anywhere), and outside the local environment the public development admin token,
    /// edge secret or signing key, a token or secret shorter than [`MIN_SECRET_BYTES`], or the
    /// local login switched on. Empty when safe.
    pub fn unsafe_defaults(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.http.edge_secret.trim().is_empty() {
            problems.push("http.edge_secret (APP_HTTP__EDGE_SECRET) is empty: /api/* would be open to anyone".into());
        }
        if !self.is_local() {
            for (name, value) in [
                ("http.admin_token (APP_HTTP__ADMIN_TOKEN)", &self.http.admin_token),
                ("http.edge_secret (APP_HTTP__EDGE_SECRET)", &self.http.edge_secret),
            ] {
                if value.len() < MIN_SECRET_BYTES {
                    problems.push(format!(
                        "{name} is {} bytes; outside {LOCAL_ENVIRONMENT:?} it must be at least {MIN_SECRET_BYTES}",
                        value.len()
                    ));
                }
            }
            if self.auth.local_login {
                problems.push(format!(
                    "auth.local_login (APP_AUTH__LOCAL_LOGIN) is on: it signs a token for any user id, \
                     so only {LOCAL_ENVIRONMENT:?} may have it"
                ));
            }
            if self.http.admin_token == DEV_ADMIN_TOKEN || self.http.admin_token.trim().is_empty() {
                problems.push(format!(
                    "http.admin_token (APP_HTTP__ADMIN_TOKEN) is the public default {DEV_ADMIN_TOKEN:?} or empty"
                ));
            }
            if self.http.edge_secret == DEV_EDGE_SECRET {
                problems.push(format!(
                    "http.edge_secret (APP_HTTP__EDGE_SECRET) is the public default {DEV_EDGE_SECRET:?}"
                ));
            }
            if seckill_protocol::token::KeySet::parse(&self.auth.token_keys).is_ok_and(|k| k.has_development_key()) {
                problems.push("auth.token_keys (APP_AUTH__TOKEN_KEYS) holds the public development signing key".into());
            }
        }
        problems
    }
}

/// The edge secret `config/base.toml` and the stack ship with (public: local use only).
pub const DEV_EDGE_SECRET: &str = "dev-edge-secret";

/// The environment of development and tests: the only one that may keep the public defaults.
pub const LOCAL_ENVIRONMENT: &str = "local";

/// The shortest admin token and edge secret outside the local environment: 256 bits.
pub const MIN_SECRET_BYTES: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::configuration::tests::settings;
    use crate::configuration::DEFAULT_DELAY_LEVELS;

    #[test]
    fn outside_local_short_or_public_secrets_and_the_local_login_are_refused_by_name() {
        let mut s = settings();
        s.http.admin_token = DEV_ADMIN_TOKEN.into();
        s.http.edge_secret = DEV_EDGE_SECRET.into();
        s.auth.local_login = true;
        assert_eq!(s.unsafe_defaults(), Vec::<String>::new(), "local may keep the defaults");
        assert!(s.local_login());
        s.environment = "production".into();
        assert!(!s.local_login(), "no login outside local, whatever the setting");
        let problems = s.unsafe_defaults().join("\n");
        for named in ["http.admin_token", "http.edge_secret", "auth.local_login", "at least 32"] {
            assert!(problems.contains(named), "{named}: {problems}");
        }
        s.http.admin_token = "a".repeat(MIN_SECRET_BYTES - 1);
        s.http.edge_secret = "b".repeat(MIN_SECRET_BYTES);
        s.auth.local_login = false;
        s.auth.token_keys = "prod:a-production-signing-key-0123456789abcdef".into();
        assert_eq!(s.unsafe_defaults().len(), 1, "{:?}", s.unsafe_defaults());
        assert!(s.unsafe_defaults()[0].starts_with("http.admin_token"), "{:?}", s.unsafe_defaults());
        s.http.admin_token = "a".repeat(MIN_SECRET_BYTES);
        assert_eq!(s.unsafe_defaults(), Vec::<String>::new());
    }

    #[test]
    fn a_cancel_level_shorter_than_the_pay_timeout_is_refused_naming_both() {
        let mut s = settings();
        s.rocketmq.delay_levels = DEFAULT_DELAY_LEVELS.into();
        s.rocketmq.cancel_delay_level = 16;
        s.orders.pay_timeout_secs = 1800;
        assert_eq!(s.cancel_timing_problem(), None);
        s.orders.pay_timeout_secs = 1801;
        let problem = s.cancel_timing_problem().unwrap();
        assert!(problem.contains("cancel_delay_level 16") && problem.contains("pay_timeout_secs"), "{problem}");
        s.rocketmq.cancel_delay_level = 40;
        assert!(s.cancel_timing_problem().unwrap().contains("no level 40"));
    }
}
