#!/usr/bin/env bash
# The one command for the GPU machine, from the repository root, after `tools/device/pack.sh`
# here (carry .device): the GPU tests, then the full-size synthetic gpt-oss-20b checkpoint
# written to the machine's disk, then vexbench on it. Logs and a summary go to $OUT (or
# /tmp/vex-out); the summary table prints last.
#   tools/device/gpu.sh [--no-bench] [vexbench flags...]
#   tools/device/gpu.sh --sanitize   the GPU tests under compute-sanitizer (memcheck, racecheck;
#                                    a finding fails the run), no bench
set -uo pipefail
. tools/device/env.sh
bench=1
sanitize=0
[ "${1:-}" = "--no-bench" ] && { bench=0; shift; }
[ "${1:-}" = "--sanitize" ] && { sanitize=1; bench=0; shift; }
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader | tee "$out/gpu.txt"

status=0
run_test() {  # name, command...
  local name=$1; shift
  local t0=$SECONDS
  if "$@" >"$out/$name.log" 2>&1; then echo "PASS $name ($((SECONDS - t0)) s)"
  else echo "FAIL $name ($((SECONDS - t0)) s)"; status=1; fi
  grep -E "FAILED|Failure|error|max relative|agreement|ERROR SUMMARY|RACECHECK SUMMARY" \
    "$out/$name.log" | head -20
}
for t in "$pack"/bin/test_cuda_*  "$pack"/bin/test_forward_cuda; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  if [ "$sanitize" = 1 ]; then
    cs=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
    for tool in ${VEX_SANITIZE_TOOLS:-memcheck racecheck}; do
      if [ "$tool" = racecheck ]; then
        # racecheck does not model the TMA/mbarrier synchronization of cuBLASLt's Hopper kernels
        # (nvjet_*) and reports hazards inside them; excluding them from instrumentation crashes
        # the tool, so they run instrumented and only hazards in other kernels fail the run.
        run_test "$name.$tool" "$cs" --tool racecheck --print-limit 50 "$t"
        if grep "Race reported between" "$out/$name.$tool.log" | grep -qv "nvjet_"; then
          echo "FAIL $name.$tool: hazards outside cuBLASLt"; status=1
        fi
      else
        run_test "$name.$tool" "$cs" --tool "$tool" --error-exitcode 99 --print-limit 20 "$t"
      fi
    done
  else
    run_test "$name" "$t"
  fi
done

if [ "$bench" = 1 ]; then
  "$pack/bin/bench_kernels" 2>&1 | tee "$out/bench_kernels.txt" | grep -E "^BM_|^-|Benchmark"
  ck=/tmp/vex-20b
  [ -f "$ck/config.json" ] || "$pack/bin/vexgen" --shape 20b --out "$ck" | tail -1
  "$pack/bin/vexbench" --weights "$ck" -p 512,2048 -n 128 -r 5 "$@" | tee "$out/vexbench.md"
fi
exit $status
