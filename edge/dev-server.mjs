// Runs the prebuilt edge locally on wrangler's dev server (the same machinery as `wrangler dev`,
// through its node API), started by `scripts/edge.sh start`:
//
//   node edge/dev-server.mjs --config FILE --ip IP --port PORT --persist-to DIR [--var NAME:VALUE]...
//
// Why not the `wrangler dev` CLI: it always attaches its DevTools inspector proxy, which enables
// the runtime's Network domain, so every fetch the worker makes (each forwarded buy) emits four
// DevTools events that wrangler parses and relays, one HTTP post each, to its node process.
// Measured on this stack, that relay cost each forwarded buy ~2.5 ms of CPU in node and ~1 ms in
// wrangler's proxy, more than the worker itself spends, on a 2-core machine that also runs the
// origin. The API can leave the inspector out; `EDGE_DEVTOOLS=1` puts it back for debugging.
// `unstable_startWorker` is what the CLI itself runs; wrangler is pinned in package-lock.json.
//
// `--direct` (the bench's runner, never `make up`'s): the same Worker on the same workerd through
// wrangler's own Miniflare, without wrangler's proxy process in front (every request of the dev
// server crosses it: its own workerd, a Durable Object and a loopback HTTP hop) and without
// miniflare's worker that strips CF-Connecting-IP from each outbound fetch. `make bench` reports
// both runners, so what is the Worker's cost and what is the dev server's can be told apart.
import { createRequire } from "node:module";
import { parseArgs } from "node:util";
import { unstable_getMiniflareWorkerOptions, unstable_startWorker } from "wrangler";

const { values: args } = parseArgs({
  options: {
    config: { type: "string" },
    ip: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "8787" },
    "persist-to": { type: "string" },
    "log-level": { type: "string", default: "warn" },
    var: { type: "string", multiple: true, default: [] },
    direct: { type: "boolean", default: false },
  },
});
if (!args.config || !args["persist-to"]) {
  console.error("usage: dev-server.mjs --config FILE --persist-to DIR [--ip IP] [--port PORT] [--var NAME:VALUE]... [--direct]");
  process.exit(2);
}

// Same meaning as `wrangler dev --var NAME:VALUE`: plain-text bindings over the config's [vars].
const bindings = Object.fromEntries(
  args.var.map((pair) => {
    const at = pair.indexOf(":");
    if (at < 1) throw new Error(`--var wants NAME:VALUE, got ${JSON.stringify(pair)}`);
    return [pair.slice(0, at), { type: "plain_text", value: pair.slice(at + 1) }];
  }),
);

const worker = args.direct ? await startDirect() : await unstable_startWorker({
  config: args.config,
  bindings,
  dev: {
    server: { hostname: args.ip, port: Number(args.port) },
    inspector: process.env.EDGE_DEVTOOLS === "1" ? undefined : false,
    persist: args["persist-to"],
    logLevel: args["log-level"],
    watch: false,
  },
});
await worker.ready;
console.log(`edge dev server ready on http://${args.ip}:${args.port}`);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await worker.dispose();
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);

/** The Worker on wrangler's own Miniflare, with no proxy in front (`--direct`). */
async function startDirect() {
  // Wrangler's Miniflare, the one `unstable_startWorker` runs (not whatever else is installed).
  const { Miniflare } = createRequire(createRequire(import.meta.url).resolve("wrangler"))("miniflare");
  const { workerOptions, main } = unstable_getMiniflareWorkerOptions(args.config);
  const vars = Object.fromEntries(Object.entries(bindings).map(([name, b]) => [name, b.value]));
  const mf = new Miniflare({
    host: args.ip,
    port: Number(args.port),
    ...workerOptions,
    name: "seckill-edge",
    modules: true,
    scriptPath: main,
    bindings: { ...workerOptions.bindings, ...vars },
    cachePersist: `${args["persist-to"]}/cache`,
    durableObjectsPersist: `${args["persist-to"]}/do`,
    stripCfConnectingIp: false,
    logRequests: false,
  });
  await mf.ready;
  return { ready: Promise.resolve(), dispose: () => mf.dispose() };
}
