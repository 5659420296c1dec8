// Talking to the running stack: buys through the edge, setup and counters on the origin's
// admin API. URLs and tokens come from the environment (scripts/edge.sh test sets them).

import { execFileSync, spawn } from "node:child_process";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { createHash, createHmac } from "node:crypto";
import { isDeepStrictEqual } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";

export const EDGE_URL = process.env.EDGE_URL ?? "http://127.0.0.1:8787";
export const ORIGIN_URL = process.env.ORIGIN_URL ?? "http://127.0.0.1:8080";
export const ADMIN_TOKEN = process.env.ADMIN_TOKEN ?? "dev-admin-token";
export const EDGE_SECRET = process.env.EDGE_SECRET ?? "dev-edge-secret";
export const TOKEN_KEYS = process.env.TOKEN_KEYS ?? "dev:seckill-local-development-signing-key-not-secret";
/** The shop's Redis (host:port) and key prefix, for tests that change what Redis holds. */
export const SHOP_REDIS = process.env.SHOP_REDIS ?? "127.0.0.1:6379";
export const SHOP_KEY_PREFIX = process.env.SHOP_KEY_PREFIX ?? "seckill-edge-test";
/** The test shop's MySQL: user:password@host:port/database. */
export const SHOP_MYSQL = process.env.SHOP_MYSQL ?? "seckill:seckill@127.0.0.1:3306/seckill_edge_test";

/**
 * Holds a write lock on the shop's product table until the returned function is called: the
 * origin's product list waits on it (and the edge gives up on the list), while buys, which
 * read only Redis, go on. The lock goes with the client's session.
 */
export async function holdProductTable() {
  const [, user, password, host, port, database] = SHOP_MYSQL.match(/^([^:]+):([^@]*)@([^:]+):(\d+)\/(.+)$/);
  const mysql = (sql) => ["--unbuffered", "-N", "-u", user, `-p${password}`, "-h", host, "-P", port, database, "-e", sql];
  // --unbuffered: "locked" is written as soon as its statement ran, not when the client exits.
  const client = spawn("mysql", mysql("LOCK TABLES tb_seckill_product WRITE; SELECT CONCAT('locked ', CONNECTION_ID()); SELECT SLEEP(120);"),
    // stderr ignored: the session killed below makes the client say it lost its connection.
    { stdio: ["ignore", "pipe", "ignore"] });
  const session = await new Promise((resolve, reject) => {
    client.stdout.on("data", (chunk) => {
      const locked = String(chunk).match(/locked (\d+)/);
      if (locked) resolve(locked[1]);
    });
    client.on("exit", (code) => reject(new Error(`mysql exited (${code}) before it held the lock`)));
  });
  return async () => {
    // Ending the session on the server releases the lock at once (a killed client's SLEEP would
    // run on).
    execFileSync("mysql", mysql(`KILL ${session}`));
    client.kill("SIGKILL");
  };
}

export const TEST_OUTPUT = process.env.TEST_OUTPUT ?? new URL("../../test-output/", import.meta.url).pathname;

export { sleep };

/** One answer, read whole: status, headers, parsed JSON body (or null), raw text. */
async function answer(res) {
  const text = await res.text();
  let body = null;
  try { body = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, headers: res.headers, body, text };
}

/** True when the edge decided this answer itself. */
export const decidedByEdge = (a) => a.headers.get("x-seckill-decided-by") === "edge";

const b64url = (bytes) => Buffer.from(bytes).toString("base64url");

/**
 * An identity token as docs/DESIGN.md "Identity" specifies it (JWT HS256 with a kid), signed here the
 * way an identity provider would, independently of the Rust code that verifies it. Claims can
 * be overridden to forge bad ones; `keys` defaults to the stack's TOKEN_KEYS (first key signs).
 */
export function signToken(userId, { claims = {}, keys = TOKEN_KEYS } = {}) {
  const [kid, ...rest] = keys.split(",")[0].split(":");
  const secret = rest.join(":");
  const now = Math.floor(Date.now() / 1000);
  const header = b64url(JSON.stringify({ alg: "HS256", typ: "JWT", kid }));
  const body = b64url(JSON.stringify({ sub: String(userId), aud: "seckill", iat: now, exp: now + 600, ...claims }));
  const signature = createHmac("sha256", secret).update(`${header}.${body}`).digest("base64url");
  return `${header}.${body}.${signature}`;
}

/**
 * A challenge for `productId`'s room as the edge signs one (keys derived from TOKEN_KEYS for
 * challenges, docs/DESIGN.md "Waiting room"), with its times overridable: for a test that needs
 * an expired one.
 */
export function signChallenge(userId, productId, { iat, exp }) {
  const [kid, ...rest] = TOKEN_KEYS.split(",")[0].split(":");
  const derived = createHmac("sha256", rest.join(":")).update("seckill-key:challenge").digest();
  const header = b64url(JSON.stringify({ alg: "HS256", typ: "JWT", kid }));
  const body = b64url(JSON.stringify({ sub: String(userId), aud: `challenge:${productId}`, iat, exp }));
  const signature = createHmac("sha256", derived).update(`${header}.${body}`).digest("base64url");
  return `${header}.${body}.${signature}`;
}

/** The first nonce that solves `challenge` at `difficulty` (SHA-256 of "<challenge>:<nonce>"). */
export function solveChallenge(challenge, difficulty) {
  for (let n = 0; ; n++) {
    const hash = createHash("sha256").update(`${challenge}:${n}`).digest();
    if (Math.clz32(hash.readUInt32BE(0)) >= difficulty) return String(n);
  }
}

/** The user a buy body names, if it names a valid one (else the request signs in as user 1). */
function signedInUserOf(body) {
  try {
    const userId = (typeof body === "string" ? JSON.parse(body) : body)?.userId;
    return Number.isSafeInteger(userId) && userId > 0 ? userId : 1;
  } catch { return 1; }
}

/**
 * POST /api/seckill through the edge (`edgeUrl`, default the test shop's); `body` is sent as is
 * when it is a string. Signed in as the body's `userId` unless `token` says otherwise (`null`: no
 * token at all).
 */
export async function buyViaEdge(body, { token = signToken(signedInUserOf(body)), headers = {}, edgeUrl = EDGE_URL } = {}) {
  const res = await fetch(`${edgeUrl}/api/seckill`, {
    method: "POST",
    headers: { "content-type": "application/json", ...bearer(token), ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return answer(res);
}

const bearer = (token) => (token ? { authorization: `Bearer ${token}` } : {});

/** GET through the edge (`edgeUrl`, default the test shop's), signed in with `token` if given. */
export async function getViaEdge(path, { token = null, edgeUrl = EDGE_URL } = {}) {
  return answer(await fetch(`${edgeUrl}${path}`, { headers: bearer(token) }));
}

/** POST /api/orders/{orderNo}/pay through the edge, signed in with `token` (null: none). */
export async function payViaEdge(orderNo, token, body = {}) {
  return answer(await fetch(`${EDGE_URL}/api/orders/${orderNo}/pay`, {
    method: "POST",
    headers: { "content-type": "application/json", ...bearer(token) },
    body: JSON.stringify(body),
  }));
}

/** An admin API call at the origin (`originUrl`, default the test shop's), whatever it answers. */
export async function adminRaw(method, path, body, { originUrl = ORIGIN_URL } = {}) {
  const res = await fetch(`${originUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  return answer(res);
}

async function admin(method, path, body, options) {
  const a = await adminRaw(method, path, body, options);
  assert.ok(a.status >= 200 && a.status < 300, `${method} ${path} → ${a.status} ${a.text}`);
  return a.body;
}

/**
 * A fresh product, its stock preloaded into Redis (the origin refuses buys of a product that was
 * not preloaded). On sale from a minute ago unless `startAt` says otherwise; the sale ends
 * 15 minutes after it starts, so test products leave the demo shop soon. Returns its id.
 */
export async function createProduct({
  name, stock, price = "99.00", perUserLimit = 1, startAt = Date.now() - 60_000, waitingRoom = undefined,
}) {
  const { id } = await admin("POST", "/admin/products", {
    name,
    price,
    stock,
    startAt,
    endAt: startAt + 15 * 60_000,
    perUserLimit,
    ...(waitingRoom ? { waitingRoom } : {}),
  });
  assert.ok(Number.isInteger(id) && id > 0, `product id ${id}`);
  await admin("POST", `/admin/products/${id}/preload`);
  return id;
}

/** Turns the sale's waiting room on or changes it (`room`), or turns it off (`null`). */
export async function setWaitingRoom(productId, room) {
  const path = `/admin/products/${productId}/waiting-room`;
  return room === null ? admin("DELETE", path) : admin("PUT", path, room);
}

/** Waits until the edge's (cached) product list shows the sale's room as `room` (null: none). */
export async function edgeSeesRoom(productId, room) {
  const seen = await waitFor(async () => {
    const list = await getViaEdge("/api/products");
    const product = list.body?.products?.find((p) => p.id === productId);
    return product && isDeepStrictEqual(product.waitingRoom ?? null, room);
  }, { timeoutMs: 10_000 });
  assert.ok(seen, `the edge's product list never showed product ${productId}'s room as ${JSON.stringify(room)}`);
}

/** The claims of a pass (or any token), read without checking it. */
/** Runs one command on the shop's Redis with redis-cli; returns its output. */
export function redisCli(...args) {
  const [host, port] = SHOP_REDIS.split(":");
  return execFileSync("redis-cli", ["-h", host, "-p", port, ...args], { encoding: "utf8" }).trim();
}

/** `GET /admin/rejected-orders?productId=`: the orders the writer refused for good. */
export async function rejectedOrders(productId) {
  return (await admin("GET", `/admin/rejected-orders?productId=${productId}`)).rejectedOrders;
}

export const claimsOf = (token) => JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString());

/** Waits until the edge's (cached, about a second) product list shows the sale on sale. */
export async function edgeSeesOnSale(productId, { edgeUrl = EDGE_URL } = {}) {
  const seen = await waitFor(async () => {
    const list = await getViaEdge("/api/products", { edgeUrl });
    return list.body?.products?.find((p) => p.id === productId)?.state === "ON_SALE";
  }, { timeoutMs: 10_000 });
  assert.ok(seen, `the edge at ${edgeUrl} never listed product ${productId} on sale`);
}

/** An origin's (default the test shop's) count of POST /api/seckill requests since it started. */
export async function originBuyRequests({ originUrl = ORIGIN_URL } = {}) {
  const metrics = await admin("GET", "/admin/metrics", undefined, { originUrl });
  assert.equal(typeof metrics.buyRequests, "number", `metrics: ${JSON.stringify(metrics)}`);
  return metrics.buyRequests;
}

/** A user id no earlier run has used, so reruns against the same stack do not collide. */
let nextUser = Date.now() * 1000 + Math.floor(Math.random() * 1000);
export const freshUserId = () => nextUser++;

/** Run `task(i)` for i in 0..count with at most `width` in flight; results in order. */
export async function inParallel(count, width, task) {
  const results = new Array(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      results[i] = await task(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, count) }, worker));
  return results;
}

/** Poll `probe` until it returns a truthy value or `timeoutMs` passes; returns the last value. */
export async function waitFor(probe, { timeoutMs = 20_000, everyMs = 200 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await probe();
    if (last) return last;
    await sleep(everyMs);
  }
  return last;
}

/** Seconds from a flag-setting answer's x-seckill-flag-ttl header. */
export function flagTtlSecs(a) {
  const raw = a.headers.get("x-seckill-flag-ttl");
  assert.ok(raw !== null, `no x-seckill-flag-ttl on ${a.status} ${a.text}`);
  const secs = Number(raw);
  assert.ok(Number.isInteger(secs) && secs > 0, `x-seckill-flag-ttl: ${raw}`);
  return secs;
}

/**
 * Debian's chromium (or $CHROMIUM), headless, in a fresh profile that is closed and removed when
 * test `t` ends. Returns the browser context and its first page.
 */
export async function launchChromium(t, viewport = { width: 1280, height: 900 }) {
  const userDataDir = await mkdtemp(join(tmpdir(), "seckill-chromium-"));
  const browser = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    viewport,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
           "--no-first-run", "--disable-sync"],
  });
  t.after(async () => {
    await browser.close();
    await rm(userDataDir, { recursive: true, force: true });
  });
  return { browser, page: browser.pages()[0] ?? await browser.newPage() };
}
