//! The proof of work a sale's waiting room may ask of a new user (hashcash): the edge hands out
//! a challenge, a token bound to the user, the sale and a short expiry; the browser finds a
//! nonce such that SHA-256 of `"<challenge>:<nonce>"` starts with `difficulty` zero bits, and
//! sends both in [`SOLUTION_HEADER`] with the request that joins the line. Checking it costs one
//! HMAC and one SHA-256; finding it, about 2^difficulty hashes.
//!
//! The challenge is a token in the identity format (see [`crate::token`]) signed with keys
//! derived for challenges only ([`KEY_PURPOSE`]), `sub` the user, `aud`
//! [`challenge_audience`] of the sale: it cannot be used by another user, for another sale, or
//! as an identity or a pass. Its single use is the room's to enforce (it remembers the
//! challenges it admitted to the line).

use sha2::{Digest, Sha256};

use crate::token::KeySet;

/// The header a solution travels in: `<challenge>:<nonce>`.
pub const SOLUTION_HEADER: &str = "x-seckill-challenge";
/// What the identity keys are derived for to sign challenges ([`KeySet::derived`]).
pub const KEY_PURPOSE: &str = "challenge";
/// How long a challenge may be solved and used: long enough for a slow phone.
pub const LIFETIME_SECS: u64 = 120;
/// The hardest challenge a sale may ask: 2^32 hashes is minutes on a phone.
pub const MAX_DIFFICULTY: u8 = 32;
/// The longest nonce accepted.
const MAX_NONCE_LEN: usize = 32;

/// The challenge's audience for `product_id`'s room.
pub fn challenge_audience(product_id: u64) -> String {
    format!("challenge:{product_id}")
}

/// A challenge for `user_id` at `product_id`'s room, issued at `now` (seconds).
pub fn issue(keys: &KeySet, user_id: u64, product_id: u64, now: u64) -> String {
    keys.derived(KEY_PURPOSE).sign(user_id, &challenge_audience(product_id), now, LIFETIME_SECS)
}

/// How many leading zero bits `hash` has.
pub fn leading_zero_bits(hash: &[u8]) -> u32 {
    let mut bits = 0;
    for byte in hash {
        if *byte == 0 {
            bits += 8;
        } else {
            return bits + byte.leading_zeros();
        }
    }
    bits
}

/// Whether `nonce` solves `challenge` at `difficulty`.
pub fn solves(challenge: &str, nonce: &str, difficulty: u8) -> bool {
    let hash = Sha256::new().chain_update(challenge).chain_update(b":").chain_update(nonce).finalize();
    leading_zero_bits(&hash) >= u32::from(difficulty)
}

/// A solution the edge checked: what the room records to refuse it a second time (`key`, the
/// challenge's SHA-256 in hex) and when the challenge expires (seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    pub key: String,
    pub expires_at: u64,
}

/// Why a solution is refused; each says what is wrong in its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("this sale asks for a solved challenge: GET /api/challenge?productId=, solve it, and send it in x-seckill-challenge")]
    Missing,
    #[error("the challenge solution is malformed: expected <challenge>:<nonce>")]
    Malformed,
    #[error("the challenge was not issued to this user for this sale")]
    NotYours,
    #[error("the challenge has expired: ask for a new one")]
    Expired,
    #[error("the nonce does not solve the challenge")]
    Unsolved,
    #[error("this challenge was already used: ask for a new one")]
    Reused,
}

/// Checks the solution `header` for `user_id` at `product_id`'s room asking `difficulty`, at
/// `now` (seconds). Whether it was used before is the room's to say.
pub fn check(
    keys: &KeySet,
    header: Option<&str>,
    user_id: u64,
    product_id: u64,
    difficulty: u8,
    now: u64,
) -> Result<Proof, Refusal> {
    let header = header.map(str::trim).filter(|h| !h.is_empty()).ok_or(Refusal::Missing)?;
    let (challenge, nonce) = header.rsplit_once(':').ok_or(Refusal::Malformed)?;
    if nonce.is_empty() || nonce.len() > MAX_NONCE_LEN || !nonce.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Refusal::Malformed);
    }
    let holder = keys.derived(KEY_PURPOSE).verify(challenge, &challenge_audience(product_id), now).map_err(|e| {
        if matches!(e, crate::token::TokenError::Expired) {
            Refusal::Expired
        } else {
            Refusal::NotYours
        }
    })?;
    if holder.user_id != user_id {
        return Err(Refusal::NotYours);
    }
    if !solves(challenge, nonce, difficulty) {
        return Err(Refusal::Unsolved);
    }
    let key = Sha256::digest(challenge.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    Ok(Proof { key, expires_at: holder.expires_at })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::DEV_KEYS;

    fn solve(challenge: &str, difficulty: u8) -> String {
        (0u64..).map(|n| n.to_string()).find(|nonce| solves(challenge, nonce, difficulty)).unwrap()
    }

    #[test]
    fn counts_leading_zero_bits() {
        assert_eq!(leading_zero_bits(&[0x00, 0x00, 0x80]), 16);
        assert_eq!(leading_zero_bits(&[0x00, 0x1f]), 11);
        assert_eq!(leading_zero_bits(&[0xff]), 0);
        assert_eq!(leading_zero_bits(&[0, 0]), 16);
    }

    #[test]
    fn a_solution_is_one_user_s_for_one_sale_until_it_expires() {
        let keys = KeySet::parse(DEV_KEYS).unwrap();
        let now = 1_800_000_000;
        let challenge = issue(&keys, 42, 7, now);
        let nonce = solve(&challenge, 8);
        let header = format!("{challenge}:{nonce}");
        let proof = check(&keys, Some(&header), 42, 7, 8, now + 5).unwrap();
        assert_eq!(proof.expires_at, now + LIFETIME_SECS);
        assert_eq!(proof.key.len(), 64);
        assert_eq!(check(&keys, Some(&header), 43, 7, 8, now), Err(Refusal::NotYours), "another user");
        assert_eq!(check(&keys, Some(&header), 42, 8, 8, now), Err(Refusal::NotYours), "another sale");
        assert_eq!(check(&keys, Some(&header), 42, 7, 8, now + LIFETIME_SECS), Err(Refusal::Expired));
        assert_eq!(check(&keys, None, 42, 7, 8, now), Err(Refusal::Missing));
        assert_eq!(check(&keys, Some(&challenge), 42, 7, 8, now), Err(Refusal::Malformed), "no nonce");
        assert_eq!(check(&keys, Some(&format!("{challenge}:a-b")), 42, 7, 8, now), Err(Refusal::Malformed));
        // A nonce that does not reach the difficulty (some nonce below the found one fails).
        let unsolved = (0u64..).map(|n| n.to_string()).find(|n| !solves(&challenge, n, 8)).unwrap();
        assert_eq!(check(&keys, Some(&format!("{challenge}:{unsolved}")), 42, 7, 8, now), Err(Refusal::Unsolved));
        // An identity token or a pass is no challenge, and a challenge signed elsewhere neither.
        let identity = keys.sign(42, &challenge_audience(7), now, 60);
        assert_eq!(
            check(&keys, Some(&format!("{identity}:{}", solve(&identity, 4))), 42, 7, 4, now),
            Err(Refusal::NotYours)
        );
        for refusal in [Refusal::Missing, Refusal::Expired, Refusal::Reused, Refusal::Unsolved] {
            assert!(!refusal.to_string().is_empty());
        }
    }
}
