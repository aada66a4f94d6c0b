#!/usr/bin/env bash
# On the GPU machine, from the repository root, with the corpus carried (.train, written here by
# tools/train/corpus.py): a smoke run of the whole pipeline on a 2-layer model (tokenizer, the
# check against transformers, a few steps, export), then the demo model's training run, then the
# transformers goldens of the export. What comes back ($OUT): train.log, smoke.log and
# demo.tar.part-* (the model folder, the goldens, the training report and the tokenizer check;
# `cat demo.tar.part-* | tar x` unpacks it).
#   MINUTES=5 tools/train/device.sh [train.py flags...]
set -euo pipefail
export PYTHONUNBUFFERED=1
out=${OUT:-/tmp/vex-train-out}
work=/tmp/vexdemo
mkdir -p "$out" "$work"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 tools/train/train.py --corpus .train --work "$work" --out /tmp/smoke --shape layers=2 \
  --steps 30 --ckpt /tmp/smoke.pt --tokenizer-docs 60000 2>&1 | tee "$out/smoke.log"
python3 tools/train/train.py --corpus .train --work "$work" --out "$work/export/vex-demo" \
  --minutes "${MINUTES:-5}" --max-minutes "${MAX_MINUTES:-7}" "$@" 2>&1 | tee "$out/train.log"
python3 tools/goldens/make_goldens.py --ckpt "$work/export/vex-demo" --source models/vex-demo \
  --lengths 1,9,150,300 --out "$work/export/golden_demo.safetensors" 2>&1 | tee -a "$out/train.log"
cp "$work/train_report.json" "$work/tokenizer_check.jsonl" "$work/export/"
tar cf - -C "$work/export" . | split -b 15M - "$out/demo.tar.part-"
ls -la "$out"
