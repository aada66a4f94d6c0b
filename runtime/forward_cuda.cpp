#include "runtime/forward_cuda.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>

#include "absl/strings/match.h"
#include "core/dtype.h"
#include "kernels/cpu/rope.h"
#include "kernels/cuda/attention.cuh"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/embed.cuh"
#include "kernels/cuda/gemm.cuh"
#include "kernels/cuda/gemv.cuh"
#include "kernels/cuda/moe.cuh"
#include "kernels/cuda/norm.cuh"
#include "kernels/cuda/rope.cuh"
#include "kernels/cuda/router.cuh"
#include "kernels/cuda/sampling.cuh"
#include "nccl.h"
#include "runtime/routing.h"

namespace vex {

// The calls rank 0's engine sends to the workers' (mirror), each with its arguments in order.
enum class Call : uint8_t {
  kForward,          // tokens, logits wanted, last_only
  kTruncate,         // n
  kVirtual,          // on
  kSequence,         // seq
  kDecode,           // rows, logits passed
  kPrefill,          // chunks (seq, host_logits, sampling, draws, tokens), logits passed
  kOverride,         // k, ablate pairs, force pairs
  kSample,           // first, n, params, draw0
  kBatch,            // tokens, logits wanted
  kGreedyBatch,      // first, n
  kGraphs,           // on
  kProfile,          // tokens
};

// One layer's weights on the device.
struct LayerDeviceWeights {
  const uint16_t* attn_norm;        // [D]
  const uint16_t* wqkv;             // [Q + 2 KV, D]: q, k, v rows concatenated at upload
  const uint16_t* bqkv;             // [Q + 2 KV]
  const uint16_t* wo;               // [D, Q]
  const uint16_t* bo;               // [D]
  // The two biases again in fp32 (exact), for the GEMMs' epilogue, whose bias type is the output's.
  const float *bqkv_f32, *bo_f32;
  const uint16_t* sinks;            // [Hq]
  const uint16_t* mlp_norm;         // [D]
  const uint16_t* router_w;         // [S, D]: one row per slot
  const uint16_t* router_b;         // [S]
  const vex_device_params* device;  // DEVICE slots' parameters, device pointers
  cuda::MoeWeights moe;             // experts packed by index (this rank's)
  std::vector<int> here;            // packed expert -> its index here; -1: another rank's
};

// Which part of the model a rank uploads (CudaEngine::Shard): its heads and lm_head rows as
// rank tp_rank of tp, its experts as rank ep_rank of ep (0 of 1: all of them).
struct Split {
  int tp_rank = 0, ep_rank = 0, tp = 1, ep = 1;
  // Packed experts [first(E), first(E) + count(E)) of a layer of E are this rank's.
  int first(int E) const { return (ep_rank * E + ep - 1) / ep; }
  int count(int E) const { return ((ep_rank + 1) * E + ep - 1) / ep - first(E); }
};

struct CudaWeights {
  std::vector<void*> allocations;
  uint64_t bytes = 0;
  const uint16_t *embedding = nullptr, *final_norm = nullptr, *lm_head = nullptr;
  const float* inv_freq = nullptr;  // YaRN inverse frequencies
  float concentration = 1;
  std::vector<LayerDeviceWeights> layers;
  ~CudaWeights() {
    for (void* p : allocations) cudaFree(p);
  }
};

// The engine's view of a layer: the shared weights, and its own slot table (switched per
// sequence's virtual-expert setting) and caches.
struct CudaEngine::Layer : LayerDeviceWeights {
  vex_slot* slots;  // [S] the router's table
  vex_slot* exec;   // [S] the MoE kernels' table: `slots` but for other ranks' experts (PRUNED
                    // here), this rank's by their index here; `slots` itself off a split
  int n_slots;
  bool has_virtual;                           // DEVICE or HOST slots in the table
  std::vector<vex_slot> loaded;               // the table as loaded (a manifest's)
  std::vector<vex_slot> slots_on, slots_off;  // with virtual slots on / masked (and ablations)
  std::vector<vex_slot> exec_on, exec_off;    // their exec tables (a split only)
  uint16_t *k_cache, *v_cache;  // [slots, KV]: ring_ slots on sliding layers, max_ctx on full
  bool sliding;
};

namespace {

// count elements on the device, owned by w; a copy of host unless it is null.
template <typename T>
absl::StatusOr<T*> weight_alloc(CudaWeights& w, const T* host, size_t count) {
  void* p = nullptr;
  const size_t bytes = std::max<size_t>(count * sizeof(T), 16);
  if (cudaMalloc(&p, bytes) != cudaSuccess) {
    cudaGetLastError();
    return absl::ResourceExhaustedError(absl::StrCat("GPU out of memory allocating ", bytes,
                                                     " bytes of weights (", w.bytes,
                                                     " already uploaded)"));
  }
  w.allocations.push_back(p);
  w.bytes += bytes;
  if (host) VEX_CUDA_CHECK(cudaMemcpy(p, host, count * sizeof(T), cudaMemcpyHostToDevice));
  return static_cast<T*>(p);
}

// A bf16 vector uploaded as fp32 (each value exactly).
absl::StatusOr<const float*> upload_f32(CudaWeights& w, const uint16_t* host, size_t count) {
  std::vector<float> f(count);
  for (size_t i = 0; i < count; ++i) f[i] = bf16_to_f32(host[i]);
  return weight_alloc(w, f.data(), count);
}

// Uploads the checkpoint's weights (docs/gpt-oss.md §5 layout; the experts packed by index), or
// a rank's share of them: of attention its heads' rows of q, k and v, its heads' columns of the
// O projection (the bias on rank 0 only) and its sinks; its rows of the lm_head; its experts.
absl::StatusOr<std::shared_ptr<CudaWeights>> upload_weights(const Config& c, const Weights& w,
                                                            Split split = {}) {
  auto out = std::make_shared<CudaWeights>();
  CudaWeights& cw = *out;
  const int D = c.d_model, I = c.d_ff, V = c.vocab_size;
  // This rank's heads: q rows [q0, q0 + Q), k and v rows [kv0, kv0 + KV) of the model's.
  const int tp = split.tp, Q = c.q_dim() / tp, KV = c.kv_dim() / tp, H = c.n_heads / tp;
  const size_t q0 = size_t(split.tp_rank) * Q, kv0 = size_t(split.tp_rank) * KV;
  const size_t v0 = size_t(split.tp_rank) * (V / tp);
  VEX_ASSIGN_OR_RETURN(cw.embedding, weight_alloc(cw, w.embedding, size_t(V) * D));
  VEX_ASSIGN_OR_RETURN(cw.final_norm, weight_alloc(cw, w.final_norm, D));
  VEX_ASSIGN_OR_RETURN(cw.lm_head, weight_alloc(cw, w.lm_head + v0 * D, size_t(V / tp) * D));
  const YarnParams yarn{c.rope_theta,     c.rope_factor,       c.rope_beta_fast,
                        c.rope_beta_slow, c.rope_original_ctx, c.rope_truncate};
  std::vector<float> inv_freq(c.head_dim / 2);
  cw.concentration = yarn_inv_freq(yarn, c.head_dim, inv_freq.data());
  VEX_ASSIGN_OR_RETURN(cw.inv_freq, weight_alloc(cw, inv_freq.data(), inv_freq.size()));
  const int g1 = D / 32, g2 = I / 32;
  std::vector<uint16_t> qkv(size_t(Q + 2 * KV) * D), bqkv(Q + 2 * KV), wo(size_t(D) * Q);
  for (int il = 0; il < c.n_layers; ++il) {
    const LayerWeights& L = w.layers[il];
    LayerDeviceWeights d{};
    VEX_ASSIGN_OR_RETURN(d.attn_norm, weight_alloc(cw, L.attn_norm, D));
    std::copy_n(L.wq + q0 * D, size_t(Q) * D, qkv.begin());
    std::copy_n(L.wk + kv0 * D, size_t(KV) * D, qkv.begin() + size_t(Q) * D);
    std::copy_n(L.wv + kv0 * D, size_t(KV) * D, qkv.begin() + size_t(Q + KV) * D);
    std::copy_n(L.bq + q0, Q, bqkv.begin());
    std::copy_n(L.bk + kv0, KV, bqkv.begin() + Q);
    std::copy_n(L.bv + kv0, KV, bqkv.begin() + Q + KV);
    VEX_ASSIGN_OR_RETURN(d.wqkv, weight_alloc(cw, qkv.data(), qkv.size()));
    VEX_ASSIGN_OR_RETURN(d.bqkv, weight_alloc(cw, bqkv.data(), bqkv.size()));
    VEX_ASSIGN_OR_RETURN(d.bqkv_f32, upload_f32(cw, bqkv.data(), bqkv.size()));
    for (int r = 0; r < D; ++r)  // [D, model's Q]: this rank's columns of each row
      std::copy_n(L.wo + size_t(r) * c.q_dim() + q0, Q, wo.begin() + size_t(r) * Q);
    VEX_ASSIGN_OR_RETURN(d.wo, weight_alloc(cw, wo.data(), wo.size()));
    // The all-reduce after the O projection sums the ranks' shares: one adds the bias.
    if (split.tp_rank == 0) {
      VEX_ASSIGN_OR_RETURN(d.bo, weight_alloc(cw, L.bo, D));
      VEX_ASSIGN_OR_RETURN(d.bo_f32, upload_f32(cw, L.bo, D));
    }
    VEX_ASSIGN_OR_RETURN(d.sinks, weight_alloc(cw, L.sinks + size_t(split.tp_rank) * H, H));
    VEX_ASSIGN_OR_RETURN(d.mlp_norm, weight_alloc(cw, L.mlp_norm, D));
    const int S = L.n_slots();
    VEX_ASSIGN_OR_RETURN(d.router_w, weight_alloc(cw, L.router_w, size_t(S) * D));
    VEX_ASSIGN_OR_RETURN(d.router_b, weight_alloc(cw, L.router_b, S));
    std::vector<vex_device_params> device;
    for (const vex_device_params& p : L.device_params) {
      vex_device_params q;
      VEX_ASSIGN_OR_RETURN(q.args_w, weight_alloc(cw, p.args_w, size_t(2) * D));
      VEX_ASSIGN_OR_RETURN(q.args_b, weight_alloc(cw, p.args_b, 2));
      VEX_ASSIGN_OR_RETURN(q.out_w, weight_alloc(cw, p.out_w, D));
      VEX_ASSIGN_OR_RETURN(q.out_b, weight_alloc(cw, p.out_b, D));
      device.push_back(q);
    }
    VEX_ASSIGN_OR_RETURN(d.device, weight_alloc(cw, device.data(), device.size()));
    // The loaded experts packed by index (pruned ones are not there), this rank's share of
    // them; each expert's tensors are contiguous slices of the checkpoint.
    const int E_all = static_cast<int>(L.experts.size());
    const int e0 = split.first(E_all), E = split.count(E_all);
    d.here.assign(E_all, -1);
    for (int e = 0; e < E; ++e) d.here[e0 + e] = e;
    const size_t gu = size_t(2) * I * g1, dn = size_t(D) * g2;
    uint8_t *gub, *gus, *dnb, *dns;
    uint16_t *gubias, *dnbias;
    VEX_ASSIGN_OR_RETURN(gub, weight_alloc<uint8_t>(cw, nullptr, E * gu * 16));
    VEX_ASSIGN_OR_RETURN(gus, weight_alloc<uint8_t>(cw, nullptr, E * gu));
    VEX_ASSIGN_OR_RETURN(gubias, weight_alloc<uint16_t>(cw, nullptr, size_t(E) * 2 * I));
    VEX_ASSIGN_OR_RETURN(dnb, weight_alloc<uint8_t>(cw, nullptr, E * dn * 16));
    VEX_ASSIGN_OR_RETURN(dns, weight_alloc<uint8_t>(cw, nullptr, E * dn));
    VEX_ASSIGN_OR_RETURN(dnbias, weight_alloc<uint16_t>(cw, nullptr, size_t(E) * D));
    for (int e = 0; e < E; ++e) {
      const ExpertWeights& x = L.experts[e0 + e];
      VEX_CUDA_CHECK(
          cudaMemcpy(gub + e * gu * 16, x.gate_up.blocks, gu * 16, cudaMemcpyHostToDevice));
      VEX_CUDA_CHECK(cudaMemcpy(gus + e * gu, x.gate_up.scales, gu, cudaMemcpyHostToDevice));
      VEX_CUDA_CHECK(cudaMemcpy(gubias + size_t(e) * 2 * I, x.gate_up_bias, 2 * I * 2,
                                cudaMemcpyHostToDevice));
      VEX_CUDA_CHECK(cudaMemcpy(dnb + e * dn * 16, x.down.blocks, dn * 16, cudaMemcpyHostToDevice));
      VEX_CUDA_CHECK(cudaMemcpy(dns + e * dn, x.down.scales, dn, cudaMemcpyHostToDevice));
      VEX_CUDA_CHECK(
          cudaMemcpy(dnbias + size_t(e) * D, x.down_bias, D * 2, cudaMemcpyHostToDevice));
    }
    d.moe = {gub, gus, gubias, dnb, dns, dnbias, D, I};
    cw.layers.push_back(d);
  }
  return out;
}

}  // namespace

void CudaEngine::set_tables(Layer& d, std::span<const uint8_t> ablated) const {
  d.slots_on = d.slots_off = d.loaded;
  d.has_virtual = false;
  for (size_t e = 0; e < d.loaded.size(); ++e) {
    if (!ablated.empty() && ablated[e]) d.slots_on[e].kind = d.slots_off[e].kind = VEX_SLOT_PRUNED;
    const uint32_t kind = d.loaded[e].kind;
    if (kind == VEX_SLOT_DEVICE || kind == VEX_SLOT_HOST)
      d.has_virtual = true, d.slots_off[e].kind = VEX_SLOT_PRUNED;
  }
  if (shard_.ep == 1) return;
  // Experts split: the others' experts add nothing here, and virtual slots run on rank 0 only
  // (the all-reduce after the experts adds every rank's share once).
  auto exec = [&](std::vector<vex_slot> t) {
    for (vex_slot& s : t)
      if (s.kind == VEX_SLOT_NEURAL && d.here[s.expert] >= 0)
        s.expert = static_cast<uint32_t>(d.here[s.expert]);
      else if (s.kind == VEX_SLOT_NEURAL || rank_ != 0)
        s.kind = VEX_SLOT_PRUNED;
    return t;
  };
  d.exec_on = exec(d.slots_on), d.exec_off = exec(d.slots_off);
}

CudaEngine::CudaEngine(const Config& c, int max_ctx, int n_seqs, Shard shard)
    : c_(c),
      max_ctx_(max_ctx),
      shard_(shard),
      rank_(shard.group ? shard.group->rank() : 0),
      pos_(n_seqs, 0),
      virtual_on_(n_seqs, 1) {
  c_.n_heads /= shard.tp, c_.n_kv_heads /= shard.tp;
  vocab_here_ = c.vocab_size / shard.tp;
}

CudaEngine::~CudaEngine() {
  // The collectives' buffers leave the NCCL windows together on every rank (a collective
  // call): rank 0 while the workers drop their engines.
  auto release = [this] {
    if (stream_) cudaStreamSynchronize(stream_);
    for (auto [p, win] : windows_) {
      ncclCommWindowDeregister(static_cast<ncclComm_t>(shard_.group->comm()),
                               static_cast<ncclWindow_t>(win));
      ncclMemFree(p);
    }
    return absl::OkStatus();
  };
  if (shard_.group && rank_ == 0) {
    Wire drop;
    drop.put<uint8_t>(Group::kDrop);
    drop.put<int32_t>(shard_.id);
    shard_.group->call(drop, release).IgnoreError();
  } else {
    release().IgnoreError();
  }
  for (auto& [rows, g] : step_graphs_) cudaGraphExecDestroy(g);
  for (void* p : allocations_) cudaFree(p);
  for (void* p : host_allocations_) cudaFreeHost(p);
  if (stream_) cudaStreamDestroy(stream_);
}

template <typename T>
absl::StatusOr<T*> CudaEngine::alloc(size_t count, uint64_t* account) {
  void* p = nullptr;
  const size_t bytes = std::max<size_t>(count * sizeof(T), 16);
  if (cudaMalloc(&p, bytes) != cudaSuccess) {
    cudaGetLastError();
    return absl::ResourceExhaustedError(
        absl::StrCat("GPU out of memory allocating ", bytes, " bytes (",
                     mem_.weights + mem_.kv + mem_.workspace, " already allocated)"));
  }
  allocations_.push_back(p);
  *account += bytes;
  return static_cast<T*>(p);
}

template <typename T>
absl::StatusOr<T*> CudaEngine::collective_alloc(size_t count) {
  // NCCL's symmetric kernels (2.27+) need the buffer in a window registered by every rank at
  // the same offset; VEX_NCCL_SYMMETRIC=0 leaves them out (plain buffers, NCCL's usual kernels).
  const char* env = getenv("VEX_NCCL_SYMMETRIC");
  if (env && std::string(env) == "0") return alloc<T>(count, &mem_.workspace);
  const size_t bytes = std::max<size_t>(count * sizeof(T), 16);
  const auto comm = static_cast<ncclComm_t>(shard_.group->comm());
  void* p = nullptr;
  ncclWindow_t win;
  if (ncclResult_t r = ncclMemAlloc(&p, bytes); r != ncclSuccess)
    return absl::ResourceExhaustedError(
        absl::StrCat("ncclMemAlloc of ", bytes, " bytes: ", ncclGetErrorString(r)));
  if (ncclResult_t r = ncclCommWindowRegister(comm, p, bytes, &win, NCCL_WIN_COLL_SYMMETRIC);
      r != ncclSuccess) {
    ncclMemFree(p);
    return absl::InternalError(absl::StrCat("ncclCommWindowRegister: ", ncclGetErrorString(r),
                                            " (VEX_NCCL_SYMMETRIC=0 goes without)"));
  }
  windows_.emplace_back(p, win);
  mem_.workspace += bytes;
  return static_cast<T*>(p);
}

template <typename T>
absl::StatusOr<T*> CudaEngine::upload(const T* host, size_t count) {
  VEX_ASSIGN_OR_RETURN(T * d, alloc<T>(count, &mem_.weights));
  VEX_CUDA_CHECK(cudaMemcpy(d, host, count * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}

absl::StatusOr<std::unique_ptr<CudaEngine>> CudaEngine::create(
    const Config& config, const Weights& weights, int max_ctx, int n_seqs,
    std::shared_ptr<const CudaWeights> shared, Shard shard) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    cudaGetLastError();
    return absl::UnimplementedError("no CUDA device");
  }
  if (config.head_dim % 8 || config.d_model % 64 || config.d_ff % 64)
    return absl::UnimplementedError(
        "the CUDA engine needs head_dim % 8 == 0 and hidden_size, intermediate_size % 64 == 0");
  if (n_seqs < 1 || n_seqs > kMaxSeqs)
    return absl::InvalidArgumentError(
        absl::StrCat("the CUDA engine runs 1 to ", kMaxSeqs, " sequences, not ", n_seqs));
  if (!shard.group) shard.tp = shard.ep = 1;
  const int size = shard.group ? shard.group->size() : 1;
  for (int v : {shard.tp, shard.ep})
    if (v != 1 && v != size)
      return absl::InvalidArgumentError(
          absl::StrCat("tp and ep are 1 or the group's size ", size, ", not ", v));
  if (config.n_kv_heads % shard.tp || config.n_heads % shard.tp ||
      config.vocab_size % shard.tp)
    return absl::InvalidArgumentError(absl::StrCat(
        "tp ", shard.tp, " must divide the model's ", config.n_heads, " query heads, ",
        config.n_kv_heads, " key/value heads and vocabulary of ", config.vocab_size));
  if (shard.tp > 1 || shard.ep > 1) shared = nullptr;  // a share of the weights is its own
  auto e = std::unique_ptr<CudaEngine>(new CudaEngine(config, max_ctx, n_seqs, shard));
  VEX_RETURN_IF_ERROR(e->init(weights, std::move(shared)));
  return e;
}

absl::Status CudaEngine::init(const Weights& w, std::shared_ptr<const CudaWeights> shared) {
  if (const char* skip = getenv("VEX_PROFILE_SKIP"); skip && *skip) {
    skip_ = absl::StrCat(",", skip, ",");
    fprintf(stderr,
            "vex: VEX_PROFILE_SKIP=%s: these kernel families are left out; results are wrong\n",
            skip);
  }
  VEX_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  int device = 0;
  VEX_CUDA_CHECK(cudaGetDevice(&device));
  VEX_CUDA_CHECK(cudaDeviceGetAttribute(&sm_count_, cudaDevAttrMultiProcessorCount, device));
  gemm_ = std::make_unique<cuda::Gemm>();
  if (gemm_->init() != cudaSuccess)
    return absl::InternalError(absl::StrCat("cuBLASLt: ", gemm_->error()));
  mem_.workspace += gemm_->workspace_bytes();
  const int D = c_.d_model, Q = c_.q_dim(), KV = c_.kv_dim(), I = c_.d_ff;
  const int k = kMaxK, V = c_.vocab_size;  // buffers per chosen expert hold any k
  if (c_.n_experts_active > kMaxK)
    return absl::UnimplementedError(absl::StrCat("the CUDA engine routes to at most ", kMaxK,
                                                 " experts per token, not ",
                                                 c_.n_experts_active));
  k_ = c_.n_experts_active;
  n_forced_.assign(c_.n_layers, 0);
  int max_slots = 0;
  for (const LayerWeights& L : w.layers) max_slots = std::max(max_slots, L.n_slots());
  // A sliding layer keeps its last `window` keys plus the chunk being written (whose keys must
  // not overwrite ones its earlier tokens still read) plus a margin that lets a chat rewind a
  // few hundred tokens (truncate) without recomputing the prompt.
  ring_ = std::min(max_ctx_, c_.sliding_window + kChunk + 352);

  if (shared) {
    if (static_cast<int>(shared->layers.size()) != c_.n_layers)
      return absl::InvalidArgumentError("shared CUDA weights are of another model");
    weights_ = std::move(shared);
    mem_.shared = true;
  } else {
    Config full = c_;
    full.n_heads *= shard_.tp, full.n_kv_heads *= shard_.tp;
    VEX_ASSIGN_OR_RETURN(weights_, upload_weights(full, w,
                                                {shard_.tp > 1 ? rank_ : 0, shard_.ep > 1 ? rank_ : 0,
                                                 shard_.tp, shard_.ep}));
  }
  mem_.weights += weights_->bytes;
  embedding_ = weights_->embedding, final_norm_ = weights_->final_norm;
  lm_head_ = weights_->lm_head;
  inv_freq_ = weights_->inv_freq;
  concentration_ = weights_->concentration;
  for (int il = 0; il < c_.n_layers; ++il) {
    const LayerWeights& L = w.layers[il];
    Layer d{};
    static_cast<LayerDeviceWeights&>(d) = weights_->layers[il];
    d.sliding = c_.layer_sliding[il];
    d.n_slots = L.n_slots();
    // The slot table as loaded (a manifest's pruning and virtual rows), and the same table with
    // the virtual slots masked, swapped in by use_virtual_tables: the engine's own.
    d.loaded = L.slots;
    set_tables(d, {});
    has_host_ |= std::any_of(L.slots.begin(), L.slots.end(),
                             [](const vex_slot& s) { return s.kind == VEX_SLOT_HOST; });
    VEX_ASSIGN_OR_RETURN(d.slots, upload(L.slots.data(), L.slots.size()));
    d.exec = d.slots;
    if (shard_.ep > 1) {
      VEX_ASSIGN_OR_RETURN(d.exec, upload(d.exec_on.data(), d.exec_on.size()));
    }
    const size_t slots_n = size_t(d.sliding ? ring_ : max_ctx_) * n_seqs();
    VEX_ASSIGN_OR_RETURN(d.k_cache, alloc<uint16_t>(slots_n * KV, &mem_.kv));
    VEX_ASSIGN_OR_RETURN(d.v_cache, alloc<uint16_t>(slots_n * KV, &mem_.kv));
    layers_.push_back(d);
  }

  uint64_t& ws = mem_.workspace;
  VEX_ASSIGN_OR_RETURN(d_tokens_, alloc<int32_t>(kChunk, &ws));
  VEX_ASSIGN_OR_RETURN(d_pos_, alloc<int>(kChunk, &ws));
  VEX_ASSIGN_OR_RETURN(d_seq_, alloc<int>(kChunk, &ws));
  VEX_ASSIGN_OR_RETURN(d_tiles_, alloc<cuda::RowTile>(kChunk, &ws));
  VEX_ASSIGN_OR_RETURN(d_draws_, alloc<uint64_t>(kChunk, &ws));
  VEX_ASSIGN_OR_RETURN(d_triggers_.records, alloc<vex_trigger>(kMaxTriggers, &ws));
  VEX_ASSIGN_OR_RETURN(d_triggers_.count, alloc<int>(1, &ws));
  d_triggers_.capacity = kMaxTriggers;
  VEX_ASSIGN_OR_RETURN(d_sampling_, alloc<cuda::SamplingConfig>(kChunk, &ws));
  VEX_ASSIGN_OR_RETURN(d_forced_, alloc<int>(size_t(c_.n_layers) * kMaxK, &ws));
  max_slots_ = max_slots;
  const bool split = shard_.tp > 1 || shard_.ep > 1;
  if (split) {
    VEX_ASSIGN_OR_RETURN(x_, collective_alloc<float>(size_t(kChunk) * D));
  } else {
    VEX_ASSIGN_OR_RETURN(x_, alloc<float>(size_t(kChunk) * D, &ws));
  }
  VEX_ASSIGN_OR_RETURN(xn_, alloc<float>(size_t(kChunk) * D, &ws));
  VEX_ASSIGN_OR_RETURN(qkv_, alloc<float>(size_t(kChunk) * (Q + 2 * KV), &ws));
  VEX_ASSIGN_OR_RETURN(att_, alloc<float>(size_t(kChunk) * Q, &ws));
  VEX_ASSIGN_OR_RETURN(idx_, alloc<int>(size_t(kChunk) * k, &ws));
  VEX_ASSIGN_OR_RETURN(weight_, alloc<float>(size_t(kChunk) * k, &ws));
  VEX_ASSIGN_OR_RETURN(xf_, alloc<uint32_t>(size_t(kGemvRows) * cuda::split_words(D), &ws));
  VEX_ASSIGN_OR_RETURN(hf_, alloc<uint32_t>(size_t(kGemvRows) * k * cuda::split_words(I), &ws));
  VEX_ASSIGN_OR_RETURN(scores_, alloc<float>(size_t(kGemvRows) * max_slots, &ws));
  VEX_ASSIGN_OR_RETURN(device_args_, alloc<float>(size_t(kChunk) * k * 2, &ws));
  const int logits_rows = std::max(kLogitsRows, n_seqs());
  if (shard_.tp > 1) {  // the all-gather's three buffers
    VEX_ASSIGN_OR_RETURN(logits_, collective_alloc<float>(size_t(logits_rows) * V));
    VEX_ASSIGN_OR_RETURN(logits_here_, collective_alloc<float>(size_t(logits_rows) * vocab_here_));
    VEX_ASSIGN_OR_RETURN(gathered_, collective_alloc<float>(size_t(logits_rows) * V));
  } else {
    VEX_ASSIGN_OR_RETURN(logits_, alloc<float>(size_t(logits_rows) * V, &ws));
  }
  VEX_ASSIGN_OR_RETURN(
      attn_partial_,
      alloc<float>(size_t(std::max(n_seqs(), kAttnSplits)) * c_.n_heads * (c_.head_dim + 2), &ws));
  VEX_ASSIGN_OR_RETURN(attn_counts_, alloc<int>(size_t(n_seqs()) * c_.n_kv_heads, &ws));
  VEX_CUDA_CHECK(cudaMemset(attn_counts_, 0, size_t(n_seqs()) * c_.n_kv_heads * sizeof(int)));
  moe_scratch_.capacity = kChunk * k;
  VEX_ASSIGN_OR_RETURN(moe_scratch_.offset, alloc<int>(max_slots + 1, &ws));
  VEX_ASSIGN_OR_RETURN(moe_scratch_.list, alloc<int>(size_t(kChunk) * k, &ws));
  VEX_ASSIGN_OR_RETURN(moe_scratch_.y, alloc<float>(size_t(kChunk) * k * D, &ws));
  VEX_ASSIGN_OR_RETURN(moe_scratch_.xb, alloc<uint16_t>(size_t(kChunk) * D, &ws));
  VEX_ASSIGN_OR_RETURN(act_bf16_, alloc<uint16_t>(size_t(kChunk) * std::max(D, Q), &ws));
  VEX_ASSIGN_OR_RETURN(moe_scratch_.hb, alloc<uint16_t>(size_t(kChunk) * k * I, &ws));
  return absl::OkStatus();
}

absl::Status CudaEngine::timed(const char* name, uint64_t bytes,
                               const std::function<cudaError_t()>& f) {
  auto failed = [&](cudaError_t err) {
    // cuBLAS and NCCL failures come back as cudaErrorUnknown with their own message kept.
    const std::string why = err != cudaErrorUnknown ? cudaGetErrorString(err)
                            : !nccl_error_.empty()  ? nccl_error_
                                                    : gemm_->error();
    return absl::InternalError(absl::StrCat(name, " launch failed: ", why));
  };
  if (!skip_.empty() && absl::StrContains(skip_, absl::StrCat(",", name, ",")))
    return absl::OkStatus();  // measuring without this family (VEX_PROFILE_SKIP)
  if (!profiling_) {
    const cudaError_t err = f();
    return err != cudaSuccess ? failed(err) : absl::OkStatus();
  }
  Pending p{name, bytes, nullptr, nullptr};
  VEX_CUDA_CHECK(cudaEventCreate(&p.start));
  VEX_CUDA_CHECK(cudaEventCreate(&p.stop));
  VEX_CUDA_CHECK(cudaEventRecord(p.start, stream_));
  const cudaError_t err = f();
  VEX_CUDA_CHECK(cudaEventRecord(p.stop, stream_));
  pending_.push_back(p);
  return err != cudaSuccess ? failed(err) : absl::OkStatus();
}

absl::Status CudaEngine::all_reduce_x(int n) {
  return timed("all_reduce", 0, [&] {
    const ncclResult_t r =
        ncclAllReduce(x_, x_, size_t(n) * c_.d_model, ncclFloat32, ncclSum,
                      static_cast<ncclComm_t>(shard_.group->comm()), stream_);
    if (r == ncclSuccess) return cudaSuccess;
    nccl_error_ = absl::StrCat("NCCL: ", ncclGetErrorString(r));
    return cudaErrorUnknown;
  });
}

absl::Status CudaEngine::gather_logits(int m) {
  const int V = c_.vocab_size, Vh = vocab_here_, tp = shard_.tp;
  // One row: the ranks' slices are the row in order. More: [tp, m, Vh] into [m, V].
  float* to = m == 1 ? logits_ : gathered_;
  VEX_RETURN_IF_ERROR(timed("all_gather", 0, [&] {
    const ncclResult_t r = ncclAllGather(logits_here_, to, size_t(m) * Vh, ncclFloat32,
                                         static_cast<ncclComm_t>(shard_.group->comm()), stream_);
    if (r == ncclSuccess) return cudaSuccess;
    nccl_error_ = absl::StrCat("NCCL: ", ncclGetErrorString(r));
    return cudaErrorUnknown;
  }));
  if (m > 1)
    for (int r = 0; r < tp; ++r)
      VEX_CUDA_CHECK(cudaMemcpy2DAsync(logits_ + size_t(r) * Vh, V * sizeof(float),
                                       gathered_ + size_t(r) * m * Vh, Vh * sizeof(float),
                                       Vh * sizeof(float), m, cudaMemcpyDeviceToDevice, stream_));
  return absl::OkStatus();
}

// One pass of n tokens through the layers, top to bottom as docs/gpt-oss.md §4.0 and forward_cpu.
// Split over a group: with tp, this rank's heads, their share of the O projection summed over the
// ranks into the residual (rank 0 adding it to the residual, the others writing theirs alone);
// with ep, the experts here, summed the same way after the others zero their residual.
absl::Status CudaEngine::enqueue_layers(int n, bool decode) {
  const int D = c_.d_model, Q = c_.q_dim(), KV = c_.kv_dim(), S = Q + 2 * KV;
  const int k = k_, I = c_.d_ff;
  const float sm_scale = 1.0f / std::sqrt(static_cast<float>(c_.head_dim));
  const uint64_t b2 = 2;  // bytes per bf16
  cudaStream_t s = stream_;
  const bool gemm = uses_gemm(n, decode);
  // The O projection's GEMM input in bf16 straight from the prefill attention (a decode batch's
  // attention writes fp32, rounded before the GEMM).
  const bool att_bf16 = gemm && !decode;
  const bool tp = shard_.tp > 1, ep = shard_.ep > 1, lead = rank_ == 0;
  const StepSplits splits = decode ? step_splits(n) : StepSplits{1, 1};
  if (!decode) {  // prefill attention's tiles of the rows place_rows placed
    tiles_ = cuda::row_tiles(rows_pos_, rows_seq_);
    VEX_CUDA_CHECK(cudaMemcpyAsync(d_tiles_, tiles_.data(), tiles_.size() * sizeof(cuda::RowTile),
                                   cudaMemcpyHostToDevice, s));
  }
  VEX_RETURN_IF_ERROR(
      timed("embed", n * D * b2, [&] { return cuda::embed(d_tokens_, n, embedding_, D, x_, s); }));
  for (int il = 0; il < c_.n_layers; ++il) {
    const Layer& L = layers_[il];
    const cuda::CacheRows rows{d_pos_, d_seq_, int64_t(L.sliding ? ring_ : max_ctx_) * KV};
    // Attention block: x += o_proj(attn(rope(q), rope(k), v)).
    const int ring = L.sliding ? ring_ : 0;
    const cuda::RopeKv rope{rows,        inv_freq_, concentration_, c_.n_heads, c_.n_kv_heads,
                            c_.head_dim, ring,      L.k_cache,      L.v_cache};
    if (!gemm) {  // RoPE and the cache write in the GEMV's epilogue
      VEX_RETURN_IF_ERROR(timed("rmsnorm+qkv+rope", uint64_t(S) * D * b2, [&] {
        return cuda::gemv_qkv_rope(x_, L.wqkv, L.bqkv, qkv_, n, D, S, rope, s, L.attn_norm,
                                   c_.rms_eps);
      }));
    } else {  // norm, bf16, tensor-core GEMM
      VEX_RETURN_IF_ERROR(timed("rmsnorm", 0, [&] {
        return cuda::rmsnorm_bf16(x_, L.attn_norm, act_bf16_, n, D, c_.rms_eps, s);
      }));
      VEX_RETURN_IF_ERROR(timed("qkv_gemm", uint64_t(S) * D * b2, [&] {
        return gemm_->run(act_bf16_, L.wqkv, L.bqkv_f32, qkv_, n, D, S, false, s);
      }));
    }
    if (gemm)
      VEX_RETURN_IF_ERROR(timed("rope_kv", 0, [&] { return cuda::rope_kv(qkv_, S, n, rope, s); }));
    VEX_RETURN_IF_ERROR(timed("attention", 0, [&] {
      const int window = L.sliding ? c_.sliding_window : 0;
      if (!decode)  // tiles of consecutive rows on tensor cores
        return cuda::attention_prefill(qkv_, S, L.k_cache, L.v_cache, L.sinks, att_, d_tiles_,
                                       int(tiles_.size()), rows, window, ring, c_.n_heads,
                                       c_.n_kv_heads, c_.head_dim, sm_scale, s,
                                       att_bf16 ? act_bf16_ : nullptr);
      return cuda::attention(qkv_, S, L.k_cache, L.v_cache, L.sinks, att_, n, rows, window, ring,
                             c_.n_heads, c_.n_kv_heads, c_.head_dim, sm_scale, s,
                             L.sliding ? splits.sliding : splits.full, attn_partial_,
                             attn_counts_);
    }));
    if (!gemm) {
      VEX_RETURN_IF_ERROR(timed("o_proj", uint64_t(D) * Q * b2, [&] {
        return cuda::gemv_bf16(att_, L.wo, L.bo, x_, n, Q, D, /*accumulate=*/!tp || lead, s);
      }));
    } else {
      VEX_RETURN_IF_ERROR(timed("o_gemm", uint64_t(D) * Q * b2, [&] {
        cudaError_t e = att_bf16 ? cudaSuccess : cuda::to_bf16(att_, act_bf16_, int64_t(n) * Q, s);
        return e != cudaSuccess
                   ? e
                   : gemm_->run(act_bf16_, L.wo, L.bo_f32, x_, n, Q, D, !tp || lead, s);
      }));
    }
    if (tp) VEX_RETURN_IF_ERROR(all_reduce_x(n));
    // MoE block: x += sum over the top-k slots of w_e * slot_e(xn); virtual slots run inside
    // the same kernels (kernels/cuda/virtual_slots.cuh).
    const int E = L.n_slots;
    const cuda::VirtualSlots virt =
        L.has_virtual ? cuda::VirtualSlots{L.device, device_args_, il, rows, d_triggers_}
                      : cuda::VirtualSlots{};
    const size_t at = size_t(il) * kCaptureRows;  // this layer's rows in the capture buffers
    if (observer_ && cap_hidden_)
      VEX_CUDA_CHECK(cudaMemcpyAsync(cap_.residual + at * D, x_, size_t(n) * D * sizeof(float),
                                     cudaMemcpyDeviceToDevice, s));
    // Decode's router scores on E / 8 SMs and leaves the choice to the gate-up kernel; a prefill
    // pass's chooses.
    float* cap_logits = observer_ ? cap_.logits + at * max_slots_ : nullptr;
    VEX_RETURN_IF_ERROR(timed("rmsnorm+router", uint64_t(E) * D * b2, [&] {
      return gemm ? cuda::router(x_, L.router_w, L.router_b, L.slots, n, D, E, k, idx_, weight_,
                                 cap_logits, s, L.mlp_norm, c_.rms_eps, xn_, d_forced_ + il * kMaxK,
                                 n_forced_[il])
                  : cuda::router_scores(x_, L.router_w, L.router_b, L.slots, n, D, E, scores_,
                                        cap_logits, s, L.mlp_norm, c_.rms_eps, xn_, xf_);
    }));
    auto capture_choice = [&]() -> absl::Status {
      VEX_CUDA_CHECK(cudaMemcpyAsync(cap_.idx + at * kMaxK, idx_, size_t(n) * k * sizeof(int),
                                     cudaMemcpyDeviceToDevice, s));
      VEX_CUDA_CHECK(cudaMemcpyAsync(cap_.weight + at * kMaxK, weight_,
                                     size_t(n) * k * sizeof(float), cudaMemcpyDeviceToDevice, s));
      return absl::OkStatus();
    };
    if (observer_) {
      if (cap_hidden_)
        VEX_CUDA_CHECK(cudaMemcpyAsync(cap_.xn + at * D, xn_, size_t(n) * D * sizeof(float),
                                       cudaMemcpyDeviceToDevice, s));
      if (gemm) VEX_RETURN_IF_ERROR(capture_choice());
    }
    if (ep && !lead) VEX_CUDA_CHECK(cudaMemsetAsync(x_, 0, size_t(n) * D * sizeof(float), s));
    if (!gemm) {  // each chosen expert streamed once per token
      const cuda::ExpertChoice choice{scores_, L.slots, E, d_forced_ + il * kMaxK, n_forced_[il],
                                      weight_};
      VEX_RETURN_IF_ERROR(timed("moe_gate_up", uint64_t(k) * 2 * I * (D / 32) * 17, [&] {
        return cuda::moe_gate_up(xn_, xf_, idx_, L.exec, L.moe, virt, n, k, c_.swiglu_limit, hf_,
                                 s, choice);
      }));
      if (observer_) VEX_RETURN_IF_ERROR(capture_choice());
      VEX_RETURN_IF_ERROR(timed("moe_down", uint64_t(k) * D * (I / 32) * 17, [&] {
        return cuda::moe_down(hf_, idx_, weight_, L.exec, L.moe, virt, n, k, x_, s, choice);
      }));
    } else {  // expert-major, each expert's weights read once per pass
      VEX_RETURN_IF_ERROR(timed("moe_grouped", 0, [&] {
        return cuda::moe_grouped(xn_, idx_, weight_, L.exec, L.moe, virt, n, k, E, c_.swiglu_limit,
                                 moe_scratch_, x_, s);
      }));
    }
    if (ep) VEX_RETURN_IF_ERROR(all_reduce_x(n));
  }
  return absl::OkStatus();
}

absl::Status CudaEngine::enqueue_logits(int row0, int m, bool gemm) {
  const int D = c_.d_model, V = vocab_here_;  // this rank's rows of the lm_head
  float* out = shard_.tp > 1 ? logits_here_ : logits_;
  VEX_RETURN_IF_ERROR(timed("rmsnorm", D * 2, [&] {
    return gemm ? cuda::rmsnorm_bf16(x_ + size_t(row0) * D, final_norm_, act_bf16_, m, D,
                                     c_.rms_eps, stream_)
                : cuda::rmsnorm(x_ + size_t(row0) * D, final_norm_, xn_, m, D, c_.rms_eps, stream_);
  }));
  VEX_RETURN_IF_ERROR(timed("lm_head", uint64_t(V) * D * 2, [&] {
    return gemm ? gemm_->run(act_bf16_, lm_head_, nullptr, out, m, D, V, false, stream_)
                : cuda::gemv_bf16(xn_, lm_head_, nullptr, out, m, D, V, false, stream_);
  }));
  return shard_.tp > 1 ? gather_logits(m) : absl::OkStatus();
}

absl::Status CudaEngine::place_rows(std::span<const int> pos, std::span<const int> seq) {
  rows_pos_.assign(pos.begin(), pos.end()), rows_seq_.assign(seq.begin(), seq.end());
  step_keys_ = pos.empty() ? 1 : *std::max_element(pos.begin(), pos.end()) + 1;
  VEX_CUDA_CHECK(cudaMemcpyAsync(d_pos_, pos.data(), pos.size() * sizeof(int),
                                 cudaMemcpyHostToDevice, stream_));
  VEX_CUDA_CHECK(cudaMemcpyAsync(d_seq_, seq.data(), seq.size() * sizeof(int),
                                 cudaMemcpyHostToDevice, stream_));
  // From pageable memory the copies return once the source is staged: the spans may go.
  return absl::OkStatus();
}

absl::StatusOr<std::vector<CudaEngine::KernelTime>> CudaEngine::profile_step(
    std::span<const int32_t> tokens) {
  if (mirroring()) {
    absl::StatusOr<std::vector<KernelTime>> out;
    VEX_RETURN_IF_ERROR(mirror([&](Wire& w) { w.put(Call::kProfile), w.put_span(tokens); },
                               [&] { return (out = profile_step(tokens)).status(); }));
    return out;
  }
  const int n = static_cast<int>(tokens.size());
  if (n < 1 || n > pass_rows() || pos() + n > max_ctx_)
    return absl::OutOfRangeError(absl::StrCat("profile_step: 1 to ", pass_rows(),
                                              " tokens that fit the context"));
  VEX_CUDA_CHECK(cudaMemcpyAsync(d_tokens_, tokens.data(), n * sizeof(int32_t),
                                 cudaMemcpyHostToDevice, stream_));
  VEX_RETURN_IF_ERROR(place_chunk(n));
  profiling_ = true;
  pending_.clear();
  absl::Status st = enqueue_layers(n, n == 1);
  if (st.ok()) st = enqueue_logits(n - 1, 1, uses_gemm(n, n == 1));
  profiling_ = false;
  VEX_CUDA_CHECK(cudaStreamSynchronize(stream_));
  std::vector<KernelTime> out;
  for (const Pending& p : pending_) {
    float ms = 0;
    cudaEventElapsedTime(&ms, p.start, p.stop);
    cudaEventDestroy(p.start), cudaEventDestroy(p.stop);
    auto it = std::find_if(out.begin(), out.end(),
                           [&](const KernelTime& k) { return std::strcmp(k.name, p.name) == 0; });
    if (it == out.end()) it = out.insert(out.end(), KernelTime{p.name});
    it->calls++, it->ms += ms, it->bytes += p.bytes;
  }
  pending_.clear();
  VEX_RETURN_IF_ERROR(st);
  return out;
}

absl::Status CudaEngine::place_chunk(int n) {
  std::vector<int> pos(n), seq(n, cur_);
  std::iota(pos.begin(), pos.end(), pos_[cur_]);
  return place_rows(pos, seq);
}

absl::Status CudaEngine::set_sequence(int seq) {
  if (mirroring())
    return mirror([&](Wire& w) { w.put(Call::kSequence), w.put<int32_t>(seq); },
                  [&] { return set_sequence(seq); });
  if (seq < 0 || seq >= n_seqs())
    return absl::OutOfRangeError(
        absl::StrCat("sequence ", seq, " does not exist (the engine holds ", n_seqs(), ")"));
  cur_ = seq;
  return absl::OkStatus();
}

absl::Status CudaEngine::run_step_graph(int rows, bool sampled) {
  if (!graphs()) {  // the same launches, one by one
    VEX_RETURN_IF_ERROR(enqueue_layers(rows, /*decode=*/true));
    VEX_RETURN_IF_ERROR(enqueue_logits(0, rows, uses_gemm(rows, true)));
    return enqueue_select(rows, sampled);
  }
  const StepSplits splits = step_splits(rows);
  const int key =
      ((2 * rows + sampled) * (kAttnSplits + 1) + splits.full) * (kAttnSplits + 1) + splits.sliding;
  auto it = std::find_if(step_graphs_.begin(), step_graphs_.end(),
                         [&](const auto& g) { return g.first == key; });
  if (it == step_graphs_.end()) {
    cudaGraphExec_t exec;
    cudaGraph_t graph;
    VEX_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    const bool gemm = uses_gemm(rows, true);
    absl::Status st = enqueue_layers(rows, /*decode=*/true);
    if (st.ok()) st = enqueue_logits(0, rows, gemm);
    if (st.ok()) st = enqueue_select(rows, sampled);
    const cudaError_t end = cudaStreamEndCapture(stream_, &graph);
    VEX_RETURN_IF_ERROR(st);
    VEX_CUDA_CHECK(end);
    const cudaError_t inst = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    VEX_CUDA_CHECK(inst);
    it = step_graphs_.insert(step_graphs_.end(), {key, exec});
  }
  VEX_CUDA_CHECK(cudaGraphLaunch(it->second, stream_));
  return absl::OkStatus();
}

static_assert(CudaEngine::kAttnSplits <= cuda::kMaxSplits);
int CudaEngine::attn_splits(int rows, int keys, int n_kv_heads, int sm_count) {
  rows = std::max(1, rows);
  const int wave = std::min(kAttnSplits / rows, 2 * sm_count / (rows * std::max(1, n_kv_heads)));
  const int want = (keys + kKeysPerSplit - 1) / kKeysPerSplit;
  int splits = 1;
  while (splits < want && 2 * splits <= wave) splits *= 2;
  return splits;
}

CudaEngine::StepSplits CudaEngine::step_splits(int rows) const {
  return {attn_splits(rows, step_keys_, c_.n_kv_heads, sm_count_),
          attn_splits(rows, std::min(step_keys_, c_.sliding_window), c_.n_kv_heads, sm_count_)};
}

absl::Status CudaEngine::enqueue_select(int rows, bool sampled) {
  const cudaError_t e =
      sampled ? cuda::sample_next(logits_, c_.vocab_size, rows, d_sampling_, d_draws_, d_tokens_,
                                  d_pos_, 1, stream_)
              : cuda::argmax_next(logits_, c_.vocab_size, rows, d_tokens_, d_pos_, 1, stream_);
  if (e != cudaSuccess)
    return absl::InternalError(absl::StrCat("token selection failed: ", cudaGetErrorString(e)));
  return absl::OkStatus();
}

absl::Status CudaEngine::reset_triggers(bool keep) {
  if (!keep) triggers_.clear();
  if (has_host_) VEX_CUDA_CHECK(cudaMemsetAsync(d_triggers_.count, 0, sizeof(int), stream_));
  return absl::OkStatus();
}

absl::Status CudaEngine::read_triggers() {
  if (!has_host_) return absl::OkStatus();
  int count = 0;
  VEX_CUDA_CHECK(cudaMemcpy(&count, d_triggers_.count, sizeof(int), cudaMemcpyDeviceToHost));
  // Appended: a decode step of rows with virtual experts on and off makes two passes.
  const size_t have = triggers_.size();
  triggers_.resize(have + std::min(count, kMaxTriggers));
  if (triggers_.size() > have)
    VEX_CUDA_CHECK(cudaMemcpy(triggers_.data() + have, d_triggers_.records,
                              (triggers_.size() - have) * sizeof(vex_trigger),
                              cudaMemcpyDeviceToHost));
  // Blocks of one pass write in any order: sort by (sequence, position, layer, slot).
  std::sort(triggers_.begin(), triggers_.end(), [](const auto& a, const auto& b) {
    return std::tie(a.seq, a.pos, a.layer, a.slot) < std::tie(b.seq, b.pos, b.layer, b.slot);
  });
  return absl::OkStatus();
}

absl::Status CudaEngine::set_virtual_experts(bool on) {
  if (mirroring())
    return mirror([&](Wire& w) { w.put(Call::kVirtual), w.put<uint8_t>(on); },
                  [&] { return set_virtual_experts(on); });
  virtual_on_[cur_] = on;
  return absl::OkStatus();
}

absl::Status CudaEngine::use_virtual_tables(bool on) {
  if (on == tables_on_ && !tables_stale_) return absl::OkStatus();
  for (Layer& L : layers_)
    if (L.has_virtual || tables_stale_) {
      const auto& table = on ? L.slots_on : L.slots_off;
      VEX_CUDA_CHECK(cudaMemcpyAsync(L.slots, table.data(), table.size() * sizeof(vex_slot),
                                     cudaMemcpyHostToDevice, stream_));
      if (L.exec == L.slots) continue;
      const auto& exec = on ? L.exec_on : L.exec_off;
      VEX_CUDA_CHECK(cudaMemcpyAsync(L.exec, exec.data(), exec.size() * sizeof(vex_slot),
                                     cudaMemcpyHostToDevice, stream_));
    }
  // The host tables must stay put until the copies are done; they are the engine's.
  tables_on_ = on, tables_stale_ = false;
  return absl::OkStatus();
}


absl::Status CudaEngine::mirror(const std::function<void(Wire&)>& args,
                                const std::function<absl::Status()>& self) {
  Wire msg;
  msg.put<uint8_t>(Group::kCall);
  msg.put<int32_t>(shard_.id);
  args(msg);
  in_call_ = true;
  absl::Status st = shard_.group->call(msg, self);
  in_call_ = false;
  return st;
}

namespace {
void put_pairs(Wire& w, const std::vector<std::pair<int, int>>& v) {
  std::vector<int32_t> flat;
  for (const auto& [a, b] : v) flat.push_back(a), flat.push_back(b);
  w.put_span(std::span<const int32_t>(flat));
}
absl::Status get_pairs(Wire& w, std::vector<std::pair<int, int>>* v) {
  std::vector<int32_t> flat;
  VEX_RETURN_IF_ERROR(w.get_vector(&flat));
  for (size_t i = 0; i + 1 < flat.size(); i += 2) v->emplace_back(flat[i], flat[i + 1]);
  return absl::OkStatus();
}
}  // namespace

absl::Status CudaEngine::replay(Wire& msg) {
  uint8_t call = 0;
  VEX_RETURN_IF_ERROR(msg.get(&call));
  const size_t V = c_.vocab_size;
  auto host_logits = [&](size_t rows) { return replay_logits_.resize(rows * V), replay_logits_.data(); };
  switch (static_cast<Call>(call)) {
    case Call::kForward: {
      std::vector<int32_t> tokens;
      uint8_t want = 0, last = 0;
      VEX_RETURN_IF_ERROR(msg.get_vector(&tokens));
      VEX_RETURN_IF_ERROR(msg.get(&want));
      VEX_RETURN_IF_ERROR(msg.get(&last));
      float* logits = want ? host_logits(last ? 1 : tokens.size()) : nullptr;
      return forward(tokens, logits, last != 0);
    }
    case Call::kTruncate: {
      int32_t n = 0;
      VEX_RETURN_IF_ERROR(msg.get(&n));
      truncate(n);
      return absl::OkStatus();
    }
    case Call::kVirtual:
    case Call::kGraphs: {
      uint8_t on = 0;
      VEX_RETURN_IF_ERROR(msg.get(&on));
      if (static_cast<Call>(call) == Call::kGraphs) return set_use_graphs(on), absl::OkStatus();
      return set_virtual_experts(on != 0);
    }
    case Call::kSequence: {
      int32_t seq = 0;
      VEX_RETURN_IF_ERROR(msg.get(&seq));
      return set_sequence(seq);
    }
    case Call::kDecode: {
      std::vector<DecodeRow> rows;
      uint8_t passed = 0;
      VEX_RETURN_IF_ERROR(msg.get_vector(&rows));
      VEX_RETURN_IF_ERROR(msg.get(&passed));
      std::vector<DecodeChoice> chosen(rows.size());
      return decode(rows, passed ? host_logits(rows.size()) : nullptr, chosen.data());
    }
    case Call::kPrefill: {
      uint64_t n = 0;
      VEX_RETURN_IF_ERROR(msg.get(&n));
      if (n > size_t(kMaxSeqs)) return absl::DataLossError("a prefill of too many chunks");
      std::vector<std::vector<int32_t>> tokens(n);
      std::vector<PrefillChunk> chunks(n);
      for (size_t i = 0; i < n; ++i) {
        PrefillChunk& c = chunks[i];
        uint8_t host = 0;
        VEX_RETURN_IF_ERROR(msg.get(&c.seq));
        VEX_RETURN_IF_ERROR(msg.get(&host));
        VEX_RETURN_IF_ERROR(msg.get(&c.sampling));
        VEX_RETURN_IF_ERROR(msg.get(&c.draws));
        VEX_RETURN_IF_ERROR(msg.get_vector(&tokens[i]));
        c.host_logits = host != 0, c.tokens = tokens[i];
      }
      uint8_t passed = 0;
      VEX_RETURN_IF_ERROR(msg.get(&passed));
      std::vector<DecodeChoice> chosen(n);
      return prefill(chunks, passed ? host_logits(n) : nullptr, chosen.data());
    }
    case Call::kOverride: {
      RoutingOverride o;
      VEX_RETURN_IF_ERROR(msg.get(&o.k));
      VEX_RETURN_IF_ERROR(get_pairs(msg, &o.ablate));
      VEX_RETURN_IF_ERROR(get_pairs(msg, &o.force));
      return set_routing_override(o);
    }
    case Call::kSample: {
      int32_t first = 0, n = 0;
      SamplingParams params;
      uint64_t draw0 = 0;
      VEX_RETURN_IF_ERROR(msg.get(&first));
      VEX_RETURN_IF_ERROR(msg.get(&n));
      VEX_RETURN_IF_ERROR(msg.get(&params));
      VEX_RETURN_IF_ERROR(msg.get(&draw0));
      return decode_sample(first, n, params, draw0, nullptr);
    }
    case Call::kBatch:
    case Call::kGreedyBatch: {
      std::vector<int32_t> tokens;
      int32_t n = 0;
      VEX_RETURN_IF_ERROR(msg.get_vector(&tokens));
      VEX_RETURN_IF_ERROR(msg.get(&n));
      if (static_cast<Call>(call) == Call::kGreedyBatch)
        return decode_greedy_batch(tokens, n, nullptr);
      return decode_batch(tokens, n ? host_logits(tokens.size()) : nullptr);
    }
    case Call::kProfile: {
      std::vector<int32_t> tokens;
      VEX_RETURN_IF_ERROR(msg.get_vector(&tokens));
      return profile_step(tokens).status();
    }
  }
  return absl::InternalError(absl::StrCat("unknown engine call ", int(call)));
}

void CudaEngine::set_use_graphs(bool on) {
  if (mirroring())
    return mirror([&](Wire& w) { w.put(Call::kGraphs), w.put<uint8_t>(on); },
                  [&] { return set_use_graphs(on), absl::OkStatus(); })
        .IgnoreError();
  use_graphs_ = on;
}

absl::Status CudaEngine::forward(std::span<const int32_t> tokens, float* logits, bool last_only) {
  if (mirroring())
    return mirror(
        [&](Wire& w) {
          w.put(Call::kForward), w.put_span(tokens);
          w.put<uint8_t>(logits != nullptr), w.put<uint8_t>(last_only);
        },
        [&] { return forward(tokens, logits, last_only); });
  VEX_RETURN_IF_ERROR(check_tokens(tokens, pos(), max_ctx_, c_.vocab_size));
  VEX_RETURN_IF_ERROR(use_virtual_tables(virtual_on_[cur_]));
  VEX_RETURN_IF_ERROR(reset_triggers());
  const size_t V = c_.vocab_size;
  const size_t pass = pass_rows();
  for (size_t i = 0; i < tokens.size(); i += pass) {
    const int n = static_cast<int>(std::min(pass, tokens.size() - i));
    const bool last_chunk = i + n == tokens.size();
    const bool want = logits && (!last_only || last_chunk);
    const int first = last_only ? n - 1 : 0;
    VEX_CUDA_CHECK(cudaMemcpyAsync(d_tokens_, tokens.data() + i, n * sizeof(int32_t),
                                   cudaMemcpyHostToDevice, stream_));
    VEX_RETURN_IF_ERROR(place_chunk(n));
    if (n == 1 && graphs() && (want || !logits)) {
      VEX_RETURN_IF_ERROR(run_step_graph(1));
      if (want)
        VEX_CUDA_CHECK(
            cudaMemcpyAsync(logits, logits_, V * sizeof(float), cudaMemcpyDeviceToHost, stream_));
    } else {
      VEX_RETURN_IF_ERROR(enqueue_layers(n, n == 1));
      // Logits in blocks of kLogitsRows rows, each copied out before the next overwrites it.
      for (int r0 = first; want && r0 < n; r0 += kLogitsRows) {
        const int m = std::min(kLogitsRows, n - r0);
        VEX_RETURN_IF_ERROR(enqueue_logits(r0, m, uses_gemm(n, n == 1)));
        float* dst = last_only ? logits : logits + (i + r0) * V;
        VEX_CUDA_CHECK(cudaMemcpyAsync(dst, logits_, size_t(m) * V * sizeof(float),
                                       cudaMemcpyDeviceToHost, stream_));
      }
    }
    VEX_CUDA_CHECK(cudaStreamSynchronize(stream_));
    VEX_RETURN_IF_ERROR(deliver_routing(n));
    pos_[cur_] += n;
  }
  return read_triggers();
}

absl::Status CudaEngine::decode_greedy(int32_t first, int n, int32_t* out) {
  return decode_sample(first, n, SamplingParams{.temperature = 0}, 0, out);
}

absl::Status CudaEngine::decode_sample(int32_t first, int n, const SamplingParams& params,
                                       uint64_t draw0, int32_t* out) {
  if (mirroring())
    return mirror(
        [&](Wire& w) {
          w.put(Call::kSample), w.put<int32_t>(first), w.put<int32_t>(n);
          w.put(params), w.put(draw0);
        },
        [&] { return decode_sample(first, n, params, draw0, out); });
  if (n <= 0) return absl::OkStatus();
  VEX_RETURN_IF_ERROR(validate(params));
  VEX_RETURN_IF_ERROR(check_decode(cur_, first, n, ""));
  const bool sampled = params.temperature > 0 && params.top_k != 1;
  if (sampled) {
    const cuda::SamplingConfig cfg{params.temperature, params.top_k, params.top_p, params.min_p,
                                   params.seed};
    VEX_CUDA_CHECK(
        cudaMemcpyAsync(d_sampling_, &cfg, sizeof(cfg), cudaMemcpyHostToDevice, stream_));
    VEX_CUDA_CHECK(
        cudaMemcpyAsync(d_draws_, &draw0, sizeof(draw0), cudaMemcpyHostToDevice, stream_));
  }
  VEX_CUDA_CHECK(
      cudaMemcpyAsync(d_tokens_, &first, sizeof(int32_t), cudaMemcpyHostToDevice, stream_));
  VEX_RETURN_IF_ERROR(place_chunk(1));
  VEX_RETURN_IF_ERROR(use_virtual_tables(virtual_on_[cur_]));
  VEX_RETURN_IF_ERROR(reset_triggers());
  for (int i = 0; i < n; ++i) {
    step_keys_ = pos_[cur_] + i + 1;
    VEX_RETURN_IF_ERROR(run_step_graph(1, sampled));
    if (out)
      VEX_CUDA_CHECK(
          cudaMemcpyAsync(out + i, d_tokens_, sizeof(int32_t), cudaMemcpyDeviceToHost, stream_));
    if (observer_) {
      VEX_CUDA_CHECK(cudaStreamSynchronize(stream_));
      VEX_RETURN_IF_ERROR(deliver_routing(1, i));
    }
  }
  VEX_CUDA_CHECK(cudaStreamSynchronize(stream_));
  pos_[cur_] += n;
  return read_triggers();
}

absl::Status CudaEngine::check_decode(int seq, int32_t first, int steps,
                                      const std::string& prefix) const {
  if (pos_[seq] + steps > max_ctx_)
    return absl::OutOfRangeError(
        absl::StrFormat("%sdecoding %d tokens from position %d exceeds the context size %d", prefix,
                        steps, pos_[seq], max_ctx_));
  return check_tokens(std::span(&first, 1), pos_[seq], max_ctx_, c_.vocab_size);
}

// Every sequence's next token in one pass: row s is sequence s at its own position.
absl::Status CudaEngine::start_batch(std::span<const int32_t> tokens, int steps) {
  const int B = static_cast<int>(tokens.size());
  if (B < 1 || B > n_seqs())
    return absl::InvalidArgumentError(absl::StrCat(
        "a batched step takes one token for each of 1 to ", n_seqs(), " sequences, not ", B));
  for (int b = 0; b < B; ++b)
    VEX_RETURN_IF_ERROR(check_decode(b, tokens[b], steps, absl::StrCat("sequence ", b, ": ")));
  std::vector<int> seq(B);
  std::iota(seq.begin(), seq.end(), 0);
  for (int b = 1; b < B; ++b)
    if (virtual_on_[b] != virtual_on_[0])
      return absl::FailedPreconditionError(
          "decode_batch: the sequences' virtual-expert switches differ (Engine::decode runs such "
          "rows)");
  VEX_CUDA_CHECK(cudaMemcpyAsync(d_tokens_, tokens.data(), B * sizeof(int32_t),
                                 cudaMemcpyHostToDevice, stream_));
  VEX_RETURN_IF_ERROR(use_virtual_tables(virtual_on_[0]));
  triggers_.clear();
  VEX_RETURN_IF_ERROR(reset_triggers());
  return place_rows(std::span(pos_).subspan(0, B), seq);
}

absl::Status CudaEngine::decode_batch(std::span<const int32_t> tokens, float* logits) {
  if (mirroring())
    return mirror(
        [&](Wire& w) { w.put(Call::kBatch), w.put_span(tokens), w.put<int32_t>(logits != nullptr); },
        [&] { return decode_batch(tokens, logits); });
  VEX_RETURN_IF_ERROR(start_batch(tokens, 1));
  const int B = static_cast<int>(tokens.size());
  if (graphs()) {
    VEX_RETURN_IF_ERROR(run_step_graph(B));
  } else {
    VEX_RETURN_IF_ERROR(enqueue_layers(B, /*decode=*/true));
    VEX_RETURN_IF_ERROR(enqueue_logits(0, B, uses_gemm(B, true)));
  }
  if (logits)
    VEX_CUDA_CHECK(cudaMemcpyAsync(logits, logits_, size_t(B) * c_.vocab_size * sizeof(float),
                                   cudaMemcpyDeviceToHost, stream_));
  VEX_CUDA_CHECK(cudaStreamSynchronize(stream_));
  VEX_RETURN_IF_ERROR(deliver_routing(B));
  for (int b = 0; b < B; ++b) ++pos_[b];
  return read_triggers();
}

template <typename Row>
absl::Status CudaEngine::run_rows(std::span<const Row> rows, float* logits, const RowNames& names,
                                  const std::function<absl::Status(int, const Row&)>& check,
                                  const std::function<absl::Status(std::span<const int>)>& pass) {
  const int n = static_cast<int>(rows.size());
  if (n < 1 || n > n_seqs())
    return absl::InvalidArgumentError(absl::StrCat(names.call, " takes one ", names.item,
                                                   " for each of 1 to ", n_seqs(),
                                                   " sequences, not ", n));
  std::vector<char> seen(n_seqs(), 0);
  for (int r = 0; r < n; ++r) {
    const Row& row = rows[r];
    if (row.seq < 0 || row.seq >= n_seqs())
      return absl::OutOfRangeError(absl::StrCat(names.item, " ", r, ": sequence ", row.seq,
                                                " does not exist (the engine holds ", n_seqs(),
                                                ")"));
    if (seen[row.seq]++)
      return absl::InvalidArgumentError(absl::StrCat(names.item, " ", r, ": sequence ", row.seq,
                                                     " has two ", names.item, "s in one ",
                                                     names.once));
    VEX_RETURN_IF_ERROR(check(r, row));
    VEX_RETURN_IF_ERROR(validate(row.sampling));
    if (row.host_logits && !logits)
      return absl::InvalidArgumentError(absl::StrCat(
          names.fn, ": a ", names.item, " asks for host logits but logits is null"));
  }
  triggers_.clear();
  // The slot tables are the engine's: rows with virtual experts on and off run as two passes.
  for (const bool on : {true, false}) {
    std::vector<int> which;
    for (int r = 0; r < n; ++r)
      if (bool(virtual_on_[rows[r].seq]) == on) which.push_back(r);
    if (which.empty()) continue;
    VEX_RETURN_IF_ERROR(use_virtual_tables(on));
    VEX_RETURN_IF_ERROR(pass(which));
  }
  return absl::OkStatus();
}

absl::Status CudaEngine::decode(std::span<const DecodeRow> rows, float* logits,
                                DecodeChoice* chosen) {
  if (mirroring())
    return mirror(
        [&](Wire& w) { w.put(Call::kDecode), w.put_span(rows), w.put<uint8_t>(logits != nullptr); },
        [&] { return decode(rows, logits, chosen); });
  return run_rows<DecodeRow>(
      rows, logits, {"row", "a decode step", "step", "decode"},
      [&](int, const DecodeRow& row) {
        return check_decode(row.seq, row.token, 1, absl::StrCat("sequence ", row.seq, ": "));
      },
      [&](std::span<const int> which) { return decode_pass(rows, which, logits, chosen); });
}

template <typename Row>
absl::StatusOr<bool> CudaEngine::upload_sampling(std::span<const Row> rows,
                                                 std::span<const int> which) {
  const int n = static_cast<int>(which.size());
  std::vector<cuda::SamplingConfig> cfg(n);
  std::vector<uint64_t> draws(n);
  bool sampled = false;
  for (int i = 0; i < n; ++i) {
    const SamplingParams& p = rows[which[i]].sampling;
    cfg[i] = {p.temperature, p.top_k, p.top_p, p.min_p, p.seed};
    draws[i] = rows[which[i]].draws;
    sampled |= p.temperature > 0 && p.top_k != 1;  // the sampling kernel takes greedy rows too
  }
  VEX_CUDA_CHECK(cudaMemcpyAsync(d_draws_, draws.data(), n * sizeof(uint64_t),
                                 cudaMemcpyHostToDevice, stream_));
  if (sampled)
    VEX_CUDA_CHECK(cudaMemcpyAsync(d_sampling_, cfg.data(), n * sizeof(cuda::SamplingConfig),
                                   cudaMemcpyHostToDevice, stream_));
  return sampled;
}

template <typename Row>
absl::Status CudaEngine::download_choices(std::span<const Row> rows, std::span<const int> which,
                                          float* logits, DecodeChoice* chosen) {
  const int n = static_cast<int>(which.size());
  const size_t V = c_.vocab_size;
  for (int i = 0; i < n; ++i)
    if (rows[which[i]].host_logits)
      VEX_CUDA_CHECK(cudaMemcpyAsync(logits + which[i] * V, logits_ + i * V, V * sizeof(float),
                                     cudaMemcpyDeviceToHost, stream_));
  std::vector<int32_t> tokens(n);
  std::vector<uint64_t> draws(n);
  VEX_CUDA_CHECK(cudaMemcpyAsync(tokens.data(), d_tokens_, n * sizeof(int32_t),
                                 cudaMemcpyDeviceToHost, stream_));
  VEX_CUDA_CHECK(cudaMemcpyAsync(draws.data(), d_draws_, n * sizeof(uint64_t),
                                 cudaMemcpyDeviceToHost, stream_));
  VEX_CUDA_CHECK(cudaStreamSynchronize(stream_));
  for (int i = 0; i < n; ++i) chosen[which[i]] = {tokens[i], draws[i]};
  return absl::OkStatus();
}

absl::Status CudaEngine::decode_pass(std::span<const DecodeRow> rows, std::span<const int> which,
                                     float* logits, DecodeChoice* chosen) {
  const int n = static_cast<int>(which.size());
  std::vector<int32_t> tokens(n);
  std::vector<int> pos(n), seq(n);
  for (int i = 0; i < n; ++i) {
    const DecodeRow& row = rows[which[i]];
    tokens[i] = row.token, pos[i] = pos_[row.seq], seq[i] = row.seq;
  }
  VEX_CUDA_CHECK(cudaMemcpyAsync(d_tokens_, tokens.data(), n * sizeof(int32_t),
                                 cudaMemcpyHostToDevice, stream_));
  VEX_ASSIGN_OR_RETURN(const bool sampled, upload_sampling(rows, which));
  VEX_RETURN_IF_ERROR(place_rows(pos, seq));
  VEX_RETURN_IF_ERROR(reset_triggers(/*keep=*/true));
  VEX_RETURN_IF_ERROR(run_step_graph(n, sampled));
  VEX_RETURN_IF_ERROR(download_choices(rows, which, logits, chosen));
  VEX_RETURN_IF_ERROR(deliver_routing(n));
  for (int i = 0; i < n; ++i) ++pos_[seq[i]];
  return read_triggers();
}

absl::Status CudaEngine::prefill(std::span<const PrefillChunk> chunks, float* logits,
                                 DecodeChoice* chosen) {
  if (mirroring())
    return mirror(
        [&](Wire& w) {
          w.put(Call::kPrefill), w.put<uint64_t>(chunks.size());
          for (const PrefillChunk& c : chunks) {
            w.put<int32_t>(c.seq), w.put<uint8_t>(c.host_logits), w.put(c.sampling);
            w.put(c.draws), w.put_span(c.tokens);
          }
          w.put<uint8_t>(logits != nullptr);
        },
        [&] { return prefill(chunks, logits, chosen); });
  return run_rows<PrefillChunk>(
      chunks, logits, {"chunk", "a prefill", "prefill", "prefill"},
      [&](int i, const PrefillChunk& c) -> absl::Status {
        if (c.tokens.empty()) return absl::InvalidArgumentError(absl::StrCat("chunk ", i, " is empty"));
        const absl::Status st = check_tokens(c.tokens, pos_[c.seq], max_ctx_, c_.vocab_size);
        if (st.ok()) return st;
        return absl::Status(st.code(), absl::StrCat("sequence ", c.seq, ": ", st.message()));
      },
      [&](std::span<const int> which) { return prefill_group(chunks, which, logits, chosen); });
}

absl::Status CudaEngine::prefill_group(std::span<const PrefillChunk> chunks,
                                       std::span<const int> which, float* logits,
                                       DecodeChoice* chosen) {
  struct Segment {
    int chunk;  // index in chunks
    size_t from, count;
  };
  size_t next = 0, offset = 0;  // the chunk (in which) and token where the next pass starts
  while (next < which.size()) {
    // A pass: the next pass_rows() tokens, chunk after chunk.
    std::vector<Segment> segs;
    int rows = 0;
    while (next < which.size() && rows < pass_rows()) {
      const PrefillChunk& c = chunks[which[next]];
      const size_t take = std::min<size_t>(pass_rows() - rows, c.tokens.size() - offset);
      segs.push_back({which[next], offset, take});
      rows += static_cast<int>(take);
      offset += take;
      if (offset == c.tokens.size()) ++next, offset = 0;
    }
    // Row order: the last token of every chunk that ends in this pass, then the other tokens.
    std::vector<int32_t> tokens;
    std::vector<int> pos, seq, ending;
    auto add = [&](const Segment& g, size_t j) {
      const PrefillChunk& c = chunks[g.chunk];
      tokens.push_back(c.tokens[j]);
      pos.push_back(pos_[c.seq] + static_cast<int>(j - g.from));
      seq.push_back(c.seq);
    };
    for (const Segment& g : segs)
      if (g.from + g.count == chunks[g.chunk].tokens.size())
        add(g, g.from + g.count - 1), ending.push_back(g.chunk);
    for (const Segment& g : segs) {
      const bool ends = g.from + g.count == chunks[g.chunk].tokens.size();
      for (size_t j = g.from; j < g.from + g.count - (ends ? 1 : 0); ++j) add(g, j);
    }
    VEX_CUDA_CHECK(cudaMemcpyAsync(d_tokens_, tokens.data(), rows * sizeof(int32_t),
                                   cudaMemcpyHostToDevice, stream_));
    VEX_RETURN_IF_ERROR(place_rows(pos, seq));
    VEX_RETURN_IF_ERROR(reset_triggers(/*keep=*/true));
    VEX_RETURN_IF_ERROR(enqueue_layers(rows, /*decode=*/false));
    if (!ending.empty()) {
      const int L = static_cast<int>(ending.size());
      VEX_ASSIGN_OR_RETURN(const bool sampled,
                           upload_sampling(chunks, std::span<const int>(ending)));
      VEX_RETURN_IF_ERROR(enqueue_logits(0, L, /*gemm=*/true));
      VEX_RETURN_IF_ERROR(enqueue_select(L, sampled));
      VEX_RETURN_IF_ERROR(download_choices(chunks, std::span<const int>(ending), logits, chosen));
    } else {
      VEX_CUDA_CHECK(cudaStreamSynchronize(stream_));
    }
    VEX_RETURN_IF_ERROR(deliver_routing(rows));
    for (const Segment& g : segs) pos_[chunks[g.chunk].seq] += static_cast<int>(g.count);
    VEX_RETURN_IF_ERROR(read_triggers());
  }
  return absl::OkStatus();
}

absl::Status CudaEngine::decode_greedy_batch(std::span<const int32_t> first, int n, int32_t* out) {
  if (mirroring())
    return mirror(
        [&](Wire& w) { w.put(Call::kGreedyBatch), w.put_span(first), w.put<int32_t>(n); },
        [&] { return decode_greedy_batch(first, n, out); });
  if (n <= 0) return absl::OkStatus();
  VEX_RETURN_IF_ERROR(start_batch(first, n));
  const int B = static_cast<int>(first.size());
  const int keys0 = step_keys_;  // start_batch placed the rows
  for (int i = 0; i < n; ++i) {
    step_keys_ = keys0 + i;
    VEX_RETURN_IF_ERROR(run_step_graph(B));
    if (out)
      VEX_CUDA_CHECK(cudaMemcpyAsync(out + size_t(i) * B, d_tokens_, B * sizeof(int32_t),
                                     cudaMemcpyDeviceToHost, stream_));
    if (observer_) {
      VEX_CUDA_CHECK(cudaStreamSynchronize(stream_));
      VEX_RETURN_IF_ERROR(deliver_routing(B, i));
    }
  }
  VEX_CUDA_CHECK(cudaStreamSynchronize(stream_));
  for (int b = 0; b < B; ++b) pos_[b] += n;
  return read_triggers();
}

absl::Status CudaEngine::set_routing_observer(RoutingObserver f, bool hidden) {
  if (f && !cap_.logits) {  // the capture buffers, once, on the device and pinned on the host
    const size_t rows = size_t(c_.n_layers) * kCaptureRows, D = c_.d_model;
    uint64_t& ws = mem_.workspace;
    VEX_ASSIGN_OR_RETURN(cap_.logits, alloc<float>(rows * max_slots_, &ws));
    VEX_ASSIGN_OR_RETURN(cap_.idx, alloc<int>(rows * kMaxK, &ws));
    VEX_ASSIGN_OR_RETURN(cap_.weight, alloc<float>(rows * kMaxK, &ws));
    VEX_ASSIGN_OR_RETURN(cap_.xn, alloc<float>(rows * D, &ws));
    VEX_ASSIGN_OR_RETURN(cap_.residual, alloc<float>(rows * D, &ws));
    auto pinned = [&](auto** p, size_t count) -> absl::Status {
      if (cudaMallocHost(reinterpret_cast<void**>(p), std::max<size_t>(count * sizeof(**p), 16)) !=
          cudaSuccess) {
        cudaGetLastError();
        return absl::ResourceExhaustedError(absl::StrCat(
            "out of pinned host memory for the routing capture (", count * sizeof(**p), " bytes)"));
      }
      host_allocations_.push_back(*p);
      return absl::OkStatus();
    };
    VEX_RETURN_IF_ERROR(pinned(&host_cap_.logits, rows * max_slots_));
    VEX_RETURN_IF_ERROR(pinned(&host_cap_.idx, rows * kMaxK));
    VEX_RETURN_IF_ERROR(pinned(&host_cap_.weight, rows * kMaxK));
    VEX_RETURN_IF_ERROR(pinned(&host_cap_.xn, rows * D));
    VEX_RETURN_IF_ERROR(pinned(&host_cap_.residual, rows * D));
  }
  observer_ = std::move(f);
  cap_hidden_ = hidden;
  return absl::OkStatus();
}

absl::Status CudaEngine::set_routing_override(const RoutingOverride& o) {
  if (mirroring())
    return mirror(
        [&](Wire& w) {
          w.put(Call::kOverride), w.put<int>(o.k), put_pairs(w, o.ablate), put_pairs(w, o.force);
        },
        [&] { return set_routing_override(o); });
  std::vector<std::span<const vex_slot>> tables;  // as loaded: the manifest's pruning
  for (const Layer& L : layers_) tables.emplace_back(L.loaded);
  VEX_ASSIGN_OR_RETURN(const RoutingPlan plan,
                       plan_routing(o, tables, c_.n_experts_active, kMaxK));
  // The host tables are copied from asynchronously: nothing may be in flight when they change.
  VEX_CUDA_CHECK(cudaStreamSynchronize(stream_));
  std::vector<int> forced(size_t(c_.n_layers) * kMaxK, 0);
  for (int l = 0; l < c_.n_layers; ++l) {
    set_tables(layers_[l], plan.ablated.empty() ? std::span<const uint8_t>()
                                                : std::span<const uint8_t>(plan.ablated[l]));
    const std::vector<int> f = plan.forced_slots(l);
    std::copy(f.begin(), f.end(), forced.begin() + l * kMaxK);
    n_forced_[l] = static_cast<int>(f.size());
  }
  VEX_CUDA_CHECK(
      cudaMemcpy(d_forced_, forced.data(), forced.size() * sizeof(int), cudaMemcpyHostToDevice));
  k_ = plan.k;
  tables_stale_ = true;
  // k and the forced counts are launch parameters captured in the step graphs.
  for (auto& [rows, g] : step_graphs_) cudaGraphExecDestroy(g);
  step_graphs_.clear();
  return absl::OkStatus();
}

absl::Status CudaEngine::deliver_routing(int n, int step) {
  if (!observer_) return absl::OkStatus();
  const int L = c_.n_layers, D = c_.d_model, S = max_slots_;
  // Each buffer's first n rows of every layer, packed ([layer][row][stride]), in one strided copy.
  auto get = [&](auto* dst, const auto* src, size_t stride) -> absl::Status {
    const size_t row = sizeof(*dst) * stride;
    VEX_CUDA_CHECK(cudaMemcpy2DAsync(dst, n * row, src, kCaptureRows * row, n * row, L,
                                     cudaMemcpyDeviceToHost, stream_));
    return absl::OkStatus();
  };
  float *logits = host_cap_.logits, *weight = host_cap_.weight, *xn = host_cap_.xn,
        *residual = host_cap_.residual;
  int* idx = host_cap_.idx;
  VEX_RETURN_IF_ERROR(get(logits, cap_.logits, S));
  VEX_RETURN_IF_ERROR(get(idx, cap_.idx, kMaxK));
  VEX_RETURN_IF_ERROR(get(weight, cap_.weight, kMaxK));
  if (cap_hidden_) {
    VEX_RETURN_IF_ERROR(get(xn, cap_.xn, D));
    VEX_RETURN_IF_ERROR(get(residual, cap_.residual, D));
  }
  VEX_CUDA_CHECK(cudaStreamSynchronize(stream_));
  for (int l = 0; l < L; ++l)
    for (int t = 0; t < n; ++t) {
      const size_t r = size_t(l) * n + t;
      // The router wrote each layer's rows packed: idx and weight k, logits n_slots per row.
      const size_t kr = size_t(l) * n * kMaxK + size_t(t) * k_;
      const size_t lr = size_t(l) * n * S + size_t(t) * layers_[l].n_slots;
      observer_({.layer = l,
                 .pos = rows_pos_[t] + step,
                 .n_slots = layers_[l].n_slots,
                 .k = k_,
                 .xn = cap_hidden_ ? &xn[r * D] : nullptr,
                 .residual = cap_hidden_ ? &residual[r * D] : nullptr,
                 .router_logits = &logits[lr],
                 .slots = &idx[kr],
                 .weights = &weight[kr],
                 .seq = rows_seq_[t]});
    }
  return absl::OkStatus();
}

int CudaEngine::truncate(int n) {
  if (mirroring()) {
    int kept = 0;
    // The ranks' positions are equal, so are their answers; a worker's failure here shows at
    // the next call.
    mirror([&](Wire& w) { w.put(Call::kTruncate), w.put<int32_t>(n); },
           [&] { return kept = truncate(n), absl::OkStatus(); })
        .IgnoreError();
    return kept;
  }
  int& pos = pos_[cur_];
  n = std::clamp(n, 0, pos);
  // Sliding layers keep ring_ slots: going back further than the ring has spare slots would
  // read keys that later positions overwrote, so the caller recomputes from the start.
  if (ring_ < max_ctx_ && pos - n > ring_ - c_.sliding_window - kChunk) n = 0;
  return pos = n;
}

uint64_t CudaEngine::decode_bytes(int pos, int batch) const {
  const uint64_t D = c_.d_model, Q = c_.q_dim(), KV = c_.kv_dim();
  const double k = c_.n_experts_active;
  // Per rank of a split: its heads (c_), its lm_head rows, its expected share of the experts.
  uint64_t b = batch * D * 2 + uint64_t(vocab_here_) * D * 2 + D * 2;  // embedding, lm_head, norm
  for (int il = 0; il < c_.n_layers; ++il) {
    const double E = layers_[il].n_slots;
    const double experts = batch == 1 ? k : E * (1 - std::pow(1 - k / E, batch));
    b += 2 * D * 2 + (Q + 2 * KV) * (D + 1) * 2 + D * (Q + 1) * 2 + uint64_t(E) * (D + 1) * 2;
    b += static_cast<uint64_t>(experts * c_.expert_bytes() / shard_.ep);
    const uint64_t keys = c_.layer_sliding[il] ? std::min(pos + 1, c_.sliding_window) : pos + 1;
    b += batch * 2 * keys * KV * 2;  // K and V rows read
  }
  return b;
}

}  // namespace vex
