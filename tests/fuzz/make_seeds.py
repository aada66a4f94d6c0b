#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (tests/fuzz/corpus/<target>/) from the repository's own
data: the demo model's files, the experts' oracle suites (tests/data/experts/*.tsv), the tokenizer
corpus, and small safetensors files built here. Deterministic; rerun after changing a source.
Inputs that once crashed a target are committed beside the seeds as crash-* and are kept, as are
seeds written by hand (any name but the 16 hex digits of a generated one: fuzz_chat_request's).

    tests/fuzz/make_seeds.py [--vexgen build/vexgen]   (vexgen adds its two config layouts)
"""
import argparse, hashlib, json, pathlib, re, shutil, struct, subprocess, tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "tests/fuzz/corpus"
DEMO = ROOT / "models/vex-demo"


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)


def safetensors(tensors, metadata=None, pad=8):
    """tensors: [(name, dtype, shape, bytes)] laid out in order."""
    header, blobs, off = {}, b"", 0
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(data)]}
        blobs += data
        off += len(data)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % pad)
    return struct.pack("<Q", len(h)) + h + blobs


def safetensors_seeds():
    f32 = struct.pack("<4f", 1, 2, 3, 4)
    put("fuzz_safetensors", safetensors([("w", "F32", [2, 2], f32)]))
    put("fuzz_safetensors", safetensors([("a", "BF16", [3], b"\x80\x3f" * 3),
                                         ("b", "U8", [2, 3], bytes(range(6))),
                                         ("c", "I64", [1], struct.pack("<q", -5))],
                                        {"format": "pt"}))
    put("fuzz_safetensors", safetensors([("blocks", "U8", [2, 1, 16], bytes(32)),
                                         ("scales", "U8", [2, 1], b"\x7f\x80"),
                                         ("bias", "BF16", [2], bytes(4))]))
    put("fuzz_safetensors", safetensors([("empty", "F32", [0], b""), ("s", "F64", [], bytes(8))]))
    put("fuzz_safetensors", safetensors([]))
    good = safetensors([("w", "F32", [2], struct.pack("<2f", 1, 2))])
    put("fuzz_safetensors", good[:-4])                     # data section short
    put("fuzz_safetensors", struct.pack("<Q", 1 << 40) + good[8:])  # header past the end


def config_seeds(vexgen):
    put("fuzz_config", (DEMO / "config.json").read_bytes())
    if vexgen:
        with tempfile.TemporaryDirectory() as d:
            subprocess.run([vexgen, "--shape", "tiny", "--layout", "both", "--out", d],
                           check=True, capture_output=True)
            put("fuzz_config", (pathlib.Path(d) / "config.json").read_bytes())
            put("fuzz_config", (pathlib.Path(d) / "original/config.json").read_bytes())


def tokenizer_json_seeds():
    full = json.loads((DEMO / "tokenizer.json").read_text())
    model = full["model"]
    # The 256 byte tokens (byte-level text), the specials, and the first merges whose parts and
    # result are all kept: a small tokenizer the loader accepts.
    by_id = sorted(model["vocab"].items(), key=lambda kv: kv[1])
    vocab = dict(by_id[:256])
    merges = []
    for m in model["merges"]:
        a, b = m.split(" ") if isinstance(m, str) else m
        if a in vocab and b in vocab and a + b in model["vocab"] and len(merges) < 40:
            vocab[a + b] = model["vocab"][a + b]
            merges.append([a, b])
    small = dict(full, model=dict(model, vocab=vocab, merges=merges))
    put("fuzz_tokenizer_json", json.dumps(small, ensure_ascii=False))
    put("fuzz_tokenizer_json", json.dumps(dict(small, model=dict(
        small["model"], merges=[" ".join(m) for m in merges]))))


def encode_seeds():
    lines = (ROOT / "tests/data/tokenizer_corpus.jsonl").read_text().strip().split("\n")
    for line in lines[:: max(1, len(lines) // 60)]:
        rec = json.loads(line)
        put("fuzz_tokenizer_encode", rec["text"] if isinstance(rec, dict) else rec)
    put("fuzz_tokenizer_encode", b"<|start|>user<|message|>hi<|end|>\xff\xfe\xc3")


def manifest_seeds():
    for toml in sorted(DEMO.glob("*.toml")):
        put("fuzz_manifest", toml.read_bytes())
    put("fuzz_manifest", '[prune]\nkeep = { "0" = [0, 1, 2, 3] }\n')


def expert_seeds():
    for name in ["calculator", "units", "datetime", "finance", "interpreter", "symbolic"]:
        for line in (ROOT / f"tests/data/experts/{name}.tsv").read_text().strip().split("\n"):
            text = line.split("\t")[0].replace("\\n", "\n")
            if text:
                put(f"fuzz_expert_{name}", text)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vexgen")
    args = ap.parse_args()
    # Regenerate the generated seeds; keep the crash inputs and the hand-written seeds.
    for d in OUT.glob("*"):
        for f in d.iterdir():
            if re.fullmatch(r"[0-9a-f]{16}", f.name):
                f.unlink()
    safetensors_seeds()
    config_seeds(args.vexgen)
    tokenizer_json_seeds()
    encode_seeds()
    manifest_seeds()
    expert_seeds()
    for d in sorted(OUT.iterdir()):
        print(f"{d.name}: {sum(1 for _ in d.iterdir())} inputs")


main()
