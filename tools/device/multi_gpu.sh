#!/usr/bin/env bash
# Issue #19 on the two-GPU machine (nvidia-h200-x2), after tools/device/pack.sh here (carry
# .device): the split engine's tests, then vexbench on the full-size synthetic checkpoints, one
# GPU against two in each layout (tp and ep both, experts only, attention only), and one
# profiled step of the split (the collectives' share); or the split's race (docs/multi-gpu.md):
# NCCL's transport lines, then VirtualExpertFiresAsOnOneGpu repeated, by default and under each
# switch that would tell the suspects apart, every failing repetition's log kept in $out.
#   tools/device/multi_gpu.sh tests|20b|120b|race [REPEATS (default 32)]
set -uo pipefail
. tools/device/env.sh
B=$pack/bin
status=0
case ${1:-tests} in
  tests)
    nvidia-smi topo -m | head -4
    echo "NCCL from ${nccl:-?}"
    timeout 300 "$B/test_multi_gpu" 2>&1 | tee "$out/test_multi_gpu.log" | grep -v "^\[ *RUN\|^\[ *OK" | tail -40
    status=${PIPESTATUS[0]}
    ;;
  race)
    nvidia-smi topo -m | head -4
    echo "NCCL from ${nccl:-?}"
    filter='*VirtualExpertFiresAsOnOneGpu*'
    NCCL_DEBUG=INFO NCCL_DEBUG_SUBSYS=ALL timeout 120 "$B/test_multi_gpu" --gtest_filter="$filter" \
      2>&1 | grep -E "NCCL INFO.*( via |version|isAllDirectP2p)" | sed -E 's/^[^ ]+ //' | sort -u | head -12
    for env_set in "" VEX_NO_PDL=1 NCCL_MEM_SYNC_DOMAIN=0 CUDA_LAUNCH_BLOCKING=1; do
      name=${env_set:-default}
      log=$out/race-${name%%=*}.log
      # shellcheck disable=SC2086
      env $env_set timeout 280 "$B/test_multi_gpu" --gtest_filter="$filter" \
        --gtest_repeat="${2:-32}" > "$log" 2>&1
      echo "$name: $(grep -cE '^\[       OK \]' "$log") passed, $(grep -cE '^\[  FAILED  \] MultiGpu' "$log") failed"
      grep -q '^\[  FAILED  \] MultiGpu' "$log" && { status=1; grep -E "Failure|Expected|Which is|median|off by" "$log" | head -8; }
    done
    ;;
  20b | 120b)
    ck=/tmp/vex-$1
    [ -f "$ck/config.json" ] || "$B/vexgen" --shape "$1" --out "$ck" | tail -1
    shift_args=(-p 2048 -n 128 -b 1,64 -r 3)
    for layout in "1" "2 --tp 2 --ep 2" "2 --tp 1 --ep 2" "2 --tp 2 --ep 1"; do
      [ "$1" = 120b ] && [ "$layout" = "2 --tp 2 --ep 1" ] && continue
      name=$(echo "gpus $layout" | tr -d ' -')
      echo "== $1 --gpus $layout"
      timeout 240 "$B/vexbench" --weights "$ck" --gpus $layout "${shift_args[@]}" \
        | tee "$out/$1-$name.md" | tail -4 || status=1
    done
    echo "== $1 --gpus 2 --profile"
    timeout 120 "$B/vexbench" --weights "$ck" --gpus 2 -p 1 -n 64 -b 1 -r 1 --profile \
      | tee "$out/$1-profile.md" | grep -E "^\| (all_|moe|o_proj|rmsnorm\+qkv|lm_head|attention)|kernels timed" || status=1
    ;;
esac
exit $status
