#!/usr/bin/env python3
"""Writes the demo model's routing-study prompt set (models/vex-demo/eval/prompts-1000.txt): the
prose and arithmetic prompts, then every sentence of the held-out Brown text (longer than 20
characters), then the first half of each (at least 3 words), one per line, the first 1,000.
The model never saw any of it (tools/train/heldout_text.py).

  tools/train/probe_prompts.py > models/vex-demo/eval/prompts-1000.txt
"""
import re
import sys
from pathlib import Path

ev = Path(__file__).resolve().parents[2] / "models" / "vex-demo" / "eval"
text = (ev / "heldout-brown.txt").read_text()
sentences = [x.strip() for x in re.split(r"(?<=[.?!])\s+", text) if len(x.strip()) > 20]
halves = [" ".join(x.split()[: max(3, len(x.split()) // 2)]) for x in sentences]
fixed = [x for f in ("prose.txt", "arithmetic.txt") for x in (ev / f).read_text().splitlines() if x.strip()]
out = (fixed + sentences + halves)[:1000]
sys.stdout.write("\n".join(x.replace("\n", " ") for x in out) + "\n")
