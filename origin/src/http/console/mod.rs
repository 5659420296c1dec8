//! The admin console: one page, `GET /admin/ui`, that runs a sale with the admin API. The page
//! holds no data and needs no token to load; the operator enters the admin token once and the
//! page sends it with every call (kept in the tab's session storage, never in a cookie, so no
//! other site can make the browser use it). It polls `GET /admin/overview` for the numbers.

use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY};
use axum::response::{Html, IntoResponse, Response};

const PAGE: &str = include_str!("console.html");

/// Everything the page needs is in the page; it may only talk to this origin.
const POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                      connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
                      frame-ancestors 'none'";

/// `GET /admin/ui`: the console page.
#[utoipa::path(
    get, path = "/admin/ui", tag = "admin",
    responses((status = 200, description = "The console page (the admin token is entered on it)", content_type = "text/html", body = String))
)]
pub async fn page() -> Response {
    ([(CONTENT_SECURITY_POLICY, POLICY), (CACHE_CONTROL, "no-store")], Html(PAGE)).into_response()
}
