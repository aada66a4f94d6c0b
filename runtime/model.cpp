#include "runtime/model.h"

#include <algorithm>
#include <filesystem>
#include <optional>

#include "loader/attach.h"
#include "loader/file.h"
#include "loader/json_util.h"
#include "loader/weights_map.h"
#include "runtime/forward_cpu.h"
#ifdef VEX_WITH_CUDA
#include "runtime/forward_cuda.h"
#endif

namespace vex {
namespace fs = std::filesystem;

namespace {

// A file beside config.json, or beside the original/ folder holding it.
std::string sidecar(const Checkpoint& ck, const char* name) {
  const fs::path root = ck.root();
  // An unreadable path counts as absent here: the file's reader says why.
  if (file_present((root / name).string()).value_or(false) || root.filename() != "original")
    return (root / name).string();
  return (root.parent_path() / name).string();
}

// generation_config.json's eos_token_id: one id or a list.
absl::Status read_eos(const std::string& path, std::vector<int32_t>* ids) {
  VEX_ASSIGN_OR_RETURN(const bool there, file_present(path));
  if (!there) return absl::OkStatus();
  VEX_ASSIGN_OR_RETURN(auto j, read_json_file(path));
  if (!j.is_object() || !j.contains("eos_token_id")) return absl::OkStatus();
  const auto& e = j["eos_token_id"];
  auto add = [&](const nlohmann::json& v) {
    const std::optional<int32_t> id = json_int32(v);
    if (!id || *id < 0) return false;
    ids->push_back(*id);
    return true;
  };
  bool ok = e.is_array() ? std::all_of(e.begin(), e.end(), add) : add(e);
  if (!ok)
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": key 'eos_token_id': expected a token id or a list of them (integers >= 0)"));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<const Tokenizer*> Model::require_tokenizer() const {
  if (!tokenizer)
    return absl::NotFoundError(
        absl::StrCat(tokenizer_path, ": not found (text prompts need the tokenizer)"));
  return tokenizer.get();
}

absl::StatusOr<std::unique_ptr<Model>> load_model(const std::string& dir,
                                                  const LoadProgress& progress) {
  LoadOptions options;
  options.progress = progress;
  return load_model(dir, options);
}

absl::StatusOr<std::unique_ptr<Model>> load_model(const std::string& dir,
                                                  const LoadOptions& options) {
  const LoadProgress& progress = options.progress;
  auto step = [&](float f) {
    return !progress || progress(f) ? absl::OkStatus()
                                    : absl::CancelledError(absl::StrCat(dir, ": load cancelled"));
  };
  auto m = std::make_unique<Model>();
  m->dir = dir;
  m->mask_pruned = options.mask_pruned;
  VEX_RETURN_IF_ERROR(step(0));
  VEX_ASSIGN_OR_RETURN(m->checkpoint, Checkpoint::open(dir));
  VEX_RETURN_IF_ERROR(step(0.3f));
  VEX_ASSIGN_OR_RETURN(m->weights, map_weights(*m->checkpoint));
  if (!options.experts.empty()) {
    VEX_ASSIGN_OR_RETURN(const Manifest manifest, load_manifest(options.experts, m->config()));
    VEX_ASSIGN_OR_RETURN(AttachResult a, apply_manifest(manifest, *m->checkpoint, &m->weights,
                                                        options.mask_pruned));
    m->manifest_path = options.experts;
    m->host_experts = std::move(a.host_experts);
    m->pruned_experts = a.pruned;
  }
  m->weight_bytes = weight_bytes(m->weights, m->config());
  VEX_RETURN_IF_ERROR(step(0.5f));

  m->tokenizer_path = sidecar(*m->checkpoint, "tokenizer.json");
  VEX_ASSIGN_OR_RETURN(const bool has_tokenizer, file_present(m->tokenizer_path));
  if (has_tokenizer) {
    VEX_ASSIGN_OR_RETURN(m->tokenizer, Tokenizer::load(m->tokenizer_path));
    if (m->tokenizer->vocab_size() > m->config().vocab_size)
      return absl::InvalidArgumentError(absl::StrCat(
          m->tokenizer_path, ": token ids reach ", m->tokenizer->vocab_size() - 1,
          " but the model's vocabulary (config.json vocab_size) is ", m->config().vocab_size));
  }
  VEX_RETURN_IF_ERROR(step(0.9f));

  const std::string gen = sidecar(*m->checkpoint, "generation_config.json");
  VEX_ASSIGN_OR_RETURN(m->sampling, sampling_from_generation_config(gen, SamplingParams{}));
  // <|return|> and <|call|> end a turn (docs/gpt-oss.md §6.4), under whatever ids the tokenizer gives them.
  if (m->tokenizer)
    m->stop_tokens = {m->tokenizer->special_id("<|return|>"), m->tokenizer->special_id("<|call|>")};
  VEX_RETURN_IF_ERROR(read_eos(gen, &m->stop_tokens));
  // <|end|> closes one message, never the turn, even if a config lists it.
  if (m->tokenizer) std::erase(m->stop_tokens, m->tokenizer->special_id("<|end|>"));
  std::sort(m->stop_tokens.begin(), m->stop_tokens.end());
  m->stop_tokens.erase(std::unique(m->stop_tokens.begin(), m->stop_tokens.end()),
                       m->stop_tokens.end());
  VEX_RETURN_IF_ERROR(step(1));
  return m;
}

absl::StatusOr<Device> parse_device(absl::string_view name) {
  if (name == "auto") return Device::kAuto;
  if (name == "cpu") return Device::kCpu;
  if (name == "cuda") return Device::kCuda;
  return absl::InvalidArgumentError(
      absl::StrCat("device must be auto, cpu or cuda, got '", name, "'"));
}

const char* device_name(Device d) {
  return d == Device::kCuda ? "cuda" : d == Device::kCpu ? "cpu" : "auto";
}

absl::StatusOr<std::unique_ptr<Engine>> make_engine(const Model& model, int max_ctx,
                                                    Device device, int n_seqs, Parallel parallel) {
  if (max_ctx < 1)
    return absl::InvalidArgumentError(absl::StrCat("context size must be >= 1, got ", max_ctx));
  if (max_ctx > model.config().max_position)
    return absl::InvalidArgumentError(
        absl::StrCat("context size ", max_ctx, " exceeds the model's ",
                     model.config().max_position, " positions (max_position_embeddings)"));
  const Group* group = Group::get();
  const int size = group ? group->size() : 1;
  for (int* v : {&parallel.tp, &parallel.ep}) {
    if (*v == 0) *v = size;
    if (*v != 1 && *v != size)
      return absl::InvalidArgumentError(absl::StrCat(
          "--tp and --ep are 1 or the number of GPUs (", size, "), not ", *v));
  }
  if (parallel.tp > 1 || parallel.ep > 1) {
    if (device == Device::kCpu)
      return absl::InvalidArgumentError("--gpus splits the CUDA engine, not the CPU one");
    return make_group_engine(model, max_ctx, n_seqs, parallel);
  }
#ifdef VEX_WITH_CUDA
  if (device != Device::kCpu) {
    // One upload of the weights for all engines over the model while any holds it.
    std::lock_guard lock(model.device_mu);
    auto e = CudaEngine::create(model.config(), model.weights, max_ctx, n_seqs,
                                model.device_weights.lock());
    if (e.ok()) {
      model.device_weights = (*e)->device_weights();
      return std::unique_ptr<Engine>(std::move(*e));
    }
    // Auto falls back to the CPU only when there is no GPU; other failures are errors.
    if (device == Device::kCuda || e.status().code() != absl::StatusCode::kUnimplemented)
      return e.status();
  }
#else
  if (device == Device::kCuda)
    return absl::UnimplementedError("this build of vex has no CUDA engine (nvcc was not found)");
#endif
  if (n_seqs != 1)
    return absl::UnimplementedError(absl::StrCat(
        n_seqs, " sequences per engine (batched decode) need the CUDA engine; the CPU engine "
                "holds one"));
  return std::make_unique<CpuEngine>(model.config(), model.weights, max_ctx);
}

}  // namespace vex
