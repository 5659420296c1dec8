//! HTTP loads: the closed loop driving requests over one hyper keep-alive connection per
//! worker, and the reqwest client for the bench's few one-off calls.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{header, Method, Request, Uri};
use hyper_util::rt::TokioIo;

use super::{closed_loop_per_worker, Answer, Load, Outcome, Tally};

/// Where an HTTP request goes: a server (`host:port`) and the path on it.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub authority: String,
    pub path: String,
}

impl Endpoint {
    /// `http://host:port/path?query` (plain HTTP: everything the bench loads is local).
    pub(crate) fn parse(url: &str) -> anyhow::Result<Self> {
        let uri: Uri = url.parse().with_context(|| format!("not a URL: {url}"))?;
        anyhow::ensure!(uri.scheme_str() == Some("http"), "only http:// URLs can be loaded: {url}");
        let authority = uri.authority().with_context(|| format!("no host in {url}"))?.to_string();
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
        Ok(Self { authority, path })
    }

    /// The same server, another path.
    pub(crate) fn at(&self, path: &str) -> Self {
        Self { authority: self.authority.clone(), path: path.to_string() }
    }

    /// `GET` of this endpoint.
    pub(crate) fn get(&self) -> Request<Full<Bytes>> {
        self.request(Method::GET).body(Full::default()).expect("valid request")
    }

    /// A request to this endpoint with its `Host` header; add headers and a body.
    pub(crate) fn request(&self, method: Method) -> hyper::http::request::Builder {
        Request::builder().method(method).uri(self.path.as_str()).header(header::HOST, self.authority.as_str())
    }
}

/// One HTTP/1.1 keep-alive connection per worker.
type Connection = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// How long one request may take before it counts as a timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs an HTTP load: `load.workers` keep-alive connections to the server of `warmup`, one
/// request at a time on each, every request built by `request(seq)`; `expected` is the status
/// every answer should have. Each answer's body is read in full.
///
/// Before the clock starts, every connection is opened and sends one uncounted `GET warmup`
/// (a cheap route of the same server), so the load measures requests, not TCP handshakes.
/// Each worker owns its connection (hyper's connection-level client: no pool, no URL parsing,
/// no per-request timer wheel entry beyond one timeout): the generator shares the machine's
/// cores with what it measures, so the less it costs per request the less it skews the rows.
/// A connection that fails is re-opened by the next request of its worker.
pub(crate) async fn http<F>(load: Load<'_>, warmup: &Endpoint, expected: u16, request: F) -> anyhow::Result<Tally>
where
    F: Fn(u64) -> Request<Full<Bytes>> + Send + Sync + 'static,
{
    http_over(load, std::slice::from_ref(warmup), expected, request).await
}

/// [`http`] spread over several servers: worker `w` keeps its connection to the server of
/// `warmups[w % n]` (the request's path and body are the same for every server), so the load
/// splits evenly between them, as an edge spreading users over origins would.
pub(crate) async fn http_over<F>(
    load: Load<'_>,
    warmups: &[Endpoint],
    expected: u16,
    request: F,
) -> anyhow::Result<Tally>
where
    F: Fn(u64) -> Request<Full<Bytes>> + Send + Sync + 'static,
{
    anyhow::ensure!(!warmups.is_empty(), "no server to load");
    let workers = load.workers.max(1) as usize;
    let server_of = |worker: usize| warmups[worker % warmups.len()].clone();
    let mut opening = tokio::task::JoinSet::new();
    for worker in 0..workers {
        let warmup = server_of(worker);
        opening.spawn(async move { (worker, open(&warmup).await) });
    }
    let mut connections: Vec<tokio::sync::Mutex<Option<Connection>>> =
        (0..workers).map(|_| tokio::sync::Mutex::new(None)).collect();
    while let Some(opened) = opening.join_next().await {
        let (worker, opened) = opened?;
        *connections[worker].get_mut() =
            Some(opened.with_context(|| format!("opening connection {worker} to {}", server_of(worker).authority))?);
    }
    let connections = Arc::new(connections);
    let servers: Arc<Vec<Endpoint>> = Arc::new((0..workers).map(server_of).collect());
    let request = Arc::new(request);
    closed_loop_per_worker(Load { units_per_call: 1, ..load }, move |worker, seq| {
        let req = request(seq);
        let (connections, servers) = (Arc::clone(&connections), Arc::clone(&servers));
        async move {
            // Only this worker ever locks its slot: the lock is never contended.
            let mut slot = connections[worker].lock().await;
            let t = Instant::now();
            let outcome = match tokio::time::timeout(REQUEST_TIMEOUT, send(&mut slot, &servers[worker], req)).await {
                Ok(Ok(status)) => {
                    Outcome { answer: Answer::Status(status), expected: status == expected, latency: Some(t.elapsed()) }
                }
                Ok(Err(kind)) => Outcome { answer: Answer::Label(kind), expected: false, latency: None },
                Err(_) => Outcome { answer: Answer::Label("timeout"), expected: false, latency: None },
            };
            if !outcome.expected && outcome.latency.is_none() {
                *slot = None;
            }
            outcome
        }
    })
    .await
}

/// Sends `req` on the worker's connection (opening one if it has none) and reads the whole
/// answer. Returns its status, or what went wrong.
async fn send(
    slot: &mut Option<Connection>,
    server: &Endpoint,
    req: Request<Full<Bytes>>,
) -> Result<u16, &'static str> {
    if slot.is_none() {
        *slot = Some(connect(&server.authority).await.map_err(|_| "connect error")?);
    }
    let conn = slot.as_mut().expect("just opened");
    conn.ready().await.map_err(|_| "transport error")?;
    let resp = conn.send_request(req).await.map_err(|_| "transport error")?;
    let status = resp.status().as_u16();
    resp.into_body().collect().await.map_err(|_| "body error")?;
    Ok(status)
}

/// A new connection that has already answered one `GET warmup`.
async fn open(warmup: &Endpoint) -> anyhow::Result<Connection> {
    let mut conn = connect(&warmup.authority).await?;
    conn.ready().await?;
    let resp = conn.send_request(warmup.get()).await?;
    resp.into_body().collect().await?;
    Ok(conn)
}

/// A plain HTTP/1.1 connection to `authority`, its driver running as a task of its own.
async fn connect(authority: &str) -> anyhow::Result<Connection> {
    let stream = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(authority))
        .await
        .map_err(|_| anyhow::anyhow!("connecting to {authority} timed out"))??;
    stream.set_nodelay(true)?;
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(send)
}

/// An HTTP/1.1 client for the bench's few calls outside its loads.
pub(crate) fn client(connections: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(5))
        .build()?)
}
