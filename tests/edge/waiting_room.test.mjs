// The waiting room (Durable Objects, under wrangler dev): 200 users arriving at once at a room
// that admits 20 new users per interval; a pass holder never queued again; the room's settings
// from the admin API; SOLD_OUT before the room; the room held closed while the product list
// fails; 300 users drawn from the pre-queue; pause, resume and a live pace; four shards; the
// challenge at the door.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  ORIGIN_URL, adminRaw, buyViaEdge, claimsOf, createProduct, decidedByEdge, edgeSeesRoom, freshUserId, holdProductTable,
  originBuyRequests, setWaitingRoom, signChallenge, signToken, getViaEdge, sleep, solveChallenge, waitFor,
} from "./stack.mjs";
import { createHash } from "node:crypto";

const createHashHex = (text) => createHash("sha256").update(text).digest("hex");

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
  // Every buy asks for 2 of a sale limited to 1 per user, so every buy that gets through is
  // OVER_LIMIT from the origin (never cached at the edge): the origin's answers show who got through.
  const productId = await createProduct({ name: "Edge Room Pass", stock: 5 });
  const otherId = await createProduct({ name: "Edge Room Pass Other", stock: 5 });
  const buyTwo = (productId, options) => buyViaEdge({ productId, quantity: 2 }, options);
  // One session at a time, a minute long: while A's runs, B waits, whatever the windows do.
  const ROOM = { newUsersPerInterval: 1, intervalSecs: 2, maxActiveUsers: 1, sessionSecs: 60 };
  const set = await setWaitingRoom(productId, ROOM);
  assert.deepEqual(set, { productId, waitingRoom: ROOM });
  await setWaitingRoom(otherId, ROOM);
  await edgeSeesRoom(productId, ROOM);
  await edgeSeesRoom(otherId, ROOM);

  const [a, b] = [freshUserId(), freshUserId()];
  const first = await buyTwo(productId, { token: signToken(a) });
  assert.equal(first.body?.code, "OVER_LIMIT", first.text);
  assert.ok(!decidedByEdge(first));
  const pass = first.headers.get("x-seckill-pass");
  assert.ok(pass, "an admitted user gets a pass");
  const queued = await buyTwo(productId, { token: signToken(b) });
  assert.ok(isQueued(queued), queued.text);
  assert.equal(queued.body.position, 1);

  // With the pass, A goes straight to the origin every time; the room is not asked (no new pass).
  // (A's buys that reach the origin stay within the per-user limit, 5 per 10 s.)
  const before = await originBuyRequests();
  for (let i = 0; i < 2; i++) {
    const again = await buyTwo(productId, { token: signToken(a), headers: { "x-seckill-pass": pass } });
    assert.equal(again.body?.code, "OVER_LIMIT", again.text);
    assert.equal(again.headers.get("x-seckill-pass"), null, "no new pass: the room was not asked");
  }
  // In the cookie, as a browser sends it, too.
  const byCookie = await buyTwo(productId,
    { token: signToken(a), headers: { cookie: `seckill_pass_${productId}=${pass}` } });
  assert.equal(byCookie.body?.code, "OVER_LIMIT", byCookie.text);
  assert.equal(await originBuyRequests(), before + 3);

  // A without the pass: the room remembers the admission and hands out one for the same session.
  const lost = await buyTwo(productId, { token: signToken(a) });
  assert.equal(lost.body?.code, "OVER_LIMIT", lost.text);
  assert.equal(claimsOf(lost.headers.get("x-seckill-pass")).exp, claimsOf(pass).exp, "the same session end");
  // A pass is one user's, for one sale: B with A's pass waits; A's pass does not open the other room.
  const borrowed = await buyTwo(productId, { token: signToken(b), headers: { "x-seckill-pass": pass } });
  assert.ok(isQueued(borrowed), borrowed.text);
  const blocker = await buyTwo(otherId, { token: signToken(freshUserId()) });
  assert.equal(blocker.body?.code, "OVER_LIMIT", blocker.text);
  const elsewhere = await buyTwo(otherId, { token: signToken(a), headers: { "x-seckill-pass": pass } });
  assert.ok(isQueued(elsewhere), elsewhere.text);
  // A forged pass is no pass.
  const forged = signToken(b, { claims: { aud: `room:${productId}` }, keys: "dev:a-different-key-that-no-edge-trusts-at-all" });
  const withForged = await buyTwo(productId, { token: signToken(b), headers: { "x-seckill-pass": forged } });
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
  const through = await buyTwo(productId, { token: signToken(b) });
  assert.equal(through.body?.code, "OVER_LIMIT", through.text);
  assert.equal(through.headers.get("x-seckill-pass"), null);
});

test("a sale's room stays closed while the origin cannot list products: queued or 503, never forwarded", async () => {
  const ROOM = { newUsersPerInterval: 1, intervalSecs: 60, maxActiveUsers: 1, sessionSecs: 60 };
  const seen = await createProduct({ name: "Edge Room List Down", stock: 10, waitingRoom: ROOM });
  await edgeSeesRoom(seen, ROOM);
  const first = await buyViaEdge({ productId: seen }, { token: signToken(freshUserId()) });
  assert.ok(isOrder(first), `the room's one admission: ${first.text}`);
  // A sale the edge has never seen in a list, created after its last look.
  const unseen = await createProduct({ name: "Edge Room Never Listed", stock: 10, waitingRoom: ROOM });
  await sleep(1_500); // the edge's one-second copy of the list expires

  const release = await holdProductTable();
  try {
    const before = await originBuyRequests();
    // The edge asks the origin for the list and gives up on it (ORIGIN_TIMEOUT_MS), then falls
    // back on the last good list: it has the first sale's room, not the second sale. One buy
    // refreshes the list; the other is answered from the expired list meanwhile, which does
    // not have the second sale either.
    const [queued, refused] = await Promise.all([
      buyViaEdge({ productId: seen }, { token: signToken(freshUserId()) }),
      buyViaEdge({ productId: unseen }, { token: signToken(freshUserId()) }),
    ]);
    // The refresh has failed by now: the list is served as the last good one.
    const list = await getViaEdge("/api/products");
    assert.ok(isQueued(queued) && decidedByEdge(queued), `the known room still queues: ${queued.text}`);
    assert.equal(refused.status, 503, `a sale no list has shown is refused: ${refused.text}`);
    assert.equal(refused.body.code, "UNAVAILABLE", refused.text);
    assert.ok(decidedByEdge(refused), refused.text);
    assert.equal(list.status, 200, list.text);
    assert.equal(list.headers.get("x-seckill-stale"), "1", "the last good list, marked stale");
    assert.ok(list.body.products.some((p) => p.id === seen), list.text);
    assert.equal(await originBuyRequests(), before, "no buy reached the origin while the list was down");
  } finally {
    await release();
  }
  // With the list back, the new sale's room applies.
  await edgeSeesRoom(unseen, ROOM);
  const admitted = await buyViaEdge({ productId: unseen }, { token: signToken(freshUserId()) });
  assert.ok(isOrder(admitted), admitted.text);
});

/** Spearman's rank correlation of two equally long lists of numbers (ties ranked by their mean). */
function rankCorrelation(xs, ys) {
  const ranks = (vs) => {
    const order = vs.map((v, i) => [v, i]).sort((a, b) => a[0] - b[0]);
    const r = new Array(vs.length);
    for (let i = 0; i < order.length;) {
      let j = i;
      while (j + 1 < order.length && order[j + 1][0] === order[i][0]) j++;
      for (let k = i; k <= j; k++) r[order[k][1]] = (i + j) / 2;
      i = j + 1;
    }
    return r;
  };
  const [rx, ry] = [ranks(xs), ranks(ys)];
  const mean = (v) => v.reduce((a, b) => a + b, 0) / v.length;
  const [mx, my] = [mean(rx), mean(ry)];
  let [sxy, sxx, syy] = [0, 0, 0];
  for (let i = 0; i < rx.length; i++) {
    sxy += (rx[i] - mx) * (ry[i] - my); sxx += (rx[i] - mx) ** 2; syy += (ry[i] - my) ** 2;
  }
  return sxy / Math.sqrt(sxx * syy);
}

test("300 users in the pre-queue are admitted in a drawn order, late arrivals after them in arrival order", async (t) => {
  const ROOM = { newUsersPerInterval: 30, intervalSecs: 1, maxActiveUsers: 1000, sessionSecs: 120, preQueueSecs: 600 };
  const startAt = Date.now() + 20_000;
  const productId = await createProduct({ name: "Edge Pre-queue Draw", stock: 400, startAt, waitingRoom: ROOM });
  await edgeSeesRoom(productId, ROOM);

  // Each user: asks, and keeps asking every refreshIntervalSecs until an answer that is not a
  // wait; notes when they were admitted and the ticket they were given, if they saw one.
  const journey = async (userId, joined) => {
    const token = signToken(userId);
    let ticket = null, preQueued = 0;
    for (;;) {
      const a = await buyViaEdge({ productId }, { token });
      if (a.status === 429 && a.body?.code === "PRE_QUEUE") {
        assert.equal(a.body.drawAt, startAt, a.text);
        assert.equal(a.body.position, undefined, "no position before the draw");
        assert.ok(Date.now() < startAt + 2_000, "pre-queued after the start");
        preQueued++;
      } else if (isQueued(a)) {
        assert.ok(ticket === null || ticket === a.body.ticket, "a ticket never changes");
        ticket = a.body.ticket;
      } else {
        assert.ok(isOrder(a), `user ${userId}: ${a.text}`);
        return { userId, joined, ticket, preQueued, admittedAt: Date.now() };
      }
      await sleep(a.body.refreshIntervalSecs * 1000);
    }
  };
  // The 300 join one after the other, in a known order, before the start.
  const early = [];
  for (let i = 0; i < 300; i++) {
    const userId = freshUserId();
    const first = await buyViaEdge({ productId }, { token: signToken(userId) });
    assert.equal(first.body?.code, "PRE_QUEUE", first.text);
    assert.ok(decidedByEdge(first), first.text);
    early.push(journey(userId, i));
  }
  assert.ok(Date.now() < startAt, "the 300 joined before the start");
  // The room's objects report to the origin: the console's overview and /metrics show the pre-queue.
  const reported = await waitFor(async () => {
    const sale = (await adminRaw("GET", "/admin/overview")).body?.sales?.find((s) => s.id === productId);
    return sale?.roomActivity?.preQueued === 300 ? sale.roomActivity : null;
  }, { timeoutMs: Math.max(1_000, startAt - Date.now() - 500) });
  assert.ok(reported, "the overview shows the 300 in the pre-queue before the start");
  assert.equal(reported.inLine, 0, JSON.stringify(reported));
  const metrics = await (await fetch(`${ORIGIN_URL}/metrics`)).text();
  assert.match(metrics, new RegExp(`seckill_room_users\\{product_id="${productId}",state="pre_queue"\\} 300`));
  // 20 more arrive after the start, one after the other.
  await sleep(Math.max(0, startAt - Date.now()) + 1_500);
  const late = [];
  for (let i = 0; i < 20; i++) {
    const userId = freshUserId();
    const first = await buyViaEdge({ productId }, { token: signToken(userId) });
    assert.ok(isQueued(first), `a late arrival queues behind the pre-queue: ${first.text}`);
    late.push({ ticket: first.body.ticket, run: journey(userId, 300 + i) });
  }
  const drawn = await Promise.all(early);
  const after = await Promise.all(late.map((l) => l.run));

  // The pre-queue's admissions are uncorrelated with the order they joined in...
  const rho = rankCorrelation(drawn.map((j) => j.joined), drawn.map((j) => j.admittedAt));
  assert.ok(Math.abs(rho) < 0.25, `the drawn order follows the joining order: rank correlation ${rho}`);
  // ...while the late arrivals hold tickets behind all of them, in the order they came.
  const lateTickets = late.map((l) => l.ticket);
  assert.ok(lateTickets.every((ticket) => ticket > 300), `late tickets ${lateTickets}`);
  assert.deepEqual(lateTickets, [...lateTickets].sort((a, b) => a - b), "late arrivals in arrival order");
  // After the draw the report shows who was let in.
  const admitted = await waitFor(async () => {
    const sale = (await adminRaw("GET", "/admin/overview")).body?.sales?.find((s) => s.id === productId);
    return sale?.roomActivity?.admittedTotal === 320 ? sale.roomActivity : null;
  }, { timeoutMs: 15_000 });
  assert.ok(admitted, "the overview counts every admission");
  assert.equal(admitted.preQueued + admitted.inLine, 0, JSON.stringify(admitted));
  const lastDrawn = Math.max(...drawn.map((j) => j.admittedAt));
  const firstLate = Math.min(...after.map((j) => j.admittedAt));
  // (Both are seen at the users' next ask, at most a refresh interval after the admission.)
  assert.ok(firstLate >= lastDrawn - 1_000 * ROOM.intervalSecs,
    `a late arrival was let in ${lastDrawn - firstLate} ms before the last of the pre-queue`);
  t.diagnostic(`rank correlation of joining and admission: ${rho.toFixed(3)}; late tickets ${lateTickets[0]}..${lateTickets.at(-1)}`);
});

test("a paused room holds everyone; resumed, it admits at the pace set live", async () => {
  const ROOM = { newUsersPerInterval: 2, intervalSecs: 1, maxActiveUsers: 100, sessionSecs: 60 };
  const productId = await createProduct({ name: "Edge Room Pause", stock: 50, waitingRoom: ROOM });
  const paused = await adminRaw("POST", `/admin/products/${productId}/waiting-room/pause`);
  assert.equal(paused.status, 200, paused.text);
  assert.deepEqual(paused.body, { productId, waitingRoom: { ...ROOM, paused: true } });
  await edgeSeesRoom(productId, { ...ROOM, paused: true });

  const users = Array.from({ length: 8 }, () => freshUserId());
  const before = await originBuyRequests();
  for (let round = 0; round < 3; round++) {
    for (const userId of users) {
      const a = await buyViaEdge({ productId }, { token: signToken(userId) });
      assert.ok(isQueued(a) && a.body.paused === true, `held while paused: ${a.text}`);
    }
    await sleep(1_000);
  }
  assert.equal(await originBuyRequests(), before, "nobody reached the origin while the room was paused");

  // Resumed at a faster pace, set live: 4 a window.
  const FASTER = { ...ROOM, newUsersPerInterval: 4 };
  assert.equal((await adminRaw("PUT", `/admin/products/${productId}/waiting-room`, FASTER)).status, 200);
  const resumed = await adminRaw("POST", `/admin/products/${productId}/waiting-room/resume`);
  assert.deepEqual(resumed.body, { productId, waitingRoom: FASTER });
  await edgeSeesRoom(productId, FASTER);
  const windows = new Map();
  await Promise.all(users.map(async (userId) => {
    for (let i = 0; i < 20; i++) {
      const a = await buyViaEdge({ productId }, { token: signToken(userId) });
      if (isOrder(a)) {
        const admittedAt = claimsOf(a.headers.get("x-seckill-pass")).exp - ROOM.sessionSecs;
        windows.set(admittedAt, (windows.get(admittedAt) ?? 0) + 1);
        return;
      }
      assert.ok(isQueued(a) && !a.body.paused, a.text);
      await sleep(1_000);
    }
    assert.fail(`user ${userId} was not let in after the room resumed`);
  }));
  for (const [at, n] of windows) assert.ok(n <= FASTER.newUsersPerInterval, `${n} admitted in the second ${at}`);
  // A sale without a room cannot be paused; bad ids are 400.
  const roomless = await createProduct({ name: "Edge No Room", stock: 1 });
  const none = await adminRaw("POST", `/admin/products/${roomless}/waiting-room/pause`);
  assert.equal(none.status, 404, none.text);
  assert.match(none.body.message, /no waiting room/);
  assert.equal((await adminRaw("POST", "/admin/products/0/waiting-room/pause")).status, 400);
});

test("a room spread over four objects admits its whole pace and no more", async () => {
  const ROOM = { newUsersPerInterval: 8, intervalSecs: 2, maxActiveUsers: 1000, sessionSecs: 120, shards: 4 };
  const productId = await createProduct({ name: "Edge Room Shards", stock: 100, waitingRoom: ROOM });
  await edgeSeesRoom(productId, ROOM);
  const before = await originBuyRequests();
  const admitted = new Map();
  await Promise.all(Array.from({ length: 48 }, () => freshUserId()).map(async (userId) => {
    for (;;) {
      const a = await buyViaEdge({ productId }, { token: signToken(userId) });
      if (isOrder(a)) {
        const window = Math.floor((claimsOf(a.headers.get("x-seckill-pass")).exp - ROOM.sessionSecs) / ROOM.intervalSecs);
        admitted.set(window, (admitted.get(window) ?? 0) + 1);
        return;
      }
      assert.ok(isQueued(a), a.text);
      await sleep(a.body.refreshIntervalSecs * 1000);
    }
  }));
  assert.equal(await originBuyRequests(), before + 48);
  for (const [w, n] of admitted) assert.ok(n <= ROOM.newUsersPerInterval, `${n} admitted in window ${w}`);
});

test("a room with a challenge: no solution never reaches the origin, a solved one joins, a replayed or expired one is refused", async () => {
  const ROOM = { newUsersPerInterval: 100, intervalSecs: 1, maxActiveUsers: 1000, sessionSecs: 10, challenge: { difficulty: 8 } };
  const productId = await createProduct({ name: "Edge Room Challenge", stock: 10, perUserLimit: 1, waitingRoom: ROOM });
  await edgeSeesRoom(productId, ROOM);
  const [a, b] = [freshUserId(), freshUserId()];
  const before = await originBuyRequests();
  const refused = (answer, pattern) => {
    assert.equal(answer.status, 403, answer.text);
    assert.equal(answer.body.code, "CHALLENGE_FAILED", answer.text);
    assert.ok(decidedByEdge(answer), answer.text);
    assert.match(answer.body.message, pattern, answer.text);
  };
  refused(await buyViaEdge({ productId }, { token: signToken(a) }), /asks for a solved challenge/);

  const got = await getViaEdge(`/api/challenge?productId=${productId}`, { token: signToken(a) });
  assert.equal(got.status, 200, got.text);
  assert.equal(got.body.difficulty, 8);
  const { challenge } = got.body;
  const nonce = solveChallenge(challenge, 8);
  const wrongNonce = [...Array(100).keys()].map(String).find((n) => n !== nonce && Math.clz32(
    Number.parseInt(createHashHex(`${challenge}:${n}`).slice(0, 8), 16)) < 8);
  refused(await buyViaEdge({ productId }, { token: signToken(a), headers: { "x-seckill-challenge": `${challenge}:${wrongNonce}` } }),
    /does not solve/);
  refused(await buyViaEdge({ productId }, { token: signToken(b), headers: { "x-seckill-challenge": `${challenge}:${nonce}` } }),
    /not issued to this user/);
  const now = Math.floor(Date.now() / 1000);
  const stale = signChallenge(a, productId, { iat: now - 200, exp: now - 80 });
  refused(await buyViaEdge({ productId }, { token: signToken(a), headers: { "x-seckill-challenge": `${stale}:${solveChallenge(stale, 8)}` } }),
    /expired/);
  assert.equal(await originBuyRequests(), before, "no buy without a good solution reached the origin");

  // Solved: A joins and is let in (the room has room), and the buy goes on to the origin.
  const solved = await buyViaEdge({ productId, quantity: 2 }, { token: signToken(a), headers: { "x-seckill-challenge": `${challenge}:${nonce}` } });
  assert.equal(solved.body?.code, "OVER_LIMIT", `admitted and forwarded: ${solved.text}`);
  assert.ok(solved.headers.get("x-seckill-pass"), "admitted");
  assert.equal(await originBuyRequests(), before + 1);
  // Once the session is over, the same solution does not let A in again.
  await sleep(ROOM.sessionSecs * 1000 + 1_000);
  refused(await buyViaEdge({ productId }, { token: signToken(a), headers: { "x-seckill-challenge": `${challenge}:${nonce}` } }),
    /already used/);
  const none = await getViaEdge(`/api/challenge?productId=${await createProduct({ name: "Edge No Challenge", stock: 1 })}`,
    { token: signToken(a) });
  assert.equal(none.status, 404, none.text);
});
