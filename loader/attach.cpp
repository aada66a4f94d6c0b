#include "loader/attach.h"

#include <array>
#include <cmath>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_join.h"
#include "core/dtype.h"
#include "loader/safetensors.h"
#include "loader/sha256.h"

namespace vex {
namespace {

namespace fs = std::filesystem;

constexpr std::array<const char*, VEX_FN_COUNT> kDeviceFnNames = {
    "add", "sub", "mul", "div", "dscr", "ltv", "cap_rate", "debt_yield"};

// A sidecar tensor as fp32, whatever of F32 / BF16 it is stored in (shapes were checked when the
// manifest was parsed).
absl::StatusOr<std::vector<float>> read_f32(const SafetensorsFile& f, const std::string& path,
                                            const char* name) {
  const TensorInfo* t = f.find(name);
  if (!t) return absl::NotFoundError(absl::StrCat(path, ": no tensor '", name, "'"));
  const uint8_t* p = f.data(*t);
  int64_t n = 1;
  for (int64_t d : t->shape) n *= d;
  std::vector<float> out(n);
  for (int64_t i = 0; i < n; ++i) {
    if (t->dtype == DType::kF32) {
      std::memcpy(&out[i], p + 4 * i, 4);
    } else if (t->dtype == DType::kBF16) {
      uint16_t b;
      std::memcpy(&b, p + 2 * i, 2);
      out[i] = bf16_to_f32(b);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensor '", name, "' must be F32 or BF16"));
    }
    if (!std::isfinite(out[i]))  // an inf bias or a NaN weight would route every token
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensor '", name, "' element ", i, " is ", out[i]));
  }
  return out;
}

template <typename T>
T* own(std::vector<std::unique_ptr<T[]>>& pool, size_t n) {
  pool.push_back(std::make_unique<T[]>(n));
  return pool.back().get();
}

absl::Status check_index_hash(const Manifest& m, const Checkpoint& ck) {
  if (m.index_sha256.empty()) return absl::OkStatus();
  const std::string index = (fs::path(ck.root()) / "model.safetensors.index.json").string();
  std::error_code ec;  // the non-throwing form; an unreadable index fails in the hash below
  if (!fs::exists(index, ec) && !ec)
    return absl::InvalidArgumentError(absl::StrCat(
        m.path, ": [base] index_sha256 is set but ", index,
        " does not exist (the hash names the Hugging Face weight index)"));
  VEX_ASSIGN_OR_RETURN(std::string got, sha256_file_hex(index));
  if (got != m.index_sha256)
    return absl::FailedPreconditionError(
        absl::StrCat(m.path, ": [base] index_sha256 is ", m.index_sha256, " but ", index,
                     " hashes to ", got, " (the manifest was made for other weights)"));
  return absl::OkStatus();
}

}  // namespace

std::optional<vex_device_fn> device_fn_by_name(std::string_view name) {
  for (int i = 0; i < VEX_FN_COUNT; ++i)
    if (name == kDeviceFnNames[i]) return static_cast<vex_device_fn>(i);
  return std::nullopt;
}

const char* device_fn_name(uint32_t fn) { return fn < VEX_FN_COUNT ? kDeviceFnNames[fn] : "?"; }

absl::StatusOr<AttachResult> apply_manifest(const Manifest& m, const Checkpoint& ck, Weights* w,
                                            bool mask_pruned) {
  VEX_RETURN_IF_ERROR(check_index_hash(m, ck));
  const Config& c = ck.config();
  const int D = c.d_model, E = c.n_experts;
  AttachResult r;

  // Virtual experts: their sidecars read once, their kinds resolved.
  struct Virtual {
    const VirtualExpertSpec* spec;
    vex_slot slot;
    std::vector<float> row, bias, args_w, args_b, out_w, out_b;
  };
  std::vector<Virtual> virtuals;
  for (const VirtualExpertSpec& v : m.virtuals) {
    Virtual x{&v, {}, {}, {}, {}, {}, {}, {}};
    x.slot.threshold = v.threshold.value_or(0.0f);
    VEX_ASSIGN_OR_RETURN(auto f, SafetensorsFile::open(v.router));
    VEX_ASSIGN_OR_RETURN(x.row, read_f32(*f, v.router, "weight"));
    VEX_ASSIGN_OR_RETURN(x.bias, read_f32(*f, v.router, "bias"));
    if (v.kind == VirtualExpertSpec::Kind::kDevice) {
      const auto fn = device_fn_by_name(v.name);
      if (!fn)
        return absl::InvalidArgumentError(absl::StrCat(
            m.path, ": virtual expert '", v.name, "' is of kind device, which computes one of: ",
            absl::StrJoin(kDeviceFnNames, ", ")));
      x.slot.kind = VEX_SLOT_DEVICE, x.slot.function = *fn;
      VEX_ASSIGN_OR_RETURN(x.args_w, read_f32(*f, v.router, "args.weight"));
      VEX_ASSIGN_OR_RETURN(x.args_b, read_f32(*f, v.router, "args.bias"));
      VEX_ASSIGN_OR_RETURN(x.out_w, read_f32(*f, v.router, "out.weight"));
      VEX_ASSIGN_OR_RETURN(x.out_b, read_f32(*f, v.router, "out.bias"));
    } else {
      x.slot.kind = VEX_SLOT_HOST;
      x.slot.function = static_cast<uint32_t>(r.host_experts.size());
      r.host_experts.push_back(v.name);
    }
    virtuals.push_back(std::move(x));
  }

  for (int il = 0; il < c.n_layers; ++il) {
    LayerWeights& L = w->layers[il];
    const std::vector<int> kept = m.kept(il, E);
    std::vector<const Virtual*> here;
    for (const Virtual& v : virtuals)
      if (std::binary_search(v.spec->layers.begin(), v.spec->layers.end(), il))
        here.push_back(&v);
    if (static_cast<int>(kept.size()) == E && here.empty()) continue;

    // The neural rows: kept experts (or, masking, every expert with the dropped ones PRUNED).
    std::vector<vex_slot> slots;
    std::vector<ExpertWeights> experts;
    std::vector<int> ids, rows;
    for (int e = 0; e < E; ++e) {
      const bool keep = std::binary_search(kept.begin(), kept.end(), e);
      if (!keep) ++r.pruned;
      if (!keep && !mask_pruned) continue;
      rows.push_back(e);
      slots.push_back({keep ? uint32_t(VEX_SLOT_NEURAL) : uint32_t(VEX_SLOT_PRUNED),
                       uint32_t(experts.size()), 0.0f, 0});
      experts.push_back(L.experts[e]);
      ids.push_back(e);
    }
    const int S = static_cast<int>(rows.size() + here.size());
    uint16_t* rw = own(w->owned_bf16, size_t(S) * D);
    uint16_t* rb = own(w->owned_bf16, S);
    for (size_t i = 0; i < rows.size(); ++i) {
      std::copy_n(L.router_w + size_t(rows[i]) * D, D, rw + i * D);
      rb[i] = L.router_b[rows[i]];
    }
    std::vector<vex_device_params> device;
    for (size_t j = 0; j < here.size(); ++j) {
      const Virtual& v = *here[j];
      const size_t s = rows.size() + j;
      // Router rows are bf16 like the model's own (both engines read them so).
      for (int i = 0; i < D; ++i) rw[s * D + i] = f32_to_bf16(v.row[i]);
      rb[s] = f32_to_bf16(v.bias[0]);
      vex_slot slot = v.slot;
      if (slot.kind == VEX_SLOT_DEVICE) {
        float* p = own(w->owned_f32, 4 * size_t(D) + 2);
        std::copy(v.args_w.begin(), v.args_w.end(), p);
        std::copy(v.args_b.begin(), v.args_b.end(), p + 2 * D);
        std::copy(v.out_w.begin(), v.out_w.end(), p + 2 * D + 2);
        std::copy(v.out_b.begin(), v.out_b.end(), p + 3 * D + 2);
        slot.expert = static_cast<uint32_t>(device.size());
        device.push_back({p, p + 2 * D, p + 2 * D + 2, p + 3 * D + 2});
      }
      slots.push_back(slot);
    }
    L.router_w = rw, L.router_b = rb;
    L.slots = std::move(slots);
    L.experts = std::move(experts);
    L.expert_ids = std::move(ids);
    L.device_params = std::move(device);
  }
  return r;
}

uint64_t weight_bytes(const Weights& w, const Config& c) {
  const uint64_t D = c.d_model, V = c.vocab_size, Q = c.q_dim(), KV = c.kv_dim();
  uint64_t b = 2 * V * D * 2 + D * 2;  // embedding, lm_head, final norm
  for (const LayerWeights& L : w.layers) {
    b += 2 * D * 2 + (Q + 2 * KV) * (D + 1) * 2 + D * (Q + 1) * 2 + c.n_heads * 2;
    b += uint64_t(L.n_slots()) * (D + 1) * 2;  // router rows
    for (const vex_slot& s : L.slots) b += s.kind == VEX_SLOT_NEURAL ? c.expert_bytes() : 0;
  }
  return b;
}

}  // namespace vex
