// A loaded model: the mapped checkpoint, its config, the Weights pointing into it, and what a
// chat needs beside the weights (tokenizer, sampling defaults, stop tokens).
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/weights.h"
#include "runtime/group.h"
#include "loader/checkpoint.h"
#include "runtime/engine.h"
#include "runtime/sampler.h"
#include "runtime/tokenizer.h"

namespace vex {

struct CudaWeights;  // runtime/forward_cuda.h

struct Model {
  std::unique_ptr<Checkpoint> checkpoint;  // owns the memory maps the weights point into
  Weights weights;
  std::unique_ptr<Tokenizer> tokenizer;  // null when the directory has no tokenizer.json
  std::string tokenizer_path;            // where tokenizer.json was looked for
  SamplingParams sampling;               // generation_config.json over vex's defaults
  std::vector<int32_t> stop_tokens;      // <|return|>, <|call|> and generation_config's EOS ids
  std::string dir;                       // the folder it was loaded from
  std::string manifest_path;             // the expert manifest applied, "" for none
  bool mask_pruned = false;              // LoadOptions::mask_pruned
  std::vector<std::string> host_experts;  // HOST slots' expert names, by slot.function
  int pruned_experts = 0;                 // neural experts the manifest left unloaded
  uint64_t weight_bytes = 0;              // bytes of the tensors the forward pass reads
  const Config& config() const { return checkpoint->config(); }

  // The tokenizer, or an error naming the missing file (prompts need one; token ids do not).
  absl::StatusOr<const Tokenizer*> require_tokenizer() const;

  // The weights on the GPU while some engine over this model holds them: make_engine's CUDA
  // engines share one upload (every vex_context of a model, say).
  mutable std::mutex device_mu;
  mutable std::weak_ptr<const CudaWeights> device_weights;
};

// Reports load progress in [0, 1]; returning false cancels the load (absl::CancelledError).
using LoadProgress = std::function<bool(float)>;

struct LoadOptions {
  std::string experts;       // expert manifest (loader/manifest.h), "" for none
  bool mask_pruned = false;  // keep pruned experts loaded and mask their router rows (tests)
  LoadProgress progress;
};

// Loads the checkpoint in `dir` (either layout); tokenizer.json and generation_config.json are
// taken from the checkpoint folder or, for an original/ folder, from its parent. A manifest is
// applied after mapping: pruned experts are never read nor uploaded (loader/attach.h).
absl::StatusOr<std::unique_ptr<Model>> load_model(const std::string& dir,
                                                  const LoadOptions& options);
absl::StatusOr<std::unique_ptr<Model>> load_model(const std::string& dir,
                                                  const LoadProgress& progress = {});

enum class Device {
  kAuto,  // the GPU when this build has CUDA and a device is present, else the CPU
  kCpu,   // forward_cpu, the fp32 reference
  kCuda,  // forward_cuda
};
absl::StatusOr<Device> parse_device(absl::string_view name);  // auto | cpu | cuda
const char* device_name(Device d);

// A forward pass over the model for sequences of up to max_ctx tokens. n_seqs > 1 (batched
// decode, CudaEngine::decode_batch) needs the CUDA engine; the CPU engine holds one sequence.
// After Group::launch(n > 1) the CUDA engine is split over the group's GPUs as `parallel` says
// (by default attention and experts both over all of them); Parallel{1, 1} keeps it on this
// process's GPU alone.
absl::StatusOr<std::unique_ptr<Engine>> make_engine(const Model& model, int max_ctx,
                                                    Device device = Device::kAuto,
                                                    int n_seqs = 1, Parallel parallel = {});

}  // namespace vex
