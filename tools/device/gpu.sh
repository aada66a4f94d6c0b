#!/usr/bin/env bash
# The one command for the GPU machine, from the repository root, after `tools/device/pack.sh`
# here (carry .device): the GPU tests, then the full-size synthetic gpt-oss-20b checkpoint
# written to the machine's disk, then vexbench on it. Logs and a summary go to $OUT (or
# /tmp/vex-out); the summary table prints last.
#   tools/device/gpu.sh [--no-bench] [vexbench flags...]
set -uo pipefail
pack=$PWD/.device/pack
export LD_LIBRARY_PATH=$pack/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# The packed binaries live away from the source tree: the demo model is found through this.
export VEX_DEMO_MODEL=$PWD/models/vex-demo
out=${OUT:-/tmp/vex-out}
mkdir -p "$out"
bench=1
[ "${1:-}" = "--no-bench" ] && { bench=0; shift; }
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader | tee "$out/gpu.txt"

status=0
for t in "$pack"/bin/test_cuda_*  "$pack"/bin/test_forward_cuda; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  if "$t" >"$out/$name.log" 2>&1; then echo "PASS $name"; else echo "FAIL $name"; status=1; fi
  grep -E "FAILED|Failure|error|max relative|agreement" "$out/$name.log" | head -20
done

if [ "$bench" = 1 ]; then
  "$pack/bin/bench_kernels" 2>&1 | tee "$out/bench_kernels.txt" | grep -E "^BM_|^-|Benchmark"
  ck=/tmp/vex-20b
  [ -f "$ck/config.json" ] || "$pack/bin/vexgen" --shape 20b --out "$ck" | tail -1
  "$pack/bin/vexbench" --weights "$ck" -p 512,2048 -n 128 -r 5 "$@" | tee "$out/vexbench.md"
fi
exit $status
