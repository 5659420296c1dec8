// Rate limits at the edge (Workers Rate Limiting, simulated by wrangler dev): a user sending
// ten times the per-user limit gets 429 RATE_LIMITED with Retry-After, decided at the edge, and
// the origin sees only what the limit lets through.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  buyViaEdge, createProduct, decidedByEdge, freshUserId, originBuyRequests, payViaEdge, signToken,
} from "./stack.mjs";

const USER_LIMIT = 5;       // wrangler.toml: USER_RATE_LIMITER, per 10 s
const PERIOD_MS = 10_000;

test("a user sending 10x the limit gets 429 with Retry-After and the origin sees at most the limit", async (t) => {
  // Not started: every buy the limiter lets through goes to the origin (NOT_STARTED is never
  // cached at the edge), so the origin's counter shows exactly what got past the limit.
  const productId = await createProduct({ name: "Edge Rate Limit", stock: 5, startAt: Date.now() + 10 * 60_000 });
  const token = signToken(freshUserId());
  const before = await originBuyRequests();
  const started = Date.now();
  const answers = [];
  for (let i = 0; i < 10 * USER_LIMIT; i++) answers.push(await buyViaEdge({ productId }, { token }));
  const took = Date.now() - started;
  const after = await originBuyRequests();

  const limited = answers.filter((a) => a.status === 429);
  const passed = answers.filter((a) => a.status !== 429);
  for (const a of limited) {
    assert.equal(a.body.code, "RATE_LIMITED", a.text);
    assert.equal(a.headers.get("retry-after"), "10");
    assert.ok(decidedByEdge(a));
  }
  for (const a of passed) assert.equal(a.body.code, "NOT_STARTED", a.text);
  // The simulated limiter counts in fixed 10 s windows: a burst crossing a window boundary may
  // get one more window's worth.
  const windows = Math.floor((started % PERIOD_MS + took) / PERIOD_MS) + 1;
  assert.ok(passed.length <= USER_LIMIT * windows, `${passed.length} got through in ${took} ms (${windows} window(s))`);
  assert.ok(limited.length >= 10 * USER_LIMIT - USER_LIMIT * windows, `${limited.length} limited`);
  assert.equal(after - before, passed.length, "the origin saw exactly the buys the limit let through");

  // Pay counts against the same user's limit; another user is not affected.
  const pay = await payViaEdge("SK-NOT-AN-ORDER-1", token);
  if (windows === 1) assert.equal(pay.status, 429, pay.text);
  const other = await buyViaEdge({ productId }, { token: signToken(freshUserId()) });
  assert.equal(other.body.code, "NOT_STARTED", other.text);
  t.diagnostic(`${passed.length} of ${answers.length} buys passed, ${limited.length} got 429, in ${took} ms`);
});
