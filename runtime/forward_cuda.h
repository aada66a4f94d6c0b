// forward_cuda: the whole model on one GPU (docs/gpt-oss.md §4 with the dtypes of §5: bf16 weights and KV
// cache, fp32 activations and accumulation, MXFP4 experts kept packed and decoded in registers).
// Weights are uploaded once; activations, KV cache and routing buffers are allocated once here.
// Prompts run in chunks of kChunk tokens; a one-token step runs as a captured CUDA graph.
// An engine holds n_seqs sequences side by side in its caches: the Engine interface works on
// the selected one (set_sequence), and a batched decode step advances all of them at once.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/slot.h"
#include "core/weights.h"
#include "kernels/cuda/attention.cuh"
#include "kernels/cuda/moe.cuh"
#include "kernels/cuda/sampling.cuh"
#include "runtime/engine.h"
#include "runtime/group.h"
#include "runtime/sampler.h"

namespace vex {
namespace cuda {
class Gemm;
}

// A model's weights on the GPU, shared by every engine made over the same model
// (make_engine keeps one per Model while engines hold it); freed with the last engine.
struct CudaWeights;

// GPU memory of an engine, in bytes.
struct CudaMemory {
  uint64_t weights = 0;    // everything uploaded from the checkpoint (and the slot tables)
  bool shared = false;     // those weights were uploaded by another engine and are shared
  uint64_t kv = 0;         // K and V caches of all layers
  uint64_t workspace = 0;  // activations, routing buffers, logits
};

// A rank's share of a model split over a process group (runtime/group.h): with tp > 1 its
// attention heads (and K/V cache) and lm_head rows, with ep > 1 its experts of every layer
// (packed experts [r E / ep, (r + 1) E / ep) on rank r; DEVICE and HOST slots on rank 0).
// Rank 0's engine sends each call to the others' (id), which replay it.
struct CudaShard {
  Group* group = nullptr;  // null: the whole model on this GPU
  int id = 0;
  int tp = 1, ep = 1;
};

class CudaEngine final : public Engine {
 public:
  // Tokens per pass through the layers: a pass reads each chosen expert once for all its tokens
  // (2,048 tokens give each of gpt-oss-20b's 32 experts ~256 with top-4 routing, two full
  // 128-token wgmma passes, and each of 120b's 128 experts ~64; 1,024 left 120b on the 32-token
  // kernels: bench/NOTES.md, session 11), and sizes the workspace (0.50 GB at 20b's widths) and
  // the sliding layers' rings (window + kChunk + 352 rows).
  static constexpr int kChunk = 2048;
  // While a routing observer is attached, passes are at most this many rows: the capture buffers
  // hold every layer's rows of one pass, on the device and pinned on the host.
  static constexpr int kCaptureRows = 128;
  static constexpr int kLogitsRows = 32;  // logits computed per lm_head pass (buffer rows)
  static constexpr int kAttnSplits = 64;  // at most, key ranges per row in a decode step
  static constexpr int kKeysPerSplit = 128;  // at least, keys per range (bench/NOTES.md)
  // Key ranges per row of a decode step's attention over `keys` keys (cuda::attention's splits):
  // ranges of at least kKeysPerSplit keys, no more than fill one wave of blocks (two of a KV head
  // an SM; 16 or 8 splits at most, and four blocks an SM, measured slower: bench/NOTES.md,
  // session 15), a power of two so that a few graphs serve every depth. rows * splits <=
  // max(rows, kAttnSplits): the partial states' buffer.
  static int attn_splits(int rows, int keys, int n_kv_heads, int sm_count);
  // Prefill passes (any length) and batched decode steps of more than kGemvRows sequences run
  // the projections, experts and lm_head on tensor cores with bf16 inputs (GEMMs); one-token
  // steps and smaller batches stream the weights once per step with fp32 inputs. (A prefill's
  // result must not depend on how its tokens were chunked: a rewound chat recomputes a tail.)
  // The decode kernels stream an expert once per (token, slot) pair, the grouped ones once per
  // step: measured on the H200 (20b), 4 sequences 819.9 tok/s against 736.3 grouped, 8
  // sequences 934.8 against 1,299.8 (bench/NOTES.md).
  static constexpr int kGemvRows = 4;
  static bool uses_gemm(int rows, bool decode) { return decode ? rows > kGemvRows : rows > 1; }
  static constexpr int kMaxSeqs = 128;  // a batched step is one pass of n_seqs rows

  using Shard = CudaShard;
  // Uploads the weights (or uses `shared`, another engine's upload of the same weights) and
  // allocates the state for n_seqs sequences of up to max_ctx tokens.
  static absl::StatusOr<std::unique_ptr<CudaEngine>> create(
      const Config& config, const Weights& weights, int max_ctx, int n_seqs = 1,
      std::shared_ptr<const CudaWeights> shared = nullptr, Shard shard = {});
  // A worker of a group: runs one call that rank 0's engine sent (Group::kCall).
  absl::Status replay(Wire& msg);
  // The weights on the device, for other engines over the same model to share.
  std::shared_ptr<const CudaWeights> device_weights() const { return weights_; }
  ~CudaEngine() override;

  absl::Status forward(std::span<const int32_t> tokens, float* logits,
                       bool last_only = false) override;
  int truncate(int n) override;
  std::span<const vex_trigger> triggers() const override { return triggers_; }
  absl::Status set_virtual_experts(bool on) override;
  // Engine's routing capture and overrides, for every sequence the engine holds. Capture runs
  // the steps without graphs and reads the routing back after each pass; off, nothing of it is
  // enqueued. Overrides change the slot tables (ablated slots become PRUNED rows, as a manifest
  // prunes) and the router kernel's k and forced slots; the step graphs are captured anew.
  absl::Status set_routing_observer(RoutingObserver f, bool hidden = true) override;
  absl::Status set_routing_override(const RoutingOverride& o) override;
  int pos() const override { return pos_[cur_]; }
  const char* device() const override { return "cuda"; }
  int max_ctx() const override { return max_ctx_; }
  int vocab() const override { return c_.vocab_size; }

  // Greedy decode entirely on the GPU: runs `first` then n-1 tokens each chosen by argmax from the
  // previous step's logits, replaying the captured step graph without host round trips; writes
  // the n chosen tokens to out (if not null). The path vexbench times.
  absl::Status decode_greedy(int32_t first, int n, int32_t* out);
  // The same with each token drawn on the GPU as vex::Sampler(params) draws it at draw indices
  // draw0 + 1, draw0 + 2, ... (kernels/cuda/sampling.cuh): only the tokens come back.
  absl::Status decode_sample(int32_t first, int n, const SamplingParams& params, uint64_t draw0,
                             int32_t* out);

  // Sequences: forward, truncate, pos, set_virtual_experts and decode_greedy act on the
  // selected one (initially 0).
  int n_seqs() const override { return static_cast<int>(pos_.size()); }
  absl::Status set_sequence(int seq) override;
  int pos_of(int seq) const { return pos_.at(seq); }
  // Engine::decode: rows of any sequences in one pass (rows with virtual experts on and off in
  // two, since the slot tables are the engine's), each next token chosen on the GPU from its
  // own sampling parameters and draw count; logits come back only for rows that ask.
  absl::Status decode(std::span<const DecodeRow> rows, float* logits,
                      DecodeChoice* chosen) override;
  // Engine::prefill: the chunks' tokens packed into passes of up to kChunk rows (each row at
  // its own sequence and position), the finishing chunks' last tokens first, so that one lm_head
  // pass and one token selection on the GPU serve all of them.
  absl::Status prefill(std::span<const PrefillChunk> chunks, float* logits,
                       DecodeChoice* chosen) override;
  // One decode step of sequences 0 .. B-1 (B = tokens.size() <= n_seqs) in one pass: tokens[s]
  // is appended to sequence s; logits (if not null) receives [B, V]. A captured graph per B.
  absl::Status decode_batch(std::span<const int32_t> tokens, float* logits);
  // Greedy decode of sequences 0 .. B-1 at once on the GPU: first[s] starts sequence s, then
  // n-1 steps each choosing every sequence's argmax; out (if not null) receives [n, B] tokens.
  absl::Status decode_greedy_batch(std::span<const int32_t> first, int n, int32_t* out);

  // Without graphs every step launches its kernels one by one (tests compare both ways).
  void set_use_graphs(bool on);
  const CudaMemory& memory() const { return mem_; }

  // Per-kernel timing (CUDA events around every launch; slows the step, for vexbench --profile).
  struct KernelTime {
    const char* name;
    int calls = 0;
    double ms = 0;
    uint64_t bytes = 0;  // weight and cache bytes the launches read
  };
  // Runs the tokens (at most kChunk: one decode step or one prefill chunk) at the current
  // position without graphs, timing each kernel family; the position does not advance.
  absl::StatusOr<std::vector<KernelTime>> profile_step(std::span<const int32_t> tokens);
  // Bytes of weights and cache one decode step of `batch` sequences, each at position pos, reads
  // (the bandwidth model; for batch > 1 the experts counted are the expected number of distinct
  // experts under uniform routing, E (1 - (1 - k/E)^batch), per layer).
  uint64_t decode_bytes(int pos, int batch = 1) const;

 private:
  struct Layer;
  // A layer's slot tables from its loaded one: ablated slots (ablated[slot]; empty: none) PRUNED
  // in both, virtual slots also in the "off" table.
  // With experts split, also their exec tables.
  void set_tables(Layer& d, std::span<const uint8_t> ablated) const;
  CudaEngine(const Config& c, int max_ctx, int n_seqs, Shard shard);
  // Rank 0 of a group: `args` writes the call (after Group::kCall and the id), which is sent to
  // the workers, then `self` runs it here (back through the public method, not sent again).
  // Elsewhere false: the caller just runs the call.
  bool mirroring() const { return shard_.group && shard_.group->rank() == 0 && !in_call_; }
  absl::Status mirror(const std::function<void(Wire&)>& args,
                      const std::function<absl::Status()>& self);
  // The group's collectives on the stream (in place over rows of x_; the logits' all-gather).
  absl::Status all_reduce_x(int n);
  absl::Status gather_logits(int m);
  absl::Status init(const Weights& w, std::shared_ptr<const CudaWeights> shared);
  template <typename T>
  absl::StatusOr<T*> upload(const T* host, size_t count);
  template <typename T>
  absl::StatusOr<T*> alloc(size_t count, uint64_t* account);
  // A buffer the group's collectives read and write (in an NCCL window; workspace).
  template <typename T>
  absl::StatusOr<T*> collective_alloc(size_t count);
  // Enqueues one pass of n rows (placed by d_pos_, d_seq_) through the layers into x_; decode:
  // each row is a different sequence's next token (attention splits its keys over blocks).
  absl::Status enqueue_layers(int n, bool decode);
  // Final norm and lm_head for rows row0 .. row0+m-1 of x_ (m <= max(kLogitsRows, n_seqs)) into
  // logits_; gemm: with bf16 inputs on tensor cores (the lm_head of a pass of more than kGemvRows
  // rows).
  absl::Status enqueue_logits(int row0, int m, bool gemm);
  // Copies the rows' positions and sequences for a pass to the device.
  absl::Status place_rows(std::span<const int> pos, std::span<const int> seq);
  // n tokens of the selected sequence from its position.
  absl::Status place_chunk(int n);
  // Room for `steps` decode steps in sequence seq and a valid first token; prefix starts the
  // error messages.
  absl::Status check_decode(int seq, int32_t first, int steps, const std::string& prefix) const;
  // Checks a batched step's tokens and room for `steps` steps; uploads tokens and placement.
  absl::Status start_batch(std::span<const int32_t> tokens, int steps);
  // A decode step of `rows` rows (one per sequence, placed by d_pos_, d_seq_) as a CUDA graph:
  // layers, logits, argmax into d_tokens_ and positions advanced on the device. Captured on first
  // use of each row count and attention split (attn_splits).
  // sampled: the token is drawn with the parameters in d_sampling_ (else argmax).
  absl::Status run_step_graph(int rows, bool sampled = false);
  // The attention's key ranges in a decode step of `rows` rows at step_keys_, full layers' and
  // sliding layers' (whose keys stop at the window).
  struct StepSplits {
    int full, sliding;
  };
  StepSplits step_splits(int rows) const;
  // Chooses each row's next token from logits_ into d_tokens_ and advances d_pos_: argmax, or
  // sampled: each row with its config in d_sampling_ and draw count in d_draws_.
  absl::Status enqueue_select(int rows, bool sampled);
  // How decode() and prefill() name their rows in errors.
  struct RowNames {
    const char* item;  // "row" / "chunk"
    const char* call;  // "a decode step" / "a prefill"
    const char* once;  // "step" / "prefill": "two rows in one step"
    const char* fn;    // "decode" / "prefill"
  };
  // The checks decode() and prefill() share (1 to n_seqs rows of distinct sequences, each also
  // passing check(index, row), valid sampling, logits where asked), then `pass` for the rows with virtual
  // experts on and for those with them off, the slot tables switched before each.
  template <typename Row>
  absl::Status run_rows(std::span<const Row> rows, float* logits, const RowNames& names,
                        const std::function<absl::Status(int, const Row&)>& check,
                        const std::function<absl::Status(std::span<const int>)>& pass);
  // The rows of `rows` listed in `which` as one pass (Engine::decode).
  absl::Status decode_pass(std::span<const DecodeRow> rows, std::span<const int> which,
                           float* logits, DecodeChoice* chosen);
  // The chunks of `chunks` listed in `which` (Engine::prefill).
  absl::Status prefill_group(std::span<const PrefillChunk> chunks, std::span<const int> which,
                             float* logits, DecodeChoice* chosen);
  // Token selection for a pass whose row i ends rows[which[i]] (a DecodeRow or PrefillChunk):
  // uploads the rows' sampling configs and draw counts; true when any row samples.
  template <typename Row>
  absl::StatusOr<bool> upload_sampling(std::span<const Row> rows, std::span<const int> which);
  // After the selection: copies the logits of the rows that ask, and every row's chosen token
  // and draw count, into logits / chosen (by index in rows); synchronizes the stream.
  template <typename Row>
  absl::Status download_choices(std::span<const Row> rows, std::span<const int> which,
                                float* logits, DecodeChoice* chosen);
  // Puts the slot tables with virtual slots on or off on the device, if they are not already.
  absl::Status use_virtual_tables(bool on);
  // Graphs are used unless switched off or routing is being captured.
  bool graphs() const { return use_graphs_ && !observer_; }
  int pass_rows() const { return observer_ ? kCaptureRows : kChunk; }  // rows per pass at most
  // With an observer: after a pass of n rows (placed by place_rows, `step` decode steps on),
  // synchronized, reads the captured routing back and calls the observer per layer and row.
  absl::Status deliver_routing(int n, int step = 0);
  // Launches through here are timed when profiling.
  absl::Status timed(const char* name, uint64_t bytes, const std::function<cudaError_t()>& f);

  Config c_;  // this rank's share: n_heads and n_kv_heads divided by tp
  int max_ctx_;
  Shard shard_;
  int rank_ = 0;
  int vocab_here_ = 0;     // lm_head rows on this rank (vocab / tp), from row rank * vocab_here_
  bool in_call_ = false;   // rank 0: inside a mirrored call
  std::string nccl_error_;  // the last collective's failure, for timed()'s message
  float* logits_here_ = nullptr;  // [rows, vocab_here_] this rank's logits before the gather
  float* gathered_ = nullptr;     // [tp, rows, vocab_here_] the all-gather's output
  std::vector<float> replay_logits_;  // a worker's host logits (copied, never read)
  std::vector<std::pair<void*, void*>> windows_;  // collective_alloc's (buffer, ncclWindow_t)
  int ring_ = 0;          // slots of a sliding layer's cache (window + chunk + rewind margin)
  std::vector<int> pos_;  // per sequence
  int cur_ = 0;           // the sequence the Engine interface acts on
  std::vector<char> virtual_on_;  // per sequence: set_virtual_experts
  bool tables_on_ = true;         // the slot tables on the device have the virtual slots on
  bool tables_stale_ = false;     // the host tables changed (an override): upload every layer
  bool use_graphs_ = true;
  struct Pending {
    const char* name;
    uint64_t bytes;
    cudaEvent_t start, stop;
  };
  bool profiling_ = false;
  std::vector<Pending> pending_;
  // ",family,...,": kernel families left out of every pass, to measure what each costs inside the
  // captured step (VEX_PROFILE_SKIP; the results are wrong while it is set).
  std::string skip_;
  CudaMemory mem_;
  std::vector<void*> allocations_;
  std::vector<void*> host_allocations_;  // pinned (cudaMallocHost)
  cudaStream_t stream_ = nullptr;
  // By rows, sampled and the attention splits of full and sliding layers.
  std::vector<std::pair<int, cudaGraphExec_t>> step_graphs_;
  int sm_count_ = 0;
  // The most keys a row of the next decode step attends (its position + 1), which sets the
  // attention's splits: place_rows sets it, multi-step loops advance it.
  int step_keys_ = 1;

  // Weights on the device (weights_ owns them; layers_ points into them).
  std::shared_ptr<const CudaWeights> weights_;
  const uint16_t *embedding_ = nullptr, *final_norm_ = nullptr, *lm_head_ = nullptr;
  std::vector<Layer> layers_;
  const float* inv_freq_ = nullptr;
  float concentration_ = 1;

  // State: [kChunk, ...] activations, named as in docs/gpt-oss.md §4.
  int32_t* d_tokens_ = nullptr;
  cuda::SamplingConfig* d_sampling_ = nullptr;
  // HOST-slot triggers: written by the MoE kernels, reset when a call starts, read back after it
  // (only when some layer has HOST slots).
  static constexpr int kMaxTriggers = 4096;
  cuda::TriggerBuffer d_triggers_{};
  std::vector<vex_trigger> triggers_;
  bool has_host_ = false;
  // Zeroes the device's trigger count; keep: the host list keeps what earlier passes read.
  absl::Status reset_triggers(bool keep = false);
  absl::Status read_triggers();              // after the stream is synchronized
  uint64_t* d_draws_ = nullptr;              // [kChunk] draw index of each row's sampler
  int *d_pos_ = nullptr, *d_seq_ = nullptr;  // [rows] placement of a pass (kernels/cuda/rows.cuh)
  cuda::RowTile* d_tiles_ = nullptr;          // [kChunk] a prefill pass's rows cut for attention
  std::vector<cuda::RowTile> tiles_;          // their host copy (the pending upload's source)
  float *x_ = nullptr, *xn_ = nullptr, *qkv_ = nullptr, *att_ = nullptr;
  float *weight_ = nullptr, *logits_ = nullptr;
  float* scores_ = nullptr;  // [kGemvRows, max_slots_]: decode's router scores (router_scores)
  float* device_args_ = nullptr;   // [kChunk * k, 2] DEVICE slots' arguments (cuda::VirtualSlots)
  // Split-K attention states, rows * Hq * splits * (d + 2) floats (cuda::attention); rows *
  // splits <= max(n_seqs, kAttnSplits).
  float* attn_partial_ = nullptr;
  int* attn_counts_ = nullptr;  // [n_seqs, Hkv] the split blocks' counts (cuda::attention)
  uint16_t* act_bf16_ = nullptr;   // [rows, max(D, Q)] GEMM inputs of a pass
  // The MoE decode kernels' inputs in split form (kernels/cuda/split.cuh), kGemvRows rows:
  // xf_ the normed hidden state (the router writes it), hf_ the gate-up output [rows, k].
  uint32_t *xf_ = nullptr, *hf_ = nullptr;
  int* idx_ = nullptr;
  cuda::MoeScratch moe_scratch_{};

  // Routing research. Buffers indexed by k hold kMaxK per row, so k changes without reallocation.
  static constexpr int kMaxK = 8;  // the router kernel's limit
  int k_ = 0;                      // experts per token: the model's, or an override's
  int* d_forced_ = nullptr;        // [n_layers, kMaxK] each layer's forced slots
  std::vector<int> n_forced_;      // [n_layers]
  RoutingObserver observer_;
  // [n_layers, kCaptureRows, ...] device copies of each layer's routing in a pass (capturing).
  struct Capture {
    float *logits = nullptr, *weight = nullptr, *xn = nullptr, *residual = nullptr;
    int* idx = nullptr;
  } cap_, host_cap_;  // on the device; pinned host memory the read-back lands in
  bool cap_hidden_ = false;  // xn and residual captured too
  int max_slots_ = 0;
  std::vector<int> rows_pos_, rows_seq_;  // the last place_rows, on the host
  std::unique_ptr<cuda::Gemm> gemm_;  // cuBLASLt for passes on tensor cores  // the grouped prefill
                                      // path's lists and outputs
};

}  // namespace vex
