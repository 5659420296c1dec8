//! Query strings of the public API. Each route takes the parameters it names and nothing else:
//! an unknown one is a 400 naming it, never ignored (a misspelt filter that is silently dropped
//! answers a different question than the one asked). The shop page ignores its query (links
//! carry campaign tags).

use seckill_protocol::json::plain_integer;

use crate::answers::EdgeError;
use crate::routes::Route;

/// What a route's query says, once checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query {
    /// The route takes no parameters and none were sent.
    None,
    /// `GET /api/orders?productId=` and `GET /api/challenge?productId=`: the product.
    ProductId(u64),
}

/// Checks `query` (the URL's query without `?`, if any) against what `route` takes.
pub fn check(route: &Route<'_>, query: Option<&str>) -> Result<Query, EdgeError> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    match route {
        Route::ShopPage => Ok(Query::None),
        Route::BuyerOrders | Route::Challenge => {
            unknown(&pairs, &["productId"])?;
            let mut ids = pairs.iter().filter(|(k, _)| k == "productId").map(|(_, v)| v);
            match (ids.next(), ids.next()) {
                (Some(raw), None) => {
                    plain_integer(raw).parse::<u64>().ok().filter(|id| *id >= 1).map(Query::ProductId).ok_or_else(
                        || EdgeError::bad_request(format!("productId must be a positive integer, got {raw:?}")),
                    )
                }
                (None, _) => Err(EdgeError::bad_request("productId is required")),
                (Some(_), Some(_)) => Err(EdgeError::bad_request("productId is given more than once")),
            }
        }
        _ => unknown(&pairs, &[]).map(|()| Query::None),
    }
}

/// A 400 naming the parameters of `pairs` that are not in `known`.
fn unknown(pairs: &[(String, String)], known: &[&str]) -> Result<(), EdgeError> {
    let mut names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).filter(|k| !known.contains(k)).collect();
    names.dedup();
    if names.is_empty() {
        return Ok(());
    }
    let takes = if known.is_empty() {
        "takes no query parameters".to_owned()
    } else {
        format!("takes only {}", known.join(", "))
    };
    Err(EdgeError::bad_request(format!("unknown query parameter {}: this route {takes}", names.join(", "))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::route;

    #[test]
    fn the_order_list_takes_one_positive_product_id() {
        let orders = route("GET", "/api/orders");
        assert_eq!(check(&orders, Some("productId=7")), Ok(Query::ProductId(7)));
        assert_eq!(check(&orders, Some("productId=7.0")), Ok(Query::ProductId(7)), "an integer in JSON's spelling");
        for bad in [
            None,
            Some(""),
            Some("productId="),
            Some("productId=0"),
            Some("productId=-1"),
            Some("productId=x"),
            Some("productId=1&productId=2"),
            Some("productId=99999999999999999999999"),
        ] {
            let refused = check(&orders, bad).unwrap_err();
            assert_eq!(refused.status(), 400, "{bad:?}");
            assert!(refused.message.contains("productId"), "{bad:?}: {}", refused.message);
        }
        let refused = check(&orders, Some("productId=1&status=PAID")).unwrap_err();
        assert!(refused.message.contains("status"), "names the unknown one: {}", refused.message);
    }

    #[test]
    fn api_routes_refuse_any_parameter_and_name_it() {
        for (method, path) in [
            ("POST", "/api/seckill"),
            ("GET", "/api/products"),
            ("GET", "/api/orders/1-1"),
            ("POST", "/api/orders/1-1/pay"),
            ("POST", "/api/login"),
        ] {
            let r = route(method, path);
            assert_eq!(check(&r, None), Ok(Query::None));
            assert_eq!(check(&r, Some("")), Ok(Query::None));
            let refused = check(&r, Some("dry_run=true")).unwrap_err();
            assert_eq!(refused.status(), 400);
            assert!(refused.message.contains("dry_run"), "{method} {path}: {}", refused.message);
        }
    }

    #[test]
    fn the_shop_page_ignores_its_query() {
        assert_eq!(check(&route("GET", "/"), Some("utm_source=mail")), Ok(Query::None));
    }
}
