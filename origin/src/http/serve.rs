//! The listener loop. `axum::serve` sets no header-read timeout and no connection cap, so a
//! client that sends its headers a byte at a time (slowloris) holds a connection and a task for
//! as long as it likes, before the edge secret is ever checked. Here each connection is served
//! by hyper directly, with the limits of [`Limits`]:
//! - a request's headers must arrive within `header_read_timeout`, else the connection closes;
//! - at most `max_connections` are served at once; the next ones (up to as many again) are
//!   answered 503 `UNAVAILABLE` with `Retry-After` and closed, and beyond that closed unread;
//! - at most `max_in_flight` requests are in the app at once, over all connections; the next
//!   is answered 503 `UNAVAILABLE` with `Retry-After` at once, before any handler runs (and so
//!   before the app's request-id layer: that answer alone has no `x-request-id`);
//! - on stop, no new connection is accepted and requests in flight finish.
//!
//! The per-request deadline is a layer of [`super::app`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::response::IntoResponse;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceBuilder;

use crate::configuration::HttpSettings;
use crate::error::{ApiError, ErrorCode};

/// What one origin serves at once, and how long it waits for a request's headers.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    pub max_in_flight: usize,
}

impl Limits {
    pub fn of(http: &HttpSettings) -> Self {
        Self {
            header_read_timeout: Duration::from_millis(http.header_read_timeout_ms.max(1)),
            max_connections: http.max_connections.max(1),
            max_in_flight: http.max_in_flight.max(1),
        }
    }
}

/// Serves `app` on `listener` until `stop` completes, then lets the connections' requests in
/// flight finish and returns.
pub async fn serve(listener: TcpListener, app: Router, limits: Limits, stop: impl Future<Output = ()>) {
    let served = Arc::new(Semaphore::new(limits.max_connections));
    // Over the cap, a connection is told so; as many again at most, so that telling costs
    // a bounded number of tasks too.
    let refused = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let builder = Arc::new(builder);
    // One limit for every connection: each connection's clone shares its semaphore.
    let app = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(shed))
        .load_shed()
        .concurrency_limit(limits.max_in_flight)
        .service(app);
    tokio::pin!(stop);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset while queued: the next
                    // accept may well work; a short pause keeps an fd shortage from spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(stream);
        if let Ok(permit) = Arc::clone(&served).try_acquire_owned() {
            let service = TowerToHyperService::new(app.clone());
            let connection = graceful.watch(builder.serve_connection_with_upgrades(io, service).into_owned());
            tokio::spawn(async move {
                let _ = connection.await;
                drop(permit);
            });
        } else if let Ok(permit) = Arc::clone(&refused).try_acquire_owned() {
            let service = TowerToHyperService::new(tower::service_fn(|_request| async {
                let mut answer = too_many_connections().into_response();
                answer.headers_mut().insert(axum::http::header::CONNECTION, "close".parse().expect("a header value"));
                Ok::<_, std::convert::Infallible>(answer)
            }));
            let connection = builder.serve_connection(io, service).into_owned();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(5), connection).await;
                drop(permit);
            });
        }
        // else: dropped unread, closing it.
    }
    drop(listener);
    graceful.shutdown().await;
}

/// The answer to a request over `max_in_flight`: nothing was done, try again shortly.
async fn shed(_overloaded: tower::BoxError) -> axum::response::Response {
    ApiError::TryLater {
        code: ErrorCode::Unavailable,
        message: "the origin is serving as many requests as it can; nothing was done, try again shortly".into(),
    }
    .into_response()
}

fn too_many_connections() -> ApiError {
    ApiError::TryLater {
        code: ErrorCode::Unavailable,
        message: "the origin has as many connections open as it serves; nothing was done, try again shortly".into(),
    }
}
