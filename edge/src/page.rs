//! The shop page served at `/`: plain HTML, CSS and JS, compiled into the worker.
//!
//! It talks only to the edge's public API: `GET /api/products` (sales, stock, `serverTime` for
//! the countdowns), `POST /api/seckill`, `GET /api/orders/{orderNo}` (polled until the order
//! leaves `QUEUED`) and `POST /api/orders/{orderNo}/pay`.

/// The whole page, one self-contained document.
pub const SHOP_PAGE_HTML: &str = include_str!("shop.html");

/// The page may only talk to its own origin and runs only its own inline script and style, and
/// the Web Worker it makes from that script (a `blob:`) to solve a sale's challenge.
pub const SHOP_PAGE_CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; \
    style-src 'unsafe-inline'; connect-src 'self'; img-src data:; worker-src blob:; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explains_every_code_a_buyer_can_meet() {
        use seckill_protocol::errors::{Audience, ErrorCode};
        for code in ErrorCode::ALL.iter().filter(|c| c.audience() != Audience::Operators) {
            assert!(SHOP_PAGE_HTML.contains(&format!("{code}:")), "the shop page has no message for {code}");
        }
    }

    #[test]
    fn uses_only_the_public_api() {
        for route in ["/api/products", "/api/seckill", "/api/orders/"] {
            assert!(SHOP_PAGE_HTML.contains(route), "{route}");
        }
        assert!(!SHOP_PAGE_HTML.contains("/admin"));
        assert!(!SHOP_PAGE_HTML.contains("innerHTML"), "render server text with textContent");
    }

    #[test]
    fn needs_nothing_its_policy_forbids() {
        assert!(!SHOP_PAGE_HTML.contains("<script src"), "the policy runs inline scripts only");
        for attribute in ["src=\"", "href=\""] {
            for (at, _) in SHOP_PAGE_HTML.match_indices(attribute) {
                let value = &SHOP_PAGE_HTML[at + attribute.len()..];
                assert!(value.starts_with("data:"), "the policy loads nothing from elsewhere: {attribute}{value:.40}");
            }
        }
    }
}
