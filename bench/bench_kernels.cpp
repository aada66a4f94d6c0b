// CUDA kernel microbenchmarks at gpt-oss-20b decode shapes (Google Benchmark, manual time from
// CUDA events). The L2 (50 MB on H100) is flushed before every timed launch by writing a 128 MB
// buffer, so weights come from HBM as they do in a real decode step. Each benchmark reports
// GB/s of the bytes it must read and that figure as a share of the device-to-device copy
// bandwidth measured in the same process (BM_CopyCeiling, read + write bytes).
//   bench_kernels [--benchmark_filter=...]
#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <functional>
#include <random>
#include <vector>

#include "core/slot.h"
#include "kernels/cuda/attention.cuh"
#include "kernels/cuda/gemv.cuh"
#include "kernels/cuda/moe.cuh"
#include "kernels/cuda/router.cuh"

namespace {

double g_copy_gb_s = 0;  // filled by BM_CopyCeiling (registered first)

void* dev_random(size_t bytes, uint32_t seed) {
  std::vector<uint8_t> h(bytes);
  std::mt19937 rng(seed);
  for (auto& b : h) b = rng() & 0x3F;  // small bf16 exponents / mid-range E8M0 scales
  void* d = nullptr;
  cudaMalloc(&d, bytes);
  cudaMemcpy(d, h.data(), bytes, cudaMemcpyHostToDevice);
  return d;
}

void flush_l2() {
  static void* buf = [] {
    void* p = nullptr;
    cudaMalloc(&p, 128 << 20);
    return p;
  }();
  cudaMemsetAsync(buf, 0, 128 << 20);
}

// Times f() with events after an L2 flush; reports GB/s for `bytes` read per launch.
void run(benchmark::State& state, double bytes, const std::function<cudaError_t()>& f) {
  cudaEvent_t a, b;
  cudaEventCreate(&a), cudaEventCreate(&b);
  if (f() != cudaSuccess) return state.SkipWithError("launch failed");  // warm-up
  double total_ms = 0;
  int64_t n = 0;
  for (auto _ : state) {
    flush_l2();
    cudaEventRecord(a);
    f();
    cudaEventRecord(b);
    cudaEventSynchronize(b);
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    state.SetIterationTime(ms / 1e3);
    total_ms += ms, ++n;
  }
  cudaEventDestroy(a), cudaEventDestroy(b);
  const double gb_s = bytes * n / (total_ms / 1e3) / 1e9;
  state.counters["GB/s"] = gb_s;
  if (g_copy_gb_s > 0) state.counters["of_copy"] = gb_s / g_copy_gb_s;
}

void BM_CopyCeiling(benchmark::State& state) {
  const size_t bytes = size_t(1) << 30;
  void* src = dev_random(bytes, 1);
  void* dst = nullptr;
  cudaMalloc(&dst, bytes);
  // Read + write bytes: the ceiling the decode figures are measured against (bench/NOTES.md).
  run(state, 2.0 * bytes,
      [&] { return cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice); });
  g_copy_gb_s = state.counters["GB/s"].value;
  cudaFree(src), cudaFree(dst);
}
BENCHMARK(BM_CopyCeiling)->UseManualTime()->Unit(benchmark::kMicrosecond)->Iterations(20);

// bf16 GEMV, one token: rows x 2880 (qkv 5120, o_proj 2880 x 4096, lm_head 201088).
void BM_GemvBf16(benchmark::State& state) {
  const int N = state.range(0), K = state.range(1);
  auto* W = static_cast<uint16_t*>(dev_random(size_t(N) * K * 2, 2));
  auto* x = static_cast<float*>(dev_random(size_t(K) * 4, 3));
  float* y = nullptr;
  cudaMalloc(&y, size_t(N) * 4);
  run(state, double(N) * K * 2,
      [&] { return vex::cuda::gemv_bf16(x, W, nullptr, y, 1, K, N, false, nullptr); });
  cudaFree(W), cudaFree(x), cudaFree(y);
}
BENCHMARK(BM_GemvBf16)
    ->Args({5120, 2880})
    ->Args({2880, 4096})
    ->Args({201088, 2880})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

// The MoE block of one decode token: 4 of 32 experts, gate_up + SwiGLU then down + residual.
void BM_MoeDecode(benchmark::State& state) {
  const int D = 2880, I = 2880, E = 32, k = 4;
  const int g1 = D / 32, g2 = I / 32;
  vex::cuda::MoeWeights w{};
  w.gate_up_blocks = static_cast<uint8_t*>(dev_random(size_t(E) * 2 * I * g1 * 16, 4));
  w.gate_up_scales = static_cast<uint8_t*>(dev_random(size_t(E) * 2 * I * g1, 5));
  w.gate_up_bias = static_cast<uint16_t*>(dev_random(size_t(E) * 2 * I * 2, 6));
  w.down_blocks = static_cast<uint8_t*>(dev_random(size_t(E) * D * g2 * 16, 7));
  w.down_scales = static_cast<uint8_t*>(dev_random(size_t(E) * D * g2, 8));
  w.down_bias = static_cast<uint16_t*>(dev_random(size_t(E) * D * 2, 9));
  w.D = D, w.I = I;
  std::vector<vex_slot> slots(E);
  for (int e = 0; e < E; ++e) slots[e] = {VEX_SLOT_NEURAL, uint32_t(e), 0, 0};
  vex_slot* ds = nullptr;
  cudaMalloc(&ds, E * sizeof(vex_slot));
  cudaMemcpy(ds, slots.data(), E * sizeof(vex_slot), cudaMemcpyHostToDevice);
  const int idx_h[4] = {3, 11, 17, 29};
  const float wt_h[4] = {0.4f, 0.3f, 0.2f, 0.1f};
  int* idx = nullptr;
  float *wt = nullptr, *xn = nullptr, *x = nullptr;
  uint32_t *xf = nullptr, *hf = nullptr;
  cudaMalloc(&idx, sizeof idx_h), cudaMalloc(&wt, sizeof wt_h);
  cudaMemcpy(idx, idx_h, sizeof idx_h, cudaMemcpyHostToDevice);
  cudaMemcpy(wt, wt_h, sizeof wt_h, cudaMemcpyHostToDevice);
  cudaMalloc(&xn, D * 4), cudaMalloc(&x, D * 4);
  cudaMalloc(&xf, vex::cuda::split_words(D) * 4);
  cudaMalloc(&hf, k * vex::cuda::split_words(I) * 4);
  cudaMemset(xn, 0, D * 4), cudaMemset(x, 0, D * 4);
  vex::cuda::split_rows(xn, 1, D, xf, nullptr);
  const double bytes = double(k) * (2.0 * I * g1 * 17 + double(D) * g2 * 17);
  run(state, bytes, [&] {
    cudaError_t e = vex::cuda::moe_gate_up(xn, xf, idx, ds, w, {}, 1, k, 7.0f, hf, nullptr);
    return e != cudaSuccess ? e : vex::cuda::moe_down(hf, idx, wt, ds, w, {}, 1, k, x, nullptr);
  });
}
BENCHMARK(BM_MoeDecode)->UseManualTime()->Unit(benchmark::kMicrosecond);

// Attention decode over a full layer's bf16 KV cache of `ctx` positions (64 heads, 8 KV heads).
void BM_AttentionDecode(benchmark::State& state) {
  const int ctx = state.range(0), Hq = 64, Hkv = 8, d = 64, KV = Hkv * d, S = Hq * d + 2 * KV;
  auto* kc = static_cast<uint16_t*>(dev_random(size_t(ctx) * KV * 2, 10));
  auto* vc = static_cast<uint16_t*>(dev_random(size_t(ctx) * KV * 2, 11));
  auto* sinks = static_cast<uint16_t*>(dev_random(Hq * 2, 12));
  auto* q = static_cast<float*>(dev_random(size_t(S) * 4, 13));
  cudaMemset(q, 0, size_t(S) * 4);
  const int splits = state.range(1);
  float *out = nullptr, *part = nullptr;
  int *pos = nullptr, *counts = nullptr;
  cudaMalloc(&out, Hq * d * 4), cudaMalloc(&pos, 4), cudaMalloc(&part, Hq * splits * (d + 2) * 4);
  cudaMalloc(&counts, Hkv * 4), cudaMemset(counts, 0, Hkv * 4);
  const int p = ctx - 1;
  cudaMemcpy(pos, &p, 4, cudaMemcpyHostToDevice);
  run(state, 2.0 * ctx * KV * 2, [&] {
    return vex::cuda::attention(q, S, kc, vc, sinks, out, 1, {pos}, 0, 0, Hq, Hkv, d, 0.125f,
                                nullptr, splits, part, counts);
  });
}
BENCHMARK(BM_AttentionDecode)
    ->Args({128, 1})
    ->Args({1024, 1})
    ->Args({4096, 1})
    ->Args({128, 4})
    ->Args({1024, 16})
    ->Args({4096, 16})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
