//! The burst: valid buys and malformed requests in a seeded random order, sent at a steady
//! pace over the live origins, and every answer tallied. Accepted buyers pay (some of them),
//! as a buyer would: once the order is written, before its unpaid-order cancel.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::plan::Plan;
use crate::EDGE_SECRET;

/// One request of the burst.
#[derive(Debug, Clone)]
pub enum Request {
    Buy { user: u64, quantity: u32, pays: bool },
    Malformed(Malformed),
}

/// A request the origin must refuse with a 4xx and a JSON body, changing nothing.
#[derive(Debug, Clone)]
pub struct Malformed {
    pub kind: &'static str,
    pub body: Vec<u8>,
    /// False: sent without the edge's secret.
    pub from_edge: bool,
    /// Signed in as this user.
    pub user: u64,
}

/// The malformed kinds, in turn: broken syntax, wrong shapes, out-of-range numbers, a product
/// that is not on sale, a quantity over the per-user limit, and a caller that is not the edge.
fn malformed(i: u64, product: u64, user: u64) -> Malformed {
    let edge = |kind, body: Value| Malformed { kind, body: body.to_string().into_bytes(), from_edge: true, user };
    let raw = |kind, body: &[u8]| Malformed { kind, body: body.to_vec(), from_edge: true, user };
    match i % 12 {
        0 => raw("truncated JSON", br#"{"userId": 1, "productId""#),
        1 => raw("empty body", b""),
        2 => raw("not UTF-8", &[0xff, 0xfe, b'{', 0x80]),
        3 => edge("a JSON array", json!([user, product])),
        4 => edge("userId not the signed-in user", json!({ "userId": user + 1, "productId": product })),
        5 => edge("userId 0", json!({ "userId": 0, "productId": product })),
        6 => edge("userId a string", json!({ "userId": user.to_string(), "productId": product })),
        7 => edge("productId negative", json!({ "userId": user, "productId": -1 })),
        8 => edge("quantity 0", json!({ "userId": user, "productId": product, "quantity": 0 })),
        9 => edge("quantity over the limit", json!({ "userId": user, "productId": product, "quantity": 4 })),
        10 => edge("unknown product", json!({ "userId": user, "productId": product + 1_000_000 })),
        _ => Malformed {
            kind: "no edge secret",
            body: json!({ "userId": user, "productId": product }).to_string().into_bytes(),
            from_edge: false,
            user,
        },
    }
}

/// The burst of `plan`: every user buys at least once, the rest of the buys come from random
/// users (so many users try again), quantities 1 to 3, malformed requests shuffled in.
pub fn requests(plan: &Plan, product: u64, first_user: u64) -> Vec<Request> {
    let mut rng = StdRng::seed_from_u64(plan.seed);
    let users = first_user..first_user + plan.users;
    let mut all: Vec<Request> = Vec::with_capacity(plan.requests() as usize);
    let buy = |rng: &mut StdRng, user: u64| Request::Buy {
        user,
        quantity: rng.random_range(1..=3),
        pays: rng.random_bool(plan.pay_share),
    };
    for user in users.clone() {
        all.push(buy(&mut rng, user));
    }
    for _ in plan.users..plan.buys {
        let user = rng.random_range(users.clone());
        all.push(buy(&mut rng, user));
    }
    for i in 0..plan.malformed {
        let user = rng.random_range(users.clone());
        all.push(Request::Malformed(malformed(i, product, user)));
    }
    all.shuffle(&mut rng);
    all
}

/// Every answer of the burst, by kind.
#[derive(Debug, Default)]
pub struct Tally {
    /// Valid buys by answer: "200 QUEUED", "409 SOLD_OUT", "503 UNAVAILABLE", "answer lost", ...
    pub buys: BTreeMap<String, u64>,
    /// Malformed requests by (kind, answer).
    pub malformed: BTreeMap<(&'static str, String), u64>,
    /// (order number, user) of every 200 QUEUED.
    pub queued: Vec<(String, u64)>,
    /// (order number, user) of every 202 PENDING.
    pub pending: Vec<(String, u64)>,
    /// Requests sent whose answer never came (the origin died under them, or timed out).
    pub answer_lost: u64,
    /// Connections refused by a dead origin, sent again to another one.
    pub rerouted: u64,
    /// Answers no client should ever see (5xx other than 503 UNAVAILABLE, a 2xx without an
    /// order number, a malformed request not refused with a JSON 4xx), a few of each.
    pub wrong: Vec<String>,
    /// Payments: order numbers answered PAID.
    pub paid: Vec<String>,
    /// Payments refused because the order had been cancelled first.
    pub pay_too_late: u64,
    /// Payments given up (the order never became payable within the time allowed).
    pub pay_gave_up: u64,
}

impl Tally {
    fn wrong(&mut self, what: String) {
        if self.wrong.len() < 50 {
            self.wrong.push(what);
        }
    }

    /// Every 200 and 202.
    pub fn accepted(&self) -> u64 {
        (self.queued.len() + self.pending.len()) as u64
    }
}

/// The origins the load is spread over; a load balancer's view of them.
#[derive(Debug, Clone)]
pub struct Origins {
    urls: Arc<Vec<String>>,
    next: Arc<AtomicU64>,
    /// Signs each request as its user, as the edge's callers are signed in.
    tokens: crate::Tokens,
}

impl Origins {
    pub fn new(urls: Vec<String>, tokens: crate::Tokens) -> Origins {
        Origins { urls: Arc::new(urls), next: Arc::default(), tokens }
    }

    /// Round robin.
    fn pick(&self) -> (usize, &str) {
        let i = (self.next.fetch_add(1, Ordering::Relaxed) % self.urls.len() as u64) as usize;
        (i, &self.urls[i])
    }

    pub fn any(&self) -> &str {
        self.pick().1
    }
}

/// Sends `requests` to `origins`, `plan.rate` a second with at most `plan.concurrency` in
/// flight; `sent` counts requests as they go out (the fault schedule watches it). Returns when
/// every request is answered and every payer is done.
pub async fn burst(plan: &Plan, product: u64, requests: Vec<Request>, origins: Origins, sent: Arc<AtomicU64>) -> Tally {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(plan.concurrency)
        .timeout(Duration::from_secs(15))
        .build()
        .expect("http client");
    let tally = Arc::new(Mutex::new(Tally::default()));
    let requests = Arc::new(requests);
    let payers = Arc::new(tokio::sync::Mutex::new(tokio::task::JoinSet::new()));
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / f64::from(plan.rate));
    let next = Arc::new(AtomicU64::new(0));
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..plan.concurrency {
        let (http, tally, requests, origins, sent, payers, next) = (
            http.clone(),
            tally.clone(),
            requests.clone(),
            origins.clone(),
            sent.clone(),
            payers.clone(),
            next.clone(),
        );
        senders.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(request) = requests.get(i as usize) else { return };
                tokio::time::sleep_until((start + interval * i as u32).into()).await;
                sent.fetch_add(1, Ordering::SeqCst);
                let answer = send(&http, &origins, product, request, &tally).await;
                let payer = record(&mut tally.lock().unwrap(), request, answer);
                if let Some((order_no, user)) = payer {
                    let (http, origins, tally) = (http.clone(), origins.clone(), tally.clone());
                    payers.lock().await.spawn(pay(http, origins, order_no, user, tally));
                }
            }
        });
    }
    while senders.join_next().await.is_some() {}
    let mut payers = std::mem::take(&mut *payers.lock().await);
    while payers.join_next().await.is_some() {}
    Arc::try_unwrap(tally).map(|m| m.into_inner().unwrap()).unwrap_or_else(|_| unreachable!("senders are done"))
}

/// Tallies one answer; returns (order number, user) of an accepted buy whose buyer pays.
fn record(t: &mut Tally, request: &Request, answer: Answer) -> Option<(String, u64)> {
    let label = answer.label();
    match request {
        Request::Buy { user, pays, .. } => {
            *t.buys.entry(label.clone()).or_default() += 1;
            match answer {
                Answer::Http(status @ (200 | 202), body) => {
                    let Some(order_no) = body["orderNo"].as_str().map(str::to_string) else {
                        t.wrong(format!("{label} without an order number: {body}"));
                        return None;
                    };
                    let accepted = if status == 200 { &mut t.queued } else { &mut t.pending };
                    accepted.push((order_no.clone(), *user));
                    pays.then_some((order_no, *user))
                }
                Answer::Http(409 | 503, _) => None,
                Answer::Lost => {
                    t.answer_lost += 1;
                    None
                }
                Answer::Http(status, body) => {
                    t.wrong(format!("a buy answered {status}: {body}"));
                    None
                }
            }
        }
        Request::Malformed(m) => {
            *t.malformed.entry((m.kind, label.clone())).or_default() += 1;
            match answer {
                Answer::Http(400..=499, body) if body["code"].is_string() => {}
                Answer::Lost => t.answer_lost += 1,
                // An origin that is restarting may refuse anything; not a verdict.
                Answer::Http(503, _) => {}
                _ => t.wrong(format!("malformed request ({}) answered {label}", m.kind)),
            }
            None
        }
    }
}

/// What came back for one request.
enum Answer {
    Http(u16, Value),
    /// Sent, and the connection died before the answer (or it timed out).
    Lost,
}

impl Answer {
    fn label(&self) -> String {
        match self {
            Answer::Http(status, body) => match (body["status"].as_str(), body["code"].as_str()) {
                (Some(s), _) | (None, Some(s)) => format!("{status} {s}"),
                (None, None) => format!("{status} (no JSON code)"),
            },
            Answer::Lost => "answer lost".into(),
        }
    }
}

async fn send(
    http: &reqwest::Client,
    origins: &Origins,
    product: u64,
    request: &Request,
    tally: &Mutex<Tally>,
) -> Answer {
    let body = match request {
        Request::Buy { user, quantity, .. } => {
            json!({ "userId": user, "productId": product, "quantity": quantity }).to_string().into_bytes()
        }
        Request::Malformed(m) => m.body.clone(),
    };
    let from_edge = !matches!(request, Request::Malformed(Malformed { from_edge: false, .. }));
    let token = origins.tokens.for_user(match request {
        Request::Buy { user, .. } => *user,
        Request::Malformed(m) => m.user,
    });
    // A refused connection carried nothing: a load balancer sends it to the next origin.
    for _ in 0..=origins.urls.len() * 4 {
        let (_, url) = origins.pick();
        let mut post =
            http.post(format!("{url}/api/seckill")).header("content-type", "application/json").bearer_auth(&token);
        if from_edge {
            post = post.header("x-seckill-edge-secret", EDGE_SECRET);
        }
        match post.body(body.clone()).send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                return Answer::Http(status, resp.json::<Value>().await.unwrap_or(Value::Null));
            }
            Err(e) if e.is_connect() => {
                tally.lock().unwrap().rerouted += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(_) => return Answer::Lost,
        }
    }
    Answer::Lost
}

/// Pays `order_no` as its buyer: polls until it is payable (written, UNPAID), up to 20 s.
async fn pay(http: reqwest::Client, origins: Origins, order_no: String, user: u64, tally: Arc<Mutex<Tally>>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let answer = http
            .post(format!("{}/api/orders/{order_no}/pay", origins.any()))
            .header("x-seckill-edge-secret", EDGE_SECRET)
            .bearer_auth(origins.tokens.for_user(user))
            .json(&json!({ "userId": user }))
            .send()
            .await;
        if let Ok(resp) = answer {
            let status = resp.status().as_u16();
            let body = resp.json::<Value>().await.unwrap_or(Value::Null);
            match (status, body["code"].as_str()) {
                (200, _) => {
                    tally.lock().unwrap().paid.push(order_no);
                    return;
                }
                (409, Some("ORDER_CANCELLED")) => {
                    tally.lock().unwrap().pay_too_late += 1;
                    return;
                }
                // Not written yet (404, ORDER_PENDING) or a service restarting (503): later.
                (404 | 409 | 503, _) => {}
                (status, _) => {
                    tally.lock().unwrap().wrong(format!("pay of {order_no} answered {status}: {body}"));
                    return;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tally.lock().unwrap().pay_gave_up += 1;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::torture::plan::Scale;

    fn plan(seed: u64) -> Plan {
        Plan {
            scale: Scale::Ci,
            buys: 500,
            users: 200,
            units: 10,
            malformed: 120,
            rate: 1,
            concurrency: 1,
            pay_share: 0.5,
            seed,
            drain_limit_secs: 1,
            out: ".".into(),
        }
    }

    #[test]
    fn the_mix_has_every_user_every_malformed_kind_and_depends_only_on_the_seed() {
        let all = requests(&plan(7), 1, 1000);
        assert_eq!(all.len(), 620);
        let mut users: Vec<u64> =
            all.iter().filter_map(|r| if let Request::Buy { user, .. } = r { Some(*user) } else { None }).collect();
        users.sort_unstable();
        users.dedup();
        assert_eq!(users, (1000..1200).collect::<Vec<_>>());
        let kinds: std::collections::BTreeSet<&str> =
            all.iter().filter_map(|r| if let Request::Malformed(m) = r { Some(m.kind) } else { None }).collect();
        assert_eq!(kinds.len(), 12);
        assert!(all.iter().all(|r| !matches!(r, Request::Buy { quantity: 0 | 4.., .. })));
        let again = requests(&plan(7), 1, 1000);
        assert_eq!(format!("{all:?}"), format!("{again:?}"));
        assert_ne!(format!("{all:?}"), format!("{:?}", requests(&plan(8), 1, 1000)));
    }
}
