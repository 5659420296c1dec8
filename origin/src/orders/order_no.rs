//! Order numbers: `<flake>-<productId>`.
//!
//! `flake` is a 63-bit number: milliseconds since 2024-01-01 (41 bits), the origin
//! instance's node id (10 bits, leased from MySQL: [`super::node_lease`]), a per-millisecond
//! sequence (12 bits). Unique across up to 1,024 live origin instances, however often they
//! restart, and roughly time-ordered. The product id suffix lets a status
//! lookup find the order's Redis deduction log (which lives under the product's hash tag)
//! without a global index.

use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

const EPOCH_MS: u64 = 1_704_067_200_000;
const NODE_BITS: u32 = 10;
const SEQ_BITS: u32 = 12;
const MAX_SEQ: u64 = (1 << SEQ_BITS) - 1;
/// How many origin instances can mint order numbers at once.
pub const MAX_NODES: u64 = 1 << NODE_BITS;

/// No order number can be minted: this instance cannot prove it holds its node id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this origin holds no order-number node lease right now")]
pub struct NoLease;

/// Hands out order numbers for one origin instance.
#[derive(Debug)]
pub struct OrderNoGenerator {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    node: u64,
    /// The last flake's ms since [`EPOCH_MS`] and its sequence within that ms.
    last_ms: u64,
    seq: u64,
    /// Minting is allowed until then; `None`: never (a lease not proven yet, or lost).
    valid_until: Option<Instant>,
}

impl State {
    /// Mint nothing before `floor_unix_ms`.
    fn raise_floor(&mut self, floor_unix_ms: u64) {
        let floor = floor_unix_ms.saturating_sub(EPOCH_MS);
        if floor > self.last_ms {
            // The floor's own ms is free: the first number takes sequence 0 of it.
            (self.last_ms, self.seq) = (floor.saturating_sub(1), MAX_SEQ);
        }
    }
}

impl OrderNoGenerator {
    /// A generator for a fixed `node` (taken modulo 1,024) that never expires: for tests and
    /// tools that mint outside a running origin. Two live generators must not share a node.
    pub fn new(node: u64) -> Self {
        let generator = Self::leased(node, 0);
        generator.state.lock().expect("order number lock").valid_until = Some(far_future());
        generator
    }

    /// A generator for a leased `node` that mints nothing before `floor_unix_ms` (the end of
    /// the node's previous lease) and nothing until [`Self::extend_until`] proves the lease.
    pub fn leased(node: u64, floor_unix_ms: u64) -> Self {
        let mut state = State { node: node % MAX_NODES, last_ms: 0, seq: 0, valid_until: None };
        state.raise_floor(floor_unix_ms);
        Self { state: Mutex::new(state) }
    }

    /// The highest millisecond (Unix, this process's clock) minted so far, or the floor the
    /// generator was given: a node's next holder mints after it.
    pub fn last_minted_unix_ms(&self) -> u64 {
        self.state.lock().expect("order number lock").last_ms + EPOCH_MS
    }

    /// The node id numbers are minted under now.
    pub fn node(&self) -> u64 {
        self.state.lock().expect("order number lock").node
    }

    /// The lease is proven until `deadline` (this process's clock).
    pub fn extend_until(&self, deadline: Instant) {
        let mut state = self.state.lock().expect("order number lock");
        state.valid_until = Some(state.valid_until.map_or(deadline, |v| v.max(deadline)));
    }

    /// The lease is gone: mint nothing until a new one is proven.
    pub fn revoke(&self) {
        self.state.lock().expect("order number lock").valid_until = None;
    }

    /// Mint under a newly claimed `node` from `floor_unix_ms` on (after [`Self::revoke`]).
    pub fn switch(&self, node: u64, floor_unix_ms: u64) {
        let mut state = self.state.lock().expect("order number lock");
        state.node = node % MAX_NODES;
        state.raise_floor(floor_unix_ms);
    }

    /// A fresh order number for `product_id`, or [`NoLease`].
    pub fn next(&self, product_id: u64) -> Result<String, NoLease> {
        Ok(format!("{}-{}", self.next_flake()?, product_id))
    }

    fn next_flake(&self) -> Result<u64, NoLease> {
        let mut state = self.state.lock().expect("order number lock");
        if state.valid_until.is_none_or(|until| Instant::now() >= until) {
            return Err(NoLease);
        }
        let mut now = now_ms();
        // A clock that steps back (or a floor ahead of it) must not repeat numbers: keep
        // counting from the last ms.
        if now < state.last_ms {
            now = state.last_ms;
        }
        if now == state.last_ms {
            if state.seq == MAX_SEQ {
                // 4,096 numbers in one ms: borrow the next ms.
                now += 1;
                state.seq = 0;
            } else {
                state.seq += 1;
            }
        } else {
            state.seq = 0;
        }
        state.last_ms = now;
        Ok((now << (NODE_BITS + SEQ_BITS)) | (state.node << SEQ_BITS) | state.seq)
    }
}

fn far_future() -> Instant {
    Instant::now() + std::time::Duration::from_secs(100 * 365 * 24 * 3600)
}

fn now_ms() -> u64 {
    let ms =
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    ms.saturating_sub(EPOCH_MS)
}

/// The product id an order number carries, or `None` if it is not an order number.
pub fn product_of(order_no: &str) -> Option<u64> {
    let (flake, product) = order_no.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(flake) || !digits(product) {
        return None;
    }
    flake.parse::<u64>().ok()?;
    product.parse::<u64>().ok().filter(|p| *p > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn numbers_are_unique_and_increasing_within_an_instance() {
        let generator = OrderNoGenerator::new(7);
        let mut seen = HashSet::new();
        let mut previous = 0;
        for _ in 0..20_000 {
            let flake = generator.next_flake().unwrap();
            assert!(flake > previous, "{flake} after {previous}");
            assert!(seen.insert(flake));
            previous = flake;
        }
    }

    #[test]
    fn instances_with_different_nodes_never_collide() {
        let a = OrderNoGenerator::new(1);
        let b = OrderNoGenerator::new(2);
        let mut seen = HashSet::new();
        for _ in 0..5_000 {
            assert!(seen.insert(a.next(9).unwrap()));
            assert!(seen.insert(b.next(9).unwrap()));
        }
    }

    #[test]
    fn a_leased_generator_mints_only_while_its_lease_is_proven() {
        let generator = OrderNoGenerator::leased(5, 0);
        assert_eq!(generator.next(1), Err(NoLease), "no number before the lease is proven");
        generator.extend_until(Instant::now() + std::time::Duration::from_secs(60));
        assert!(generator.next(1).is_ok());
        generator.revoke();
        assert_eq!(generator.next(1), Err(NoLease));
        generator.extend_until(Instant::now() - std::time::Duration::from_millis(1));
        assert_eq!(generator.next(1), Err(NoLease), "a lease proven only until the past");
    }

    #[test]
    fn a_taken_over_node_mints_after_its_previous_lease() {
        // The previous holder's lease ran until an hour from now (a clock ahead of ours).
        let floor_unix =
            u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap() + 3_600_000;
        let generator = OrderNoGenerator::leased(9, floor_unix);
        generator.extend_until(Instant::now() + std::time::Duration::from_secs(60));
        let first = generator.next_flake().unwrap();
        assert_eq!(first >> (NODE_BITS + SEQ_BITS), floor_unix - EPOCH_MS, "starts at the floor's ms");
        assert_eq!(first & MAX_SEQ, 0);
        assert_eq!((first >> SEQ_BITS) & (MAX_NODES - 1), 9);
        // Switching to another node never goes back in time either.
        generator.switch(10, 0);
        let next = generator.next_flake().unwrap();
        assert!(next >> (NODE_BITS + SEQ_BITS) >= floor_unix - EPOCH_MS);
        assert_eq!((next >> SEQ_BITS) & (MAX_NODES - 1), 10);
    }

    #[test]
    fn product_id_round_trips_and_garbage_is_rejected() {
        let generator = OrderNoGenerator::new(3);
        assert_eq!(product_of(&generator.next(42).unwrap()), Some(42));
        for bad in ["", "-", "12", "12-", "-12", "a-1", "1-b", "1-0", "1-2-3", "99999999999999999999999-1"] {
            assert_eq!(product_of(bad), None, "{bad:?}");
        }
    }
}
