#!/usr/bin/env bash
# On the GPU machine: regenerate the tiny checkpoint with the packed vexgen and write the
# transformers goldens to $OUT (copy them into tests/data/ afterwards).
#   tools/device/goldens.sh
set -euo pipefail
export LD_LIBRARY_PATH=$PWD/.device/pack/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
out=${OUT:-/tmp/goldens}
mkdir -p "$out"
cmd="vexgen --shape tiny --seed 0 --out /tmp/vex-golden-tiny"
.device/pack/bin/$cmd
PYTHONUNBUFFERED=1 python3 tools/goldens/make_goldens.py --ckpt /tmp/vex-golden-tiny \
  --out "$out/golden_tiny.safetensors" --vexgen "$cmd" "$@"
