// A real browser (Debian's chromium, driven by playwright-core) signs in on the shop page, waits
// in the sale's waiting room, is let in, buys and pays; finds an order whose answer was lost;
// solves a sale's challenge and waits in its pre-queue.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import {
  EDGE_URL, TEST_OUTPUT, buyViaEdge, createProduct, edgeSeesRoom, freshUserId, launchChromium, signToken,
} from "./stack.mjs";


test("the shop page signs in, waits in line, is let in, buys, follows the order to UNPAID and pays", async (t) => {
  // One shopper at a time, for 10 s each: while someone else's session runs, the page waits.
  const room = { newUsersPerInterval: 1, intervalSecs: 2, maxActiveUsers: 1, sessionSecs: 10 };
  const productId = await createProduct({ name: "Aurora Headphones", stock: 25, price: "1299.00", waitingRoom: room });
  await edgeSeesRoom(productId, room);
  const upcomingId = await createProduct({ name: "Nebula Smartwatch", stock: 40, price: "2499.00",
                                           startAt: Date.now() + 10 * 60_000 });
  await mkdir(TEST_OUTPUT, { recursive: true });
  const { page } = await launchChromium(t);
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(e.message));

  await page.goto(`${EDGE_URL}/`);
  await page.fill("#user-id", "1001");
  const card = page.locator(`article.card[data-product-id="${productId}"]`);
  await card.waitFor({ timeout: 10_000 });
  // A sale that has not started counts down to its start and cannot be bought yet.
  const upcoming = page.locator(`article.card[data-product-id="${upcomingId}"]`);
  await upcoming.locator(".countdown", { hasText: /Starts in 00:(09|10):\d\d/ }).waitFor({ timeout: 5_000 });
  assert.equal(await upcoming.locator("button.buy").isDisabled(), true);

  const buy = card.locator("button.buy");
  await page.waitForFunction((id) => !document.querySelector(`article[data-product-id="${id}"] button.buy`).disabled, productId);
  const ahead = await buyViaEdge({ productId }, { token: signToken(freshUserId()) });
  assert.equal(ahead.body?.status, "QUEUED", `another shopper takes the only session: ${ahead.text}`);
  await buy.click();

  // In line: the page shows the position and keeps asking on its own until it is let in.
  await card.locator(".note.queue", { hasText: "number 1" }).waitFor({ timeout: 10_000 });
  assert.equal(await card.locator("button.buy").innerText(), "In line…");
  await page.screenshot({ path: join(TEST_OUTPUT, "edge-shop-queued.png"), fullPage: true });

  const row = page.locator("#orders li[data-order-no]").first();
  await row.waitFor({ timeout: 30_000 });
  const orderNo = await row.getAttribute("data-order-no");
  assert.ok(orderNo, "an order number is shown");
  assert.match(await card.locator(".note").innerText(), new RegExp(orderNo));

  // The page polls the order until the order writer has put it in MySQL.
  await page.locator(`#orders li[data-order-no="${orderNo}"] .status`, { hasText: "UNPAID" })
    .waitFor({ timeout: 30_000 });
  await card.locator(".note", { hasText: "reserved for you" }).waitFor({ timeout: 5_000 });
  await page.screenshot({ path: join(TEST_OUTPUT, "edge-shop-unpaid.png"), fullPage: true });

  // A second try is turned away (by the edge, from the buyer flag), with a clear message.
  await buy.click();
  await card.locator(".note", { hasText: "already have an order" }).waitFor({ timeout: 10_000 });
  assert.match(await card.locator(".note").innerText(), /edge/, "marked as answered by the edge");

  // Paying moves the order to PAID.
  await page.locator(`#orders li[data-order-no="${orderNo}"] button.pay`).click();
  await page.locator(`#orders li[data-order-no="${orderNo}"] .status`, { hasText: "PAID" }).waitFor({ timeout: 10_000 });
  await page.screenshot({ path: join(TEST_OUTPUT, "edge-shop-paid.png"), fullPage: true });

  assert.deepEqual(pageErrors, [], "no script errors on the page");
});

test("a shopper whose buy answer was lost finds the order on the page and pays it", async (t) => {
  const productId = await createProduct({ name: "Lost Answer Lamp", stock: 5, price: "49.00" });
  const userId = freshUserId();
  // The buy went through, but its answer never reached this page (a dropped connection, a
  // timeout): the page has no record of the order.
  const lost = await buyViaEdge({ userId, productId });
  assert.equal(lost.status, 200, lost.text);
  const orderNo = lost.body.orderNo;

  const { page } = await launchChromium(t);
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(e.message));
  await page.goto(`${EDGE_URL}/`);
  await page.fill("#user-id", String(userId));
  const card = page.locator(`article.card[data-product-id="${productId}"]`);
  await card.waitFor({ timeout: 10_000 });
  await page.waitForFunction((id) => !document.querySelector(`article[data-product-id="${id}"] button.buy`).disabled, productId);
  assert.equal(await page.locator(`#orders li[data-order-no="${orderNo}"]`).count(), 0, "the page does not know the order yet");

  // Trying again: the answer names the order the shopper already holds, and the page lists it.
  await card.locator("button.buy").click();
  await card.locator(".note", { hasText: "already have an order" }).waitFor({ timeout: 10_000 });
  const row = page.locator(`#orders li[data-order-no="${orderNo}"]`);
  await row.locator(".status", { hasText: "UNPAID" }).waitFor({ timeout: 30_000 });
  await row.locator("button.pay").click();
  await row.locator(".status", { hasText: "PAID" }).waitFor({ timeout: 10_000 });
  await page.screenshot({ path: join(TEST_OUTPUT, "edge-shop-lost-answer-paid.png"), fullPage: true });
  assert.deepEqual(pageErrors, [], "no script errors on the page");
});

test("the page solves the sale's challenge, waits in the pre-queue, is drawn in and buys", async (t) => {
  // The demo sale's difficulty: what a browser solves in about a second.
  const ROOM = { newUsersPerInterval: 50, intervalSecs: 1, maxActiveUsers: 500, sessionSecs: 120, preQueueSecs: 600,
                 challenge: { difficulty: 19 } };
  const startAt = Date.now() + 15_000;
  const productId = await createProduct({ name: "Drawn Lamp", stock: 5, price: "59.00", startAt, waitingRoom: ROOM });
  await edgeSeesRoom(productId, ROOM);
  const { page } = await launchChromium(t);
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(e.message));
  await page.goto(`${EDGE_URL}/`);
  await page.fill("#user-id", String(freshUserId()));
  const card = page.locator(`article.card[data-product-id="${productId}"]`);
  await card.waitFor({ timeout: 10_000 });
  const joinButton = card.locator("button.buy", { hasText: "Join the line" });
  await joinButton.waitFor({ timeout: 5_000 });
  await joinButton.click();
  // The challenge is solved in a Web Worker, then the page waits in the pre-queue...
  await card.locator(".note.queue", { hasText: "the order is drawn at" }).waitFor({ timeout: 20_000 });
  const solve = await page.evaluate(() => window.seckillLastSolve);
  assert.ok(solve && solve.difficulty === 19 && solve.hashes > 0, JSON.stringify(solve));
  // One solve's hash count is luck; the rate says what the difficulty costs on average (2^d hashes).
  const rate = solve.hashes / (solve.ms / 1000);
  t.diagnostic(`challenge of difficulty ${solve.difficulty} solved in Chromium in ${Math.round(solve.ms)} ms ` +
    `(${solve.hashes} hashes, ${Math.round(rate)} hashes/s: ${(2 ** solve.difficulty / rate).toFixed(2)} s on average)`);
  await page.screenshot({ path: join(TEST_OUTPUT, "edge-shop-pre-queue.png"), fullPage: true });
  // ...and after the start it is drawn in and buys.
  const row = page.locator("#orders li[data-order-no]").first();
  await row.waitFor({ timeout: 40_000 });
  assert.ok(Date.now() >= startAt, "bought only after the start");
  await row.locator(".status", { hasText: "UNPAID" }).waitFor({ timeout: 30_000 });
  assert.deepEqual(pageErrors, [], "no script errors on the page");
});
