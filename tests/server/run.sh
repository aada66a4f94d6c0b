#!/usr/bin/env bash
# vexserve end to end: the official `openai` npm package (version pinned here, installed once into
# the cache beside the tokenizer) against a server on the demo model with the calculator attached,
# then curl for what the client does not show (health without a key, metrics, shutdown).
#   tests/server/run.sh BUILD_DIR
set -euo pipefail
bin=$1
src=$(cd "$(dirname "$0")/../.." && pwd)
cache=${VEX_CACHE:-$HOME/.cache/vex}
openai_version=5.12.0
module=$cache/node/node_modules/openai
if [ "$(node -p "require('$module/package.json').version" 2>/dev/null)" != "$openai_version" ]; then
  mkdir -p "$cache/node"
  npm install --silent --no-audit --no-fund --prefix "$cache/node" "openai@$openai_version" >&2
fi
log=$(mktemp)
"$bin/vexserve" --port 0 --parallel 4 --ctx-size 1024 --api-key test-key \
  --experts "$src/models/vex-demo/calc.toml" 2>"$log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 100); do grep -q "listening on" "$log" && break; sleep 0.1; done
port=$(grep -o "listening on http://127.0.0.1:[0-9]*" "$log" | grep -o "[0-9]*$")
[ -n "$port" ] || { echo "vexserve did not start:"; cat "$log"; exit 1; }
base=http://127.0.0.1:$port

status=0
# The memory check reads the server's RSS; under AddressSanitizer freed memory sits in its
# quarantine, so RSS is not the server's to return and the check is left out.
rss_pid=$pid
[ -n "${ASAN_OPTIONS:-}" ] && rss_pid=
node "$src/tests/server/client_test.cjs" "$base/v1" test-key "$module" $rss_pid || status=1
# /health needs no key; everything else does.
[ "$(curl -s -o /dev/null -w '%{http_code}' "$base/health")" = 200 ] || { echo "FAIL: /health"; status=1; }
[ "$(curl -s -o /dev/null -w '%{http_code}' "$base/metrics")" = 401 ] || { echo "FAIL: /metrics without a key"; status=1; }
curl -s -H "Authorization: Bearer test-key" "$base/metrics" | grep -q "^vex_requests_finished_total [1-9]" ||
  { echo "FAIL: /metrics counts no finished requests"; status=1; }
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer test-key" -d '{"model":' "$base/v1/chat/completions")" = 400 ] ||
  { echo "FAIL: malformed JSON is not a 400"; status=1; }
# A body past the 16 MiB limit is refused with 413 before it is read whole.
head -c $((17 << 20)) /dev/zero | tr '\0' ' ' >"$log.big"
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer test-key" --data-binary @"$log.big" "$base/v1/chat/completions")" = 413 ] ||
  { echo "FAIL: an oversized body is not a 413"; status=1; }
rm -f "$log.big"
# SIGTERM: the server stops and exits 0.
kill -TERM $pid
wait $pid && code=0 || code=$?
[ "$code" = 0 ] && grep -q "vexserve: stopped" "$log" || { echo "FAIL: shutdown exit $code"; cat "$log"; status=1; }
[ $status = 0 ] && echo "all server checks passed"
exit $status
