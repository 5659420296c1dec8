//! An origin that does no I/O: every buy is `200 QUEUED` (with a flag TTL, as the real origin
//! sends), the product list has one sale on sale ([`PRODUCT`]), anything else is `204`. An edge forwarding to it measures the
//! edge's own cost of an accepted buy, apart from the origin pipeline's.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The one sale the stub lists.
pub(crate) const PRODUCT: u64 = 1;

/// A running stub origin; dropping it stops it.
pub(crate) struct StubOrigin {
    pub url: String,
    accept: JoinHandle<()>,
}

impl Drop for StubOrigin {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl StubOrigin {
    /// Listens on 127.0.0.1 on a free port.
    pub(crate) async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let orders = Arc::new(AtomicU64::new(1));
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let orders = Arc::clone(&orders);
                tokio::spawn(async move {
                    let service = service_fn(move |req| answer(req, Arc::clone(&orders)));
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        Ok(Self { url, accept })
    }
}

async fn answer(req: Request<Incoming>, orders: Arc<AtomicU64>) -> Result<Response<Full<Bytes>>, Infallible> {
    // The body is read to its end, as the origin does: a connection with an unread body is not
    // kept alive, and the edge's pooled connection would then be lost under it.
    let (head, body) = req.into_parts();
    let _ = body.collect().await;
    let json = |status: u16, body: String| {
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .header("x-seckill-flag-ttl", "60")
            .body(Full::new(Bytes::from(body)))
            .expect("a valid answer")
    };
    Ok(match (&head.method, head.uri.path()) {
        (&Method::POST, "/api/seckill") => {
            let n = orders.fetch_add(1, Ordering::Relaxed);
            json(200, format!(r#"{{"orderNo":"{n}-{PRODUCT}","status":"QUEUED"}}"#))
        }
        (&Method::GET, "/api/products") => {
            let now = chrono::Utc::now().timestamp_millis();
            json(200, format!(r#"{{"serverTime":{now},"products":[{{"id":{PRODUCT},"state":"ON_SALE"}}]}}"#))
        }
        _ => Response::builder().status(204).body(Full::new(Bytes::new())).expect("a valid answer"),
    })
}
