//! The invariant checker every end-to-end test ends with ([`crate::invariants`] for each of
//! the app's products), and the Redis state a test sets up for it when it hands the writer
//! messages itself.

use std::time::Duration;

use super::TestApp;
use crate::invariants;

impl TestApp {
    /// Takes stock in Redis for `orders` as the buy path would have before sending them (stock,
    /// buyer, deduction): for tests that hand messages to the writer themselves, so the
    /// invariant checker sees the state a real buy leaves.
    pub async fn take_for(&self, orders: &[&seckill_origin::orders::OrderMessage]) {
        for o in orders {
            let taken = self.server.state.stock().take(o.product_id, o.user_id, o.quantity, &o.order_no).await.unwrap();
            assert!(matches!(taken, seckill_origin::stock::BuyOutcome::Taken { .. }), "{taken:?}");
        }
    }

    /// The invariant checker, run at the end of every end-to-end test: once the queue has
    /// drained, [`TestApp::assert_invariants`] for every product of this test's database that
    /// Redis holds (initial = the product's initial stock), nothing in Redis or MySQL for a
    /// product it does not hold, and no dead letters.
    pub async fn check(&self) {
        self.check_expecting_dead_letters(0).await
    }

    /// [`TestApp::check`] for a test that dead-letters `expected` messages on purpose.
    pub async fn check_expecting_dead_letters(&self, expected: usize) {
        let products: Vec<(u64, i64)> =
            sqlx::query_as("SELECT id, CAST(initial_stock AS SIGNED) FROM tb_seckill_product ORDER BY id")
                .fetch_all(&self.db)
                .await
                .unwrap();
        for (product, initial) in products {
            let stock_key = self.product_key(product, "stock");
            let loaded: bool = redis::cmd("EXISTS").arg(&stock_key).query_async(&mut self.redis.clone()).await.unwrap();
            if loaded {
                self.assert_invariants(product, initial).await;
            } else {
                let orders =
                    self.count(&format!("SELECT COUNT(*) FROM tb_seckill_order WHERE product_id = {product}")).await;
                let deductions: u64 = redis::cmd("HLEN")
                    .arg(self.product_key(product, "orders"))
                    .query_async(&mut self.redis.clone())
                    .await
                    .unwrap();
                assert_eq!((orders, deductions), (0, 0), "product {product} is not in Redis yet has orders");
            }
        }
        let (_, letters) = self.admin_get("/admin/dead-letters").await;
        let listed = letters["deadLetters"].as_array().map_or(0, Vec::len);
        assert_eq!(listed, expected, "dead letters: {letters}");
    }

    /// Waits (up to 60 s) until the product's outbox is empty and every deduction in Redis has
    /// its row in MySQL, then checks the system's invariants for it
    /// ([`invariants::ProductState::violations`]); panics naming every one that does not hold.
    pub async fn assert_invariants(&self, product: u64, initial: i64) {
        let state = self.product_state(product);
        let drained = state.wait_drained(Duration::from_secs(60)).await;
        let broken = state.violations(initial).await;
        assert!(drained && broken.is_empty(), "product {product}: {}", broken.join("; "));
    }

    /// Where `product`'s state lives, for [`invariants`].
    pub fn product_state(&self, product: u64) -> invariants::ProductState {
        invariants::ProductState {
            db: self.db.clone(),
            redis: self.redis.clone(),
            key_prefix: self.settings.redis.key_prefix.clone(),
            product,
        }
    }
}
