#!/usr/bin/env python3
"""Writes the demo model's held-out perplexity text (models/vex-demo/eval/heldout-brown.txt): the
Brown corpus documents that tools/train/corpus.py held out of training (every 100th document of
each source; .train/heldout.jsonl.gz), joined by blank lines. The model never saw them.

  tools/train/heldout_text.py [--heldout .train/heldout.jsonl.gz] > models/vex-demo/eval/heldout-brown.txt
"""
import argparse
import gzip
import json
import sys

ap = argparse.ArgumentParser()
ap.add_argument("--heldout", default=".train/heldout.jsonl.gz")
ap.add_argument("--source", default="brown")
args = ap.parse_args()
docs = [json.loads(line) for line in gzip.open(args.heldout, "rt", encoding="utf-8")]
sys.stdout.write("\n\n".join(d["text"].strip() for d in docs if d["src"] == args.source) + "\n")
