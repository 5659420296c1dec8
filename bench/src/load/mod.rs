//! The load generator: a closed loop of `workers` concurrent clients, each sending its next
//! call as soon as the previous one is answered, until a call count or a time is reached.
//! Every answered call's latency goes into an HDR histogram; every answer is counted by kind.
//! [`http()`] (in the [`mod@http`] module) drives HTTP requests with it, one keep-alive connection per worker.

mod http;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};

pub(crate) use self::http::{client, http, http_over, Endpoint};
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
