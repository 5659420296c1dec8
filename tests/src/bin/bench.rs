//! `make bench`: buys against the running stack (`make up`), origin and edge side by side in
//! one run. Prints a table and writes it to `.run/bench.md`.
//!
//! Scenarios, each on a fresh product created through the admin API:
//! queued buys (distinct users, enough stock) and sold-out buys, once straight to the origin
//! (with the edge secret) and once through the edge.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::Semaphore;

const REQUESTS: usize = 2000;
const CONCURRENCY: usize = 64;

struct Target {
    name: &'static str,
    url: String,
    secret: Option<String>,
}

struct Row {
    scenario: String,
    requests: usize,
    rps: f64,
    p50: f64,
    p99: f64,
    statuses: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    let origin = env("ORIGIN_URL", "http://127.0.0.1:8080");
    let edge = env("EDGE_URL", "http://127.0.0.1:8787");
    let token = env("ADMIN_TOKEN", "dev-admin-token");
    let secret = env("EDGE_SECRET", "dev-edge-secret");
    let http = reqwest::Client::builder().pool_max_idle_per_host(CONCURRENCY * 2).build()?;
    let targets = [
        Target { name: "origin", url: origin.clone(), secret: Some(secret) },
        Target { name: "edge", url: edge, secret: None },
    ];
    let mut rows = Vec::new();
    let run_id = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() % 1_000_000;
    for (i, target) in targets.iter().enumerate() {
        // Queued: stock for everyone, distinct users.
        let product = create_product(&http, &origin, &token, REQUESTS as u64).await?;
        let base = (run_id * 10 + i as u64) * 1_000_000;
        rows.push(run(&http, target, "queued buy", product, |n| base + n as u64).await);
        // Sold out: the same product now has no stock left; every request is refused.
        let sold = create_product(&http, &origin, &token, 1).await?;
        let _ = buy(&http, target, sold, base + 999_999).await;
        rows.push(run(&http, target, "sold-out buy", sold, |n| base + 500_000 + n as u64).await);
    }

    let mut table = format!(
        "Buys against the running stack (`make up`), {REQUESTS} requests per row, {CONCURRENCY} in flight, \
         one run on one machine, origin and edge side by side.\n\n\
         | target | scenario | requests | req/s | p50 ms | p99 ms | answers |\n|---|---|---|---|---|---|---|\n"
    );
    for r in &rows {
        table.push_str(&format!(
            "| {} | {} | {:.0} | {:.1} | {:.1} | {} |\n",
            r.scenario, r.requests, r.rps, r.p50, r.p99, r.statuses
        ));
    }
    print!("{table}");
    let run_dir = std::env::var("SECKILL_RUN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.run"));
    let out = run_dir.join("bench.md");
    std::fs::create_dir_all(out.parent().unwrap())?;
    std::fs::write(&out, &table)?;
    println!("\nwritten to {}", out.display());
    Ok(())
}

async fn create_product(http: &reqwest::Client, origin: &str, token: &str, stock: u64) -> anyhow::Result<u64> {
    let now = chrono_ms();
    let created: Value = http
        .post(format!("{origin}/admin/products"))
        .bearer_auth(token)
        .json(&json!({ "name": "Bench item", "price": "1.00", "stock": stock, "startAt": now - 1000, "endAt": now + 900_000, "perUserLimit": 1 }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = created["id"].as_u64().ok_or_else(|| anyhow::anyhow!("no id in {created}"))?;
    http.post(format!("{origin}/admin/products/{id}/preload")).bearer_auth(token).send().await?.error_for_status()?;
    Ok(id)
}

async fn buy(http: &reqwest::Client, target: &Target, product: u64, user: u64) -> Result<u16, String> {
    let mut req =
        http.post(format!("{}/api/seckill", target.url)).json(&json!({ "userId": user, "productId": product }));
    if let Some(s) = &target.secret {
        req = req.header("x-seckill-edge-secret", s);
    }
    let resp = req.send().await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let _ = resp.bytes().await;
    Ok(status)
}

async fn run(
    http: &reqwest::Client,
    target: &Target,
    scenario: &str,
    product: u64,
    user: impl Fn(usize) -> u64,
) -> Row {
    let gate = Arc::new(Semaphore::new(CONCURRENCY));
    let start = Instant::now();
    let tasks: Vec<_> = (0..REQUESTS)
        .map(|n| {
            let (http, gate) = (http.clone(), Arc::clone(&gate));
            let target = Target { name: target.name, url: target.url.clone(), secret: target.secret.clone() };
            let user = user(n);
            tokio::spawn(async move {
                let _permit = gate.acquire().await.unwrap();
                let t = Instant::now();
                let status = buy(&http, &target, product, user).await;
                (t.elapsed(), status)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(REQUESTS);
    let mut counts = std::collections::BTreeMap::new();
    for t in tasks {
        let (elapsed, status) = t.await.unwrap();
        latencies.push(elapsed);
        *counts.entry(status.map(|s| s.to_string()).unwrap_or_else(|_| "error".into())).or_insert(0) += 1;
    }
    let total = start.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Row {
        scenario: format!("{} | {scenario}", target.name),
        requests: REQUESTS,
        rps: REQUESTS as f64 / total.as_secs_f64(),
        p50: ms(pct(0.5)),
        p99: ms(pct(0.99)),
        statuses: counts.iter().map(|(k, v)| format!("{k}×{v}")).collect::<Vec<_>>().join(" "),
    }
}

fn chrono_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}
