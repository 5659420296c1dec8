#!/usr/bin/env bash
# make contract: the API against its own document. schemathesis (PyPI, pinned) reads the
# origin's OpenAPI document (/admin/openapi.json), generates valid and invalid requests for every
# operation and checks each answer: no server error, a status, a content type and a body the
# document declares, every request the document forbids refused (4xx) and every request it
# allows accepted: answered, or refused only by a rule JSON Schema cannot state (422, see
# config/schemathesis.toml). It runs against the test shop (an
# origin of its own database, Redis prefix and topics: scripts/test-shop.sh), the admin routes
# with the admin token, the shop routes with a user token and the edge secret, the probes bare.
# Exits non-zero if a check fails; the report is in .run/contract/.
#   SCHEMATHESIS_EXAMPLES  test cases per operation and mode (default 60)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$SECKILL_ROOT"

SCHEMATHESIS_VERSION=4.32.5
venv="$SECKILL_TOOLS/schemathesis-$SCHEMATHESIS_VERSION"
if [[ ! -x "$venv/bin/schemathesis" ]]; then
  log "installing schemathesis $SCHEMATHESIS_VERSION (PyPI) into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

cargo build --quiet -p seckill-origin --bin seckill-origin   # the shop runs what this tree builds
"$SECKILL_ROOT/scripts/test-shop.sh" up
trap '"$SECKILL_ROOT/scripts/test-shop.sh" down' EXIT
eval "$("$SECKILL_ROOT/scripts/test-shop.sh" urls)"
out="$SECKILL_RUN/contract"
rm -rf "$out" && mkdir -p "$out"

# A user of the local login (the test shop runs in the local environment).
token="$(curl -sS -f -X POST -H "x-seckill-edge-secret: $EDGE_SECRET" -H 'content-type: application/json' \
  -d '{"userId": 424242}' "$ORIGIN_URL/api/login" | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')"

# The document's example buy names product 1: make it a live sale (the test shop's database is
# fresh, so the first product is 1) so that buys reach the buy path, not only 404s.
sale="$(admin POST /admin/products '{"name":"Contract sale","price":"10.00","stock":100000,"perUserLimit":1000}')"
[[ "$sale" == *'"id":1'[,}]* ]] || die "the contract's sale is not product 1: $sale"
admin POST /admin/products/1/preload >/dev/null

failed=()
# run NAME PATH-REGEX [HEADER...]: every operation under PATH-REGEX, every check that needs no
# links between operations.
run() {
  local name="$1" paths="$2"; shift 2
  local headers=()
  for header in "$@"; do headers+=(-H "$header"); done
  log "contract: $name operations"
  # From the report folder: schemathesis keeps a crash cache in its working directory.
  (cd "$out" && "$venv/bin/schemathesis" --config-file "$SECKILL_ROOT/config/schemathesis.toml" \
    run "$ORIGIN_URL/admin/openapi.json" \
    --include-path-regex "$paths" "${headers[@]}" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection,positive_data_acceptance \
    --phases examples,coverage,fuzzing --max-examples "${SCHEMATHESIS_EXAMPLES:-60}" \
    --seed 20261205 --no-color --request-timeout 10 --generation-database none \
    --report junit --report-junit-path "$out/$name.xml") ||
    failed+=("$name")
}
run admin '^/admin/(products|orders|rejected-orders|dead-letters|overview|metrics)' "Authorization: Bearer $ADMIN_TOKEN"
run shop '^/api/' "Authorization: Bearer $token" "x-seckill-edge-secret: $EDGE_SECRET"
run probes '^/(health|livez|metrics)$'

[[ ${#failed[@]} -eq 0 ]] || die "the API does not keep its document: ${failed[*]} (reports in $out)"
log "contract: every operation keeps its document"
