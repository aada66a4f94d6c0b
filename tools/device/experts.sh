#!/usr/bin/env bash
# Issue #5 on the GPU machine: what pruning saves and what virtual experts cost, on the full-size
# synthetic gpt-oss-20b (written by gpu.sh). One vexbench run of three configurations: no
# manifest, a HOST calculator attached at layer 12 whose row never wins (attached, not firing),
# and 50 % of the experts pruned in every layer. `-p 4` times a 4-token chunk: the injection of a short
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
# One table: the model alone, the silent calculator, half the experts pruned.
"$pack/bin/vexbench" --weights "$ck" -p 4,512 -n 128 -r 5 \
  --experts ",$m/idle.toml,$m/prune50.toml" "$@" | tee "$out/experts.md"
