#!/usr/bin/env bash
# Serving throughput on the GPU machine (after tools/device/pack.sh here, carry .device):
# vexserve on one GPU driven over loopback HTTP by bench/serve_load.py at 1..128 concurrent
# streaming clients (greedy, 256 tokens, 2 requests per client, each count run twice: cold then
# measured), then vexbench -b at the same
# batch sizes on the same weights, for the comparison bench/NOTES.md records.
#   [GPUS=2] tools/device/serve_bench.sh [WEIGHTS_DIR]      (default: the demo model, one GPU)
set -uo pipefail
. tools/device/env.sh
weights=${1:-$PWD/models/vex-demo}
clients=${CLIENTS:-1 8 32 64 128}
port=8091
gpus=${GPUS:-1}
"$pack/bin/vexserve" --weights "$weights" --device cuda --gpus "$gpus" --parallel 128 --ctx-size 512 \
  --max-queue 256 --port $port >"$out/vexserve.log" 2>&1 &
server=$!
for _ in $(seq 300); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/health')" \
    2>/dev/null && break
  sleep 0.2
done
status=0
# Each client count runs twice: the first run pays the one-time costs (a CUDA graph captured
# per new batch size) and goes to cold.jsonl; the second is the measurement.
for c in $clients; do
  for run in cold serve_load; do
    python3 bench/serve_load.py --port $port --clients "$c" --requests 2 --max-tokens 256 \
      | tee -a "$out/$run-gpus$gpus.jsonl" || status=1
  done
done
python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:$port/metrics').read().decode())" \
  | grep -E "^vex_" >"$out/metrics.txt"
kill -TERM $server
wait $server || { echo "vexserve exited with $?"; status=1; }
tail -3 "$out/vexserve.log"
[ -n "${NO_VEXBENCH:-}" ] && exit $status
"$pack/bin/vexbench" --weights "$weights" --gpus "$gpus" -p 16 -n 256 -b "$(echo $clients | tr ' ' ,)" -r 2 \
  | tee "$out/vexbench_serve-gpus$gpus.md"
exit $status
