//! The edge's public routes. Anything not listed is answered at the edge (404/405); in
//! particular `/admin/*` is never reachable through the edge.

/// What a request is, by method and path (query strings are not part of `path`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// `GET /`: the shop page.
    ShopPage,
    /// `POST /api/login`: forwarded (the origin signs tokens only in the local environment).
    Login,
    /// `POST /api/seckill`: a buy, admitted at the edge or forwarded.
    Buy,
    /// `GET /api/products`: the sale list, cached at the edge for about a second.
    ProductList,
    /// `GET /api/challenge?productId=`: a proof-of-work challenge for the signed-in user, for a
    /// sale whose room asks one.
    Challenge,
    /// `GET /api/orders?productId=`: the signed-in user's orders of a product, forwarded.
    BuyerOrders,
    /// `GET /api/orders/{orderNo}`: forwarded.
    Order { order_no: &'a str },
    /// `POST /api/orders/{orderNo}/pay`: forwarded.
    PayOrder { order_no: &'a str },
    /// A known path with the wrong method.
    MethodNotAllowed,
    /// Anything else.
    NotFound,
}

impl Route<'_> {
    /// Whether the route needs a signed-in user: every `/api/*` route but the login and the
    /// product list. Without one the edge answers 401 and the origin never hears of it.
    pub fn needs_identity(&self) -> bool {
        matches!(
            self,
            Route::Buy | Route::Challenge | Route::BuyerOrders | Route::Order { .. } | Route::PayOrder { .. }
        )
    }
}

/// Longest order number accepted in a path (the origin's column is `VARCHAR(40)`).
const MAX_ORDER_NO_LEN: usize = 64;

/// Maps a request to its route. `method` is upper case, as HTTP sends it.
pub fn route<'a>(method: &str, path: &'a str) -> Route<'a> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (route, allowed) = match segments.as_slice() {
        [""] => (Route::ShopPage, "GET"),
        ["api", "login"] => (Route::Login, "POST"),
        ["api", "seckill"] => (Route::Buy, "POST"),
        ["api", "products"] => (Route::ProductList, "GET"),
        ["api", "challenge"] => (Route::Challenge, "GET"),
        ["api", "orders"] => (Route::BuyerOrders, "GET"),
        ["api", "orders", order_no] if is_order_no(order_no) => (Route::Order { order_no }, "GET"),
        ["api", "orders", order_no, "pay"] if is_order_no(order_no) => (Route::PayOrder { order_no }, "POST"),
        _ => return Route::NotFound,
    };
    if method == allowed {
        route
    } else {
        Route::MethodNotAllowed
    }
}

/// Order numbers are plain tokens; anything else (dots, escapes, empty) cannot be one, and
/// refusing it here keeps odd paths from being forwarded to the origin at all.
fn is_order_no(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ORDER_NO_LEN
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_the_public_api() {
        assert_eq!(route("GET", "/"), Route::ShopPage);
        assert_eq!(route("POST", "/api/seckill"), Route::Buy);
        assert_eq!(route("POST", "/api/login"), Route::Login);
        assert_eq!(route("GET", "/api/products"), Route::ProductList);
        assert_eq!(route("GET", "/api/orders/SK20261123-00042"), Route::Order { order_no: "SK20261123-00042" });
        assert_eq!(route("POST", "/api/orders/abc_123/pay"), Route::PayOrder { order_no: "abc_123" });
        assert_eq!(route("GET", "/api/orders"), Route::BuyerOrders);
        assert_eq!(route("GET", "/api/challenge"), Route::Challenge);
        assert_eq!(route("POST", "/api/orders"), Route::MethodNotAllowed);
    }

    #[test]
    fn only_the_page_login_and_product_list_are_open_to_anyone() {
        let open: Vec<_> = [
            route("GET", "/"),
            route("POST", "/api/login"),
            route("GET", "/api/products"),
            route("POST", "/api/seckill"),
            route("GET", "/api/orders/A1"),
            route("POST", "/api/orders/A1/pay"),
        ]
        .into_iter()
        .filter(|r| !r.needs_identity())
        .collect();
        assert_eq!(open, [Route::ShopPage, Route::Login, Route::ProductList]);
    }

    #[test]
    fn wrong_methods_are_405() {
        assert_eq!(route("GET", "/api/login"), Route::MethodNotAllowed);
        assert_eq!(route("GET", "/api/seckill"), Route::MethodNotAllowed);
        assert_eq!(route("POST", "/api/products"), Route::MethodNotAllowed);
        assert_eq!(route("DELETE", "/api/orders/A1"), Route::MethodNotAllowed);
        assert_eq!(route("GET", "/api/orders/A1/pay"), Route::MethodNotAllowed);
        assert_eq!(route("POST", "/"), Route::MethodNotAllowed);
    }

    #[test]
    fn everything_else_is_404() {
        for path in [
            "/admin/products",
            "/admin/metrics",
            "/health",
            "/api",
            "/api/",
            "/api/seckill/",
            "/api/orders/",
            "/api/orders/../admin",
            "/api/orders/a.b",
            "/api/orders/a%2Fb",
            "/api/orders/A1/refund",
            "/index.html",
        ] {
            assert_eq!(route("GET", path), Route::NotFound, "GET {path}");
            assert_eq!(route("POST", path), Route::NotFound, "POST {path}");
        }
        let long = format!("/api/orders/{}", "9".repeat(MAX_ORDER_NO_LEN + 1));
        assert_eq!(route("GET", &long), Route::NotFound);
    }
}
