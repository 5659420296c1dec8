//! Requests another site makes a browser send. The identity cookie is `SameSite=Strict`, but a
//! bearer token or an older browser must not be the only wall: the routes that change something
//! (login, buy, pay) refuse, before anything else is read, what a page of another site can make
//! a browser send: a request whose `Sec-Fetch-Site` or `Origin` says it comes from elsewhere,
//! and a body that is not `application/json` (an HTML form can send only
//! `application/x-www-form-urlencoded`, `multipart/form-data` and `text/plain` without asking
//! the site first). API clients that send neither header are unaffected.

use crate::answers::EdgeError;
use crate::routes::Route;

/// The headers the check reads, as the request carried them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sent<'a> {
    pub content_type: Option<&'a str>,
    /// `Origin`: `scheme://host[:port]` of the page that made the request, or `null`.
    pub origin: Option<&'a str>,
    /// `Sec-Fetch-Site`: `same-origin`, `same-site`, `cross-site` or `none` (typed by the user).
    pub fetch_site: Option<&'a str>,
}

/// Whether `route` changes something, and so is checked: login, buy and pay. The caller need
/// read no header for any other.
pub fn is_checked(route: &Route<'_>) -> bool {
    matches!(route, Route::Login | Route::Buy | Route::PayOrder { .. })
}

/// Why `route` is refused, if it is; `own_origin` is the edge's own `scheme://host[:port]` as
/// the request addressed it.
pub fn refusal(route: &Route<'_>, own_origin: &str, sent: Sent<'_>) -> Option<EdgeError> {
    if !is_checked(route) {
        return None;
    }
    if let Some(site) = sent.fetch_site.filter(|s| !matches!(*s, "same-origin" | "none")) {
        return Some(EdgeError::forbidden(format!(
            "a request from another site is refused (Sec-Fetch-Site: {site}); use the shop's own page"
        )));
    }
    if let Some(origin) = sent.origin.filter(|o| !o.eq_ignore_ascii_case(own_origin)) {
        return Some(EdgeError::forbidden(format!(
            "a request from another origin is refused (Origin: {origin}); use the shop's own page"
        )));
    }
    let media_type = sent.content_type.and_then(|t| t.split(';').next()).map(str::trim);
    if !media_type.is_some_and(|t| t.eq_ignore_ascii_case("application/json")) {
        return Some(EdgeError::unsupported_media_type("the body must be JSON: send Content-Type: application/json"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use seckill_protocol::errors::ErrorCode;

    const OWN: &str = "https://shop.example";

    fn json(origin: Option<&'static str>, fetch_site: Option<&'static str>) -> Sent<'static> {
        Sent { content_type: Some("application/json"), origin, fetch_site }
    }

    fn code(route: &Route<'_>, sent: Sent<'_>) -> Option<ErrorCode> {
        refusal(route, OWN, sent).map(|e| e.code)
    }

    #[test]
    fn the_shops_own_page_and_api_clients_pass() {
        for route in [Route::Login, Route::Buy, Route::PayOrder { order_no: "1-1" }] {
            assert_eq!(code(&route, json(Some(OWN), Some("same-origin"))), None);
            assert_eq!(code(&route, json(Some("HTTPS://SHOP.EXAMPLE"), None)), None);
            assert_eq!(code(&route, json(None, None)), None, "an API client sends neither header");
            assert_eq!(code(&route, json(None, Some("none"))), None, "typed by the user");
            let charset = Sent { content_type: Some("application/json; charset=utf-8"), ..json(None, None) };
            assert_eq!(code(&route, charset), None);
        }
    }

    #[test]
    fn another_site_is_refused() {
        for (origin, site) in [
            (None, Some("cross-site")),
            (None, Some("same-site")),
            (Some("https://evil.example"), None),
            (Some("null"), None),
            (Some("https://shop.example.evil.example"), Some("same-origin")),
            (Some("http://shop.example"), None),
        ] {
            assert_eq!(code(&Route::Buy, json(origin, site)), Some(ErrorCode::Forbidden), "{origin:?} {site:?}");
        }
    }

    #[test]
    fn a_body_a_form_could_send_is_refused() {
        for content_type in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            Some("application/jsonp"),
        ] {
            let sent = Sent { content_type, origin: None, fetch_site: None };
            assert_eq!(
                code(&Route::PayOrder { order_no: "1-1" }, sent),
                Some(ErrorCode::UnsupportedMediaType),
                "{content_type:?}"
            );
        }
    }

    #[test]
    fn reads_are_not_checked() {
        let from_elsewhere =
            Sent { content_type: None, origin: Some("https://evil.example"), fetch_site: Some("cross-site") };
        for route in [Route::ProductList, Route::Order { order_no: "1-1" }, Route::ShopPage, Route::NotFound] {
            assert_eq!(code(&route, from_elsewhere), None, "{route:?}");
        }
    }
}
