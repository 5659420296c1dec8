// Operations on the running stack: the Prometheus `make up` starts scrapes both origin
// processes and has loaded the seckill rules.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { EDGE_URL, buyViaEdge, createProduct, freshUserId, waitFor } from "./stack.mjs";

const PROMETHEUS_URL = process.env.PROMETHEUS_URL ?? "http://127.0.0.1:9090";

async function prometheus(path) {
  const res = await fetch(`${PROMETHEUS_URL}${path}`);
  assert.equal(res.status, 200, `${path} → ${res.status}`);
  const body = await res.json();
  assert.equal(body.status, "success", JSON.stringify(body));
  return body.data;
}

test("Prometheus scrapes serve and consume, sees a buy and an order written, and has the rules", async () => {
  const up = await waitFor(async () => {
    const { activeTargets } = await prometheus("/api/v1/targets");
    const health = Object.fromEntries(activeTargets.map((t) => [t.labels.job, t.health]));
    return health["seckill-serve"] === "up" && health["seckill-consume"] === "up" ? health : null;
  }, { timeoutMs: 30_000, everyMs: 1_000 });
  assert.ok(up, "both targets up within 30 s");

  // A buy moves serve's queued counter and, once the writer has it in MySQL, consume's
  // written counter, as Prometheus sees them (scraped every 5 s).
  const value = async (query) => {
    const { result } = await prometheus(`/api/v1/query?query=${encodeURIComponent(query)}`);
    return result.length === 1 ? Number(result[0].value[1]) : 0;
  };
  const QUEUED = 'seckill_buys_total{outcome="queued",job="seckill-serve"}';
  const WRITTEN = 'seckill_orders_total{event="written",job="seckill-consume"}';
  const productId = await createProduct({ name: "Edge Prometheus", stock: 3 });
  // A scrape after the product exists, so "before" is what Prometheus holds now.
  await new Promise((r) => setTimeout(r, 6_000));
  const [queuedBefore, writtenBefore] = [await value(QUEUED), await value(WRITTEN)];
  const bought = await buyViaEdge({ userId: freshUserId(), productId });
  assert.equal(bought.status, 200, bought.text);
  const seen = await waitFor(async () =>
    (await value(QUEUED)) >= queuedBefore + 1 && (await value(WRITTEN)) >= writtenBefore + 1,
  { timeoutMs: 30_000, everyMs: 1_000 });
  assert.ok(seen, `the buy (serve ${queuedBefore}) and its order written (consume ${writtenBefore}) show up in Prometheus`);

  const { groups } = await prometheus("/api/v1/rules");
  const names = groups.flatMap((g) => g.rules.map((r) => r.name ?? r.alert));
  for (const rule of ["SeckillConsumerLagGrowing", "SeckillDeadLetters", "seckill:buys:rate1m", "SeckillBrokerDiskFilling"]) {
    assert.ok(names.includes(rule), `rule ${rule} loaded: ${names}`);
  }
});

test("every query of the shipped Grafana dashboard runs on that Prometheus", async () => {
  const path = new URL("../../config/grafana/seckill-dashboard.json", import.meta.url);
  const dashboard = JSON.parse(await readFile(path, "utf8"));
  const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr));
  assert.ok(exprs.length >= 6, `${exprs.length} queries`);
  for (const expr of exprs) {
    const data = await prometheus(`/api/v1/query?query=${encodeURIComponent(expr)}`);
    assert.equal(data.resultType, "vector", expr);
  }
});

test("the disk holding the broker stores is on the dashboard, as full as df says", async () => {
  const path = new URL("../../config/grafana/seckill-dashboard.json", import.meta.url);
  const dashboard = JSON.parse(await readFile(path, "utf8"));
  const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr));
  assert.ok(exprs.includes("seckill:broker_disk_used:ratio"), "a dashboard panel plots the brokers' disk");
  // Scraped every 5 s and recorded every 5 s: a series within half a minute of `make up`.
  const series = await waitFor(async () => {
    const { result } = await prometheus(`/api/v1/query?query=${encodeURIComponent("seckill:broker_disk_used:ratio")}`);
    return result.length === 1 ? result[0] : null;
  }, { timeoutMs: 30_000, everyMs: 1_000 });
  assert.ok(series, "one series: the filesystem of the brokers' stores");
  const ratio = Number(series.value[1]);
  const { execFileSync } = await import("node:child_process");
  const data = new URL("../../.run/data", import.meta.url).pathname;
  // The brokers' own measure: 1 - available / size.
  const df = execFileSync("df", ["-B1", "--output=size,avail", process.env.SECKILL_DATA ?? data], { encoding: "utf8" });
  const [size, avail] = df.split("\n")[1].trim().split(/\s+/).map(Number);
  const used = 1 - avail / size;
  assert.ok(Math.abs(ratio - used) < 0.02, `Prometheus says ${ratio}, df says ${used}`);
});

test("every answer of the edge carries x-request-id: the caller's when it is a plain token, else a fresh one", async () => {
  const kept = await fetch(`${EDGE_URL}/api/products`, { headers: { "x-request-id": "shop-7f3a_1" } });
  assert.equal(kept.headers.get("x-request-id"), "shop-7f3a_1");
  const ids = new Set();
  for (const path of ["/", "/api/products", "/api/nothing", "/api/orders/A1"]) {
    const res = await fetch(`${EDGE_URL}${path}`, { headers: { "x-request-id": "not a token!" } });
    const id = res.headers.get("x-request-id");
    assert.match(id ?? "", /^[0-9a-f]{28}$/, `${path}: ${id}`);
    ids.add(id);
  }
  assert.equal(ids.size, 4, "each request its own id");
});
