#include "loader/weights_map.h"

#include <set>

#include "absl/strings/str_join.h"

namespace vex {
namespace {

class Mapper {
 public:
  explicit Mapper(const Checkpoint& ck) : ck_(ck) {}

  // The tensor `name` with the given dtype and shape, or an error naming both.
  absl::StatusOr<const uint8_t*> get(const std::string& name, DType dtype,
                                     std::vector<int64_t> shape) {
    const TensorRef* t = ck_.find(name);
    if (!t) return absl::NotFoundError(absl::StrCat(ck_.root(), ": missing tensor '", name, "'"));
    used_.insert(name);
    if (t->info->dtype != dtype || t->info->shape != shape)
      return absl::InvalidArgumentError(
          absl::StrCat(t->file->path(), ": tensor '", name, "': expected ", dtype_name(dtype), " [",
                       absl::StrJoin(shape, ", "), "] from config.json, found ",
                       dtype_name(t->info->dtype), " ", t->info->shape_str()));
    return t->data();
  }
  absl::StatusOr<const uint16_t*> bf16(const std::string& name, std::vector<int64_t> shape) {
    VEX_ASSIGN_OR_RETURN(const uint8_t* p, get(name, DType::kBF16, std::move(shape)));
    return reinterpret_cast<const uint16_t*>(p);
  }

  absl::Status check_all_used() const {
    for (const auto& [name, t] : ck_.tensors())
      if (!used_.count(name))
        return absl::InvalidArgumentError(absl::StrCat(
            t.file->path(), ": unexpected tensor '", name, "' (not part of a gpt-oss checkpoint)"));
    return absl::OkStatus();
  }

 private:
  const Checkpoint& ck_;
  std::set<std::string, std::less<>> used_;
};

// Tensor names of one layout. The MXFP4 expert tensors differ only in separators.
struct Names {
  std::string embedding, final_norm, lm_head;
  std::string layer(int il, absl::string_view hf, absl::string_view orig) const;
  bool hf;
};

std::string Names::layer(int il, absl::string_view hf_name, absl::string_view orig_name) const {
  return hf ? absl::StrCat("model.layers.", il, ".", hf_name)
            : absl::StrCat("block.", il, ".", orig_name);
}

}  // namespace

absl::StatusOr<Weights> map_weights(const Checkpoint& ck) {
  const Config& c = ck.config();
  const bool hf = c.layout == Layout::kHuggingFace;
  Names n = hf ? Names{"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight", true}
               : Names{"embedding.weight", "norm.scale", "unembedding.weight", false};
  const int64_t D = c.d_model, V = c.vocab_size, Q = c.q_dim(), KV = c.kv_dim(), E = c.n_experts,
                I = c.d_ff, Hq = c.n_heads;
  Mapper m(ck);
  Weights w;
  VEX_ASSIGN_OR_RETURN(w.embedding, m.bf16(n.embedding, {V, D}));
  VEX_ASSIGN_OR_RETURN(w.final_norm, m.bf16(n.final_norm, {D}));
  VEX_ASSIGN_OR_RETURN(w.lm_head, m.bf16(n.lm_head, {V, D}));

  w.layers.resize(c.n_layers);
  for (int il = 0; il < c.n_layers; ++il) {
    LayerWeights& l = w.layers[il];
    auto name = [&](absl::string_view h, absl::string_view o) { return n.layer(il, h, o); };
    VEX_ASSIGN_OR_RETURN(l.attn_norm,
                         m.bf16(name("input_layernorm.weight", "attn.norm.scale"), {D}));
    if (hf) {
      VEX_ASSIGN_OR_RETURN(l.wq, m.bf16(name("self_attn.q_proj.weight", ""), {Q, D}));
      VEX_ASSIGN_OR_RETURN(l.bq, m.bf16(name("self_attn.q_proj.bias", ""), {Q}));
      VEX_ASSIGN_OR_RETURN(l.wk, m.bf16(name("self_attn.k_proj.weight", ""), {KV, D}));
      VEX_ASSIGN_OR_RETURN(l.bk, m.bf16(name("self_attn.k_proj.bias", ""), {KV}));
      VEX_ASSIGN_OR_RETURN(l.wv, m.bf16(name("self_attn.v_proj.weight", ""), {KV, D}));
      VEX_ASSIGN_OR_RETURN(l.bv, m.bf16(name("self_attn.v_proj.bias", ""), {KV}));
    } else {
      // original/: one fused qkv, split by rows with no permutation (docs/gpt-oss.md §2.2).
      VEX_ASSIGN_OR_RETURN(const uint16_t* wqkv,
                           m.bf16(name("", "attn.qkv.weight"), {Q + 2 * KV, D}));
      VEX_ASSIGN_OR_RETURN(const uint16_t* bqkv, m.bf16(name("", "attn.qkv.bias"), {Q + 2 * KV}));
      l.wq = wqkv, l.wk = wqkv + Q * D, l.wv = wqkv + (Q + KV) * D;
      l.bq = bqkv, l.bk = bqkv + Q, l.bv = bqkv + Q + KV;
    }
    VEX_ASSIGN_OR_RETURN(l.wo, m.bf16(name("self_attn.o_proj.weight", "attn.out.weight"), {D, Q}));
    VEX_ASSIGN_OR_RETURN(l.bo, m.bf16(name("self_attn.o_proj.bias", "attn.out.bias"), {D}));
    VEX_ASSIGN_OR_RETURN(l.sinks, m.bf16(name("self_attn.sinks", "attn.sinks"), {Hq}));
    VEX_ASSIGN_OR_RETURN(l.mlp_norm,
                         m.bf16(name("post_attention_layernorm.weight", "mlp.norm.scale"), {D}));
    VEX_ASSIGN_OR_RETURN(l.router_w, m.bf16(name("mlp.router.weight", "mlp.gate.weight"), {E, D}));
    VEX_ASSIGN_OR_RETURN(l.router_b, m.bf16(name("mlp.router.bias", "mlp.gate.bias"), {E}));

    // MXFP4 experts: blocks [E, rows, cols/32, 16], scales [E, rows, cols/32] (docs/gpt-oss.md §3).
    auto mx = [&](absl::string_view hf_base, absl::string_view orig_base, int64_t rows,
                  int64_t cols, const uint8_t** blocks, const uint8_t** scales) -> absl::Status {
      std::string hb(hf_base), ob(orig_base);
      VEX_ASSIGN_OR_RETURN(*blocks, m.get(name(hb + "_blocks", ob + ".blocks"), DType::kU8,
                                          {E, rows, cols / 32, 16}));
      VEX_ASSIGN_OR_RETURN(
          *scales, m.get(name(hb + "_scales", ob + ".scales"), DType::kU8, {E, rows, cols / 32}));
      return absl::OkStatus();
    };
    const uint8_t *gu_blocks, *gu_scales, *dn_blocks, *dn_scales;
    VEX_RETURN_IF_ERROR(
        mx("mlp.experts.gate_up_proj", "mlp.mlp1_weight", 2 * I, D, &gu_blocks, &gu_scales));
    VEX_RETURN_IF_ERROR(
        mx("mlp.experts.down_proj", "mlp.mlp2_weight", D, I, &dn_blocks, &dn_scales));
    VEX_ASSIGN_OR_RETURN(
        const uint16_t* gu_bias,
        m.bf16(name("mlp.experts.gate_up_proj_bias", "mlp.mlp1_bias"), {E, 2 * I}));
    VEX_ASSIGN_OR_RETURN(const uint16_t* dn_bias,
                         m.bf16(name("mlp.experts.down_proj_bias", "mlp.mlp2_bias"), {E, D}));
    l.experts.resize(E);
    l.slots.resize(E);
    l.expert_ids.resize(E);
    for (int64_t e = 0; e < E; ++e) {
      l.slots[e] = {VEX_SLOT_NEURAL, static_cast<uint32_t>(e), 0.0f, 0};
      l.expert_ids[e] = static_cast<int>(e);
      ExpertWeights& x = l.experts[e];
      x.gate_up = {gu_blocks + e * 2 * I * (D / 32) * 16, gu_scales + e * 2 * I * (D / 32),
                   static_cast<int>(2 * I), static_cast<int>(D)};
      x.gate_up_bias = gu_bias + e * 2 * I;
      x.down = {dn_blocks + e * D * (I / 32) * 16, dn_scales + e * D * (I / 32),
                static_cast<int>(D), static_cast<int>(I)};
      x.down_bias = dn_bias + e * D;
    }
  }
  VEX_RETURN_IF_ERROR(m.check_all_used());
  return w;
}

}  // namespace vex
