// What another site's page can make a browser send: login, buy and pay refuse it at the edge
// (edge/src/cross_site.rs), before the token is read and before the origin hears of it, while
// the shop's own page (browser.test.mjs) and API clients, which send no Origin, go through.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  EDGE_URL, buyViaEdge, createProduct, decidedByEdge, edgeSeesOnSale, freshUserId, originBuyRequests, signToken,
} from "./stack.mjs";

test("buys another site makes a browser send are refused at the edge; the shop's own go through", async () => {
  const productId = await createProduct({ name: "Edge Cross Site", stock: 20 });
  await edgeSeesOnSale(productId);
  const before = await originBuyRequests();
  const refused = {
    "Origin of another site": [{ origin: "https://evil.example" }, 403, "FORBIDDEN"],
    "Sec-Fetch-Site cross-site": [{ "sec-fetch-site": "cross-site" }, 403, "FORBIDDEN"],
    "a form's body type": [{ "content-type": "application/x-www-form-urlencoded" }, 415, "UNSUPPORTED_MEDIA_TYPE"],
    "text/plain": [{ "content-type": "text/plain" }, 415, "UNSUPPORTED_MEDIA_TYPE"],
  };
  for (const [what, [headers, status, code]] of Object.entries(refused)) {
    const a = await buyViaEdge({ productId, userId: freshUserId() }, { headers });
    assert.equal(a.status, status, `${what}: ${a.text}`);
    assert.equal(a.body?.code, code, what);
    assert.ok(decidedByEdge(a), `${what}: decided at the edge`);
  }
  assert.equal(await originBuyRequests(), before, "no refused buy reached the origin");

  // The shop's own origin, and a client that sends none, are served.
  const own = await buyViaEdge({ productId, userId: freshUserId() }, { headers: { origin: new URL(EDGE_URL).origin, "sec-fetch-site": "same-origin" } });
  assert.equal(own.status, 200, own.text);
  const apiClient = await buyViaEdge({ productId, userId: freshUserId() });
  assert.equal(apiClient.status, 200, apiClient.text);
});

test("a login or a pay from another site is refused at the edge", async () => {
  const login = await fetch(`${EDGE_URL}/api/login`, {
    method: "POST",
    headers: { "content-type": "application/json", origin: "https://evil.example" },
    body: JSON.stringify({ userId: freshUserId() }),
  });
  assert.equal(login.status, 403, await login.text());
  assert.equal(login.headers.get("set-cookie"), null, "no session was made");
  const pay = await fetch(`${EDGE_URL}/api/orders/1-1/pay`, {
    method: "POST",
    headers: { "content-type": "text/plain", authorization: `Bearer ${signToken(freshUserId())}` },
    body: "{}",
  });
  assert.equal(pay.status, 415, await pay.text());
});
