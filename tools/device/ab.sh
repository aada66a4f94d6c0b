#!/usr/bin/env bash
# A same-machine A/B on the GPU machine: vexbench variants run in turn, ROUNDS times, with the
# same flags, on the synthetic checkpoint (written first if absent), one csv line per run
# (test, batch, t/s, ±, GB/s, share of copy bandwidth). GPU machines differ by ~5 % from one
# lease to the next, so a change is judged within one run of this script (bench/NOTES.md).
#   AB="vexbench_old vexbench VEX_X=1:vexbench" [AB_ROUNDS=2] [AB_SHAPE=20b] \
#     tools/device/ab.sh VEXBENCH_FLAGS...
# A variant is a binary in .device/pack/bin (pack.sh --add), optionally with environment
# settings before a colon (K=V,K2=V2:binary). The flags exclude --weights and -o.
set -uo pipefail
. tools/device/env.sh
shape=${AB_SHAPE:-20b}
ck=/tmp/vex-$shape
[ "$shape" = 120b ] && ck=/dev/shm/vex-120b  # the one-GPU machine's disk is too small for it
[ -f "$ck/config.json" ] || "$pack/bin/vexgen" --shape "$shape" --out "$ck" | tail -1
for round in $(seq "${AB_ROUNDS:-2}"); do
  for v in ${AB:?AB lists the variants}; do
    env_part='' bin=$v
    [[ $v == *:* ]] && env_part=${v%%:*} bin=${v#*:}
    # shellcheck disable=SC2086
    line=$(env ${env_part//,/ } "$pack/bin/$bin" --weights "$ck" "$@" -o csv |
           grep -E ',(pp|tg)[0-9]' | cut -d, -f9-14 | tr '\n' ' ')
    echo "round $round $v: $line" | tee -a "$out/ab.txt"
  done
done
