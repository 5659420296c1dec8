//! The flags in the isolate's memory: plain Rust data the Workers glue keeps for the isolate's
//! life ([`crate::flag_cache`]), checked before any Cache API call.
//!
//! Locally every Cache API call enters two more JS workers and a SQLite Durable Object on the
//! one thread that also runs the edge, and in production it is a hop inside the data centre:
//! memory is what lets an accepted buy cost about what a no-I/O answer does.
//!
//! * **Sold out** (per product): set in memory the moment the origin says so, until the TTL it
//!   gave. Not set in memory, the Cache API (where other isolates share it) is asked at most
//!   once per product per [`SOLD_OUT_RECHECK_MS`]: a buy in between goes to the origin, which
//!   answers `SOLD_OUT` and thereby sets it here.
//! * **Bought** (per user and product): memory only, at most [`MAX_BOUGHT_FLAGS`] of them, the
//!   oldest dropped first (every one lives the same TTL, so the oldest is the next to expire).
//!   A repeat that reaches another isolate, or this one after its flag was dropped, costs the
//!   origin one Redis call that refuses it.
//!
//! A flag only ever turns buys away, so a flag forgotten early costs a trip to the origin, never
//! a sale.

use std::collections::{HashMap, VecDeque};

use crate::admission::Flag;

/// How often, at most, a product's sold-out flag is looked for in the shared cache while this
/// isolate does not hold it.
pub const SOLD_OUT_RECHECK_MS: u64 = 250;

/// How many bought flags an isolate holds at most.
pub const MAX_BOUGHT_FLAGS: usize = 100_000;

/// How many products' sold-out state an isolate tracks before it drops what says nothing (a
/// flag that expired and was looked for in the shared cache long enough ago).
const MAX_SOLD_OUT_ENTRIES: usize = 10_000;

/// What memory says about a flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Set, with what was stored with it (a bought flag's order number, else empty).
    Set(String),
    /// Not set, and the shared cache need not be asked now.
    NotSet,
    /// Not set here: ask the shared cache (recorded as asked now), and [`FlagMemory::remember`]
    /// what it holds.
    AskSharedCache,
}

#[derive(Debug, Default)]
struct SoldOut {
    /// Set until then (ms since the epoch); 0 = not set.
    until_ms: u64,
    /// When the shared cache was last asked.
    asked_at_ms: Option<u64>,
}

#[derive(Debug)]
struct Bought {
    until_ms: u64,
    order_no: String,
}

/// The isolate's flags. Every method takes the time (ms since the epoch) from the caller.
#[derive(Debug, Default)]
pub struct FlagMemory {
    sold_out: HashMap<u64, SoldOut>,
    bought: HashMap<(u64, u64), Bought>,
    /// Bought flags in the order they were set, with the expiry each was set with: the
    /// eviction order. An entry whose flag was set again since is skipped when it comes up.
    bought_order: VecDeque<((u64, u64), u64)>,
}

impl FlagMemory {
    /// Whether `flag` is set at `now_ms`.
    pub fn look_up(&mut self, flag: &Flag, now_ms: u64) -> Lookup {
        match *flag {
            Flag::SoldOut { product_id } => {
                let entry = self.sold_out.entry(product_id).or_default();
                if entry.until_ms > now_ms {
                    return Lookup::Set(String::new());
                }
                if entry.asked_at_ms.is_some_and(|asked| now_ms < asked.saturating_add(SOLD_OUT_RECHECK_MS)) {
                    return Lookup::NotSet;
                }
                entry.asked_at_ms = Some(now_ms);
                if self.sold_out.len() > MAX_SOLD_OUT_ENTRIES {
                    self.sold_out.retain(|_, e| {
                        e.until_ms > now_ms || e.asked_at_ms.is_some_and(|a| now_ms < a + SOLD_OUT_RECHECK_MS)
                    });
                }
                Lookup::AskSharedCache
            }
            Flag::Bought { user_id, product_id } => match self.bought.get(&(user_id, product_id)) {
                Some(held) if held.until_ms > now_ms => Lookup::Set(held.order_no.clone()),
                Some(_) => {
                    self.bought.remove(&(user_id, product_id));
                    Lookup::NotSet
                }
                None => Lookup::NotSet,
            },
        }
    }

    /// Sets `flag` until `until_ms`, with what goes with it (a bought flag's order number).
    pub fn remember(&mut self, flag: &Flag, until_ms: u64, stored: &str) {
        match *flag {
            Flag::SoldOut { product_id } => {
                let entry = self.sold_out.entry(product_id).or_default();
                entry.until_ms = entry.until_ms.max(until_ms);
            }
            Flag::Bought { user_id, product_id } => {
                let key = (user_id, product_id);
                self.bought.insert(key, Bought { until_ms, order_no: stored.to_owned() });
                self.bought_order.push_back((key, until_ms));
                while self.bought.len() > MAX_BOUGHT_FLAGS || self.bought_order.len() > 2 * MAX_BOUGHT_FLAGS {
                    let Some((oldest, set_until)) = self.bought_order.pop_front() else { break };
                    // Dropped only if this is still the flag that entry was set with.
                    if self.bought.get(&oldest).is_some_and(|held| held.until_ms == set_until) {
                        self.bought.remove(&oldest);
                    }
                }
            }
        }
    }

    /// Clears `flag` (the order read said the buyer holds no active order any more).
    pub fn forget(&mut self, flag: &Flag) {
        match *flag {
            Flag::SoldOut { product_id } => {
                self.sold_out.remove(&product_id);
            }
            Flag::Bought { user_id, product_id } => {
                self.bought.remove(&(user_id, product_id));
            }
        }
    }

    /// How many bought flags are held.
    pub fn bought_len(&self) -> usize {
        self.bought.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOLD_OUT: Flag = Flag::SoldOut { product_id: 7 };
    const BOUGHT: Flag = Flag::Bought { user_id: 3, product_id: 7 };

    #[test]
    fn the_shared_cache_is_asked_once_per_product_per_recheck_interval() {
        let mut memory = FlagMemory::default();
        assert_eq!(memory.look_up(&SOLD_OUT, 1_000), Lookup::AskSharedCache);
        assert_eq!(memory.look_up(&SOLD_OUT, 1_001), Lookup::NotSet);
        assert_eq!(memory.look_up(&SOLD_OUT, 1_000 + SOLD_OUT_RECHECK_MS - 1), Lookup::NotSet);
        assert_eq!(memory.look_up(&Flag::SoldOut { product_id: 8 }, 1_001), Lookup::AskSharedCache, "per product");
        assert_eq!(memory.look_up(&SOLD_OUT, 1_000 + SOLD_OUT_RECHECK_MS), Lookup::AskSharedCache);
    }

    #[test]
    fn a_sold_out_flag_holds_until_its_expiry_then_the_cache_is_asked_again() {
        let mut memory = FlagMemory::default();
        memory.remember(&SOLD_OUT, 5_000, "");
        assert_eq!(memory.look_up(&SOLD_OUT, 4_999), Lookup::Set(String::new()));
        assert_eq!(memory.look_up(&SOLD_OUT, 5_000), Lookup::AskSharedCache);
        memory.remember(&SOLD_OUT, 9_000, "");
        memory.remember(&SOLD_OUT, 6_000, "");
        assert_eq!(memory.look_up(&SOLD_OUT, 8_000), Lookup::Set(String::new()), "a later expiry is kept");
        memory.forget(&SOLD_OUT);
        assert_eq!(memory.look_up(&SOLD_OUT, 8_000), Lookup::AskSharedCache);
    }

    #[test]
    fn a_bought_flag_answers_with_its_order_until_it_expires_or_is_cleared() {
        let mut memory = FlagMemory::default();
        assert_eq!(memory.look_up(&BOUGHT, 0), Lookup::NotSet, "never looked for in the shared cache");
        memory.remember(&BOUGHT, 2_000, "41-7");
        assert_eq!(memory.look_up(&BOUGHT, 1_999), Lookup::Set("41-7".into()));
        assert_eq!(memory.look_up(&Flag::Bought { user_id: 4, product_id: 7 }, 0), Lookup::NotSet, "per user");
        assert_eq!(memory.look_up(&BOUGHT, 2_000), Lookup::NotSet);
        assert_eq!(memory.bought_len(), 0, "an expired flag is dropped when read");
        memory.remember(&BOUGHT, 3_000, "42-7");
        memory.forget(&BOUGHT);
        assert_eq!(memory.look_up(&BOUGHT, 0), Lookup::NotSet);
    }

    #[test]
    fn bought_flags_are_bounded_and_the_oldest_go_first() {
        let mut memory = FlagMemory::default();
        let flag = |user_id| Flag::Bought { user_id, product_id: 1 };
        let total = MAX_BOUGHT_FLAGS as u64 + 10;
        for user in 0..total {
            memory.remember(&flag(user), 1_000_000 + user, "");
        }
        assert_eq!(memory.bought_len(), MAX_BOUGHT_FLAGS);
        assert_eq!(memory.look_up(&flag(9), 0), Lookup::NotSet, "among the oldest");
        assert_eq!(memory.look_up(&flag(10), 0), Lookup::Set(String::new()));
        assert_eq!(memory.look_up(&flag(total - 1), 0), Lookup::Set(String::new()));
        // A flag set again is not dropped for its older entry.
        memory.remember(&flag(10), 5_000_000, "again");
        memory.remember(&flag(total), 5_000_000, "");
        assert_eq!(memory.look_up(&flag(10), 0), Lookup::Set("again".into()));
    }
}
