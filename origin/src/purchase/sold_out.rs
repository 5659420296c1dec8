//! Products this origin recently saw sold out, answered from memory.
//!
//! Once Redis says a product has no stock left, every further buy of it would get the same
//! answer for the price of a Redis round trip. Remembering it for a short while makes those
//! answers as cheap as a route without I/O. Stock can come back (an unpaid order cancelled),
//! so the memory is short: a buyer at worst hears SOLD_OUT a fraction of a second too long,
//! and nothing is ever oversold by it (it only turns buys away).

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct SoldOutMemo {
    ttl: Duration,
    until: RwLock<HashMap<u64, Instant>>,
}

impl SoldOutMemo {
    /// `ttl` zero turns the memo off.
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, until: RwLock::new(HashMap::new()) }
    }

    /// True while a recent SOLD_OUT (stock 0) of `product_id` is remembered.
    pub fn is_sold_out(&self, product_id: u64) -> bool {
        self.is_sold_out_at(product_id, Instant::now())
    }

    fn is_sold_out_at(&self, product_id: u64, now: Instant) -> bool {
        self.until.read().expect("sold-out memo lock").get(&product_id).is_some_and(|until| now < *until)
    }

    /// Remembers that Redis just said `product_id` has no stock left.
    pub fn remember(&self, product_id: u64) {
        self.remember_at(product_id, Instant::now());
    }

    fn remember_at(&self, product_id: u64, now: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        let mut until = self.until.write().expect("sold-out memo lock");
        // Products are few; drop expired ones so a long-running origin does not grow.
        if until.len() > 10_000 {
            until.retain(|_, t| *t > now);
        }
        until.insert(product_id, now + self.ttl);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_product_is_sold_out_until_the_ttl_passes() {
        let memo = SoldOutMemo::new(Duration::from_millis(250));
        let t0 = Instant::now();
        assert!(!memo.is_sold_out_at(1, t0));
        memo.remember_at(1, t0);
        assert!(memo.is_sold_out_at(1, t0 + Duration::from_millis(249)));
        assert!(!memo.is_sold_out_at(1, t0 + Duration::from_millis(250)));
        assert!(!memo.is_sold_out_at(2, t0), "other products are not affected");
    }

    #[test]
    fn a_zero_ttl_remembers_nothing() {
        let memo = SoldOutMemo::new(Duration::ZERO);
        memo.remember(1);
        assert!(!memo.is_sold_out(1));
    }
}
