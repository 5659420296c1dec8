// Identity at the edge: tokens are checked there, alone, before anything reaches the origin;
// the buyer is the token's user; orders are their owner's. Tokens are signed here as an
// identity provider would sign them (docs/DESIGN.md "Identity"), independently of the Rust verifier.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  EDGE_SECRET, EDGE_URL, ORIGIN_URL, buyViaEdge, createProduct, decidedByEdge, freshUserId, getViaEdge,
  originBuyRequests, payViaEdge, signToken, waitFor,
} from "./stack.mjs";

/** Buys one unit as a fresh user and waits until the order is UNPAID; returns both. */
async function unpaidOrder(productId) {
  const userId = freshUserId();
  const bought = await buyViaEdge({ productId }, { token: signToken(userId) });
  assert.equal(bought.status, 200, bought.text);
  const { orderNo } = bought.body;
  const token = signToken(userId);
  const order = await waitFor(async () => {
    const a = await getViaEdge(`/api/orders/${orderNo}`, { token });
    return a.status === 200 && a.body.status === "UNPAID" ? a : null;
  }, { timeoutMs: 30_000 });
  assert.ok(order, `order ${orderNo} never became UNPAID`);
  assert.equal(order.body.userId, userId, "the buyer is the token's user");
  return { userId, orderNo, token };
}

test("buy, order lookup and pay without a valid token are 401 at the edge and never reach the origin", async () => {
  const productId = await createProduct({ name: "Edge Identity 401", stock: 5 });
  const { orderNo } = await unpaidOrder(productId);
  const user = freshUserId();
  const now = Math.floor(Date.now() / 1000);
  const valid = signToken(user);
  const [h, c, sig] = valid.split(".");
  const other = signToken(user + 1).split(".")[1];
  const badTokens = {
    "no token": null,
    expired: signToken(user, { claims: { iat: now - 4000, exp: now - 400 } }),
    "claims swapped": `${h}.${other}.${sig}`,
    "signature cut": `${h}.${c}.${sig.slice(0, -4)}`,
    "another key": signToken(user, { keys: "dev:an-attacker-guessed-this-key-0123456789" }),
    "alg none": `${Buffer.from(JSON.stringify({ alg: "none", kid: "dev" })).toString("base64url")}.${c}.`,
    "lives 2 h": signToken(user, { claims: { exp: now + 7200 } }),
    "other audience": signToken(user, { claims: { aud: "another-shop" } }),
    garbage: "not-a-token",
  };
  const before = await originBuyRequests();
  for (const [what, token] of Object.entries(badTokens)) {
    for (const [route, a] of [
      ["buy", await buyViaEdge({ productId }, { token })],
      ["order", await getViaEdge(`/api/orders/${orderNo}`, { token })],
      ["pay", await payViaEdge(orderNo, token)],
    ]) {
      assert.equal(a.status, 401, `${what} → ${route}: ${a.status} ${a.text}`);
      assert.equal(a.body.code, "UNAUTHENTICATED", `${what} → ${route}`);
      assert.ok(decidedByEdge(a), `${what} → ${route} must be decided at the edge`);
    }
  }
  // A token in a cookie other than the seckill one does not count either.
  const cookieOnly = await buyViaEdge({ productId }, { token: null, headers: { cookie: `other_token=${valid}` } });
  assert.equal(cookieOnly.status, 401, cookieOnly.text);
  assert.equal(await originBuyRequests(), before, "no unauthenticated buy reached the origin");
});

test("a body naming another user is 403 at the edge; without userId the token's user buys", async () => {
  const productId = await createProduct({ name: "Edge Identity 403", stock: 5 });
  const user = freshUserId();
  const before = await originBuyRequests();
  const other = await buyViaEdge({ userId: user + 1, productId }, { token: signToken(user) });
  assert.equal(other.status, 403, other.text);
  assert.equal(other.body.code, "FORBIDDEN");
  assert.ok(decidedByEdge(other));
  assert.equal(await originBuyRequests(), before, "the 403 was the edge's alone");
  const own = await buyViaEdge({ productId }, { token: signToken(user) });
  assert.equal(own.status, 200, own.text);
  // The bought flag is keyed by the token's user: a repeat with the same token stops at the edge.
  const again = await buyViaEdge({ productId }, { token: signToken(user) });
  assert.equal(again.body.code, "ALREADY_BOUGHT", again.text);
});

test("user B can neither see nor pay user A's order, through the edge or at the origin", async () => {
  const productId = await createProduct({ name: "Edge Identity Owner", stock: 5 });
  const a = await unpaidOrder(productId);
  const bToken = signToken(freshUserId());
  const seen = await getViaEdge(`/api/orders/${a.orderNo}`, { token: bToken });
  assert.equal(seen.status, 404, seen.text);
  assert.equal(seen.body.code, "NO_SUCH_ORDER");
  const paid = await payViaEdge(a.orderNo, bToken);
  assert.equal(paid.status, 404, paid.text);
  const direct = await fetch(`${ORIGIN_URL}/api/orders/${a.orderNo}/pay`, {
    method: "POST",
    headers: { "x-seckill-edge-secret": EDGE_SECRET, authorization: `Bearer ${bToken}`, "content-type": "application/json" },
    body: "{}",
  });
  assert.equal(direct.status, 404, "straight at the origin too");
  const mine = await payViaEdge(a.orderNo, a.token);
  assert.equal(mine.status, 200, mine.text);
  assert.equal(mine.body.status, "PAID");
});

test("the origin refuses a request without the edge secret", async () => {
  const res = await fetch(`${ORIGIN_URL}/api/products`);
  assert.equal(res.status, 403);
  assert.equal((await res.json()).code, "FORBIDDEN");
});

test("the local login through the edge sets an HttpOnly cookie that signs the page's calls in", async () => {
  const productId = await createProduct({ name: "Edge Identity Login", stock: 5 });
  const userId = freshUserId();
  const res = await fetch(`${EDGE_URL}/api/login`, {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ userId }),
  });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(body.userId, userId);
  const cookie = res.headers.get("set-cookie");
  assert.match(cookie, /^seckill_token=[^;]+; Max-Age=\d+; Path=\/; HttpOnly; SameSite=Strict/);
  const bought = await buyViaEdge({ productId }, { token: null, headers: { cookie: cookie.split(";")[0] } });
  assert.equal(bought.status, 200, bought.text);
  const json = { "content-type": "application/json" };
  const bad = await fetch(`${EDGE_URL}/api/login`, { method: "POST", headers: json, body: JSON.stringify({ userId: 0 }) });
  assert.equal(bad.status, 400);
  const huge = await fetch(`${EDGE_URL}/api/login`, { method: "POST", headers: json, body: "x".repeat(64 * 1024) });
  assert.equal(huge.status, 413, "the edge refuses bodies over its cap");
});
