//! Order numbers: `<flake>-<productId>`.
//!
//! `flake` is a 63-bit number: milliseconds since 2024-01-01 (41 bits), the origin
//! instance's node id (10 bits), a per-millisecond sequence (12 bits). Unique across up
//! to 1,024 origin instances and roughly time-ordered. The product id suffix lets a status
//! lookup find the order's Redis deduction log (which lives under the product's hash tag)
//! without a global index.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

const EPOCH_MS: u64 = 1_704_067_200_000;
const NODE_BITS: u32 = 10;
const SEQ_BITS: u32 = 12;
const MAX_SEQ: u64 = (1 << SEQ_BITS) - 1;

/// Hands out order numbers for one origin instance.
pub struct OrderNoGenerator {
    node: u64,
    last: Mutex<(u64, u64)>, // (ms since epoch, sequence within that ms)
}

impl OrderNoGenerator {
    /// `node` is taken modulo 1,024; two live instances must not share one.
    pub fn new(node: u64) -> Self {
        Self { node: node & ((1 << NODE_BITS) - 1), last: Mutex::new((0, 0)) }
    }

    pub fn next(&self, product_id: u64) -> String {
        format!("{}-{}", self.next_flake(), product_id)
    }

    fn next_flake(&self) -> u64 {
        let mut last = self.last.lock().expect("order number lock");
        let mut now = now_ms();
        // A clock that steps back must not repeat numbers: keep counting from the last ms.
        if now < last.0 {
            now = last.0;
        }
        if now == last.0 {
            if last.1 == MAX_SEQ {
                // 4,096 numbers in one ms: borrow the next ms.
                now += 1;
                last.1 = 0;
            } else {
                last.1 += 1;
            }
        } else {
            last.1 = 0;
        }
        last.0 = now;
        (now << (NODE_BITS + SEQ_BITS)) | (self.node << SEQ_BITS) | last.1
    }
}

fn now_ms() -> u64 {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
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
            let flake = generator.next_flake();
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
            assert!(seen.insert(a.next(9)));
            assert!(seen.insert(b.next(9)));
        }
    }

    #[test]
    fn product_id_round_trips_and_garbage_is_rejected() {
        let generator = OrderNoGenerator::new(3);
        assert_eq!(product_of(&generator.next(42)), Some(42));
        for bad in ["", "-", "12", "12-", "-12", "a-1", "1-b", "1-0", "1-2-3", "99999999999999999999999-1"] {
            assert_eq!(product_of(bad), None, "{bad:?}");
        }
    }
}
