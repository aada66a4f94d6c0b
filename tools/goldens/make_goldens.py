#!/usr/bin/env python3
"""Reference logits from Hugging Face transformers for a vexgen checkpoint (runs on the GPU machine).

The oracle is transformers' own GptOssForCausalLM in float32 with eager attention (the path that
implements sinks). transformers without its optional `kernels` package would dequantize MXFP4 to
bf16 in from_pretrained, so the MXFP4 experts are decoded here exactly (docs/gpt-oss.md §3: E2M1 code times
2^(scale-127), low nibble = even element) and loaded into a float32 model built from config.json.

For each token sequence the golden file keeps what a small committed file can hold and a test can
check without the full [n, 201088] matrix:
  tokens_S      [n]       int32   the input ids
  top_ids_S     [n, 32]   int32   ids of the 32 largest logits, descending
  top_logits_S  [n, 32]   float32 their logits
  col_logits_S  [n, 512]  float32 logits at 512 fixed random vocabulary columns (cols)
  lse_S         [n]       float64 log-sum-exp of the whole row (checks every logit in aggregate)
  cols          [512]     int32
Metadata records the vexgen command, library versions, and the float32-vs-float64 spread of
transformers itself.

  python3 tools/goldens/make_goldens.py --ckpt /tmp/tiny --out tests/data/golden_tiny.safetensors \
      --vexgen "vexgen --shape tiny --seed 0 --out /tmp/tiny"
  python3 tools/goldens/make_goldens.py --ckpt models/vex-demo --source models/vex-demo \
      --lengths 1,9,150,300 --out tests/data/golden_demo.safetensors
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import transformers
from safetensors import safe_open
from safetensors.torch import save_file

E2M1 = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0]

# Sequence lengths: the tiny model's sliding window is 16, so 100 tokens span more than three
# windows (and more than six); 1 is the single-token edge case.
LENGTHS = [1, 9, 37, 100]
N_TOP = 32
N_COLS = 512


def mxfp4_decode(blocks: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """[..., G, 16] u8 codes + [..., G] u8 exponents -> [..., G*32] float32, exactly."""
    assert blocks.shape[:-1] == scales.shape, (blocks.shape, scales.shape)
    lut = torch.tensor(E2M1, dtype=torch.float32)
    lo = lut[(blocks & 0x0F).long()]
    hi = lut[(blocks >> 4).long()]
    vals = torch.stack([lo, hi], dim=-1).reshape(*blocks.shape[:-1], 32)  # low nibble = even k
    exps = scales.to(torch.int32) - 127
    vals = torch.ldexp(vals, exps.unsqueeze(-1).to(torch.float32))
    return vals.reshape(*blocks.shape[:-2], blocks.shape[-2] * 32)


def read_checkpoint(ckpt):
    index = json.load(open(os.path.join(ckpt, "model.safetensors.index.json")))
    tensors = {}
    for shard in sorted(set(index["weight_map"].values())):
        with safe_open(os.path.join(ckpt, shard), framework="pt") as f:
            for name in f.keys():
                tensors[name] = f.get_tensor(name)
    return tensors


def build_model(ckpt, dtype):
    cfg = json.load(open(os.path.join(ckpt, "config.json")))
    cfg.pop("quantization_config", None)  # experts are loaded dequantized, below
    config = transformers.GptOssConfig(**cfg)
    config._attn_implementation = "eager"
    # transformers 5 routes experts through an "experts interface" (grouped_mm by default, which
    # has no float64); the eager loop over experts is the plain reference.
    config._experts_implementation = "eager"
    torch.manual_seed(0)
    model = transformers.GptOssForCausalLM(config).to(dtype).eval()
    if hasattr(model, "set_experts_implementation"):
        model.set_experts_implementation("eager")
    return model, config


def experts_in_by_out(sd):
    """Whether this transformers stores expert weights as [E, in, out] (applied as x @ W, as in
    4.x) or [E, out, in]. Told by gate_up, which is never square (2I rows, D columns); down may be
    square (I = D), so it follows gate_up's orientation."""
    name = next(k for k in sd if k.endswith("mlp.experts.gate_up_proj"))
    e, a, b = sd[name].shape
    bias = sd[name + "_bias"].shape[-1]  # 2I
    if a == bias and b != bias:
        return False
    if b == bias and a != bias:
        return True
    sys.exit(f"{name}: cannot tell the orientation of shape {tuple(sd[name].shape)}")


def load_weights(model, tensors, dtype):
    sd = model.state_dict()
    transpose = experts_in_by_out(sd)
    new = {}
    for name, t in tensors.items():
        if name.endswith("_blocks"):
            base = name[: -len("_blocks")]
            w = mxfp4_decode(t, tensors[base + "_scales"])  # [E, out, in] as stored
            new[base] = w.transpose(1, 2).contiguous() if transpose else w
        elif name.endswith("_scales"):
            continue
        else:
            new[name] = t.float()
    missing = set(sd) - set(new)
    unexpected = set(new) - set(sd)
    if missing or unexpected:
        sys.exit(f"state dict mismatch: missing {sorted(missing)[:8]}, unexpected {sorted(unexpected)[:8]}")
    for k in new:
        if tuple(new[k].shape) != tuple(sd[k].shape):
            sys.exit(f"{k}: model expects {tuple(sd[k].shape)}, checkpoint gives {tuple(new[k].shape)}")
        new[k] = new[k].to(dtype)
    model.load_state_dict(new, strict=True)


def run(model, ids):
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids], dtype=torch.long), use_cache=False)
    return out.logits[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--out", required=True)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--vexgen", help="the exact vexgen command that made --ckpt")
    src.add_argument("--source", help="where --ckpt comes from (a committed model: its path)")
    ap.add_argument("--lengths", default=",".join(map(str, LENGTHS)),
                    help="sequence lengths (longer than the model's sliding window)")
    ap.add_argument("--seed", type=int, default=1234, help="seed of the token sequences")
    ap.add_argument("--inspect", action="store_true", help="print transformers' GptOss source")
    args = ap.parse_args()

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    tensors = read_checkpoint(args.ckpt)
    model32, config = build_model(args.ckpt, torch.float32)
    load_weights(model32, tensors, torch.float32)
    model64, _ = build_model(args.ckpt, torch.float64)
    load_weights(model64, tensors, torch.float64)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}; "
          f"attn={config._attn_implementation}, "
          f"experts={getattr(model32.config, '_experts_implementation', 'n/a')}, layer_types={config.layer_types}, "
          f"sliding_window={config.sliding_window}")

    if args.inspect:
        import inspect
        mod = sys.modules[type(model32).__module__]
        for name in ["GptOssExperts", "GptOssTopKRouter", "GptOssMLP", "eager_attention_forward",
                     "GptOssRotaryEmbedding", "_apply_rotary_emb", "apply_rotary_pos_emb"]:
            if hasattr(mod, name):
                print(f"===== {name}\n{inspect.getsource(getattr(mod, name))}")
        for k, v in model32.state_dict().items():
            if ".layers.0." in k or "layers" not in k:
                print(k, tuple(v.shape))
    rng = np.random.default_rng(args.seed)
    vocab = config.vocab_size
    cols = np.sort(rng.choice(vocab, size=N_COLS, replace=False)).astype(np.int32)
    out = {"cols": torch.from_numpy(cols)}
    spread = 0.0
    lengths = [int(x) for x in args.lengths.split(",")]
    for s, n in enumerate(lengths):
        ids = rng.integers(0, vocab, size=n).astype(np.int32)
        l32 = run(model32, ids.tolist())
        l64 = run(model64, ids.tolist())
        spread = max(spread, float(((l32.double() - l64).abs().max() / l64.abs().max())))
        top = torch.topk(l32, N_TOP, dim=-1)
        out[f"tokens_{s}"] = torch.from_numpy(ids)
        out[f"top_ids_{s}"] = top.indices.to(torch.int32).contiguous()
        out[f"top_logits_{s}"] = top.values.contiguous()
        out[f"col_logits_{s}"] = l32[:, torch.from_numpy(cols).long()].contiguous()
        out[f"lse_{s}"] = torch.logsumexp(l32.double(), dim=-1).contiguous()
        print(f"sequence {s}: {n} tokens, top-1 at last position {int(top.indices[-1, 0])} "
              f"({float(top.values[-1, 0]):.5f}), logit std {float(l32.std()):.3f}")
    meta = {
        ("vexgen" if args.vexgen else "source"): args.vexgen or args.source,
        "oracle": f"transformers {transformers.__version__} GptOssForCausalLM float32 eager, "
                  f"torch {torch.__version__} CPU",
        "lengths": ",".join(map(str, lengths)),
        "token_seed": str(args.seed),
        "fp32_vs_fp64_max_rel": f"{spread:.3e}",
    }
    save_file(out, args.out, metadata=meta)
    print(f"wrote {args.out}; transformers float32 vs float64: max |diff| / max |logit| = {spread:.3e}")


if __name__ == "__main__":
    main()
