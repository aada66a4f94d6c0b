// vexbench: prefill (pp) and decode (tg) throughput of a checkpoint, modelled on llama-bench.
//   vexbench --weights DIR [-p 512,2048] [-n 128] [-b 1] [-r 5] [-o md|csv|json] [--device cuda]
// Each test runs r times after one warm-up; figures are mean ± std over the repetitions. For
// decode, the bytes one step reads (weights + KV) give the achieved bandwidth, reported against
// the measured device-to-device copy bandwidth (the ceiling bench/NOTES.md reports against). With -b B, B sequences
// decode together (one pass per step, CUDA); t/s is then the aggregate over the B sequences.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>

#include <nlohmann/json.hpp>

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

int run(int argc, char** argv) {
  std::string weights, out = "md", device_s = "auto", prompts_s = "512", batches_s = "1";
  std::string experts;
  int n_gen = 128, reps = 5, depth = 0;
  float top_p = 0, temperature = 1;  // top_p and top_k 0: greedy decode
  int top_k = 0;
  bool help = false, profile = false;
  Args a;
  a.text({"--weights", "-m"}, "checkpoint directory (required)", &weights);
  a.text({"-p", "--n-prompt"}, "prefill lengths, comma-separated (default 512)", &prompts_s);
  a.integer({"-n", "--n-gen"}, "tokens to decode per repetition (default 128)", 0, 1 << 20, &n_gen);
  a.integer({"-d", "--depth"}, "context already in the cache before decoding (default 0)", 0,
            1 << 20, &depth);
  a.text({"-b", "--batch"}, "sequences per decode step, comma-separated (default 1)", &batches_s);
  a.integer({"-r", "--repetitions"}, "repetitions per test (default 5)", 1, 1000, &reps);
  a.value({"-o", "--output"}, "md | csv | json (default md)", [&](const std::string& v) {
    if (v != "md" && v != "csv" && v != "json")
      return absl::InvalidArgumentError("-o: expected md, csv or json");
    out = v;
    return absl::OkStatus();
  });
  a.text({"--device"}, "auto | cpu | cuda (default auto)", &device_s);
  a.text({"--experts"}, "expert manifest: pruned experts and virtual experts (TOML)", &experts);
  a.number({"--top-p"}, "decode by sampling on the GPU with this top-p instead of greedy (batch 1)",
           0.0, 1.0, &top_p);
  a.integer({"--top-k"}, "decode by sampling on the GPU with this top-k (batch 1)", 0, 1 << 24,
            &top_k);
  a.number({"--temp"}, "the sampling temperature with --top-p / --top-k (default 1)", 0.01, 100.0,
           &temperature);
  a.flag({"--profile"}, "time each kernel family of one decode step (CUDA)", &profile);
  GpuFlags gpu;
  add_gpu_flags(a, &gpu);
  a.flag({"--help", "-h"}, "show this help", &help);
  std::vector<int32_t> prompts, batches;
  absl::Status st = a.parse(argc, argv);
  const bool sampled = top_p > 0 || top_k > 0;
  if (st.ok()) st = parse_int_list("-p", prompts_s, &prompts);
  if (st.ok()) st = parse_int_list("-b", batches_s, &batches);
  if (st.ok() && weights.empty() && !help)
    st = absl::InvalidArgumentError("--weights DIR is required");
  if (!st.ok() || help) {
    if (!st.ok()) fprintf(stderr, "vexbench: %s\n", std::string(st.message()).c_str());
    fprintf(help ? stdout : stderr, "usage: vexbench --weights DIR [options]\n%s",
            a.usage().c_str());
    return help ? 0 : 2;
  }
  int max_b = 1;
  for (int b : batches) {
    if (b < 1) {
      fprintf(stderr, "vexbench: -b %d: a batch is at least one sequence\n", b);
      return 2;
    }
    max_b = std::max(max_b, b);
  }
  auto device = parse_device(device_s);
  auto fail = [](const absl::Status& s) {
    fprintf(stderr, "vexbench: %s\n", std::string(s.message()).c_str());
    return 1;
  };
  if (!device.ok()) return fail(device.status());
  if (absl::Status s = start_gpus(gpu); !s.ok()) return fail(s);

  const auto t0 = Clock::now();
  LoadOptions load;
  load.experts = experts;
  auto model = load_model(weights, load);
  if (!model.ok()) return fail(model.status());
  int max_p = 1;
  for (int p : prompts) max_p = std::max(max_p, p);
  auto engine = make_engine(**model, std::max(max_p, depth) + n_gen + 1, *device, max_b,
                            gpu.split);
  if (!engine.ok()) return fail(engine.status());
  const double start_s = std::chrono::duration<double>(Clock::now() - t0).count();
  // The group's size: --gpus, or the launcher's processes.
  const int gpus = Group::get() ? Group::get()->size() : 1;
  Engine& e = **engine;
  const Config& c = (*model)->config();
#ifdef VEX_WITH_CUDA
  auto* cuda = dynamic_cast<CudaEngine*>(&e);
#else
  void* cuda = nullptr;
#endif
  const double copy_bw = cuda ? copy_bandwidth_gb_s() : 0;

  std::mt19937 rng(1);
  auto tokens = [&](int n) {
    std::vector<int32_t> t(n);
    for (auto& x : t) x = static_cast<int32_t>(rng() % std::min(c.vocab_size, 200000));
    return t;
  };
  std::vector<float> logits(c.vocab_size);
  std::vector<Row> rows;
  for (int p : prompts) {
    std::vector<double> v;
    for (int r = 0; r <= reps; ++r) {  // r = 0 warms up
      const auto t = tokens(p);
      e.truncate(0);
      const auto s0 = Clock::now();
      if (absl::Status s = e.forward(t, logits.data(), true); !s.ok()) return fail(s);
      const double secs = std::chrono::duration<double>(Clock::now() - s0).count();
      if (r) v.push_back(p / secs);
    }
    rows.push_back({absl::StrCat("pp", p), 1, stats(v)});
  }
  // Decode: every sequence of the batch holds `depth` tokens plus the one decoding starts from.
  for (int B : batches) {
    if (n_gen <= 0) break;
    std::vector<double> v;
    for (int r = 0; r <= reps; ++r) {
      std::vector<int32_t> first(B);
      for (int b = 0; b < B; ++b) {
#ifdef VEX_WITH_CUDA
        if (cuda)
          if (absl::Status s = cuda->set_sequence(b); !s.ok()) return fail(s);
#endif
        e.truncate(0);
        const auto ctx = tokens(depth + 1);
        if (absl::Status s = e.forward(ctx, logits.data(), true); !s.ok()) return fail(s);
        first[b] = argmax(logits);
      }
      const auto s0 = Clock::now();
#ifdef VEX_WITH_CUDA
      if (cuda) {
        if (absl::Status s = cuda->set_sequence(0); !s.ok()) return fail(s);
        const SamplingParams sp{temperature, top_k, top_p > 0 ? top_p : 1.0f, 0.0f, uint64_t(r)};
        absl::Status s = B > 1     ? cuda->decode_greedy_batch(first, n_gen, nullptr)
                         : sampled ? cuda->decode_sample(first[0], n_gen, sp, 0, nullptr)
                                   : cuda->decode_greedy(first[0], n_gen, nullptr);
        if (!s.ok()) return fail(s);
      } else
#endif
      {
        int32_t next = first[0];
        for (int i = 0; i < n_gen; ++i) {
          if (absl::Status s = e.forward(std::span(&next, 1), logits.data(), true); !s.ok())
            return fail(s);
          next = argmax(logits);
        }
      }
      const double secs = std::chrono::duration<double>(Clock::now() - s0).count();
      if (r) v.push_back(double(B) * n_gen / secs);
    }
    Row row{absl::StrCat("tg", n_gen, depth ? absl::StrCat(" @ d", depth) : "",
                         sampled && B == 1
                             ? absl::StrCat(" T ", temperature, top_k ? absl::StrCat(" top-k ", top_k) : "",
                                            top_p > 0 ? absl::StrCat(" top-p ", top_p) : "")
                             : ""),
            B, stats(v)};
#ifdef VEX_WITH_CUDA
    if (cuda) {  // bytes of one step at the run's mean context; steps/s = tok/s / B
      const double bytes = cuda->decode_bytes(depth + n_gen / 2, B);
      row.gb_s = bytes * row.tok_s.mean / B / 1e9;
      row.share = copy_bw > 0 ? row.gb_s / copy_bw : 0;
    }
#endif
    rows.push_back(row);
  }

  // Memory and identity, in every output.
  nlohmann::ordered_json info = {{"gpu", gpu_name()},        {"device", cuda ? "cuda" : "cpu"},
                                 {"commit", VEX_GIT_COMMIT}, {"weights", weights},
                                 {"start_s", start_s},       {"copy_bandwidth_gb_s", copy_bw},
                                 {"experts", experts},
                                 {"pruned_experts", (*model)->pruned_experts},
                                 {"weight_bytes_read", (*model)->weight_bytes},
                                 {"gpus", gpus}};
  // A split: figures per GPU (each reads its share of the bytes; tok/s are the group's).
  const int tp = gpu.split.tp ? gpu.split.tp : gpus, ep = gpu.split.ep ? gpu.split.ep : gpus;
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
    info["decode_bytes_per_token"] = cuda->decode_bytes(depth + n_gen / 2);
  }
#endif
#ifdef VEX_WITH_CUDA
  if (profile && cuda) {
    // One decode step at the mean decode position, then one prefill chunk from position 0,
    // every launch timed with events.
    auto show = [&](const char* what, const std::vector<CudaEngine::KernelTime>& prof) {
      double total = 0;
      for (const auto& k : prof) total += k.ms;
      printf("%s, kernels timed one by one (%.3f ms in all):\n\n", what, total);
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
    const auto t = tokens(n_gen / 2 + 1);
    if (absl::Status s = cuda->forward(t, nullptr); !s.ok()) return fail(s);
    auto prof = cuda->profile_step(std::span(t).subspan(0, 1));
    if (!prof.ok()) return fail(prof.status());
    show(absl::StrFormat("decode step at position %d", n_gen / 2 + 1).c_str(), *prof);
    cuda->truncate(0);
    const auto chunk = tokens(std::min(CudaEngine::kChunk, max_p + n_gen));
    prof = cuda->profile_step(chunk);
    if (!prof.ok()) return fail(prof.status());
    show(absl::StrFormat("prefill chunk of %zu tokens at position 0", chunk.size()).c_str(), *prof);
  }
#endif
  if (out == "json") {
    nlohmann::ordered_json j = info;
    for (const Row& r : rows)
      j["results"].push_back({{"test", r.test},
                              {"batch", r.batch},
                              {"tok_s", r.tok_s.mean},
                              {"tok_s_sd", r.tok_s.sd},
                              {"gb_s", r.gb_s},
                              {"copy_bw_share", r.share}});
    printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  if (out == "csv") {
    printf("gpu,commit,test,batch,tok_s,tok_s_sd,gb_s,copy_bw_share\n");
    for (const Row& r : rows)
      printf("\"%s\",%s,%s,%d,%.2f,%.2f,%.1f,%.3f\n", gpu_name().c_str(), VEX_GIT_COMMIT,
             r.test.c_str(), r.batch, r.tok_s.mean, r.tok_s.sd, r.gb_s, r.share);
    return 0;
  }
  printf("vexbench %s on %s (%s%s), copy bandwidth %.0f GB/s, start %.1f s\n", VEX_GIT_COMMIT,
         gpu_name().c_str(), cuda ? "cuda" : "cpu",
         gpus > 1 ? absl::StrFormat(" on %d GPUs, tp %d, ep %d, NCCL %d; GB/s per GPU", gpus,
                                         tp, ep, Group::nccl_version())
                             .c_str()
                      : "",
         copy_bw, start_s);
  if (info.contains("gpu_memory_gb"))
    printf("GPU memory: %s\n", info["gpu_memory_gb"].dump().c_str());
  printf("weights read: %.3f GB%s\n", (*model)->weight_bytes / 1e9,
         experts.empty() ? ""
                         : absl::StrFormat(" (manifest %s: %d experts pruned, %zu host experts)",
                                           experts, (*model)->pruned_experts,
                                           (*model)->host_experts.size())
                               .c_str());
  printf("\n| test | batch | t/s | GB/s | of copy BW |\n|---|---|---|---|---|\n");
  for (const Row& r : rows)
    printf("| %s | %d | %.2f ± %.2f | %s | %s |\n", r.test.c_str(), r.batch, r.tok_s.mean,
           r.tok_s.sd, r.gb_s > 0 ? absl::StrFormat("%.0f", r.gb_s).c_str() : "",
           r.share > 0 ? absl::StrFormat("%.1f %%", 100 * r.share).c_str() : "");
  return 0;
}

}  // namespace
}  // namespace vex

int main(int argc, char** argv) {
  return vex::run(argc, argv);
}
