//! The load generator: a closed loop of `workers` concurrent clients, each sending its next
//! call as soon as the previous one is answered, until a call count or a time is reached.
//! Every answered call's latency goes into an HDR histogram; every answer is counted by kind.
//! [`http`] drives HTTP requests with it, one keep-alive connection per worker.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::{header, Method, Request, Uri};
use hyper_util::rt::TokioIo;
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::Stop;
use crate::interrupt;
use crate::latency;

/// What one call got back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Answer {
    /// An HTTP status.
    Status(u16),
    /// Anything else: "ok", "not sent", "connect error", ...
    Label(&'static str),
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Status(s) => write!(f, "{s}"),
            Answer::Label(l) => f.write_str(l),
        }
    }
}

/// One call's result. `latency` is `None` for calls that got no answer (transport errors):
/// they are counted but not put in the histogram.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outcome {
    pub answer: Answer,
    pub expected: bool,
    pub latency: Option<Duration>,
}

/// Everything a load measured.
#[derive(Debug, Clone)]
pub(crate) struct Tally {
    /// Calls made.
    pub calls: u64,
    /// Units moved: `calls × units_per_call` (messages for a batch send, else requests).
    pub units: u64,
    /// From the first call to the last answer.
    pub elapsed: Duration,
    /// Latency of every answered call, µs.
    pub histogram: Histogram<u64>,
    pub answers: BTreeMap<Answer, u64>,
    /// Calls whose answer was not the expected one (transport errors included).
    pub unexpected: u64,
}

impl Tally {
    /// Units per second.
    pub(crate) fn rate(&self) -> f64 {
        self.units as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// `200×19998 503×2` style.
    pub(crate) fn answers_text(&self) -> String {
        answers_text(&self.answers)
    }
}

/// `200×19998 503×2` style, in key order.
pub(crate) fn answers_text(answers: &BTreeMap<Answer, u64>) -> String {
    answers.iter().map(|(a, n)| format!("{a}×{n}")).collect::<Vec<_>>().join(" ")
}

/// A load to run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Load<'a> {
    /// Shown in front of the progress bar.
    pub title: &'a str,
    pub workers: u64,
    /// `Count` counts units, rounded up to whole calls.
    pub stop: Stop,
    pub units_per_call: u64,
}

/// Runs `call(seq)` (seq = 0, 1, 2, ... across all workers) in a closed loop and tallies the
/// outcomes. Returns `Err(Interrupted)` if an interrupt stopped it.
pub(crate) async fn closed_loop<F, Fut>(load: Load<'_>, call: F) -> anyhow::Result<Tally>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send,
{
    closed_loop_per_worker(load, move |_, seq| call(seq)).await
}

/// [`closed_loop`] whose calls also get the index of the worker making them (0..workers), so
/// a worker can keep state of its own, such as its connection.
pub(crate) async fn closed_loop_per_worker<F, Fut>(load: Load<'_>, call: F) -> anyhow::Result<Tally>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send,
{
    let per_call = load.units_per_call.max(1);
    let max_calls = match load.stop {
        Stop::Count(units) => Some(units.div_ceil(per_call)),
        Stop::Duration(_) => None,
    };
    let deadline = match load.stop {
        Stop::Duration(d) => Some(d),
        Stop::Count(_) => None,
    };
    let bar = progress_bar(load.title, load.stop, max_calls.map(|c| c * per_call));
    let call = Arc::new(call);
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let ticker = deadline.map(|d| tokio::spawn(tick(bar.clone(), start, d, per_call, Arc::clone(&next))));
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..load.workers.max(1) as usize {
        let (call, next, bar) = (Arc::clone(&call), Arc::clone(&next), bar.clone());
        tasks.spawn(async move {
            let mut hist = latency::histogram();
            let mut answers: BTreeMap<Answer, u64> = BTreeMap::new();
            let (mut calls, mut unexpected) = (0u64, 0u64);
            loop {
                if interrupt::is_set() || deadline.is_some_and(|d| start.elapsed() >= d) {
                    break;
                }
                let seq = next.fetch_add(1, Ordering::Relaxed);
                if max_calls.is_some_and(|m| seq >= m) {
                    break;
                }
                let outcome = call(worker, seq).await;
                calls += 1;
                if let Some(l) = outcome.latency {
                    latency::record(&mut hist, l);
                }
                if !outcome.expected {
                    unexpected += 1;
                }
                *answers.entry(outcome.answer).or_default() += 1;
                if max_calls.is_some() {
                    bar.inc(per_call);
                }
            }
            (hist, answers, calls, unexpected)
        });
    }
    let mut tally = Tally {
        calls: 0,
        units: 0,
        elapsed: Duration::ZERO,
        histogram: latency::histogram(),
        answers: BTreeMap::new(),
        unexpected: 0,
    };
    while let Some(done) = tasks.join_next().await {
        let (hist, answers, calls, unexpected) = done?;
        tally.histogram.add(&hist).expect("same histogram bounds");
        for (a, n) in answers {
            *tally.answers.entry(a).or_default() += n;
        }
        tally.calls += calls;
        tally.unexpected += unexpected;
    }
    tally.elapsed = start.elapsed();
    tally.units = tally.calls * per_call;
    if let Some(t) = ticker {
        t.abort();
    }
    bar.finish_and_clear();
    interrupt::check()?;
    Ok(tally)
}

/// A bar counting units (count mode) or time (duration mode).
pub(crate) fn progress_bar(title: &str, stop: Stop, total_units: Option<u64>) -> ProgressBar {
    let (bar, template) = match (stop, total_units) {
        (Stop::Count(_), Some(total)) => {
            (ProgressBar::new(total), "{prefix:36} [{bar:30}] {human_pos:>9}/{human_len:9} {elapsed:>4} eta {eta}")
        }
        (Stop::Duration(d), _) => (ProgressBar::new(d.as_millis() as u64), "{prefix:36} [{bar:30}] {elapsed}/{msg}"),
        (Stop::Count(n), None) => {
            (ProgressBar::new(n), "{prefix:36} [{bar:30}] {human_pos:>9}/{human_len:9} {elapsed}")
        }
    };
    bar.set_style(ProgressStyle::with_template(template).expect("valid template").progress_chars("=> "));
    bar.set_prefix(title.to_string());
    if let Stop::Duration(d) = stop {
        bar.set_message(format!("{}s", d.as_secs()));
    }
    bar
}

/// Duration mode: moves the bar with the clock and shows the units done so far.
async fn tick(bar: ProgressBar, start: Instant, d: Duration, per_call: u64, calls: Arc<AtomicU64>) {
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let elapsed = start.elapsed().min(d);
        bar.set_position(elapsed.as_millis() as u64);
        let done = calls.load(Ordering::Relaxed) * per_call;
        bar.set_message(format!("{}s  {done} done", d.as_secs()));
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_templates_are_valid() {
        progress_bar("count", Stop::Count(10), Some(10)).finish_and_clear();
        progress_bar("time", Stop::Duration(Duration::from_secs(3)), None).finish_and_clear();
        progress_bar("count, no total", Stop::Count(10), None).finish_and_clear();
    }

    #[test]
    fn answers_read_in_order() {
        let answers =
            BTreeMap::from([(Answer::Status(409), 2), (Answer::Status(200), 5), (Answer::Label("timeout"), 1)]);
        assert_eq!(answers_text(&answers), "200×5 409×2 timeout×1");
    }

    #[tokio::test]
    async fn a_counted_loop_makes_exactly_the_calls_asked_for() {
        let load = Load { title: "t", workers: 3, stop: Stop::Count(10), units_per_call: 1 };
        let tally = closed_loop(load, |seq| async move {
            Outcome { answer: Answer::Status(200), expected: seq != 4, latency: Some(Duration::from_micros(50)) }
        })
        .await
        .unwrap();
        assert_eq!((tally.calls, tally.units, tally.unexpected), (10, 10, 1));
        assert_eq!(tally.answers_text(), "200×10");
        assert_eq!(tally.histogram.len(), 10);
    }
}
