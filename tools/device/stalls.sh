#!/usr/bin/env bash
# Per-instruction stall samples of the kernels a regex names, on the GPU machine (after
# tools/device/pack.sh with vexgen and vexbench): ncu's SourceCounters and WarpStateStats over
# vexbench on the synthetic 20b checkpoint, exported as SASS with each instruction's samples
# (all, and those where the warp issued nothing) and execution count, gzipped into
# $out/stalls_src.csv.gz (a few MB); then, here, `tools/stalls.py FILE` cuts each kernel into
# its stretches of equal execution count (prologue, loop, epilogue) with their share of the
# samples. Session 14 (bench/NOTES.md) found this way that the MoE loops issue 81 % of the time
# and their kernels' ends are one chain of latencies.
#   tools/device/stalls.sh REGEX [SKIP [COUNT]] -- VEXBENCH_FLAGS...
#     REGEX  ncu's kernel-name regex, e.g. 'gate_up_tc|down_tc' or 'attention_(kernel|combine)'
#     SKIP   launches of those kernels to pass over first (default 96: past the prefill and the
#            first decode steps), COUNT launches to profile (default 2)
#   e.g. tools/device/stalls.sh 'attention_kernel' 30 4 -- -p 16 -n 4 -b 1 -d 8192 -r 1
set -uo pipefail
. tools/device/env.sh
regex=${1:?REGEX}
shift
skip=96 count=2
[ $# -gt 0 ] && [ "$1" != -- ] && { skip=$1; shift; }
[ $# -gt 0 ] && [ "$1" != -- ] && { count=$1; shift; }
[ "${1:-}" = -- ] && shift
ck=/tmp/vex-20b
[ -f "$ck/config.json" ] || "$pack/bin/vexgen" --shape 20b --out "$ck" | tail -1
rep=$out/stalls
ncu --clock-control none --cache-control none -k "regex:$regex" --launch-skip "$skip" \
  --launch-count "$count" --section SourceCounters --section WarpStateStats -o "$rep" -f \
  "$pack/bin/vexbench" --weights "$ck" "$@" > "$out/stalls_log.txt" 2>&1 ||
  { tail -5 "$out/stalls_log.txt"; exit 1; }
ncu --import "$rep.ncu-rep" --page source --csv --print-source sass | gzip > "$out/stalls_src.csv.gz"
ncu --import "$rep.ncu-rep" --page details > "$out/stalls_details.txt"
rm -f "$rep.ncu-rep"
grep -E "Warp Cycles Per Issued|Issued Warp Per Scheduler|Stall (Long|Wait|Barrier|Math|Short)" \
  "$out/stalls_details.txt"
