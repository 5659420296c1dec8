// The waiting room (a Durable Object per sale, under wrangler dev): 200 users arriving at once
// at a room that admits 20 new users per interval; a pass holder never queued again; the
// room's settings from the admin API; SOLD_OUT before the room.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  adminRaw, buyViaEdge, claimsOf, createProduct, decidedByEdge, edgeSeesRoom, freshUserId, originBuyRequests,
  setWaitingRoom, signToken, sleep,
} from "./stack.mjs";

const isOrder = (a) => (a.status === 200 && a.body?.status === "QUEUED") || (a.status === 202 && a.body?.status === "PENDING");
const isQueued = (a) => a.status === 429 && a.body?.code === "QUEUED";

test("200 users at once: at most 20 per interval reach the origin, in arrival order, and all get an answer", async (t) => {
  const ROOM = { newUsersPerInterval: 20, intervalSecs: 2, maxActiveUsers: 1000, sessionSecs: 120 };
  const STOCK = 150, USERS = 200;
  const productId = await createProduct({ name: "Edge Waiting Room", stock: STOCK, waitingRoom: ROOM });
  await edgeSeesRoom(productId, ROOM);

  const users = Array.from({ length: USERS }, () => freshUserId());
  const before = await originBuyRequests();
  const started = Date.now();
  // Each user: buy; while queued, wait the Retry-After and try again.
  const journeys = await Promise.all(users.map(async (userId) => {
    const token = signToken(userId);
    const positions = [];
    let ticket = null;
    for (;;) {
      const a = await buyViaEdge({ productId }, { token });
      if (!isQueued(a)) return { userId, final: a, positions, ticket };
      assert.ok(decidedByEdge(a), "queued at the edge");
      assert.equal(a.headers.get("retry-after"), String(a.body.refreshIntervalSecs));
      assert.equal(a.body.refreshIntervalSecs, ROOM.intervalSecs);
      assert.ok(a.body.position >= 1 && a.body.estimatedWaitSecs >= 1, a.text);
      assert.ok(ticket === null || ticket === a.body.ticket, "a user's ticket never changes while they wait");
      ticket = a.body.ticket;
      positions.push(a.body.position);
      assert.ok(Date.now() - started < 120_000, `user ${userId} still queued after two minutes`);
      await sleep(a.body.refreshIntervalSecs * 1000);
    }
  }));
  const after = await originBuyRequests();

  // Everyone got an answer: an order or SOLD_OUT; exactly the stock was sold.
  const orders = journeys.filter((j) => isOrder(j.final));
  const soldOut = journeys.filter((j) => j.final.status === 409 && j.final.body?.code === "SOLD_OUT");
  assert.equal(orders.length + soldOut.length, USERS,
    `other answers: ${journeys.filter((j) => !isOrder(j.final) && j.final.status !== 409).map((j) => j.final.text).slice(0, 3)}`);
  assert.equal(orders.length, STOCK, "every unit sold once");
  assert.ok(journeys.some((j) => j.positions.length > 0), "some users were queued");

  // Positions only go down.
  for (const j of journeys) {
    for (let i = 1; i < j.positions.length; i++) {
      assert.ok(j.positions[i] <= j.positions[i - 1], `user ${j.userId}: positions ${j.positions}`);
    }
  }

  // Who reached the origin: exactly the answers it decided, each of a user the room had just
  // admitted (the answer carries the new pass); at most 20 admitted per interval.
  const reached = journeys.filter((j) => !decidedByEdge(j.final));
  assert.equal(after - before, reached.length, "the origin saw one buy per admitted user and nothing else");
  const windowOf = new Map();
  for (const j of reached) {
    const pass = j.final.headers.get("x-seckill-pass");
    assert.ok(pass, `user ${j.userId} reached the origin without being admitted: ${j.final.text}`);
    const claims = claimsOf(pass);
    assert.equal(claims.sub, String(j.userId));
    assert.equal(claims.aud, `room:${productId}`);
    const admittedAtSecs = claims.exp - ROOM.sessionSecs;
    windowOf.set(j.userId, Math.floor(admittedAtSecs / ROOM.intervalSecs));
    assert.match(j.final.headers.get("set-cookie") ?? "", new RegExp(`^seckill_pass_${productId}=.*HttpOnly; SameSite=Strict`));
  }
  const perWindow = new Map();
  for (const w of windowOf.values()) perWindow.set(w, (perWindow.get(w) ?? 0) + 1);
  for (const [w, n] of perWindow) assert.ok(n <= ROOM.newUsersPerInterval, `${n} admitted in window ${w}`);

  // Admitted in arrival order: a later ticket is never admitted in an earlier window.
  const byTicket = reached.filter((j) => j.ticket !== null).sort((a, b) => a.ticket - b.ticket);
  for (let i = 1; i < byTicket.length; i++) {
    const [a, b] = [byTicket[i - 1], byTicket[i]];
    assert.ok(windowOf.get(a.userId) <= windowOf.get(b.userId),
      `ticket ${a.ticket} admitted in window ${windowOf.get(a.userId)}, ticket ${b.ticket} in ${windowOf.get(b.userId)}`);
  }

  // Sold out: a newcomer is told so before the room, without queueing.
  const late = await buyViaEdge({ productId }, { token: signToken(freshUserId()) });
  assert.equal(late.status, 409, late.text);
  assert.equal(late.body.code, "SOLD_OUT");
  assert.ok(decidedByEdge(late));
  t.diagnostic(`${orders.length} orders, ${soldOut.length} SOLD_OUT, ${reached.length} reached the origin over ` +
    `${perWindow.size} windows (${[...perWindow.values()].join("/")}), in ${Date.now() - started} ms`);
});

test("a pass holder is not queued again within its session; the room's settings come from the admin API", async () => {
  // Not started, so every buy that gets through is NOT_STARTED from the origin (never cached
  // at the edge): the origin's answers show who got through.
  const productId = await createProduct({ name: "Edge Room Pass", stock: 5, startAt: Date.now() + 10 * 60_000 });
  const otherId = await createProduct({ name: "Edge Room Pass Other", stock: 5, startAt: Date.now() + 10 * 60_000 });
  // One session at a time, a minute long: while A's runs, B waits, whatever the windows do.
  const ROOM = { newUsersPerInterval: 1, intervalSecs: 2, maxActiveUsers: 1, sessionSecs: 60 };
  const set = await setWaitingRoom(productId, ROOM);
  assert.deepEqual(set, { productId, waitingRoom: ROOM });
  await setWaitingRoom(otherId, ROOM);
  await edgeSeesRoom(productId, ROOM);
  await edgeSeesRoom(otherId, ROOM);

  const [a, b] = [freshUserId(), freshUserId()];
  const first = await buyViaEdge({ productId }, { token: signToken(a) });
  assert.equal(first.body?.code, "NOT_STARTED", first.text);
  assert.ok(!decidedByEdge(first));
  const pass = first.headers.get("x-seckill-pass");
  assert.ok(pass, "an admitted user gets a pass");
  const queued = await buyViaEdge({ productId }, { token: signToken(b) });
  assert.ok(isQueued(queued), queued.text);
  assert.equal(queued.body.position, 1);

  // With the pass, A goes straight to the origin every time; the room is not asked (no new pass).
  // (A's buys that reach the origin stay within the per-user limit, 5 per 10 s.)
  const before = await originBuyRequests();
  for (let i = 0; i < 2; i++) {
    const again = await buyViaEdge({ productId }, { token: signToken(a), headers: { "x-seckill-pass": pass } });
    assert.equal(again.body?.code, "NOT_STARTED", again.text);
    assert.equal(again.headers.get("x-seckill-pass"), null, "no new pass: the room was not asked");
  }
  // In the cookie, as a browser sends it, too.
  const byCookie = await buyViaEdge({ productId },
    { token: signToken(a), headers: { cookie: `seckill_pass_${productId}=${pass}` } });
  assert.equal(byCookie.body?.code, "NOT_STARTED", byCookie.text);
  assert.equal(await originBuyRequests(), before + 3);

  // A without the pass: the room remembers the admission and hands out one for the same session.
  const lost = await buyViaEdge({ productId }, { token: signToken(a) });
  assert.equal(lost.body?.code, "NOT_STARTED", lost.text);
  assert.equal(claimsOf(lost.headers.get("x-seckill-pass")).exp, claimsOf(pass).exp, "the same session end");
  // A pass is one user's, for one sale: B with A's pass waits; A's pass does not open the other room.
  const borrowed = await buyViaEdge({ productId }, { token: signToken(b), headers: { "x-seckill-pass": pass } });
  assert.ok(isQueued(borrowed), borrowed.text);
  const blocker = await buyViaEdge({ productId: otherId }, { token: signToken(freshUserId()) });
  assert.equal(blocker.body?.code, "NOT_STARTED", blocker.text);
  const elsewhere = await buyViaEdge({ productId: otherId }, { token: signToken(a), headers: { "x-seckill-pass": pass } });
  assert.ok(isQueued(elsewhere), elsewhere.text);
  // A forged pass is no pass.
  const forged = signToken(b, { claims: { aud: `room:${productId}` }, keys: "dev:a-different-key-that-no-edge-trusts-at-all" });
  const withForged = await buyViaEdge({ productId }, { token: signToken(b), headers: { "x-seckill-pass": forged } });
  assert.ok(isQueued(withForged), withForged.text);

  // Bad settings are 400s naming the field, and change nothing; an unknown product is 404.
  for (const [body, field] of [
    [{ ...ROOM, newUsersPerInterval: 0 }, "newUsersPerInterval"],
    [{ ...ROOM, sessionSecs: 4000 }, "sessionSecs"],
    [{ ...ROOM, maxActiveUsers: 0 }, "maxActiveUsers"],
    [{ ...ROOM, colour: "red" }, "colour"],
    ["{not json", "JSON"],
  ]) {
    const bad = await adminRaw("PUT", `/admin/products/${productId}/waiting-room`, body);
    assert.equal(bad.status, 400, bad.text);
    assert.match(bad.body.message, new RegExp(field), bad.text);
  }
  assert.deepEqual((await adminRaw("GET", `/admin/products/${productId}/waiting-room`)).body, { productId, waitingRoom: ROOM });
  assert.equal((await adminRaw("PUT", "/admin/products/999999999/waiting-room", ROOM)).status, 404);

  // Room off: B goes straight through once the edge's list has refreshed.
  assert.deepEqual(await setWaitingRoom(productId, null), { productId, waitingRoom: null });
  await edgeSeesRoom(productId, null);
  const through = await buyViaEdge({ productId }, { token: signToken(b) });
  assert.equal(through.body?.code, "NOT_STARTED", through.text);
  assert.equal(through.headers.get("x-seckill-pass"), null);
});
