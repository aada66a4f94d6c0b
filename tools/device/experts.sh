#!/usr/bin/env bash
# Issue #5 on the GPU machine: what pruning saves and what virtual experts cost, on the full-size
# synthetic gpt-oss-20b (written by gpu.sh). Three vexbench runs of the same shape: no manifest,
# 50 % of the experts pruned in every layer, and a HOST calculator attached at layer 12 whose row
# never wins (attached, not firing). `-p 4` times a 4-token chunk: the injection of a short
# continuation (one firing).
#   OUT=... tools/device/experts.sh
set -uo pipefail
. tools/device/env.sh
ck=/tmp/vex-20b
m=/tmp/vex-manifests
mkdir -p "$m"
[ -f "$ck/config.json" ] || "$pack/bin/vexgen" --shape 20b --out "$ck" | tail -1
python3 - "$m" <<'PY'
import sys, numpy as np
from safetensors.numpy import save_file
d = sys.argv[1]
save_file({"weight": np.zeros((1, 2880), np.float32), "bias": np.full((1,), -30, np.float32)},
          f"{d}/idle.safetensors")
keep = ", ".join(f'"{l}" = [{", ".join(str(e) for e in range(0, 32, 2))}]' for l in range(24))
open(f"{d}/prune50.toml", "w").write(f"[prune]\nkeep = {{ {keep} }}\n")
open(f"{d}/idle.toml", "w").write('[[virtual]]\nname = "calculator"\nkind = "host"\n'
                                  'layers = [12]\nrouter = "idle.safetensors"\nthreshold = 0.5\n')
PY
for run in none idle prune50; do
  flags=()
  [ "$run" != none ] && flags=(--experts "$m/$run.toml")
  echo "== $run"
  "$pack/bin/vexbench" --weights "$ck" -p 4,512 -n 128 -r 5 "${flags[@]}" "$@" | tee "$out/experts-$run.md"
done
