#!/usr/bin/env python3
"""Trains vex-demo, a small model of the gpt-oss architecture, on the GPU machine (PyTorch).

    python3 tools/train/train.py --corpus .train --work /tmp/vexdemo --out OUT_DIR --steps N

Stages, each cached in --work so that a second command resumes where the first stopped:
  1. tokenizer: byte-level BPE (HF `tokenizers`) over the o200k pre-tokenizer regex, the Harmony
     special tokens appended under their usual names; written as tokenizer.json;
  2. the corpus encoded to token ids (documents joined by <|endoftext|>);
  3. the model, checked before any training against transformers' GptOssForCausalLM on the same
     weights (float32; stops if the logits differ by more than 1e-4 of their scale);
  4. training: AdamW, bf16 autocast, fp32 master weights, warmup + cosine, a load-balancing loss
     on the routers; the last --qat share of steps sees the experts through MXFP4 rounding
     (straight-through), so the export loses little; checkpoints every --ckpt-every steps;
  5. held-out loss of the bf16 weights and of the MXFP4 export;
  6. export: a Hugging Face gpt-oss directory (config.json, generation_config.json,
     tokenizer.json, model.safetensors.index.json + shards; experts MXFP4, the rest bf16), and a
     last check of the export against transformers.

The architecture is docs/gpt-oss.md §4: pre-norm RMSNorm (eps 1e-5, gain in fp32),
q/k/v/o with biases, GQA (query head h reads KV head h // group), YaRN RoPE (half-split,
concentration on q and k), attention sinks (a logit per head in the softmax denominator, no
value), even layers sliding (window incl. self), top-k router with softmax over the chosen
logits, clamped SwiGLU (alpha 1.702, limit 7, up + 1) with interleaved gate/up rows, the expert
down bias inside the weighted sum, untied lm_head.
"""
import argparse
import json
import math
import os
import random
import sys
import time

import torch
import torch.nn.functional as F

O200K_REGEX = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
# o200k_harmony's named specials (docs/gpt-oss.md §6.1), in its order; reserved fillers complete the vocab.
SPECIALS = ["<|startoftext|>", "<|endoftext|>", "<|return|>", "<|constrain|>", "<|channel|>",
            "<|start|>", "<|end|>", "<|message|>", "<|call|>"]
E2M1 = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


# ---- data --------------------------------------------------------------------------------------

def read_docs(path):
    import gzip
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f]


def train_tokenizer(docs, vocab, path):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    n_reserved = 16  # vocab = BPE entries + 16 ids: the 9 named specials and 7 reserved
    tok = Tokenizer(models.BPE(ignore_merges=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(O200K_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab - n_reserved, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=[])
    strip = lambda t: t.replace("<|", "< |")  # special-token text never becomes a BPE merge
    tok.train_from_iterator((strip(d) for d in docs), trainer=trainer)
    names = SPECIALS + [f"<|reserved_{i}|>" for i in range(n_reserved - len(SPECIALS))]
    tok.add_special_tokens(names)
    assert tok.get_vocab_size() == vocab, tok.get_vocab_size()
    tok.save(path)
    return tok


def encode_docs(tok, docs, eot):
    out = []
    for i in range(0, len(docs), 20000):
        for e in tok.encode_batch(docs[i:i + 20000], add_special_tokens=False):
            out.extend(e.ids)
            out.append(eot)
    return torch.tensor(out, dtype=torch.int32)


def write_tokenizer_check(tok, held, path, seed):
    """Strings and the ids HF `tokenizers` gives them (special-token text matched), for vex's
    tokenizer test: held-out snippets at random cuts plus edge cases."""
    r = random.Random(seed)
    texts = ["", " ", "\n\n", "Hello, world!", "127 * 89 = 11303", "  leading and trailing  ",
             "naïve café — “quotes” ½ 日本語 🙂", "x\r\ny\tz", "1234567890123", "don't I'LL we'VE",
             "<|start|>user<|message|>hi<|end|><|start|>assistant", "<|reserved_3|> <|endoftext|>",
             ">>> sorted([3, 1, 2])\n[1, 2, 3]", "$1,200,000 at 6.5% for 30 years"]
    for d in r.sample(held, min(300, len(held))):
        a = r.randrange(0, max(1, len(d) - 1))
        texts.append(d[a:a + r.randrange(1, 400)])
    with open(path, "w", encoding="utf-8") as f:
        for t in texts:
            f.write(json.dumps({"text": t, "ids": tok.encode(t, add_special_tokens=False).ids},
                               ensure_ascii=False) + "\n")


# ---- model -------------------------------------------------------------------------------------

class Cfg:
    def __init__(self, **kw):
        self.vocab, self.d, self.layers, self.heads, self.kv_heads, self.head_dim = 8192, 256, 8, 8, 2, 32
        self.experts, self.top_k, self.inter, self.window = 16, 4, 192, 128
        self.theta, self.factor, self.beta_fast, self.beta_slow, self.orig_ctx = 150000.0, 32.0, 32.0, 1.0, 4096
        self.limit, self.eps = 7.0, 1e-5
        self.__dict__.update(kw)

    def hf_config(self):
        return {
            "architectures": ["GptOssForCausalLM"], "attention_bias": True, "attention_dropout": 0.0,
            "eos_token_id": None, "experts_per_token": self.top_k, "head_dim": self.head_dim,
            "hidden_act": "silu", "hidden_size": self.d, "initial_context_length": self.orig_ctx,
            "initializer_range": 0.02, "intermediate_size": self.inter,
            "layer_types": ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(self.layers)],
            "max_position_embeddings": int(self.orig_ctx * self.factor), "model_type": "gpt_oss",
            "num_attention_heads": self.heads, "num_experts_per_tok": self.top_k,
            "num_hidden_layers": self.layers, "num_key_value_heads": self.kv_heads,
            "num_local_experts": self.experts, "output_router_logits": False, "pad_token_id": None,
            "quantization_config": {"modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router",
                                                               "model.embed_tokens", "lm_head"],
                                    "quant_method": "mxfp4"},
            "rms_norm_eps": self.eps,
            "rope_scaling": {"beta_fast": self.beta_fast, "beta_slow": self.beta_slow, "factor": self.factor,
                             "original_max_position_embeddings": self.orig_ctx, "rope_type": "yarn",
                             "truncate": False},
            "rope_theta": self.theta, "router_aux_loss_coef": 0.9, "sliding_window": self.window,
            "swiglu_limit": self.limit, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
            "use_cache": True, "vocab_size": self.vocab}


def rope_tables(c, n, device):
    """YaRN (NTK-by-parts, truncate=false) cos/sin with the concentration folded in: [n, head_dim/2]."""
    half = c.head_dim // 2
    freq = c.theta ** (torch.arange(0, c.head_dim, 2, dtype=torch.float32, device=device) / c.head_dim)
    low = half * math.log(c.orig_ctx / (c.beta_fast * 2 * math.pi)) / math.log(c.theta)
    high = half * math.log(c.orig_ctx / (c.beta_slow * 2 * math.pi)) / math.log(c.theta)
    ramp = ((torch.arange(half, dtype=torch.float32, device=device) - low) / (high - low)).clamp(0, 1)
    mask = 1 - ramp
    inv = (1 / (c.factor * freq)) * (1 - mask) + (1 / freq) * mask
    conc = 0.1 * math.log(c.factor) + 1.0
    theta = torch.arange(n, dtype=torch.float32, device=device)[:, None] * inv[None, :]
    return torch.cos(theta) * conc, torch.sin(theta) * conc


def rope(x, cos, sin):
    """x [B, T, H, d]: half-split rotation, pairs (i, i + d/2)."""
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h].float(), x[..., h:].float()
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1).to(x.dtype)


def rmsnorm(x, g, eps):
    xf = x.float()
    return xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps) * g.float()


def mxfp4_quantize(w):
    """w [..., K] (K % 32 == 0) -> (codes uint8 [..., K] 0..15, exps int [..., K/32]) with
    w ~= E2M1[code] * 2^exp: the block exponent puts the block's largest |w| at or under 6."""
    shp = w.shape
    b = w.float().reshape(*shp[:-1], shp[-1] // 32, 32)
    amax = b.abs().amax(-1)
    e = torch.ceil(torch.log2(amax.clamp_min(1e-30) / 6.0)).clamp(-127, 127)
    e = torch.where(amax > 0, e, torch.full_like(e, -127))
    s = b / torch.exp2(e)[..., None]
    grid = torch.tensor(E2M1, device=w.device)
    mid = (grid[1:] + grid[:-1]) / 2
    # Round to nearest; ties go to the even mantissa (OCP MX): 0.25->0, 0.75->1, 1.25->1, 1.75->2,
    # 2.5->2, 3.5->4, 5->4.
    mag = s.abs().clamp(max=6.0)
    idx = torch.bucketize(mag, mid, right=True)  # at a tie: the upper value
    tie = (mag == mid[(idx - 1).clamp(min=0)]) & (idx > 0)
    odd = (idx % 2) == 1
    idx = torch.where(tie & odd, idx - 1, idx)
    code = idx + 8 * (s < 0).long()
    return code.to(torch.uint8).reshape(shp), e.to(torch.int32)


def mxfp4_value(code, e):
    lut = torch.tensor(E2M1 + [-v for v in E2M1], device=code.device)
    shp = code.shape
    v = lut[code.long()].reshape(*shp[:-1], shp[-1] // 32, 32) * torch.exp2(e.float())[..., None]
    return v.reshape(shp)


def fake_quant(w):
    """MXFP4 rounding in the forward, identity in the backward (straight-through)."""
    with torch.no_grad():
        q = mxfp4_value(*mxfp4_quantize(w)).to(w.dtype)
    return w + (q - w).detach()


class Model(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        L, d, E, I = c.layers, c.d, c.experts, c.inter
        q, kv = c.heads * c.head_dim, c.kv_heads * c.head_dim
        P = torch.nn.Parameter
        std, out_std = 0.02, 0.02 / math.sqrt(2 * L)
        self.embed = P(torch.randn(c.vocab, d) * std)
        self.attn_norm = torch.nn.ParameterList([P(torch.ones(d)) for _ in range(L)])
        self.wq = torch.nn.ParameterList([P(torch.randn(q, d) * std) for _ in range(L)])
        self.bq = torch.nn.ParameterList([P(torch.zeros(q)) for _ in range(L)])
        self.wk = torch.nn.ParameterList([P(torch.randn(kv, d) * std) for _ in range(L)])
        self.bk = torch.nn.ParameterList([P(torch.zeros(kv)) for _ in range(L)])
        self.wv = torch.nn.ParameterList([P(torch.randn(kv, d) * std) for _ in range(L)])
        self.bv = torch.nn.ParameterList([P(torch.zeros(kv)) for _ in range(L)])
        self.wo = torch.nn.ParameterList([P(torch.randn(d, q) * out_std) for _ in range(L)])
        self.bo = torch.nn.ParameterList([P(torch.zeros(d)) for _ in range(L)])
        self.sinks = torch.nn.ParameterList([P(torch.zeros(c.heads)) for _ in range(L)])
        self.mlp_norm = torch.nn.ParameterList([P(torch.ones(d)) for _ in range(L)])
        self.wr = torch.nn.ParameterList([P(torch.randn(E, d) * std) for _ in range(L)])
        self.br = torch.nn.ParameterList([P(torch.zeros(E)) for _ in range(L)])
        # gate_up rows interleaved: 2j gate, 2j+1 up (docs/gpt-oss.md §2.3). Stored out x in, as on disk.
        self.w1 = torch.nn.ParameterList([P(torch.randn(E, 2 * I, d) * std) for _ in range(L)])
        self.b1 = torch.nn.ParameterList([P(torch.zeros(E, 2 * I)) for _ in range(L)])
        self.w2 = torch.nn.ParameterList([P(torch.randn(E, d, I) * out_std) for _ in range(L)])
        self.b2 = torch.nn.ParameterList([P(torch.zeros(E, d)) for _ in range(L)])
        self.norm = P(torch.ones(d))
        self.lm_head = P(torch.randn(c.vocab, d) * std)
        self.quant = False  # experts seen through MXFP4 rounding (QAT and evaluation of the export)

    def attention(self, il, x, cos, sin, dt):
        c = self.c
        B, T, _ = x.shape
        h = rmsnorm(x, self.attn_norm[il], c.eps).to(dt)
        q = F.linear(h, self.wq[il].to(dt), self.bq[il].to(dt)).view(B, T, c.heads, c.head_dim)
        k = F.linear(h, self.wk[il].to(dt), self.bk[il].to(dt)).view(B, T, c.kv_heads, c.head_dim)
        v = F.linear(h, self.wv[il].to(dt), self.bv[il].to(dt)).view(B, T, c.kv_heads, c.head_dim)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        g = c.heads // c.kv_heads
        k = k.repeat_interleave(g, dim=2)  # query head h reads KV head h // g
        v = v.repeat_interleave(g, dim=2)
        s = torch.einsum("bthd,bshd->bhts", q, k).float() * (c.head_dim ** -0.5)
        pos = torch.arange(T, device=x.device)
        allowed = pos[None, :] <= pos[:, None]
        if il % 2 == 0:
            allowed = allowed & (pos[:, None] - pos[None, :] < c.window)
        s = s.masked_fill(~allowed, float("-inf"))
        sink = self.sinks[il].float().view(1, c.heads, 1, 1).expand(B, c.heads, T, 1)
        p = torch.softmax(torch.cat([s, sink], dim=-1), dim=-1)[..., :-1]
        o = torch.einsum("bhts,bshd->bthd", p.to(dt), v).reshape(B, T, c.heads * c.head_dim)
        return F.linear(o, self.wo[il].to(dt), self.bo[il].to(dt)).float()

    def moe(self, il, x, dt):
        """Dense over the experts (every expert computed, the router's top-k weights select):
        the same forward and gradients as the sparse MoE, and two wide GEMMs at this size."""
        c = self.c
        E, I = c.experts, c.inter
        h = rmsnorm(x, self.mlp_norm[il], c.eps).to(dt)
        N = h.shape[0] * h.shape[1]
        h = h.reshape(N, -1)
        logits = F.linear(h, self.wr[il].to(dt), self.br[il].to(dt)).float()
        val, idx = torch.topk(logits, c.top_k, dim=-1)
        w = torch.softmax(val, dim=-1)
        gate = torch.zeros_like(logits).scatter(1, idx, w)  # [N, E]
        w1, w2 = self.w1[il], self.w2[il]
        if self.quant:
            w1, w2 = fake_quant(w1), fake_quant(w2)
        gu = F.linear(h, w1.reshape(E * 2 * I, -1).to(dt)).view(N, E, 2 * I) + self.b1[il].to(dt)
        gl, up = gu[..., 0::2].float(), gu[..., 1::2].float()
        gl = gl.clamp(max=c.limit)
        up = up.clamp(-c.limit, c.limit)
        a = gl * torch.sigmoid(1.702 * gl) * (up + 1)
        a = (a * gate[..., None]).to(dt)  # the routing weight, folded in before the down GEMM
        y = F.linear(a.reshape(N, E * I), w2.permute(1, 0, 2).reshape(c.d, E * I).to(dt)).float()
        y = y + gate @ self.b2[il].float()  # b2 inside the weighted sum
        # Load balance (Switch): E * sum_e (share of top-k picks) * (mean router probability).
        probs = torch.softmax(logits, dim=-1)
        frac = torch.zeros(E, device=x.device).scatter_add(0, idx.reshape(-1), torch.ones(idx.numel(), device=x.device))
        aux = E * (frac / idx.numel() * probs.mean(0)).sum()
        return y.view_as(x), aux

    def forward(self, ids, dt=torch.bfloat16):
        c = self.c
        T = ids.shape[1]
        cos, sin = rope_tables(c, T, ids.device)
        x = self.embed.to(dt)[ids].float()
        aux = 0.0
        for il in range(c.layers):
            x = x + self.attention(il, x, cos, sin, dt)
            y, a = self.moe(il, x, dt)
            x = x + y
            aux = aux + a
        h = rmsnorm(x, self.norm, c.eps).to(dt)
        return F.linear(h, self.lm_head.to(dt)).float(), aux / c.layers


# ---- export ------------------------------------------------------------------------------------

def bf16(t):
    return t.detach().to(torch.bfloat16).cpu().contiguous()


def state_for_export(m):
    """HF gpt-oss tensor names (docs/gpt-oss.md §2.1); experts MXFP4 (blocks + scales), the rest bf16."""
    c, out = m.c, {}
    out["model.embed_tokens.weight"] = bf16(m.embed)
    for il in range(c.layers):
        p = f"model.layers.{il}."
        out[p + "input_layernorm.weight"] = bf16(m.attn_norm[il])
        for n, w, b in [("q", m.wq, m.bq), ("k", m.wk, m.bk), ("v", m.wv, m.bv), ("o", m.wo, m.bo)]:
            out[p + f"self_attn.{n}_proj.weight"] = bf16(w[il])
            out[p + f"self_attn.{n}_proj.bias"] = bf16(b[il])
        out[p + "self_attn.sinks"] = bf16(m.sinks[il])
        out[p + "post_attention_layernorm.weight"] = bf16(m.mlp_norm[il])
        out[p + "mlp.router.weight"] = bf16(m.wr[il])
        out[p + "mlp.router.bias"] = bf16(m.br[il])
        for n, w, b in [("gate_up_proj", m.w1, m.b1), ("down_proj", m.w2, m.b2)]:
            code, e = mxfp4_quantize(w[il].detach())
            code = code.reshape(*code.shape[:-1], code.shape[-1] // 32, 16, 2)
            blocks = (code[..., 0] | (code[..., 1] << 4)).to(torch.uint8)  # low nibble = even k
            out[p + f"mlp.experts.{n}_blocks"] = blocks.cpu().contiguous()
            out[p + f"mlp.experts.{n}_scales"] = (e + 127).to(torch.uint8).cpu().contiguous()
            out[p + f"mlp.experts.{n}_bias"] = bf16(b[il])
    out["model.norm.weight"] = bf16(m.norm)
    out["lm_head.weight"] = bf16(m.lm_head)
    return out


def export(m, tok_path, out_dir, eos_ids, shards=2):
    from safetensors.torch import save_file
    os.makedirs(out_dir, exist_ok=True)
    sd = state_for_export(m)
    names = list(sd)
    total = sum(t.numel() * t.element_size() for t in sd.values())
    # Shards under 16 MiB each (what one file may be when it travels back from the GPU machine).
    per, groups, cur, size = total / shards, [], [], 0
    for n in names:
        cur.append(n)
        size += sd[n].numel() * sd[n].element_size()
        if size >= per and len(groups) < shards - 1:
            groups.append(cur)
            cur, size = [], 0
    groups.append(cur)
    weight_map = {}
    for i, g in enumerate(groups):
        fn = f"model-{i:05d}-of-{len(groups) - 1:05d}.safetensors"
        save_file({n: sd[n] for n in g}, os.path.join(out_dir, fn), metadata={"format": "pt"})
        weight_map.update({n: fn for n in g})
    json.dump({"metadata": {"total_size": total}, "weight_map": weight_map},
              open(os.path.join(out_dir, "model.safetensors.index.json"), "w"), indent=2)
    cfg = m.c.hf_config()
    cfg["eos_token_id"], cfg["pad_token_id"] = eos_ids[0], eos_ids[1]
    json.dump(cfg, open(os.path.join(out_dir, "config.json"), "w"), indent=2)
    json.dump({"bos_token_id": eos_ids[2], "do_sample": True, "eos_token_id": [eos_ids[0], eos_ids[1], eos_ids[3]],
               "pad_token_id": eos_ids[1], "temperature": 0.7, "top_p": 0.9},
              open(os.path.join(out_dir, "generation_config.json"), "w"), indent=2)
    import shutil
    shutil.copy(tok_path, os.path.join(out_dir, "tokenizer.json"))
    return total


def transformers_logits(ckpt, ids):
    """transformers' GptOssForCausalLM in float32 (eager) on an exported directory."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "goldens"))
    import make_goldens
    tensors = make_goldens.read_checkpoint(ckpt)
    model, _ = make_goldens.build_model(ckpt, torch.float32)
    make_goldens.load_weights(model, tensors, torch.float32)
    return make_goldens.run(model, ids)


def check_against_transformers(m, tok_path, eos_ids, ids, tag, work):
    """Exports m, runs transformers on the export and m itself (float32, experts as exported).
    The non-expert weights are rounded to bf16 in m first, as the export stores them. Per
    position: max |mine - hf| over the vocabulary / max |hf|; fp32 on GPU vs CPU differs by ~1e-6,
    except where two router logits nearly tie and the two pick different experts (docs/gpt-oss.md §7.8)."""
    with torch.no_grad():
        for n, p in m.named_parameters():
            if not n.startswith(("w1", "w2")):
                p.copy_(p.to(torch.bfloat16).float())
    d = os.path.join(work, f"check-{tag}")
    export(m, tok_path, d, eos_ids)
    ref = transformers_logits(d, ids).float()
    was = m.quant
    m.quant = True
    with torch.no_grad():
        mine, _ = m(torch.tensor([ids], device=next(m.parameters()).device), dt=torch.float32)
    m.quant = was
    mine = mine[0].cpu()
    rel = ((mine - ref).abs().amax(-1) / ref.abs().amax(-1)).sort().values
    med, p90, mx = float(rel[len(rel) // 2]), float(rel[len(rel) * 9 // 10]), float(rel[-1])
    agree = float((mine.argmax(-1) == ref.argmax(-1)).float().mean())
    log(f"check vs transformers ({tag}), per position max |mine - hf| / max |hf|: median {med:.2e}, "
        f"p90 {p90:.2e}, max {mx:.2e}; top-1 agreement {agree:.4f}")
    return {"median": med, "p90": p90, "max": mx, "top1": agree}


# ---- training ----------------------------------------------------------------------------------

def evaluate(m, data, T, batches, B):
    m.eval()
    losses = []
    with torch.no_grad():
        n = (len(data) - 1) // T
        step = max(1, n // (batches * B))
        starts = torch.arange(0, n, step)[: batches * B] * T
        for i in range(0, len(starts), B):
            s = starts[i:i + B]
            idx = s[:, None] + torch.arange(T + 1)[None, :]
            x = data[idx].long().cuda()
            logits, _ = m(x[:, :-1])
            losses.append(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1)).item())
    m.train()
    return sum(losses) / len(losses)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=".train")
    ap.add_argument("--work", default="/tmp/vexdemo")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=0, help="training steps (0: as many as --minutes allows)")
    ap.add_argument("--minutes", type=float, default=6.0, help="with --steps 0: the training time budget")
    ap.add_argument("--ckpt", default="", help="checkpoint file (default WORK/ckpt.pt); resumed if present")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--ctx", type=int, default=1024)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=150)
    ap.add_argument("--qat", type=float, default=0.15, help="share of the last steps trained through MXFP4 rounding")
    ap.add_argument("--aux", type=float, default=0.02, help="load-balancing loss weight")
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--ckpt-every", type=int, default=500)
    ap.add_argument("--max-minutes", type=float, default=0, help="stop early (and say so) after this long")
    ap.add_argument("--shape", default="", help="override Cfg fields: d=64,layers=2,...")
    ap.add_argument("--tokenizer-docs", type=int, default=120000)
    args = ap.parse_args()
    t_start = time.time()
    os.makedirs(args.work, exist_ok=True)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    torch.backends.cuda.matmul.allow_tf32 = False

    # 1-2. tokenizer and token ids
    tok_path = os.path.join(args.work, "tokenizer.json")
    ids_path = os.path.join(args.work, "ids.pt")
    from tokenizers import Tokenizer
    if not os.path.exists(ids_path):
        docs = read_docs(os.path.join(args.corpus, "corpus.jsonl.gz"))
        held = read_docs(os.path.join(args.corpus, "heldout.jsonl.gz"))
        log(f"corpus: {len(docs)} documents, held out {len(held)}")
        if not os.path.exists(tok_path):
            sample = random.Random(args.seed).sample(docs, min(args.tokenizer_docs, len(docs)))
            train_tokenizer(sample, args.vocab, tok_path)
            log(f"tokenizer trained on {len(sample)} documents")
        tok = Tokenizer.from_file(tok_path)
        eot = tok.token_to_id("<|endoftext|>")
        random.Random(args.seed + 1).shuffle(docs)
        ids = {"train": encode_docs(tok, docs, eot), "heldout": encode_docs(tok, held, eot)}
        write_tokenizer_check(tok, held, os.path.join(args.work, "tokenizer_check.jsonl"), args.seed)
        torch.save(ids, ids_path)
    tok = Tokenizer.from_file(tok_path)
    ids = torch.load(ids_path)
    spec = {n: tok.token_to_id(n) for n in SPECIALS}
    eos_ids = [spec["<|return|>"], spec["<|endoftext|>"], spec["<|startoftext|>"], spec["<|call|>"]]
    train_ids, held_ids = ids["train"], ids["heldout"]
    log(f"tokens: train {len(train_ids):,}, held out {len(held_ids):,}; specials {spec}")

    # 3. model, checked against transformers before training
    kw = {k: (float(v) if "." in v else int(v)) for k, v in (p.split("=") for p in args.shape.split(",") if p)}
    c = Cfg(vocab=args.vocab, **kw)
    m = Model(c).cuda()
    n_params = sum(p.numel() for p in m.parameters())
    n_expert = sum(p.numel() for n, p in m.named_parameters() if n.startswith(("w1", "w2")))
    log(f"model: {n_params / 1e6:.2f} M parameters ({n_expert / 1e6:.2f} M in experts); {c.__dict__}")
    probe = held_ids[:300].tolist()
    with torch.no_grad():  # random weights give small logits; scale them so the check is sharp
        m.lm_head.mul_(20)
        for b in list(m.b1) + list(m.b2) + list(m.bq) + list(m.br) + list(m.sinks):
            b.normal_(0, 0.5)
    check0 = check_against_transformers(m, tok_path, eos_ids, probe, "init", args.work)
    if check0["median"] > 1e-4 or check0["p90"] > 1e-3:
        sys.exit(f"the trainer's model differs from transformers' GptOssForCausalLM: {check0}")
    torch.manual_seed(args.seed)
    m = Model(c).cuda()

    decay = [p for n, p in m.named_parameters() if p.dim() >= 2]
    rest = [p for n, p in m.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8, fused=True)
    step0, history = 0, []
    ckpt = args.ckpt or os.path.join(args.work, "ckpt.pt")
    if os.path.exists(ckpt):
        s = torch.load(ckpt)
        m.load_state_dict(s["model"])
        opt.load_state_dict(s["opt"])
        step0, history, args.steps = s["step"], s["history"], s["steps"]
        torch.set_rng_state(s["rng"])
        log(f"resumed at step {step0}")

    def lr_at(step):
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        t = (step - args.warmup) / max(1, args.steps - args.warmup)
        return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))

    # 4. training
    train_gpu = train_ids.cuda()
    n_tok = len(train_gpu) - args.ctx - 1
    t0, tokens_seen, stopped_early = time.time(), step0 * args.batch * args.ctx, False
    if args.steps == 0:  # time the first steps, then fix the count (recorded: --steps N reproduces it)
        args.steps = 10**9
    qat_from = int(args.steps * (1 - args.qat))
    step = step0
    t_probe = None
    while step < args.steps:
        if step == step0 + 5:
            torch.cuda.synchronize()
            t_probe = time.time()
        if step == step0 + 25 and args.steps == 10**9:
            torch.cuda.synchronize()
            per = (time.time() - t_probe) / 20
            args.steps = max(step + 1, int((60 * args.minutes - (time.time() - t0)) / per) + step)
            qat_from = int(args.steps * (1 - args.qat))
            log(f"{per * 1e3:.1f} ms per step: {args.steps} steps fit {args.minutes} minutes")
        m.quant = step >= qat_from
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        starts = torch.randint(0, n_tok, (args.batch,), device="cuda")
        x = train_gpu[starts[:, None] + torch.arange(args.ctx + 1, device="cuda")[None, :]].long()
        logits, aux = m(x[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, c.vocab), x[:, 1:].reshape(-1))
        (loss + args.aux * aux).backward()
        gn = torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        tokens_seen += args.batch * args.ctx
        if step % 50 == 0 or step == args.steps - 1:
            torch.cuda.synchronize()
            dt = time.time() - t0
            tps = (step + 1 - step0) * args.batch * args.ctx / dt
            history.append({"step": step, "loss": loss.item(), "aux": float(aux), "lr": lr_at(step),
                            "grad_norm": float(gn), "tok_s": tps, "qat": m.quant})
            log(f"step {step:5d} loss {loss.item():.4f} aux {float(aux):.3f} lr {lr_at(step):.2e} "
                f"gn {float(gn):.2f} {tps / 1e3:.0f}k tok/s{' qat' if m.quant else ''}")
        if (step + 1) % args.ckpt_every == 0 or step == args.steps - 1:
            torch.save({"model": m.state_dict(), "opt": opt.state_dict(), "step": step + 1,
                        "history": history, "rng": torch.get_rng_state(), "steps": args.steps}, ckpt)
        step += 1
        if args.max_minutes and time.time() - t_start > 60 * args.max_minutes:
            stopped_early = True
            log(f"stopping early at step {step} (--max-minutes {args.max_minutes})")
            break
    train_s = time.time() - t0

    # 5. held-out loss, bf16 weights and MXFP4 experts
    held_gpu = held_ids
    m.quant = False
    loss_bf16 = evaluate(m, held_gpu, args.ctx, 8, 16)
    m.quant = True
    loss_mx = evaluate(m, held_gpu, args.ctx, 8, 16)
    loss_train = evaluate(m, train_ids[: len(held_ids)], args.ctx, 8, 16)
    log(f"held-out loss: bf16 {loss_bf16:.4f} (ppl {math.exp(loss_bf16):.3f}), MXFP4 {loss_mx:.4f} "
        f"(ppl {math.exp(loss_mx):.3f}); train loss (MXFP4) {loss_train:.4f}")

    # 6. export and the last check
    total = export(m, tok_path, args.out, eos_ids)
    check1 = check_against_transformers(m, tok_path, eos_ids, probe, "final", args.work)
    report = {
        "shape": c.__dict__, "parameters": n_params, "expert_parameters": n_expert, "bytes": total,
        "steps": step, "planned_steps": args.steps, "stopped_early": stopped_early,
        "tokens_seen": tokens_seen, "train_tokens": len(train_ids), "heldout_tokens": len(held_ids),
        "batch": args.batch, "ctx": args.ctx, "lr": args.lr, "qat_from_step": qat_from, "aux": args.aux,
        "seed": args.seed, "train_seconds": round(train_s, 1), "heldout_loss_bf16": loss_bf16,
        "heldout_loss_mxfp4": loss_mx, "train_loss_mxfp4": loss_train,
        "heldout_ppl_bf16": math.exp(loss_bf16), "heldout_ppl_mxfp4": math.exp(loss_mx),
        "check_vs_transformers_init": check0, "check_vs_transformers_final": check1,
        "torch": torch.__version__, "gpu": torch.cuda.get_device_name(), "argv": sys.argv[1:],
        "history": history}
    json.dump(report, open(os.path.join(args.work, "train_report.json"), "w"), indent=1)
    log(f"exported {total / 1e6:.2f} MB to {args.out}; report in {args.work}/train_report.json")


if __name__ == "__main__":
    main()
