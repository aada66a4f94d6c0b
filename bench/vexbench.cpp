// vexbench: prefill (pp) and decode (tg) throughput of a checkpoint, modelled on llama-bench.
//   vexbench --weights DIR [-p 512,2048] [-n 128] [-b 1] [-r 5] [-o md|csv|json] [--device cuda]
//            [--experts ,a.toml,b.toml]
// Each test runs r times after one warm-up; figures are mean ± std over the repetitions. For
// decode, the bytes one step reads (weights + KV) give the achieved bandwidth, reported against
// the measured device-to-device copy bandwidth (the ceiling bench/NOTES.md reports against).
// With -b B, B sequences decode together (one pass per step, CUDA); t/s is then the aggregate
// over the B sequences. Each --experts entry is a configuration (loaded and run in turn; an
// empty entry is the model without a manifest), all in one table with llama-bench's columns.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>
#include <thread>

#include "absl/strings/str_split.h"

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "kernels/cpu/parallel.h"
#include "runtime/model.h"
#include "runtime/sampler.h"
#include "tools/args.h"
#include "vex_commit.h"  // generated at build time: VEX_GIT_COMMIT
#ifdef VEX_WITH_CUDA
#include <cuda_runtime.h>

#include "runtime/forward_cuda.h"
#endif

namespace vex {
namespace {

using Clock = std::chrono::steady_clock;

struct Stat {
  double mean = 0, sd = 0;
};
Stat stats(const std::vector<double>& v) {
  Stat s;
  for (double x : v) s.mean += x / v.size();
  for (double x : v) s.sd += (x - s.mean) * (x - s.mean) / std::max<size_t>(1, v.size() - 1);
  s.sd = std::sqrt(s.sd);
  return s;
}

struct Row {
  std::string test;  // pp512, tg128
  int batch;
  Stat tok_s;
  double gb_s = 0, share = 0;  // decode only
};

// Device-to-device copy bandwidth, counting bytes read plus written (the ceiling bench/NOTES.md reports against).
double copy_bandwidth_gb_s() {
#ifdef VEX_WITH_CUDA
  const size_t bytes = size_t(1) << 30;
  void *a = nullptr, *b = nullptr;
  if (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&b, bytes) != cudaSuccess) return 0;
  cudaMemset(a, 1, bytes);
  cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice);
  cudaDeviceSynchronize();
  const auto t0 = Clock::now();
  const int reps = 10;
  for (int i = 0; i < reps; ++i) cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice);
  cudaDeviceSynchronize();
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  cudaFree(a), cudaFree(b);
  return 2.0 * bytes * reps / s / 1e9;
#else
  return 0;
#endif
}

std::string gpu_name() {
#ifdef VEX_WITH_CUDA
  cudaDeviceProp p;
  if (cudaGetDeviceProperties(&p, 0) == cudaSuccess) return p.name;
#endif
  return "none";
}

// Parameters of the checkpoint's tensors (an MXFP4 value counts as one), llama-bench's "params".
uint64_t parameters(const Config& c) {
  const uint64_t D = c.d_model, Q = c.q_dim(), KV = c.kv_dim(), E = c.n_experts, I = c.d_ff;
  const uint64_t layer = 2 * D + (Q + 2 * KV) * (D + 1) + Q * D + D + c.n_heads + E * (D + 1) +
                         E * (2 * I * D + 2 * I + D * I + D);
  return 2 * uint64_t(c.vocab_size) * D + c.n_layers * layer + D;
}

struct Options {
  std::string weights, device_s = "auto";
  std::vector<int32_t> prompts, batches;
  int n_gen = 128, reps = 5, depth = 0, top_k = 0, threads = 0;
  float top_p = 0, temperature = 1;  // top_p and top_k 0: greedy decode
  bool profile = false;
  GpuFlags gpu;
  bool sampled() const { return top_p > 0 || top_k > 0; }
};

// One configuration (an expert manifest, or none): its rows, and what it loaded and where.
struct Setup {
  std::string experts;  // the manifest, "" for none
  std::vector<Row> rows;
  nlohmann::ordered_json info;
};

absl::Status bench_config(const Options& o, Device device, int max_b, Setup* out) {
  const auto t0 = Clock::now();
  LoadOptions load;
  load.experts = out->experts;
  VEX_ASSIGN_OR_RETURN(std::unique_ptr<Model> model, load_model(o.weights, load));
  int max_p = 1;
  for (int p : o.prompts) max_p = std::max(max_p, p);
  VEX_ASSIGN_OR_RETURN(
      std::unique_ptr<Engine> engine,
      make_engine(*model, std::max(max_p, o.depth) + o.n_gen + 1, device, max_b, o.gpu.split));
  const double start_s = std::chrono::duration<double>(Clock::now() - t0).count();
  Engine& e = *engine;
  const Config& c = model->config();
#ifdef VEX_WITH_CUDA
  auto* cuda = dynamic_cast<CudaEngine*>(&e);
#else
  void* cuda = nullptr;
#endif
  if (!cuda && (o.profile || o.sampled()))  // say so rather than measure something else
    return absl::InvalidArgumentError(absl::StrCat(
        o.profile ? "--profile times the CUDA engine's kernels" : "--top-p/--top-k sample on the GPU",
        "; this run is on the CPU engine"));
  static const double measured_bw = cuda ? copy_bandwidth_gb_s() : 0;  // once for every config
  const double copy_bw = cuda ? measured_bw : 0;

  std::mt19937 rng(1);
  auto tokens = [&](int n) {
    std::vector<int32_t> t(n);
    for (auto& x : t) x = static_cast<int32_t>(rng() % std::min(c.vocab_size, 200000));
    return t;
  };
  std::vector<float> logits(c.vocab_size);
  for (int p : o.prompts) {
    std::vector<double> v;
    for (int r = 0; r <= o.reps; ++r) {  // r = 0 warms up
      const auto t = tokens(p);
      e.truncate(0);
      const auto s0 = Clock::now();
      VEX_RETURN_IF_ERROR(e.forward(t, logits.data(), true));
      const double secs = std::chrono::duration<double>(Clock::now() - s0).count();
      if (r) v.push_back(p / secs);
    }
    out->rows.push_back({absl::StrCat("pp", p), 1, stats(v)});
  }
  // Decode: every sequence of the batch holds `depth` tokens plus the one decoding starts from.
  for (int B : o.batches) {
    if (o.n_gen <= 0) break;
    std::vector<double> v;
    for (int r = 0; r <= o.reps; ++r) {
      std::vector<int32_t> first(B);
      for (int b = 0; b < B; ++b) {
#ifdef VEX_WITH_CUDA
        if (cuda) VEX_RETURN_IF_ERROR(cuda->set_sequence(b));
#endif
        e.truncate(0);
        const auto ctx = tokens(o.depth + 1);
        VEX_RETURN_IF_ERROR(e.forward(ctx, logits.data(), true));
        first[b] = argmax(logits);
      }
      const auto s0 = Clock::now();
#ifdef VEX_WITH_CUDA
      if (cuda) {
        VEX_RETURN_IF_ERROR(cuda->set_sequence(0));
        const SamplingParams sp{o.temperature, o.top_k, o.top_p > 0 ? o.top_p : 1.0f, 0.0f,
                                uint64_t(r)};
        VEX_RETURN_IF_ERROR(B > 1           ? cuda->decode_greedy_batch(first, o.n_gen, nullptr)
                            : o.sampled() ? cuda->decode_sample(first[0], o.n_gen, sp, 0, nullptr)
                                          : cuda->decode_greedy(first[0], o.n_gen, nullptr));
      } else
#endif
      {
        int32_t next = first[0];  // the CPU engine holds one sequence (make_engine checked B)
        for (int i = 0; i < o.n_gen; ++i) {
          VEX_RETURN_IF_ERROR(e.forward(std::span(&next, 1), logits.data(), true));
          next = argmax(logits);
        }
      }
      const double secs = std::chrono::duration<double>(Clock::now() - s0).count();
      if (r) v.push_back(double(B) * o.n_gen / secs);
    }
    const std::string how =
        o.sampled() && B == 1
            ? absl::StrCat(" T ", o.temperature, o.top_k ? absl::StrCat(" top-k ", o.top_k) : "",
                           o.top_p > 0 ? absl::StrCat(" top-p ", o.top_p) : "")
            : "";
    Row row{absl::StrCat("tg", o.n_gen, o.depth ? absl::StrCat(" @ d", o.depth) : "", how), B,
            stats(v)};
#ifdef VEX_WITH_CUDA
    if (cuda) {  // bytes of one step at the run's mean context; steps/s = tok/s / B
      const double bytes = cuda->decode_bytes(o.depth + o.n_gen / 2, B);
      row.gb_s = bytes * row.tok_s.mean / B / 1e9;
      row.share = copy_bw > 0 ? row.gb_s / copy_bw : 0;
    }
#endif
    out->rows.push_back(row);
  }

  // llama-bench's identity columns, then memory and where it ran.
  const std::string dir = model->dir.empty() ? o.weights : model->dir;
  std::filesystem::path folder = std::filesystem::path(dir).lexically_normal();
  if (folder.filename().empty()) folder = folder.parent_path();  // "dir/"
  const std::string name = folder.filename().string();
  const int gpus = Group::get() ? Group::get()->size() : 1;
  nlohmann::ordered_json& info = out->info;
  info = {{"model", name},
          {"size_gib", model->weight_bytes / double(1ull << 30)},
          {"params_b", parameters(c) / 1e9},
          {"backend", cuda ? "CUDA" : "CPU"},
          {"threads", cuda ? 0 : (o.threads ? o.threads : int(std::thread::hardware_concurrency()))},
          {"experts", out->experts},
          {"pruned_experts", model->pruned_experts},
          {"host_experts", model->host_experts.size()},
          {"weight_bytes_read", model->weight_bytes},
          {"start_s", start_s},
          {"copy_bandwidth_gb_s", copy_bw},
          {"gpus", gpus}};
  const int tp = o.gpu.split.tp ? o.gpu.split.tp : gpus, ep = o.gpu.split.ep ? o.gpu.split.ep : gpus;
  if (gpus > 1) info["tp"] = tp, info["ep"] = ep, info["nccl"] = Group::nccl_version();
#ifdef VEX_WITH_CUDA
  if (cuda) {
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    const CudaMemory& m = cuda->memory();
    info["gpu_memory_gb"] = {{"weights", m.weights / 1e9},
                             {"kv", m.kv / 1e9},
                             {"workspace", m.workspace / 1e9},
                             {"peak_in_use", (total_b - free_b) / 1e9}};
    info["decode_bytes_per_token"] = cuda->decode_bytes(o.depth + o.n_gen / 2);
  }
  if (o.profile && cuda) {
    // One decode step at the mean decode position, then one prefill pass from position 0,
    // every launch timed with events.
    auto show = [&](const std::string& what, const std::vector<CudaEngine::KernelTime>& prof) {
      double total = 0;
      for (const auto& k : prof) total += k.ms;
      printf("%s%s, kernels timed one by one (%.3f ms in all):\n\n", what.c_str(),
             out->experts.empty() ? "" : absl::StrCat(" (", out->experts, ")").c_str(), total);
      printf("| kernel | launches | us | share | GB/s | of copy BW |\n|---|---|---|---|---|---|\n");
      for (const auto& k : prof)
        printf("| %s | %d | %.1f | %.1f %% | %s | %s |\n", k.name, k.calls, 1e3 * k.ms,
               100 * k.ms / total,
               k.bytes ? absl::StrFormat("%.0f", k.bytes / k.ms / 1e6).c_str() : "",
               k.bytes ? absl::StrFormat("%.1f %%", 100 * k.bytes / k.ms / 1e6 / copy_bw).c_str()
                       : "");
      printf("\n");
    };
    cuda->truncate(0);
    const auto t = tokens(o.n_gen / 2 + 1);
    VEX_RETURN_IF_ERROR(cuda->forward(t, nullptr));
    VEX_ASSIGN_OR_RETURN(auto prof, cuda->profile_step(std::span(t).subspan(0, 1)));
    show(absl::StrFormat("decode step at position %d", o.n_gen / 2 + 1), prof);
    cuda->truncate(0);
    const auto chunk = tokens(std::min(CudaEngine::kChunk, max_p + o.n_gen));
    VEX_ASSIGN_OR_RETURN(prof, cuda->profile_step(chunk));
    show(absl::StrFormat("prefill pass of %zu tokens at position 0", chunk.size()), prof);
  }
#endif
  return absl::OkStatus();
}

int run(int argc, char** argv) {
  Options o;
  std::string out = "md", prompts_s = "512", batches_s = "1", experts_s;
  bool help = false;
  Args a;
  a.text({"--weights", "-m"}, "checkpoint directory (required)", &o.weights);
  a.text({"-p", "--n-prompt"}, "prefill lengths, comma-separated (default 512)", &prompts_s);
  a.integer({"-n", "--n-gen"}, "tokens to decode per repetition (default 128)", 0, 1 << 20,
            &o.n_gen);
  a.integer({"-d", "--depth"}, "context already in the cache before decoding (default 0)", 0,
            1 << 20, &o.depth);
  a.text({"-b", "--batch"}, "sequences per decode step, comma-separated (default 1; CUDA)",
         &batches_s);
  a.integer({"-r", "--repetitions"}, "repetitions per test (default 5)", 1, 1000, &o.reps);
  a.integer({"-t", "--threads"}, "CPU threads of the CPU engine (default: all)", 1, 1024,
            &o.threads);
  a.value({"-o", "--output"}, "md | csv | json (default md)", [&](const std::string& v) {
    if (v != "md" && v != "csv" && v != "json")
      return absl::InvalidArgumentError("-o: expected md, csv or json");
    out = v;
    return absl::OkStatus();
  });
  a.text({"--device"}, "auto | cpu | cuda (default auto)", &o.device_s);
  a.text({"--experts"},
         "expert manifests (TOML), comma-separated: each is a configuration, an empty entry the "
         "model without one (',a.toml' compares the two)",
         &experts_s);
  a.number({"--top-p"}, "decode by sampling on the GPU with this top-p instead of greedy (batch 1)",
           0.0, 1.0, &o.top_p);
  a.integer({"--top-k"}, "decode by sampling on the GPU with this top-k (batch 1)", 0, 1 << 24,
            &o.top_k);
  a.number({"--temp"}, "the sampling temperature with --top-p / --top-k (default 1)", 0.01, 100.0,
           &o.temperature);
  a.flag({"--profile"}, "time each kernel family of one decode step and one prefill pass (CUDA)",
         &o.profile);
  add_gpu_flags(a, &o.gpu);
  a.flag({"--help", "-h"}, "show this help", &help);
  absl::Status st = a.parse(argc, argv);
  if (st.ok()) st = parse_int_list("-p", prompts_s, &o.prompts);
  if (st.ok()) st = parse_int_list("-b", batches_s, &o.batches);
  if (st.ok() && o.weights.empty() && !help)
    st = absl::InvalidArgumentError("--weights DIR is required");
  if (!st.ok() || help) {
    if (!st.ok()) fprintf(stderr, "vexbench: %s\n", std::string(st.message()).c_str());
    fprintf(help ? stdout : stderr, "usage: vexbench --weights DIR [options]\n%s",
            a.usage().c_str());
    return help ? 0 : 2;
  }
  int max_b = 1;
  for (int b : o.batches) {
    if (b < 1) {
      fprintf(stderr, "vexbench: -b %d: a batch is at least one sequence\n", b);
      return 2;
    }
    max_b = std::max(max_b, b);
  }
  std::vector<Setup> configs;
  for (absl::string_view e : absl::StrSplit(experts_s, ',')) {
    configs.emplace_back();
    configs.back().experts = std::string(e);
  }
  auto device = parse_device(o.device_s);
  auto fail = [](const absl::Status& s) {
    fprintf(stderr, "vexbench: %s\n", std::string(s.message()).c_str());
    return 1;
  };
  if (!device.ok()) return fail(device.status());
  if (o.threads) cpu_threads() = o.threads;
  if (absl::Status s = start_gpus(o.gpu); !s.ok()) return fail(s);
  for (Setup& c : configs)  // one at a time: each frees its engine and model before the next
    if (absl::Status s = bench_config(o, *device, max_b, &c); !s.ok())
      return fail(c.experts.empty() ? s
                                    : absl::Status(s.code(), absl::StrCat("--experts ", c.experts,
                                                                          ": ", s.message())));

  const nlohmann::ordered_json& first = configs[0].info;
  const bool cuda = first["backend"] == "CUDA";
  auto experts_of = [](const Setup& c) { return c.experts.empty() ? std::string("-") : c.experts; };
  if (out == "json") {
    nlohmann::ordered_json j = {{"gpu", cuda ? gpu_name() : "none"},
                                {"commit", VEX_GIT_COMMIT},
                                {"weights", o.weights}};
    for (const Setup& c : configs) {
      j["configs"].push_back(c.info);
      for (const Row& r : c.rows)
        j["results"].push_back({{"model", c.info["model"]},
                                {"backend", c.info["backend"]},
                                {"experts", c.experts},
                                {"test", r.test},
                                {"batch", r.batch},
                                {"tok_s", r.tok_s.mean},
                                {"tok_s_sd", r.tok_s.sd},
                                {"gb_s", r.gb_s},
                                {"copy_bw_share", r.share}});
    }
    printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  if (out == "csv") {
    printf("gpu,commit,model,size_gib,params_b,backend,threads,experts,test,batch,tok_s,tok_s_sd,"
           "gb_s,copy_bw_share\n");
    for (const Setup& c : configs)
      for (const Row& r : c.rows)
        printf("\"%s\",%s,\"%s\",%.2f,%.2f,%s,%d,\"%s\",%s,%d,%.2f,%.2f,%.1f,%.3f\n",
               cuda ? gpu_name().c_str() : "none", VEX_GIT_COMMIT,
               c.info["model"].get<std::string>().c_str(), c.info["size_gib"].get<double>(),
               c.info["params_b"].get<double>(), c.info["backend"].get<std::string>().c_str(),
               c.info["threads"].get<int>(), c.experts.c_str(), r.test.c_str(), r.batch,
               r.tok_s.mean, r.tok_s.sd, r.gb_s, r.share);
    return 0;
  }
  const int gpus = first["gpus"].get<int>();
  if (cuda)
    printf("vexbench %s on %s (cuda%s), copy bandwidth %.0f GB/s\n", VEX_GIT_COMMIT,
           gpu_name().c_str(),
           gpus > 1 ? absl::StrFormat(" on %d GPUs, tp %d, ep %d, NCCL %d; GB/s per GPU", gpus,
                                      first["tp"].get<int>(), first["ep"].get<int>(),
                                      Group::nccl_version())
                          .c_str()
                    : "",
           first["copy_bandwidth_gb_s"].get<double>());
  else
    printf("vexbench %s on the CPU (%d threads)\n", VEX_GIT_COMMIT, first["threads"].get<int>());
  for (const Setup& c : configs) {
    printf("%s: start %.1f s, weights read %.3f GB", experts_of(c).c_str(),
           c.info["start_s"].get<double>(), c.info["weight_bytes_read"].get<uint64_t>() / 1e9);
    if (!c.experts.empty())
      printf(" (%d experts pruned, %zu host experts)", c.info["pruned_experts"].get<int>(),
             c.info["host_experts"].get<size_t>());
    if (c.info.contains("gpu_memory_gb")) printf("; GPU memory %s", c.info["gpu_memory_gb"].dump().c_str());
    printf("\n");
  }
  printf("\n| model | size | params | backend | threads | experts | test | batch | t/s | GB/s | "
         "of copy BW |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const Setup& c : configs)
    for (const Row& r : c.rows)
      printf("| %s | %.2f GiB | %.2f B | %s | %s | %s | %s | %d | %.2f ± %.2f | %s | %s |\n",
             c.info["model"].get<std::string>().c_str(), c.info["size_gib"].get<double>(),
             c.info["params_b"].get<double>(), c.info["backend"].get<std::string>().c_str(),
             cuda ? "-" : std::to_string(c.info["threads"].get<int>()).c_str(),
             experts_of(c).c_str(), r.test.c_str(), r.batch, r.tok_s.mean, r.tok_s.sd,
             r.gb_s > 0 ? absl::StrFormat("%.0f", r.gb_s).c_str() : "",
             r.share > 0 ? absl::StrFormat("%.1f %%", 100 * r.share).c_str() : "");
  return 0;
}

}  // namespace
}  // namespace vex

int main(int argc, char** argv) {
  return vex::run(argc, argv);
}
