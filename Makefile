# seckill: the two commands are `make up` and `make test`. See README.md.
SHELL := /bin/bash

.PHONY: up down status logs lint check test contract bench torture clean-cache

## Install what is missing, start the whole stack on 127.0.0.1 with a demo sale, print the URLs.
## PROFILE=cluster: a Redis Cluster, two broker masters with synchronous slaves, two origins and two consumers (docs/OPERATIONS.md).
up:
	@PROFILE="$(PROFILE)" scripts/stack.sh up

## Stop everything `make up` (or `make test`) started, by pid file.
down:
	@scripts/stack.sh down

## Each service of the stack: up / down / stale, pid, address, log file (exit 1 if one of `make up`'s is not up).
status:
	@scripts/status.sh status

## The last 40 lines of every service's log; ARGS="origin consumer" for some, ARGS=-f to follow.
logs:
	@scripts/status.sh logs $(ARGS)

## rustfmt and clippy (warnings are errors) over every crate, the edge's wasm build included.
lint:
	@scripts/lint.sh

## The fast tier, no service needed: `make lint`, then every crate's unit tests (about a minute warm).
check:
	@scripts/check.sh

## `make check`, then bring up what the tests need and run every test (unit, end-to-end, torture at
## CI scale, edge, browser).
test:
	@scripts/test.sh

## The API against its own OpenAPI document: schemathesis generates valid and invalid requests
## for every operation of the test shop's origin and checks each answer (make test runs it too).
contract:
	@scripts/contract.sh

## Remove the build and tool caches (~/.cache/seckill); the next `make up` rebuilds them.
clean-cache:
	rm -rf "$${SECKILL_CACHE:-$$HOME/.cache/seckill}"

## Measure the running stack (`make up`) against its ceilings: Redis, broker, origin (batched vs
## transaction), writer, edge (with CPU per process), click to order. Flags via ARGS, e.g.
## make bench ARGS="--requests 5000"; report in .run/bench/.
bench:
	@scripts/bench.sh $(ARGS)

## One sale under every fault at once (origins and consumers killed -9, broker and Redis
## restarted, every order message twice, malformed requests), then every invariant checked.
## The full run (50,000 buys); `make test` runs it at --scale ci. Report in .run/torture/.
torture:
	@scripts/torture.sh $(ARGS)
