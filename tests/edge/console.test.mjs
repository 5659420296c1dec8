// The operator's admin console (GET /admin/ui on the origin) and the API reference
// (/admin/docs/) in a real browser (Debian's chromium, driven by playwright-core), with every
// request to another host blocked: both pages must work with no network but the origin.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import {
  ADMIN_TOKEN, ORIGIN_URL, TEST_OUTPUT, buyViaEdge, edgeSeesOnSale, freshUserId, launchChromium, signToken, sleep, waitFor,
} from "./stack.mjs";

const ORIGIN = new URL(ORIGIN_URL).origin;
/** The order writer's consumer group; the test shop suffixes it (seckill-order-writer-edge-test). */
const WRITER_GROUP = process.env.ORDER_WRITER_GROUP ?? null;
const TOKEN_KEY = "seckill-admin-token";

/**
 * A fresh browser whose page may only talk to the origin: every other request is aborted and
 * recorded in `blocked`; script errors land in `pageErrors`, dialogs in `dialogs` (dismissed).
 */
async function openBrowser(t) {
  const { page } = await launchChromium(t, { width: 1400, height: 1000 });
  const blocked = [];
  const pageErrors = [];
  const dialogs = [];
  await page.route("**/*", (route) => {
    const url = new URL(route.request().url());
    if (url.origin === ORIGIN || ["data:", "blob:", "about:"].includes(url.protocol)) return route.continue();
    blocked.push(url.href);
    return route.abort("blockedbyclient");
  });
  page.on("pageerror", (e) => pageErrors.push(e.message));
  page.on("dialog", (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  return { page, blocked, pageErrors, dialogs };
}

/** The text of each cell of a sales row, by its class (`redis`, `mysql`, `in-flight`, ...). */
function readRow(row) {
  return row.evaluate((tr) => {
    const cells = {};
    for (const name of ["name", "price", "redis", "mysql", "in-flight", "outbox", "unpaid", "paid", "cancelled"]) {
      cells[name] = tr.querySelector(`td.${name}`)?.textContent.trim() ?? null;
    }
    return cells;
  });
}

/** Waits until the row shows every cell of `expected`; fails with what it showed last. */
async function waitForRow(row, expected, timeoutMs) {
  let last;
  const matched = await waitFor(async () => {
    last = await readRow(row);
    return Object.entries(expected).every(([k, v]) => last[k] === v);
  }, { timeoutMs, everyMs: 250 });
  assert.ok(matched, `the row never showed ${JSON.stringify(expected)} within ${timeoutMs} ms; last: ${JSON.stringify(last)}`);
}

/** `datetime-local` input text (local time, to the minute) for `ms`. */
function localInput(ms) {
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** A buy through the edge as a fresh user; a "not on sale (yet)" answer is retried for up to 5 s. */
async function buyAsFreshUser(productId) {
  const token = signToken(freshUserId());
  const deadline = Date.now() + 5_000;
  for (;;) {
    const a = await buyViaEdge({ productId }, { token });
    const notYet = a.body?.code === "NO_SUCH_PRODUCT" || a.body?.code === "NOT_STARTED";
    if (!notYet || Date.now() > deadline) return a;
    await sleep(250);
  }
}

async function signIn(page) {
  await page.goto(`${ORIGIN_URL}/admin/ui`);
  await page.locator("#token-form").waitFor({ state: "visible", timeout: 10_000 });
  await page.fill("#admin-token", ADMIN_TOKEN);
  await page.locator("#token-form button[type=submit]").click();
  await page.locator("#sales").waitFor({ state: "visible", timeout: 10_000 });
  assert.equal(await page.evaluate((k) => sessionStorage.getItem(k), TOKEN_KEY), ADMIN_TOKEN);
}

test("the admin console creates and preloads a sale, and follows its buys to MySQL and the queue to empty", async (t) => {
  const { page, blocked, pageErrors, dialogs } = await openBrowser(t);
  await mkdir(TEST_OUTPUT, { recursive: true });
  await signIn(page);

  // Create a sale through the form; it ends in 15 minutes, so it leaves the demo shop soon.
  const name = `Console ${Date.now()}`;
  await page.fill("#new-name", name);
  await page.fill("#new-price", "19.99");
  await page.fill("#new-stock", "5");
  await page.fill("#new-limit", "1");
  await page.fill("#new-end", localInput(Date.now() + 15 * 60_000));
  await page.locator("#create-form [type=submit]").click();
  const created = page.locator("#status", { hasText: /Created sale \d+/ });
  await created.waitFor({ timeout: 10_000 });
  const productId = Number((await created.textContent()).match(/Created sale (\d+)/)[1]);
  assert.ok(Number.isInteger(productId) && productId > 0, `product id ${productId}`);
  assert.equal(await page.locator("#status").getAttribute("role"), "status");

  const row = page.locator(`#sales tr[data-product-id="${productId}"]`);
  await row.waitFor({ timeout: 10_000 });
  const fresh = await readRow(row);
  assert.equal(fresh.name, name);
  assert.equal(fresh.price, "19.99");
  assert.equal(fresh.redis, "—", "a new sale is not preloaded");
  assert.equal(fresh.mysql, "5");

  // Preload: Redis gets MySQL's stock (a sale not loaded before needs no force, so no dialog).
  await row.locator("button.preload").click();
  await page.locator("#status", { hasText: `Preloaded sale ${productId}: stock 5` }).waitFor({ timeout: 10_000 });
  await waitForRow(row, { redis: "5", mysql: "5", "in-flight": "0" }, 10_000);
  assert.deepEqual(dialogs, [], "preloading a sale that was never loaded asks nothing");

  // Two shoppers buy through the edge.
  await edgeSeesOnSale(productId);
  for (let i = 0; i < 2; i++) {
    const bought = await buyAsFreshUser(productId);
    assert.equal(bought.status, 200, bought.text);
    assert.equal(bought.body.status, "QUEUED", bought.text);
  }

  // Redis took 2 at once; once the order writer has them, MySQL says the same and nothing is in flight.
  await waitForRow(row, { redis: "3", mysql: "3", "in-flight": "0", unpaid: "2", paid: "0", cancelled: "0" }, 30_000);

  // The order writer's queue drains to a lag of 0.
  const writer = page.locator(WRITER_GROUP === null
    ? `#consumers li[data-group^="seckill-order-writer"]`
    : `#consumers li[data-group="${WRITER_GROUP}"]`);
  await writer.first().waitFor({ timeout: 10_000 });
  const drained = await waitFor(async () => (await writer.first().locator(".lag").textContent()).trim() === "0",
    { timeoutMs: 30_000, everyMs: 250 });
  assert.ok(drained, `the order writer's lag never read 0: ${await writer.first().textContent()}`);
  for (const cls of ["total", "unreplayed"]) {
    assert.match((await page.locator(`#dead-letters .${cls}`).textContent()).trim(), /^\d+$/, `dead letters .${cls}`);
  }

  await page.screenshot({ path: join(TEST_OUTPUT, "console.png"), fullPage: true });
  assert.deepEqual(pageErrors, [], "no script errors on the page");
  assert.deepEqual(blocked, [], "no request to anything but the origin");
});

test("a wrong admin token shows the sign-in form again with the error; signing out forgets the token", async (t) => {
  const { page, blocked, pageErrors } = await openBrowser(t);
  await page.goto(`${ORIGIN_URL}/admin/ui`);
  await page.locator("#token-form").waitFor({ state: "visible", timeout: 10_000 });
  await page.fill("#admin-token", `wrong-${Date.now()}`);
  await page.locator("#token-form button[type=submit]").click();
  await page.locator("#sign-in-message", { hasText: "UNAUTHORIZED" }).waitFor({ timeout: 10_000 });
  assert.equal(await page.locator("#token-form").isVisible(), true, "the form is shown again");
  assert.equal(await page.locator("#sales").isVisible(), false, "no sales without a token");
  assert.equal(await page.evaluate((k) => sessionStorage.getItem(k), TOKEN_KEY), null, "the wrong token is forgotten");

  // The right one signs in; Sign out forgets it again.
  await page.fill("#admin-token", ADMIN_TOKEN);
  await page.locator("#token-form button[type=submit]").click();
  await page.locator("#sales").waitFor({ state: "visible", timeout: 10_000 });
  await page.locator("#sign-out").click();
  await page.locator("#token-form").waitFor({ state: "visible", timeout: 5_000 });
  assert.equal(await page.evaluate((k) => sessionStorage.getItem(k), TOKEN_KEY), null, "signed out");

  assert.deepEqual(pageErrors, [], "no script errors on the page");
  assert.deepEqual(blocked, [], "no request to anything but the origin");

  // The API itself: no token, no overview.
  const res = await fetch(`${ORIGIN_URL}/admin/overview`);
  assert.equal(res.status, 401);
  assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
  const body = await res.json();
  assert.equal(body.code, "UNAUTHORIZED", JSON.stringify(body));
  assert.equal(typeof body.message, "string");
});

test("the Swagger UI at /admin/docs/ loads without network and shows every operation of the OpenAPI document", async (t) => {
  const res = await fetch(`${ORIGIN_URL}/admin/openapi.json`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  assert.equal(res.status, 200, `/admin/openapi.json → ${res.status}`);
  const spec = await res.json();
  const METHODS = ["get", "put", "post", "delete", "patch"];
  const operations = Object.entries(spec.paths ?? {}).flatMap(([path, item]) =>
    METHODS.filter((m) => item && typeof item[m] === "object").map((m) => ({ path, method: m, tags: item[m].tags ?? [] })));
  assert.ok(operations.length > 0, "the document has operations");
  // Swagger UI shows an operation once under each of its tags (untagged ones under "default").
  const blocks = operations.reduce((n, op) => n + Math.max(1, op.tags.length), 0);

  const { page, blocked, pageErrors } = await openBrowser(t);
  await page.goto(`${ORIGIN_URL}/admin/docs/`);
  await page.waitForFunction((n) => document.querySelectorAll(".opblock").length >= n, blocks, { timeout: 15_000 });
  await sleep(300);   // anything rendered late would show up as extra blocks
  assert.equal(await page.locator(".opblock").count(), blocks, `${operations.length} operations`);

  const shown = await page.evaluate(() => [...document.querySelectorAll(".opblock")].map((b) => {
    const method = b.querySelector(".opblock-summary-method")?.textContent.trim().toLowerCase();
    const pathEl = b.querySelector(".opblock-summary-path");
    const path = pathEl?.getAttribute("data-path") ?? pathEl?.textContent.replace(/[\u200b\s]/g, "");
    return `${method} ${path}`;
  }));
  assert.deepEqual([...new Set(shown)].sort(), operations.map((op) => `${op.method} ${op.path}`).sort());

  await page.locator(".info .title").waitFor({ timeout: 5_000 });
  const title = `${await page.title()} ${await page.locator(".info .title").textContent()}`;
  assert.match(title, /seckill/i);

  await mkdir(TEST_OUTPUT, { recursive: true });
  await page.screenshot({ path: join(TEST_OUTPUT, "admin-docs.png"), fullPage: false });
  assert.deepEqual(pageErrors, [], "no script errors on the page");
  assert.deepEqual(blocked, [], "no request to anything but the origin");
});
