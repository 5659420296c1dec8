//! The origin's own limits (`origin/src/http/serve.rs`, `http::app`): before, it served with
//! `axum::serve` and none, so a client that sent its headers a byte at a time held a connection
//! for ever, any number of them, and a slow handler held its request as long as it took.
//! Now: headers within `http.header_read_timeout_ms`, at most `http.max_connections` served
//! (the next told 503), at most `http.max_in_flight` requests in the handlers (the next told 503
//! at once, nothing done), and none unanswered past `http.request_deadline_ms` (504).

use std::time::{Duration, Instant};

use seckill_e2e::{isolated_settings, read, TestApp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A client of its own, without idle connections to count against the origin's cap.
fn fresh_client() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(0).timeout(Duration::from_secs(10)).build().unwrap()
}

/// A slowloris: opens a connection and sends a request's headers a byte every 100 ms, never
/// finishing them. Returns when the origin closes the connection (or after `limit`), saying
/// how long that took.
async fn slowloris(addr: std::net::SocketAddr, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let headers = b"GET /health HTTP/1.1\r\nHost: origin\r\nX-Slow: ";
    stream.write_all(headers).await.unwrap();
    let mut byte = [0u8; 1];
    while started.elapsed() < limit {
        if stream.write_all(b"a").await.is_err() {
            return Some(started.elapsed());
        }
        // A closed connection reads as end of file (or an error) at once; an open one times out.
        match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut byte)).await {
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {} // an answer (503 over the cap): keep sending; the close comes next
            Err(_) => {}
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slowloris_clients_are_cut_off_and_cannot_keep_the_origin_from_answering() {
    let (id, mut settings) = isolated_settings();
    settings.http.header_read_timeout_ms = 1_000;
    settings.http.max_connections = 8;
    let app = TestApp::spawn_with(id, settings).await;
    let addr = app.server.addr;
    let client = fresh_client();

    // Every connection the origin serves held by a slowloris (and one more, told it is over).
    let loris: Vec<_> = (0..9).map(|_| tokio::spawn(slowloris(addr, Duration::from_secs(20)))).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = read(client.get(app.url("/livez")).send().await.unwrap()).await;
    assert_eq!((status, body["code"].as_str()), (503, Some("UNAVAILABLE")), "over the connection cap: {body}");

    // The header timeout closes each of them, however long it keeps sending.
    for lori in loris {
        let closed = lori.await.unwrap();
        let closed = closed.expect("a slowloris was never cut off");
        assert!(closed < Duration::from_secs(8), "cut off only after {closed:?}");
    }
    let (status, body) = read(client.get(app.url("/livez")).send().await.unwrap()).await;
    assert_eq!(status, 200, "the origin answers again: {body}");
    app.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_over_the_in_flight_cap_are_refused_at_once_and_none_outlives_the_deadline() {
    let (id, mut settings) = isolated_settings();
    settings.http.max_in_flight = 2;
    settings.http.request_deadline_ms = 1_500;
    let app = TestApp::spawn_with(id, settings).await;
    let product = app.create_product(5).await;
    let stock_path = format!("/admin/products/{product}/stock");

    // A handler that waits on MySQL: the product table locked by another session.
    let mut lock = app.db.acquire().await.unwrap();
    sqlx::query("LOCK TABLES tb_seckill_product WRITE").execute(&mut *lock).await.unwrap();
    let started = Instant::now();
    let held: Vec<_> = (0..2)
        .map(|_| {
            let (client, url, token) = (fresh_client(), app.url(&stock_path), app.settings.http.admin_token.clone());
            tokio::spawn(async move { read(client.get(url).bearer_auth(token).send().await.unwrap()).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Two in the handlers: the third is refused at once, before any handler runs.
    let third = Instant::now();
    let resp = fresh_client().get(app.url("/livez")).send().await.unwrap();
    let retry_after = resp.headers().get("retry-after").is_some();
    let (status, body) = read(resp).await;
    assert_eq!((status, body["code"].as_str()), (503, Some("UNAVAILABLE")), "{body}");
    assert!(retry_after, "a refusal says when to come back");
    assert!(third.elapsed() < Duration::from_millis(1_000), "refused at once, not queued");

    // The two waiting on MySQL are answered at the deadline: outcome unknown.
    for answer in held {
        let (status, body) = answer.await.unwrap();
        assert_eq!((status, body["code"].as_str()), (504, Some("ORIGIN_TIMEOUT")), "{body}");
    }
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(1_400) && waited < Duration::from_secs(8), "answered after {waited:?}");

    sqlx::query("UNLOCK TABLES").execute(&mut *lock).await.unwrap();
    drop(lock);
    let (status, body) = app.admin_get(&stock_path).await;
    assert_eq!(status, 200, "{body}");
    app.check().await;
}
