//! Identity tokens signed as the local login signs them, for tests and load generators that
//! act as users.

use seckill_origin::configuration::Settings;

/// A token for `user_id` signed with `settings`' keys (the first one), living an hour.
pub fn token_for(settings: &Settings, user_id: u64) -> String {
    Tokens::new(settings).for_user(user_id)
}

/// Signs identity tokens as the local login does, for load generators that act as many users.
#[derive(Debug, Clone)]
pub struct Tokens {
    keys: std::sync::Arc<seckill_protocol::token::KeySet>,
    audience: String,
}

impl Tokens {
    pub fn new(settings: &Settings) -> Tokens {
        let keys = seckill_protocol::token::KeySet::parse(&settings.auth.token_keys).expect("the auth keys parse");
        Tokens { keys: std::sync::Arc::new(keys), audience: settings.auth.audience.clone() }
    }

    /// A token for `user_id`, issued now, living an hour.
    pub fn for_user(&self, user_id: u64) -> String {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        self.keys.sign(user_id, &self.audience, now, 3600)
    }
}
