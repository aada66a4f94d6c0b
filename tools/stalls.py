#!/usr/bin/env python3
"""Where a kernel's warps wait, from ncu's per-instruction stall samples.

Reads `ncu --page source --csv --print-source sass` output (tools/device/stalls.sh writes it
gzipped) and prints, for each kernel, its stretches of instructions with the same execution
count (a prologue runs once a warp, a loop body once a step, ...) with their share of the warp
samples and of those where the warp issued nothing, then the instructions with the most
samples. A stretch whose samples mostly issue is bound by its instruction count; one whose
samples mostly wait is a chain of latencies.

    tools/stalls.py stalls_src.csv.gz [--top N] [--min-share PERCENT]
"""
import argparse
import csv
import gzip
import io
import re
import sys


def kernels(text):
    """(name, rows) for each kernel section of the export; rows are dicts of the CSV."""
    for part in re.split(r'^"Kernel Name",', text, flags=re.M)[1:]:
        name, body = part.split("\n", 1)
        rows = [r for r in csv.DictReader(io.StringIO(body)) if r.get("Address")]
        yield name.strip().strip('",'), rows


def number(row, key):
    value = (row.get(key) or "0").replace(",", "")
    return int(float(value)) if value else 0


def report(name, rows, top, min_share):
    all_key = "Warp Stall Sampling (All Samples)"
    idle_key = "Warp Stall Sampling (Not-issued Samples)"
    total = sum(number(r, all_key) for r in rows)
    idle = sum(number(r, idle_key) for r in rows)
    short = re.sub(r"\(.*", "", name)[:100]
    print(f"{short}: {len(rows)} instructions, {total} samples, {idle} not issued")
    if not total:
        return
    # Stretches of consecutive instructions executed equally often.
    start = 0
    for i in range(1, len(rows) + 1):
        if i < len(rows) and rows[i]["Instructions Executed"] == rows[start]["Instructions Executed"]:
            continue
        part = rows[start:i]
        samples = sum(number(r, all_key) for r in part)
        waiting = sum(number(r, idle_key) for r in part)
        if 100.0 * samples / total >= min_share:
            print(f"  [{start:5d}, {i:5d}) executed {number(part[0], 'Instructions Executed'):>9d}"
                  f"  {100.0 * samples / total:5.1f} % of samples,"
                  f" {100.0 * (samples - waiting) / max(samples, 1):5.1f} % issuing")
        start = i
    print(f"  the {top} instructions with the most samples (all, not issued, index, SASS):")
    ranked = sorted(range(len(rows)), key=lambda i: -number(rows[i], all_key))[:top]
    for i in sorted(ranked):
        r = rows[i]
        print(f"    {number(r, all_key):6d} {number(r, idle_key):6d} {i:5d}  {r['Source'].strip()}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("file", help="ncu source export (.csv or .csv.gz)")
    parser.add_argument("--top", type=int, default=12, help="instructions to list (default 12)")
    parser.add_argument("--min-share", type=float, default=1.0,
                        help="stretches with less of the samples are not listed (default 1 %%)")
    args = parser.parse_args()
    opener = gzip.open if args.file.endswith(".gz") else open
    try:
        with opener(args.file, "rt") as f:
            text = f.read()
    except OSError as e:
        sys.exit(f"stalls.py: {args.file}: {e}")
    seen = set()
    found = False
    for name, rows in kernels(text):
        found = True
        # The export holds each profiled launch twice; launches of one kernel that differ (a
        # sliding layer's attention and a full one's) are kept apart by their samples.
        key = (name, len(rows), tuple(r["Warp Stall Sampling (All Samples)"] for r in rows))
        if key in seen:
            continue
        seen.add(key)
        report(name, rows, args.top, args.min_share)
    if not found:
        sys.exit(f"stalls.py: {args.file}: no \"Kernel Name\" sections (not ncu --page source --csv)")


if __name__ == "__main__":
    main()
