//! The HTTP plumbing every handler shares (wasm only): a request body read under a cap, and
//! the Workers `Response`s the edge answers with (JSON that is never cached, the edge's own
//! errors, the shop page).

use futures_util::StreamExt;
use worker::{Headers, Request, Response, Result};

use crate::answers::{EdgeError, DECIDED_BY_HEADER};
use crate::page::{SHOP_PAGE_CSP, SHOP_PAGE_HTML};

/// Reads a body of at most `max` bytes. A declared `Content-Length` over the cap is refused
/// before anything is read, and one within it is read at once; a body without one (chunked) is
/// read chunk by chunk and refused as soon as it passes the cap, so no more than `max` bytes and
/// one chunk are ever held.
pub(crate) async fn read_body(req: &mut Request, max: usize) -> Result<std::result::Result<String, EdgeError>> {
    let declared: Option<usize> = req.headers().get("content-length")?.and_then(|v| v.trim().parse().ok());
    let too_big = || EdgeError::payload_too_large(max);
    if declared.is_some_and(|n| n > max) {
        return Ok(Err(too_big()));
    }
    let mut bytes = Vec::new();
    if declared.is_some() {
        // HTTP framing holds a body to its declared length: one read, no stream to step through.
        bytes = req.bytes().await?;
        if bytes.len() > max {
            return Ok(Err(too_big()));
        }
    } else if let Ok(mut chunks) = req.stream() {
        // A request without a body has no stream to read.
        while let Some(chunk) = chunks.next().await {
            bytes.extend_from_slice(&chunk?);
            if bytes.len() > max {
                return Ok(Err(too_big()));
            }
        }
    }
    Ok(String::from_utf8(bytes).map_err(|_| EdgeError::bad_request("body is not UTF-8")))
}

/// `GET /`: the shop page, under its content security policy.
pub(crate) fn shop_page() -> Result<Response> {
    Ok(Response::from_html(SHOP_PAGE_HTML)?.with_headers(Headers::from_iter([
        ("content-type", "text/html; charset=utf-8"),
        ("cache-control", "no-cache"),
        ("content-security-policy", SHOP_PAGE_CSP),
        ("x-content-type-options", "nosniff"),
        (DECIDED_BY_HEADER, "edge"),
    ])))
}

/// Internal headers of an answer the edge decided: its code, and the sale the request was
/// about. Set by the handlers, read and removed by the entry, which counts the answer
/// ([`crate::refusals`]); never sent to the client.
pub(crate) const CODE_HEADER: &str = "x-seckill-internal-code";
pub(crate) const PRODUCT_HEADER: &str = "x-seckill-internal-product";

/// An answer the edge decided on its own: `error`'s status and JSON body.
pub(crate) fn edge_error(error: &EdgeError) -> Result<Response> {
    let headers = [(DECIDED_BY_HEADER, "edge".to_owned()), (CODE_HEADER, error.code.as_str().to_owned())];
    json_response(error.status(), error.body(), &headers)
}

/// A JSON answer with `status` and `body`, never stored by a cache, with `extra_headers`.
pub(crate) fn json_response(status: u16, body: String, extra_headers: &[(&str, String)]) -> Result<Response> {
    let mut builder = Response::builder()
        .with_status(status)
        .with_header("content-type", "application/json")?
        .with_header("cache-control", "no-store")?;
    for (name, value) in extra_headers {
        builder = builder.with_header(name, value)?;
    }
    Ok(builder.fixed(body.into_bytes()))
}
