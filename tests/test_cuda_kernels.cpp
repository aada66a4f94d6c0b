// Every CUDA kernel against its CPU twin (kernels/cpu) on fresh random inputs, outputs poisoned
// with NaN before each launch. Tolerances are stated beside the assertions; the CPU twins
// accumulate in double, the kernels in fp32, so the bound scales with the sum of |terms|.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/moe.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/router.h"
#include "kernels/cuda/attention.cuh"
#include "kernels/cuda/embed.cuh"
#include "kernels/cuda/gemm.cuh"
#include "kernels/cuda/gemv.cuh"
#include "kernels/cuda/moe.cuh"
#include "kernels/cuda/norm.cuh"
#include "kernels/cuda/rope.cuh"
#include "kernels/cuda/router.cuh"
#include "kernels/cuda/sampling.cuh"
#include "runtime/sampler.h"

namespace vex {
namespace {

#define CUDA_OK(x)                                                      \
  do {                                                                  \
    cudaError_t e_ = (x);                                               \
    ASSERT_EQ(e_, cudaSuccess) << #x << ": " << cudaGetErrorString(e_); \
  } while (0)

// A device copy of a host vector; `poisoned` fills it with 0xFF bytes (NaN for floats).
template <typename T>
struct Dev {
  T* p = nullptr;
  size_t n = 0;
  explicit Dev(const std::vector<T>& h) : n(h.size()) {
    cudaMalloc(&p, std::max<size_t>(n, 1) * sizeof(T));
    cudaMemcpy(p, h.data(), n * sizeof(T), cudaMemcpyHostToDevice);
  }
  explicit Dev(size_t count) : n(count) {
    cudaMalloc(&p, std::max<size_t>(n, 1) * sizeof(T));
    cudaMemset(p, 0xFF, n * sizeof(T));
  }
  ~Dev() { cudaFree(p); }
  std::vector<T> get() const {
    std::vector<T> h(n);
    cudaDeviceSynchronize();
    cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost);
    return h;
  }
};

std::mt19937 rng(12345);
std::vector<float> normal(size_t n, float sd = 1) {
  std::normal_distribution<float> d(0, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}
std::vector<uint16_t> normal_bf16(size_t n, float sd = 1) {
  std::vector<uint16_t> v(n);
  const auto f = normal(n, sd);
  for (size_t i = 0; i < n; ++i) v[i] = f32_to_bf16(f[i]);
  return v;
}

TEST(CudaKernels, Embed) {
  const int V = 1000, D = 96, n = 5;
  const auto emb = normal_bf16(size_t(V) * D);
  const std::vector<int32_t> tok = {7, 999, 0, 7, 500};
  Dev<uint16_t> de(emb);
  Dev<int32_t> dt(tok);
  Dev<float> dx(size_t(n) * D);
  CUDA_OK(cuda::embed(dt.p, n, de.p, D, dx.p, 0));
  const auto x = dx.get();
  for (int t = 0; t < n; ++t)
    for (int i = 0; i < D; ++i)
      ASSERT_EQ(x[t * D + i], bf16_to_f32(emb[size_t(tok[t]) * D + i]));  // exact: a conversion
}

TEST(CudaKernels, RmsNorm) {
  for (int D : {64, 2880}) {
    const int n = 7;
    const auto x = normal(size_t(n) * D, 3);
    const auto g = normal_bf16(D);
    std::vector<float> ref(x.size());
    rmsnorm(x.data(), g.data(), ref.data(), n, D, 1e-5f);
    Dev<float> dx(x), dy(x.size());
    Dev<uint16_t> dg(g);
    CUDA_OK(cuda::rmsnorm(dx.p, dg.p, dy.p, n, D, 1e-5f, 0));
    const auto y = dy.get();
    // fp32 sum of squares vs double: a few ulps of the scale, 1e-5 relative is ample.
    for (size_t i = 0; i < y.size(); ++i)
      ASSERT_NEAR(y[i], ref[i], 1e-5f * std::abs(ref[i]) + 1e-6f) << i;
  }
}

// A projection's outputs against linear_bf16's ref: y = ref and acc = prior + ref, each to `rel`
// of sum |w x| + |b| (the scale of the fp32 sums' rounding), for rows t < n, outputs r < N.
void expect_linear(const std::vector<float>& y, const std::vector<float>& acc,
                   const std::vector<float>& ref, const std::vector<float>& prior,
                   const std::vector<float>& x, const std::vector<uint16_t>& W,
                   const std::vector<uint16_t>& b, int n, int K, int N, double rel) {
  for (int t = 0; t < n; ++t)
    for (int r = 0; r < N; ++r) {
      double mag = std::abs(bf16_to_f32(b[r]));
      for (int k = 0; k < K; ++k)
        mag += std::abs(double(x[size_t(t) * K + k]) * bf16_to_f32(W[size_t(r) * K + k]));
      const size_t i = size_t(t) * N + r;
      ASSERT_NEAR(y[i], ref[i], rel * mag) << "n=" << n << " t=" << t << " r=" << r;
      ASSERT_NEAR(acc[i], prior[i] + ref[i], rel * mag + 1e-6 * std::abs(prior[i]));
    }
}

TEST(CudaKernels, GemvBf16) {
  for (auto [n, K, N] : {std::tuple{1, 2880, 515}, {3, 2880, 64}, {8, 4096, 100}, {11, 64, 33}}) {
    const auto x = normal(size_t(n) * K);
    const auto W = normal_bf16(size_t(N) * K, 0.02f);
    const auto b = normal_bf16(N);
    std::vector<float> ref(size_t(n) * N), prior = normal(size_t(n) * N);
    linear_bf16(x.data(), W.data(), b.data(), ref.data(), n, K, N);
    Dev<float> dx(x), dy(ref.size()), dacc(prior);
    Dev<uint16_t> dW(W), db(b);
    CUDA_OK(cuda::gemv_bf16(dx.p, dW.p, db.p, dy.p, n, K, N, false, 0));
    CUDA_OK(cuda::gemv_bf16(dx.p, dW.p, db.p, dacc.p, n, K, N, true, 0));
    // fp32 accumulation in a different order: relative error ~ sqrt(K) ulp of sum |w x|.
    expect_linear(dy.get(), dacc.get(), ref, prior, x, W, b, n, K, N, 2e-6);
  }
}

// The cuBLASLt GEMM of prefill chunks against linear_bf16 on the same bf16-rounded inputs:
// bf16 products are exact in fp32; the tensor cores' fp32 accumulation order (and truncation of
// partial sums) differs from the double reference: 1e-5 of sum |w x|. The bias goes in as fp32
// (the bf16 values exactly) through the epilogue, or not at all (the lm_head's null bias); y
// starts as garbage where the call does not accumulate.
TEST(CudaKernels, GemmBf16TensorCores) {
  cuda::Gemm gemm;
  CUDA_OK(gemm.init());
  for (bool bias : {true, false})
    for (auto [n, K, N] :
         {std::tuple{13, 2880, 320}, {40, 4096, 128}, {128, 64, 192}, {1, 2880, 5120}}) {
      auto x = normal(size_t(n) * K);
      std::vector<uint16_t> xb(x.size());
      for (size_t i = 0; i < x.size(); ++i) xb[i] = f32_to_bf16(x[i]), x[i] = bf16_to_f32(xb[i]);
      const auto W = normal_bf16(size_t(N) * K, 0.02f);
      const auto b = bias ? normal_bf16(N) : std::vector<uint16_t>(N, 0);
      std::vector<float> bf(N), ref(size_t(n) * N), prior = normal(size_t(n) * N);
      for (int r = 0; r < N; ++r) bf[r] = bf16_to_f32(b[r]);
      linear_bf16(x.data(), W.data(), b.data(), ref.data(), n, K, N);
      Dev<uint16_t> dx(xb), dW(W);
      Dev<float> db(bf), dy(normal(ref.size(), 1e3f)), dacc(prior);
      CUDA_OK(gemm.run(dx.p, dW.p, bias ? db.p : nullptr, dy.p, n, K, N, false, 0));
      CUDA_OK(gemm.run(dx.p, dW.p, bias ? db.p : nullptr, dacc.p, n, K, N, true, 0));
      expect_linear(dy.get(), dacc.get(), ref, prior, x, W, b, n, K, N, 1e-5);
    }
}

// The QKV projection with the attention RMSNorm fused: against rmsnorm then linear_bf16.
TEST(CudaKernels, GemvWithFusedRmsNorm) {
  for (int n : {1, 5}) {
    const int K = 2880, N = 300;
    const auto x = normal(size_t(n) * K, 4);
    const auto g = normal_bf16(K), W = normal_bf16(size_t(N) * K, 0.02f), b = normal_bf16(N);
    std::vector<float> xn(x.size()), ref(size_t(n) * N);
    rmsnorm(x.data(), g.data(), xn.data(), n, K, 1e-5f);
    linear_bf16(xn.data(), W.data(), b.data(), ref.data(), n, K, N);
    Dev<float> dx(x), dy(ref.size());
    Dev<uint16_t> dW(W), db(b), dg(g);
    CUDA_OK(cuda::gemv_bf16(dx.p, dW.p, db.p, dy.p, n, K, N, false, 0, dg.p, 1e-5f));
    const auto y = dy.get();
    for (int t = 0; t < n; ++t)
      for (int r = 0; r < N; ++r) {
        double mag = std::abs(bf16_to_f32(b[r]));
        for (int k = 0; k < K; ++k)
          mag += std::abs(double(xn[size_t(t) * K + k]) * bf16_to_f32(W[size_t(r) * K + k]));
        // As GemvBf16, plus the norm's scale computed in fp32 (a few ulps): 4e-6 of sum |w xn|.
        ASSERT_NEAR(y[size_t(t) * N + r], ref[size_t(t) * N + r], 4e-6 * mag) << t << " " << r;
      }
  }
}

// The router with the MoE RMSNorm fused: same choices, and the normed input written out; 4
// tokens take a block each, 300 (a prefill pass) blocks of 8 (the last one part full). A token
// whose k-th and (k+1)-th logits lie within 1e-4 could choose either way: its choices are not
// compared.
TEST(CudaKernels, RouterWithFusedRmsNorm) {
  for (const int n : {4, 300}) {
    const int D = 2880, E = 32, k = 4;
    const auto x = normal(size_t(n) * D, 5);
    const auto g = normal_bf16(D), W = normal_bf16(size_t(E) * D, 0.05f), b = normal_bf16(E);
    std::vector<float> xn(x.size()), logits(size_t(n) * E);
    rmsnorm(x.data(), g.data(), xn.data(), n, D, 1e-5f);
    linear_bf16(xn.data(), W.data(), b.data(), logits.data(), n, D, E);
    std::vector<vex_slot> slots(E);
    for (int e = 0; e < E; ++e) slots[e] = {VEX_SLOT_NEURAL, uint32_t(e), 0, 0};
    Dev<float> dx(x), dw(size_t(n) * k), dxn(x.size());
    Dev<uint16_t> dW(W), db(b), dg(g);
    Dev<vex_slot> ds(slots);
    Dev<int> di(size_t(n) * k);
    Dev<uint32_t> xf(size_t(n) * cuda::split_words(D)), split(size_t(n) * cuda::split_words(D));
    CUDA_OK(cuda::router(dx.p, dW.p, db.p, ds.p, n, D, E, k, di.p, dw.p, nullptr, 0, dg.p, 1e-5f,
                         dxn.p, nullptr, 0, xf.p));
    const auto idx = di.get();
    const auto wt = dw.get(), gxn = dxn.get();
    for (size_t i = 0; i < xn.size(); ++i)  // fp32 vs double sum of squares: 1e-5 relative
      ASSERT_NEAR(gxn[i], xn[i], 1e-5f * std::abs(xn[i]) + 1e-6f) << i;
    // The split form it writes for the MoE decode kernels is split_rows' of its xn, bit for bit.
    CUDA_OK(cuda::split_rows(dxn.p, n, D, split.p, 0));
    EXPECT_EQ(xf.get(), split.get());
    for (int t = 0; t < n; ++t) {
      int ridx[4];
      float rw[4];
      router_topk_softmax(&logits[t * E], E, k, ridx, rw);
      std::vector<float> sorted(logits.begin() + t * E, logits.begin() + (t + 1) * E);
      std::sort(sorted.begin(), sorted.end(), std::greater<float>());
      if (sorted[k - 1] - sorted[k] < 1e-4f) continue;
      for (int j = 0; j < k; ++j) {
        ASSERT_EQ(idx[t * k + j], ridx[j]) << "token " << t << " of " << n;
        ASSERT_NEAR(wt[t * k + j], rw[j], 1e-5f);
      }
    }
  }
}

// RoPE at small and very large positions (1e5: where fast-math sin/cos would drift, §7.4).
TEST(CudaKernels, RopeAndKvWrite) {
  const int Hq = 8, Hkv = 2, d = 64, n = 3, S = (Hq + 2 * Hkv) * d, KV = Hkv * d;
  const YarnParams yarn{150000, 32, 32, 1, 4096, false};
  std::vector<float> inv(d / 2);
  const float conc = yarn_inv_freq(yarn, d, inv.data());
  for (int pos0 : {0, 129, 100000}) {
    const auto qkv = normal(size_t(n) * S);
    for (int ring : {0, 160}) {
      // Rows in sequence 1 of a two-sequence cache (sequence 0 must stay untouched).
      const int slots = ring ? ring : pos0 + n;
      Dev<float> dqkv(qkv), dinv(inv);
      Dev<int> dpos(std::vector<int>{pos0, pos0 + 1, pos0 + 2}), dseq(std::vector<int>(n, 1));
      Dev<uint16_t> kc(size_t(2) * slots * KV), vc(size_t(2) * slots * KV);
      const cuda::CacheRows rows{dpos.p, dseq.p, int64_t(slots) * KV};
      const cuda::RopeKv rope{rows, dinv.p, conc, Hq, Hkv, d, ring, kc.p, vc.p};
      CUDA_OK(cuda::rope_kv(dqkv.p, S, n, rope, 0));
      const auto out = dqkv.get();
      auto k = kc.get(), v = vc.get();
      for (size_t i = 0; i < size_t(slots) * KV; ++i)
        ASSERT_TRUE(k[i] == 0xFFFF && v[i] == 0xFFFF) << "sequence 0 written at " << i;
      k.erase(k.begin(), k.begin() + size_t(slots) * KV);
      v.erase(v.begin(), v.begin() + size_t(slots) * KV);
      for (int t = 0; t < n; ++t) {
        std::vector<float> q(qkv.begin() + t * S, qkv.begin() + t * S + Hq * d);
        std::vector<float> kr(qkv.begin() + t * S + Hq * d, qkv.begin() + t * S + (Hq + Hkv) * d);
        rope_apply(q.data(), Hq, d, pos0 + t, inv.data(), conc);
        rope_apply(kr.data(), Hkv, d, pos0 + t, inv.data(), conc);
        // Same fp32 formula; sincosf vs std::sin/cos differ by <= 1-2 ulp.
        for (int i = 0; i < Hq * d; ++i) ASSERT_NEAR(out[t * S + i], q[i], 2e-6f) << pos0;
        const int64_t slot = ring ? (pos0 + t) % ring : pos0 + t;
        for (int i = 0; i < KV; ++i) {
          // Stored as bf16: equal to the rounded reference, or one bf16 step away when the two
          // fp32 values straddle a rounding boundary.
          ASSERT_NEAR(bf16_to_f32(k[slot * KV + i]), kr[i], std::abs(kr[i]) * 0.0079f + 1e-6f);
          ASSERT_EQ(v[slot * KV + i], f32_to_bf16(qkv[t * S + (Hq + Hkv) * d + i]));
        }
      }
    }
  }
}

// Attention over a bf16 cache: the CPU twin reads the same (bf16-valued) keys and values.
void check_attention(int Hq, int Hkv, int d, int window) {
  const int n = 5, KV = Hkv * d, S = Hq * d + 2 * KV;
  for (int pos0 : {0, 40, 300}) {
    const int ring = window ? window + 32 : 0;
    const int slots = ring ? ring : pos0 + n;
    const int keys = pos0 + n;  // logical positions 0 .. pos0+n-1
    const auto kf = normal(size_t(keys) * KV), vf = normal(size_t(keys) * KV);
    std::vector<float> kref(kf.size()), vref(vf.size());
    std::vector<uint16_t> kc(size_t(slots) * KV), vc(size_t(slots) * KV);
    for (int j = 0; j < keys; ++j) {
      const int slot = ring ? j % ring : j;
      if (ring && j < keys - ring) continue;  // overwritten in the ring, never attended
      for (int i = 0; i < KV; ++i) {
        kc[size_t(slot) * KV + i] = f32_to_bf16(kf[size_t(j) * KV + i]);
        vc[size_t(slot) * KV + i] = f32_to_bf16(vf[size_t(j) * KV + i]);
      }
    }
    for (size_t i = 0; i < kf.size(); ++i)
      kref[i] = bf16_to_f32(f32_to_bf16(kf[i])), vref[i] = bf16_to_f32(f32_to_bf16(vf[i]));
    const auto q = normal(size_t(n) * S, 0.5f);
    const auto sinks = normal_bf16(Hq);
    for (int splits : {1, 4, 16, 64}) {
      Dev<float> dq(q), dout(size_t(n) * Hq * d), part(size_t(n) * Hq * splits * (d + 2));
      // The keys are sequence 1 of a two-sequence cache whose sequence 0 holds other keys.
      std::vector<uint16_t> k2 = normal_bf16(kc.size()), v2 = normal_bf16(vc.size());
      k2.insert(k2.end(), kc.begin(), kc.end()), v2.insert(v2.end(), vc.begin(), vc.end());
      Dev<uint16_t> dk(k2), dv(v2), ds(sinks);
      std::vector<int> pos(n);
      std::iota(pos.begin(), pos.end(), pos0);
      Dev<int> dpos(pos), dseq(std::vector<int>(n, 1));
      const float scale = 1.0f / std::sqrt(float(d));
      const cuda::CacheRows rows{dpos.p, dseq.p, int64_t(slots) * KV};
      // The split blocks' counts start at zero and are left at zero: a second launch on them
      // gives the same output.
      Dev<int> counts(std::vector<int>(size_t(n) * Hkv, 0));
      CUDA_OK(cuda::attention(dq.p, S, dk.p, dv.p, ds.p, dout.p, n, rows, window, ring, Hq, Hkv,
                              d, scale, 0, splits, part.p, counts.p));
      const auto out = dout.get();
      EXPECT_EQ(counts.get(), std::vector<int>(size_t(n) * Hkv, 0)) << "splits " << splits;
      CUDA_OK(cuda::attention(dq.p, S, dk.p, dv.p, ds.p, dout.p, n, rows, window, ring, Hq, Hkv,
                              d, scale, 0, splits, part.p, counts.p));
      EXPECT_EQ(dout.get(), out) << "splits " << splits;
      for (int t = 0; t < n; ++t) {
        const int p = pos0 + t, lo = window ? std::max(0, p - window + 1) : 0;
        std::vector<float> ref(Hq * d);
        attention_sinks(&q[size_t(t) * S], kref.data(), vref.data(), sinks.data(), lo, p, Hq, Hkv,
                        d, scale, ref.data());
        // fp32 online softmax vs double two-pass: 1e-5 of the value scale (values ~ N(0, 1)),
        // growing with the d products a score sums.
        for (int i = 0; i < Hq * d; ++i)
          ASSERT_NEAR(out[size_t(t) * Hq * d + i], ref[i], 2e-5f * std::max(1.0f, d / 64.0f))
              << "pos " << p << " i " << i << " splits " << splits;
      }
    }
  }
}

TEST(CudaKernels, AttentionWithSinksAndWindow) {
  // Groups of 8, 4 and 3 query heads: the kernel's MMA rows past the group are padding.
  for (auto [Hq, Hkv, d, window] :
       {std::tuple{64, 8, 64, 128}, {64, 8, 64, 0}, {8, 2, 16, 16}, {24, 8, 64, 0}})
    check_attention(Hq, Hkv, d, window);
}

// Prefill attention on tensor cores against the same CPU twin: a pass whose rows mix two
// sequences (a lone row, then 37 consecutive rows of sequence 1 cut into tiles of 16, 16 and 5,
// then 5 rows of sequence 0), over full and sliding layers (rings) and every head size, with
// queries ~ N(0, 8): scores of tens, where a 16-bit query (two bf16 terms) moves the
// probabilities by ~1e-3 (as on the random tiny model, whose logits it moved by 1e-3); three
// terms keep the outputs within 2e-5 of the double reference, as the fp32 kernel's do, for head
// sizes up to 64. A score sums d products, so the fp32 rounding grows with d: 4e-5 at d = 128
// (over 40 draws of this test the worst d = 128 output was 2.7e-5 off, and 4 of the 40 exceeded
// 2e-5).
TEST(CudaKernels, AttentionPrefillMatchesCpu) {
  for (auto [Hq, Hkv, d, window] : {std::tuple{64, 8, 64, 128}, {64, 8, 64, 0}, {8, 2, 16, 16},
                                    {16, 4, 32, 16}, {16, 2, 128, 0}}) {
    const int KV = Hkv * d, S = Hq * d + 2 * KV;
    std::vector<int> pos, seq;
    auto add = [&](int sq, int from, int count) {
      for (int i = 0; i < count; ++i) pos.push_back(from + i), seq.push_back(sq);
    };
    add(0, 170, 1), add(1, 140, 37), add(0, 110, 5);
    const int n = static_cast<int>(pos.size()), keys = 177;  // positions 0 .. 176 per sequence
    const int ring = window ? window + 64 : 0, slots = ring ? ring : keys;
    std::vector<std::vector<float>> kref(2), vref(2);
    std::vector<uint16_t> kc(2 * size_t(slots) * KV), vc(kc.size());
    for (int sq = 0; sq < 2; ++sq) {
      const int newest = sq == 0 ? 170 : 176;  // the sequence's last position written
      const auto kf = normal(size_t(keys) * KV), vf = normal(size_t(keys) * KV);
      kref[sq].resize(kf.size()), vref[sq].resize(vf.size());
      for (size_t i = 0; i < kf.size(); ++i)
        kref[sq][i] = bf16_to_f32(f32_to_bf16(kf[i])), vref[sq][i] = bf16_to_f32(f32_to_bf16(vf[i]));
      for (int j = 0; j <= newest; ++j) {
        if (ring && j <= newest - ring) continue;  // overwritten in the ring
        const size_t at = (size_t(sq) * slots + (ring ? j % ring : j)) * KV;
        for (int i = 0; i < KV; ++i)
          kc[at + i] = f32_to_bf16(kf[size_t(j) * KV + i]),
          vc[at + i] = f32_to_bf16(vf[size_t(j) * KV + i]);
      }
    }
    const auto q = normal(size_t(n) * S, 8.0f);
    const auto sinks = normal_bf16(Hq);
    const auto tiles = cuda::row_tiles(pos, seq);
    ASSERT_EQ(tiles.size(), 5u);
    EXPECT_EQ(tiles[3].row0, 33);
    EXPECT_EQ(tiles[3].count, 5);
    Dev<float> dq(q), dout(size_t(n) * Hq * d);
    Dev<uint16_t> dk(kc), dv(vc), ds(sinks);
    Dev<int> dpos(pos), dseq(seq);
    Dev<cuda::RowTile> dt(tiles);
    const float scale = 1.0f / std::sqrt(float(d));
    const cuda::CacheRows rows{dpos.p, dseq.p, int64_t(slots) * KV};
    CUDA_OK(cuda::attention_prefill(dq.p, S, dk.p, dv.p, ds.p, dout.p, dt.p, int(tiles.size()),
                                    rows, window, ring, Hq, Hkv, d, scale, 0));
    const auto out = dout.get();
    for (int t = 0; t < n; ++t) {
      const int p = pos[t], lo = window ? std::max(0, p - window + 1) : 0;
      std::vector<float> ref(Hq * d);
      attention_sinks(&q[size_t(t) * S], kref[seq[t]].data(), vref[seq[t]].data(), sinks.data(), lo,
                      p, Hq, Hkv, d, scale, ref.data());
      const float bound = 2e-5f * std::max(1.0f, d / 64.0f);
      for (int i = 0; i < Hq * d; ++i)
        ASSERT_NEAR(out[size_t(t) * Hq * d + i], ref[i], bound)
            << "d " << d << " window " << window << " row " << t << " i " << i;
    }
    // The output in bf16 (the O projection's GEMM input): the same values, rounded.
    Dev<uint16_t> dob(out.size());
    CUDA_OK(cuda::attention_prefill(dq.p, S, dk.p, dv.p, ds.p, nullptr, dt.p, int(tiles.size()),
                                    rows, window, ring, Hq, Hkv, d, scale, 0, dob.p));
    const auto outb = dob.get();
    for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(outb[i], f32_to_bf16(out[i])) << i;
  }
}

// The router alone (no norm) with its logits written out, for 9 tokens (a block each) and 300 (8
// a block), over gpt-oss-20b's 32 slots and 120b's 128.
TEST(CudaKernels, RouterTopkSoftmax) {
  for (const auto& [n, E] : {std::pair{9, 32}, {300, 32}, {300, 128}}) {
    const int D = 2880, k = 4;
    const auto x = normal(size_t(n) * D);
    const auto W = normal_bf16(size_t(E) * D, 0.05f);
    const auto b = normal_bf16(E);
    std::vector<float> logits(size_t(n) * E);
    linear_bf16(x.data(), W.data(), b.data(), logits.data(), n, D, E);
    std::vector<vex_slot> slots(E);
    for (int e = 0; e < E; ++e) slots[e] = {VEX_SLOT_NEURAL, uint32_t(e), 0, 0};
    Dev<float> dx(x), dw(size_t(n) * k), dl(size_t(n) * E);
    Dev<uint16_t> dW(W), db(b);
    Dev<vex_slot> ds(slots);
    Dev<int> di(size_t(n) * k);
    CUDA_OK(cuda::router(dx.p, dW.p, db.p, ds.p, n, D, E, k, di.p, dw.p, dl.p, 0));
    const auto idx = di.get();
    const auto wt = dw.get(), gl = dl.get();
    for (int t = 0; t < n; ++t) {
      int ridx[4];
      float rw[4];
      router_topk_softmax(&logits[t * E], E, k, ridx, rw);
      for (int e = 0; e < E; ++e) ASSERT_NEAR(gl[t * E + e], logits[t * E + e], 1e-4f);
      for (int j = 0; j < k; ++j) {
        ASSERT_EQ(idx[t * k + j], ridx[j]) << "token " << t << " E " << E;  // no near ties
        ASSERT_NEAR(wt[t * k + j], rw[j], 1e-5f);
      }
    }
    // A PRUNED slot is never chosen, even with the largest logit.
    const int top = idx[0];
    slots[top].kind = VEX_SLOT_PRUNED;
    Dev<vex_slot> ds2(slots);
    CUDA_OK(cuda::router(dx.p, dW.p, db.p, ds2.p, n, D, E, k, di.p, dw.p, nullptr, 0));
    const auto idx2 = di.get();
    for (int j = 0; j < k; ++j) EXPECT_NE(idx2[j], top);
  }
}

// E random MXFP4 experts on the host and the device (codes uniform, scales 2^(s0-127) ..
// 2^(s0-122), by default 2^-9 .. 2^-4; biases ~ N(0, 0.1)), and the CPU reference of a routed
// MoE block over them.
struct RandomExperts {
  int D, I, E;
  std::vector<uint8_t> gub, gus, dnb, dns;  // gate_up / down blocks and scales, packed by expert
  std::vector<uint16_t> gubias, dnbias;
  std::unique_ptr<Dev<uint8_t>> d_gub, d_gus, d_dnb, d_dns;
  std::unique_ptr<Dev<uint16_t>> d_gubias, d_dnbias;

  RandomExperts(int d, int i, int e, int s0 = 118) : D(d), I(i), E(e) {
    const size_t g1 = D / 32, g2 = I / 32;
    gub.resize(size_t(E) * 2 * I * g1 * 16), gus.resize(size_t(E) * 2 * I * g1);
    dnb.resize(size_t(E) * D * g2 * 16), dns.resize(size_t(E) * D * g2);
    for (auto* v : {&gub, &dnb})
      for (auto& b : *v) b = rng() & 0xFF;
    for (auto* v : {&gus, &dns})
      for (auto& b : *v) b = s0 + rng() % 6;
    gubias = normal_bf16(size_t(E) * 2 * I, 0.1f), dnbias = normal_bf16(size_t(E) * D, 0.1f);
    d_gub = std::make_unique<Dev<uint8_t>>(gub), d_gus = std::make_unique<Dev<uint8_t>>(gus);
    d_dnb = std::make_unique<Dev<uint8_t>>(dnb), d_dns = std::make_unique<Dev<uint8_t>>(dns);
    d_gubias = std::make_unique<Dev<uint16_t>>(gubias);
    d_dnbias = std::make_unique<Dev<uint16_t>>(dnbias);
  }
  cuda::MoeWeights weights() const {
    return {d_gub->p, d_gus->p, d_gubias->p, d_dnb->p, d_dns->p, d_dnbias->p, D, I};
  }
  // x0 + sum_j wt[t, j] expert_{slots[idx[t, j]].expert}(xn[t]) for every token, with expert_ffn
  // (NEURAL slots only).
  std::vector<float> reference(const std::vector<float>& xn, const std::vector<int>& idx,
                               const std::vector<float>& wt, const std::vector<vex_slot>& slots,
                               const std::vector<float>& x0, int k, bool bf16_inputs) const {
    const size_t g1 = D / 32, g2 = I / 32;
    std::vector<float> ref = x0, scratch(3 * I + D), y(D);
    for (size_t tj = 0; tj < idx.size(); ++tj) {
      if (slots[idx[tj]].kind != VEX_SLOT_NEURAL) continue;
      const size_t e = slots[idx[tj]].expert, t = tj / k;
      ExpertWeights ew;
      ew.gate_up = {gub.data() + e * 2 * I * g1 * 16, gus.data() + e * 2 * I * g1, 2 * I, D};
      ew.gate_up_bias = gubias.data() + e * 2 * I;
      ew.down = {dnb.data() + e * D * g2 * 16, dns.data() + e * D * g2, D, I};
      ew.down_bias = dnbias.data() + e * D;
      expert_ffn(ew, &xn[t * D], 7.0f, scratch.data(), y.data(), bf16_inputs);
      for (int i = 0; i < D; ++i) ref[t * D + i] += wt[tj] * y[i];
    }
    return ref;
  }
};

// Largest |got - ref| and largest |ref - x0| (the size of the experts' contribution).
std::pair<double, double> worst_and_scale(const std::vector<float>& got,
                                          const std::vector<float>& ref,
                                          const std::vector<float>& x0) {
  double worst = 0, scale = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    worst = std::max(worst, std::abs(double(got[i]) - ref[i]));
    scale = std::max(scale, std::abs(double(ref[i]) - x0[i]));
  }
  return {worst, scale};
}

// Routing of n tokens to k of E slots (distinct per token) with weights; slots map to experts
// through a permutation, so a kernel that confuses slot and expert ids fails.
struct Routing {
  std::vector<int> idx;
  std::vector<float> wt;
  std::vector<vex_slot> slots;
  Routing(int n, int k, int E, int a, int b, float w0, float dw) : idx(n * k), wt(n * k), slots(E) {
    for (int t = 0; t < n; ++t)
      for (int j = 0; j < k; ++j) idx[t * k + j] = (t * a + j * b) % E, wt[t * k + j] = w0 + dw * j;
    for (int e = 0; e < E; ++e) slots[e] = {VEX_SLOT_NEURAL, uint32_t(E - 1 - e), 0, 0};
  }
};

// The two MoE decode kernels (tensor cores, inputs in split form) against expert_ffn weighted
// and summed. Scales up to 2^4 in the small case take the two-step scaling; D = 96 leaves lanes
// past the row's end in a step; 8 tokens are the largest decode batch.
TEST(CudaKernels, MoeGateUpAndDown) {
  for (auto [D, I, E, k, n, s0] :
       {std::tuple{2880, 2880, 8, 4, 1, 118}, {64, 64, 8, 4, 6, 126}, {96, 128, 8, 4, 8, 118}}) {
    const RandomExperts ex(D, I, E, s0);
    const Routing r(n, k, E, 1, 3, 0.1f, 0.2f);
    const auto xn = normal(size_t(n) * D), x0 = normal(size_t(n) * D);
    const auto ref = ex.reference(xn, r.idx, r.wt, r.slots, x0, k, false);
    Dev<float> dxn(xn), dx(x0), dwt(r.wt);
    Dev<uint32_t> xf(size_t(n) * cuda::split_words(D)), hf(size_t(n) * k * cuda::split_words(I));
    Dev<int> didx(r.idx);
    Dev<vex_slot> dsl(r.slots);
    CUDA_OK(cuda::split_rows(dxn.p, n, D, xf.p, 0));
    CUDA_OK(cuda::moe_gate_up(dxn.p, xf.p, didx.p, dsl.p, ex.weights(), {}, n, k, 7.0f, hf.p, 0));
    CUDA_OK(cuda::moe_down(hf.p, didx.p, dwt.p, dsl.p, ex.weights(), {}, n, k, dx.p, 0));
    const auto [worst, scale] = worst_and_scale(dx.get(), ref, x0);
    printf("MoE decode, D=%d: worst %.3g of scale %.3g\n", D, worst, scale);
    // Exact decode on both sides and exact products (the split into three bf16 is exact); only
    // the MMAs' fp32 accumulation vs double differs: 1e-5 of the largest expert contribution
    // (measured 1e-6 at D = 2880).
    EXPECT_LT(worst, 1e-5 * scale) << "D=" << D;
  }
}

// Virtual slots inside the two MoE kernel families (decode, grouped), mixed with neural
// experts, against the CPU twin (expert_ffn + device_expert, as
// CpuEngine::moe_token): DEVICE slots on constructed hidden states (xn[0] and xn[1] read by
// unit rows, so a = 1.2e6 + 1e5 t exactly: DSCR a / (0.5 b), LTV a / b x 100; arguments read
// from bf16 inputs would be off by ~1e-3), HOST slots leaving {seq, pos, layer, slot, weight}
// only at or above their threshold, a DEVICE slot below its threshold adding nothing.
// Tolerance: the neural part as in the tests of each path (1e-5 of the largest expert
// contribution for decode, 1e-3 for grouped with its bf16 inputs), plus 4e-6 of the virtual
// part's and x0's magnitude (fp32 sums in another order, one FMA).
TEST(CudaKernels, MoeVirtualSlotsMatchCpu) {
  const int D = 2880, I = 64, k = 4, n = 3;
  const RandomExperts ex(D, I, 4);
  // Two parameter sets, so a kernel reading the wrong one fails.
  std::vector<float> aw0(2 * D, 0.0f), aw1(2 * D, 0.0f), ab = {0, 0};
  aw0[0] = 1, aw0[D + 1] = 1, aw1[0] = 1, aw1[D + 1] = 0.5f;
  const std::vector<float> ow0 = normal(D), ob0 = normal(D), ow1 = normal(D), ob1 = normal(D);
  const std::vector<vex_device_params> host_p = {{aw0.data(), ab.data(), ow0.data(), ob0.data()},
                                                 {aw1.data(), ab.data(), ow1.data(), ob1.data()}};
  Dev<float> daw0(aw0), daw1(aw1), dab(ab), dow0(ow0), dob0(ob0), dow1(ow1), dob1(ob1);
  Dev<vex_device_params> dp(std::vector<vex_device_params>{{daw0.p, dab.p, dow0.p, dob0.p},
                                                           {daw1.p, dab.p, dow1.p, dob1.p}});
  // Slots: 0-3 neural (experts reversed), 4 DSCR (set 1), 5 LTV (set 0, threshold 0.2),
  // 6 HOST (threshold 0.3), 7 HOST (none).
  std::vector<vex_slot> slots = {
      {VEX_SLOT_NEURAL, 3, 0, 0},           {VEX_SLOT_NEURAL, 2, 0, 0},
      {VEX_SLOT_NEURAL, 1, 0, 0},           {VEX_SLOT_NEURAL, 0, 0, 0},
      {VEX_SLOT_DEVICE, 1, 0, VEX_FN_DSCR}, {VEX_SLOT_DEVICE, 0, 0.2f, VEX_FN_LTV},
      {VEX_SLOT_HOST, 0, 0.3f, 0},          {VEX_SLOT_HOST, 0, 0, 1}};
  const std::vector<int> idx = {4, 0, 6, 7, 5, 6, 1, 2, 7, 4, 5, 3};
  const std::vector<float> wt = {0.4f, 0.3f,  0.2f,  0.1f,  0.5f,  0.35f,
                                 0.1f, 0.05f, 0.25f, 0.25f, 0.15f, 0.35f};
  auto xn = normal(size_t(n) * D);
  const auto x0 = normal(size_t(n) * D);
  for (int t = 0; t < n; ++t) xn[t * D] = 1.2e6f + t * 1e5f, xn[t * D + 1] = 1e6f;
  // The virtual part and its magnitude, per element.
  std::vector<float> virt(size_t(n) * D, 0.0f), mag(size_t(n) * D), y(D);
  for (int t = 0; t < n; ++t)
    for (int j = 0; j < k; ++j) {
      const vex_slot& s = slots[idx[t * k + j]];
      if (s.kind != VEX_SLOT_DEVICE || wt[t * k + j] < s.threshold) continue;
      device_expert(host_p[s.expert], s.function, &xn[t * D], D, y.data());
      for (int i = 0; i < D; ++i) virt[t * D + i] += wt[t * k + j] * y[i];
    }
  for (size_t i = 0; i < mag.size(); ++i) mag[i] = std::abs(virt[i]) + std::abs(x0[i]);

  Dev<float> dxn(xn), dwt(wt), args(size_t(n) * k * 2), sy(size_t(n) * k * D);
  Dev<uint16_t> xb(size_t(n) * D), hb(size_t(n) * k * I);
  Dev<int> didx(idx), off(slots.size() + 1), list(size_t(n) * k);
  Dev<int> pos(std::vector<int>{10, 11, 12}), seq(std::vector<int>{0, 2, 1}), count(1);
  Dev<vex_slot> dsl(slots);
  Dev<vex_trigger> tr(16);
  const cuda::VirtualSlots v{dp.p, args.p, 5, {pos.p, seq.p, 0}, {tr.p, count.p, 16}};
  const int E = static_cast<int>(slots.size());
  Dev<uint32_t> xf(size_t(n) * cuda::split_words(D)), hf(size_t(n) * k * cuda::split_words(I));
  for (const bool decode : {true, false}) {
    SCOPED_TRACE(decode ? "decode" : "grouped");
    Dev<float> dx(x0);
    CUDA_OK(cudaMemset(count.p, 0, sizeof(int)));
    if (decode) {
      CUDA_OK(cuda::split_rows(dxn.p, n, D, xf.p, 0));
      CUDA_OK(cuda::moe_gate_up(dxn.p, xf.p, didx.p, dsl.p, ex.weights(), v, n, k, 7.0f, hf.p, 0));
      CUDA_OK(cuda::moe_down(hf.p, didx.p, dwt.p, dsl.p, ex.weights(), v, n, k, dx.p, 0));
    } else {
      const cuda::MoeScratch scratch{off.p, list.p, sy.p, n * k, xb.p, hb.p};
      CUDA_OK(cuda::moe_grouped(dxn.p, didx.p, dwt.p, dsl.p, ex.weights(), v, n, k, E, 7.0f,
                                scratch, dx.p, 0));
    }
    const auto got = dx.get();
    const auto ref = ex.reference(xn, idx, wt, slots, x0, k, /*bf16_inputs=*/!decode);
    const auto [worst, scale] = worst_and_scale(got, ref, x0);  // scale: the neural part
    const double rel = decode ? 1e-5 : 1e-3;
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_NEAR(got[i], ref[i] + virt[i], rel * scale + 4e-6 * mag[i]) << i;
    // Expected triggers: t0 slot 7 (0.1), t1 slot 6 (0.35 >= 0.3), t2 slot 7 (0.25); t0 slot 6
    // (0.2 < 0.3) is silent.
    ASSERT_EQ(count.get()[0], 3);
    auto recs = tr.get();
    recs.resize(3);
    std::sort(recs.begin(), recs.end(), [](auto& a, auto& b) { return a.pos < b.pos; });
    const int want[3][3] = {{10, 0, 7}, {11, 2, 6}, {12, 1, 7}};  // pos, seq, slot
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(recs[i].pos, want[i][0]);
      EXPECT_EQ(recs[i].seq, want[i][1]);
      EXPECT_EQ(recs[i].slot, want[i][2]);
      EXPECT_EQ(recs[i].layer, 5);
    }
    EXPECT_FLOAT_EQ(recs[1].weight, 0.35f);
  }
}

// The tensor-core prefill path against expert_ffn with bf16 expert inputs (the one rounding
// the path adds). Products of bf16 values are exact in fp32; the MMA accumulates in fp32 in its
// own order, and a SwiGLU output can round to the other bf16 neighbour: 1e-3 of the largest
// contribution bounds both (measured 1.5e-4 at D = 2880). The kernels take 64 tokens of an
// expert per pass (16 or 32 when the experts average fewer than 16 or 32: batched decode
// steps): 300 tokens over 8 experts (~150 each) and 150 tokens all routed to the same 4 experts
// (a = 0: two full passes and a partial one) cross the large passes' edges, 24 tokens on 4 of 8
// experts the small ones', 50 tokens over 8 experts (200 pairs) the 32-token ones'. On sm_90
// the large passes run on wgmma (grouped_wide), of 128 tokens when the experts average 64 or
// more (the third, fourth and last three cases; the fourth's last passes have 22 tokens, which
// take the 64-column wgmma, and the last case's 300 tokens on each of 4 experts are two full
// passes and one of 44): at gpt-oss's D = I = 2880, 72 tokens over 8 experts take the 64-token
// passes and 80 over 4 the 128-token ones, with partial row tiles and 45 stages.
TEST(CudaKernels, MoeTensorCoresMatchCpu) {
  for (auto [D, I, E, n, a] : {std::tuple{2880, 2880, 32, 37, 3}, {64, 64, 8, 5, 3},
                               {256, 192, 8, 300, 3}, {128, 64, 8, 150, 0}, {128, 64, 8, 24, 0},
                               {128, 64, 8, 50, 3}, {2880, 2880, 8, 72, 3},
                               {2880, 2880, 4, 80, 3}, {128, 64, 8, 300, 0}}) {
    const int k = 4;
    const RandomExperts ex(D, I, E);
    const Routing r(n, k, E, a, 2, 0.1f, 0.2f);
    const auto xn = normal(size_t(n) * D), x0 = normal(size_t(n) * D);
    const auto ref = ex.reference(xn, r.idx, r.wt, r.slots, x0, k, /*bf16_inputs=*/true);
    Dev<uint16_t> xb(size_t(n) * D), hb(size_t(n) * k * I);
    Dev<float> dxn(xn), dx(x0), dwt(r.wt), sy(size_t(n) * k * D);
    Dev<int> didx(r.idx), off(E + 1), list(size_t(n) * k);
    Dev<vex_slot> dsl(r.slots);
    const cuda::MoeScratch scratch{off.p, list.p, sy.p, n * k, xb.p, hb.p};
    CUDA_OK(cuda::moe_grouped(dxn.p, didx.p, dwt.p, dsl.p, ex.weights(), {}, n, k, E, 7.0f, scratch,
                              dx.p, 0));
    const auto [worst, scale] = worst_and_scale(dx.get(), ref, x0);
    printf("tensor-core MoE, D=%d n=%d: worst %.3g of scale %.3g\n", D, n, worst, scale);
    EXPECT_LT(worst, 1e-3 * scale) << "D=" << D << " n=" << n;
  }
}

TEST(CudaKernels, ArgmaxNextAndAdvance) {
  const int V = 201088, rows = 4;
  auto logits = normal(size_t(rows) * V);
  logits[150000] = 50, logits[170000] = 50;  // a tie: the lower id wins (rows read in slices)
  logits[V + 7] = 60;                        // row 1: the first id but one
  logits[2 * size_t(V) + 25135] = logits[2 * size_t(V) + 25136] = 70;  // across a slice edge
  for (int i = 0; i < V; ++i) logits[3 * size_t(V) + i] = -INFINITY;  // row 3: token 0
  Dev<float> dl(logits);
  Dev<int32_t> out(rows);
  Dev<int> pos(std::vector<int>{41, 7, 0, 3});
  CUDA_OK(cuda::argmax_next(dl.p, V, rows, out.p, pos.p, 1, 0));
  const auto got = out.get();
  for (int r = 0; r < rows; ++r)
    EXPECT_EQ(got[r], argmax(std::span(logits).subspan(size_t(r) * V, V))) << r;
  EXPECT_EQ(got[0], 150000);
  EXPECT_EQ(got[1], 7);
  EXPECT_EQ(got[2], 25135);
  EXPECT_EQ(got[3], 0);
  EXPECT_EQ(pos.get(), (std::vector<int>{42, 8, 1, 4}));
}

// Sampling on the GPU draws what vex::Sampler draws: the same filters on the same weights and the
// same counter-based uniform. The two differ only in summation order (double) and in expf's last
// ulp, which move a boundary by ~1e-7 of a token's mass; a draw landing there is rare. Rows of
// 201,088 logits ~ N(0, 2) with planted ties at the top; 6 settings x 40 draws. Each row has its
// own config (a batch mixes requests): rows 0 and 1 two different settings, row 2 greedy (argmax,
// no draw).
TEST(CudaKernels, SampleNextMatchesSampler) {
  const int V = 201088, rows = 3, draws = 40;
  auto logits = normal(size_t(rows) * V, 2.0f);
  for (int r = 0; r < rows; ++r)  // ties at the largest logits (top-k / top-p boundaries)
    logits[size_t(r) * V + 1000] = logits[size_t(r) * V + 90000] = 9.0f,
                           logits[size_t(r) * V + 5] = logits[size_t(r) * V + 70000] = 8.5f;
  // Filters that bound the kept set gather a few candidates (kernels/cuda/sampling.cu); top-k
  // 3000 and top-p 0.999 keep more than fit, and take the whole-row path.
  const SamplingParams settings[] = {{0.7f, 0, 1.0f, 0.0f, 1},    {1.0f, 50, 1.0f, 0.0f, 2},
                                     {1.0f, 0, 0.9f, 0.0f, 3},    {0.8f, 40, 0.95f, 0.05f, 4},
                                     {1.3f, 0, 1.0f, 0.1f, 5},    {1.0f, 3, 1.0f, 0.0f, 6},
                                     {1.0f, 3000, 1.0f, 0.0f, 7}, {1.0f, 0, 0.999f, 0.0f, 8},
                                     {0.7f, 40, 0.9f, 0.0f, 9}};
  const int n_settings = sizeof settings / sizeof settings[0];
  Dev<float> dl(logits);
  int total = 0, same = 0;
  for (int si = 0; si < n_settings; ++si) {
    const SamplingParams row_params[rows] = {settings[si], settings[(si + 1) % n_settings],
                                             {0.0f, 0, 1.0f, 0.0f, 9}};
    std::vector<cuda::SamplingConfig> cfg;
    for (const SamplingParams& p : row_params)
      cfg.push_back({p.temperature, p.top_k, p.top_p, p.min_p, p.seed});
    Dev<cuda::SamplingConfig> dcfg(cfg);
    Dev<uint64_t> dd(std::vector<uint64_t>(rows, 0));
    Dev<int32_t> out(rows);
    Dev<int> pos(std::vector<int>(rows, 0));
    std::vector<Sampler> cpu;
    for (const SamplingParams& p : row_params) cpu.emplace_back(p);
    for (int i = 0; i < draws; ++i) {
      CUDA_OK(cuda::sample_next(dl.p, V, rows, dcfg.p, dd.p, out.p, pos.p, 1, 0));
      const auto got = out.get();
      for (int r = 0; r < rows; ++r) {
        const int32_t want = cpu[r].sample(std::span(logits).subspan(size_t(r) * V, V));
        if (r == 2) {
          EXPECT_EQ(got[r], want);  // greedy: exact
        } else {
          ++total, same += got[r] == want;
        }
      }
    }
    EXPECT_EQ(dd.get(), (std::vector<uint64_t>{draws, draws, 0}));
    EXPECT_EQ(pos.get(), std::vector<int>(rows, draws));
  }
  printf("GPU sampling: %d of %d draws equal to vex::Sampler's\n", same, total);
  EXPECT_GE(same, total - 3);
}

// A temperature so small that logit / T overflows (--temp 1e-38 emitted the last id forever
// before): the T -> 0 limit, greedy, without a draw, as vex::Sampler.
TEST(CudaKernels, TinyTemperatureIsGreedy) {
  const int V = 201088, rows = 2;
  auto logits = normal(size_t(rows) * V, 2.0f);
  logits[777] = 12.0f, logits[V + 150000] = 12.0f;
  const SamplingParams p{1e-38f, 0, 0.9f, 0.0f, 7};
  const cuda::SamplingConfig cfg{p.temperature, p.top_k, p.top_p, p.min_p, p.seed};
  Dev<float> dl(logits);
  Dev<cuda::SamplingConfig> dcfg(std::vector<cuda::SamplingConfig>(rows, cfg));
  Dev<uint64_t> dd(std::vector<uint64_t>(rows, 0));
  Dev<int32_t> out(rows);
  Dev<int> pos(std::vector<int>(rows, 0));
  CUDA_OK(cuda::sample_next(dl.p, V, rows, dcfg.p, dd.p, out.p, pos.p, 1, 0));
  EXPECT_EQ(out.get(), (std::vector<int32_t>{777, 150000}));
  EXPECT_EQ(dd.get(), std::vector<uint64_t>(rows, 0));
  EXPECT_EQ(pos.get(), std::vector<int>(rows, 1));
  Sampler cpu(p);
  EXPECT_EQ(cpu.sample(std::span(logits).subspan(0, V)), 777);
}

// Decode's spread router (router_scores) with the choice made in the gate-up kernel against
// router() then the gate-up kernel on its choice: the same normed input (fp32 and split form),
// logits, choices, weights and gate-up output, bit for bit; then the down kernel making the
// choice again against it reading idx and weight. A PRUNED slot has the largest logit;
// the second case forces one slot, the last two (the PRUNED one as well: chosen, at -inf); the
// kernels run an execution table other than the router's; E from 32 to 256. D = 2,880 holds a
// row in registers; 4,096 reads the rest after the wait and norms past the 3,072 elements held;
// E = 40 leaves a block part full. (Last in the file: it draws from the shared generator and
// moves no other test's draws.)
TEST(CudaKernels, RouterScoresThenGateUpChooses) {
  auto bits = [](const std::vector<float>& v) {
    std::vector<uint32_t> b(v.size());
    std::memcpy(b.data(), v.data(), v.size() * sizeof(float));
    return b;
  };
  for (const auto& [D, E, n, n_forced] : {std::tuple{2880, 32, 1, 0},
                                          {2880, 128, 3, 1},
                                          {4096, 40, 2, 0},
                                          {2880, 64, 1, 0},
                                          {2880, 256, 2, 2}}) {
    const int I = 64, k = 4;
    const RandomExperts ex(D, I, E);
    const auto x = normal(size_t(n) * D, 5);
    const auto g = normal_bf16(D), W = normal_bf16(size_t(E) * D, 0.05f), b = normal_bf16(E);
    std::vector<vex_slot> slots(E);
    for (int e = 0; e < E; ++e) slots[e] = {VEX_SLOT_NEURAL, uint32_t(E - 1 - e), 0, 0};
    std::vector<uint16_t> b_top = b;
    b_top[5] = f32_to_bf16(1e4f), slots[5].kind = VEX_SLOT_PRUNED;  // never chosen
    Dev<float> dx(x);
    Dev<uint16_t> dW(W), db(b_top), dg(g);
    // The kernels run a table where the odd neural slots are PRUNED (another GPU's experts, as
    // with experts split): the choice still comes from the router's table.
    std::vector<vex_slot> exec = slots;
    for (int e = 1; e < E; e += 2) exec[e].kind = VEX_SLOT_PRUNED;
    Dev<vex_slot> ds(slots), dex(exec);
    Dev<int> forced(std::vector<int>{E - 2, 5});  // the second one PRUNED: chosen, at -inf
    const size_t xfw = size_t(n) * cuda::split_words(D), hfw = size_t(n) * k * cuda::split_words(I);
    Dev<float> xn_a(size_t(n) * D), xn_b(size_t(n) * D), l_a(size_t(n) * E), l_b(size_t(n) * E);
    Dev<float> w_a(size_t(n) * k), w_b(size_t(n) * k), scores(size_t(n) * E);
    Dev<int> i_a(size_t(n) * k), i_b(size_t(n) * k);
    Dev<uint32_t> xf_a(xfw), xf_b(xfw), hf_a(hfw), hf_b(hfw);
    CUDA_OK(cuda::router(dx.p, dW.p, db.p, ds.p, n, D, E, k, i_a.p, w_a.p, l_a.p, 0, dg.p, 1e-5f,
                         xn_a.p, forced.p, n_forced, xf_a.p));
    CUDA_OK(
        cuda::moe_gate_up(xn_a.p, xf_a.p, i_a.p, dex.p, ex.weights(), {}, n, k, 7.0f, hf_a.p, 0));
    CUDA_OK(cuda::router_scores(dx.p, dW.p, db.p, ds.p, n, D, E, scores.p, l_b.p, 0, dg.p, 1e-5f,
                                xn_b.p, xf_b.p));
    CUDA_OK(cuda::moe_gate_up(xn_b.p, xf_b.p, i_b.p, dex.p, ex.weights(), {}, n, k, 7.0f, hf_b.p, 0,
                              {scores.p, ds.p, E, forced.p, n_forced, w_b.p}));
    const std::string at = "D=" + std::to_string(D) + " E=" + std::to_string(E);
    EXPECT_EQ(bits(xn_a.get()), bits(xn_b.get())) << at;
    EXPECT_EQ(xf_a.get(), xf_b.get()) << at;
    EXPECT_EQ(bits(l_a.get()), bits(l_b.get())) << at;
    const auto idx = i_b.get();
    EXPECT_EQ(i_a.get(), idx) << at;
    EXPECT_EQ(bits(w_a.get()), bits(w_b.get())) << at;
    EXPECT_EQ(hf_a.get(), hf_b.get()) << at;
    // The down kernel given the choice makes it again (before its wait) instead of reading idx
    // and weight: the same sums, bit for bit.
    const auto x0 = normal(size_t(n) * D, 9);
    Dev<float> y_a(x0), y_b(x0);
    CUDA_OK(cuda::moe_down(hf_a.p, i_a.p, w_a.p, dex.p, ex.weights(), {}, n, k, y_a.p, 0));
    CUDA_OK(cuda::moe_down(hf_b.p, nullptr, nullptr, dex.p, ex.weights(), {}, n, k, y_b.p, 0,
                           {scores.p, ds.p, E, forced.p, n_forced, nullptr}));
    EXPECT_EQ(bits(y_a.get()), bits(y_b.get())) << at;
    // Both choose with top_k.cuh: the choice against the CPU twin's on the same logits.
    const auto logits = l_b.get(), wt = w_b.get();
    const std::vector<int> fh = {E - 2, 5};
    for (int t = 0; t < n; ++t) {
      int ridx[4];
      float rw[4];
      std::copy(fh.begin(), fh.begin() + n_forced, ridx);
      router_topk_softmax(&logits[size_t(t) * E], E, k, ridx, rw, n_forced);
      for (int j = 0; j < k; ++j) {
        EXPECT_EQ(idx[t * k + j], ridx[j]) << at << " token " << t;
        EXPECT_NEAR(wt[t * k + j], rw[j], 1e-6f) << at << " token " << t;
        if (j >= n_forced) {
          EXPECT_NE(idx[t * k + j], 5) << at;
        }
      }
    }
  }
}

// The decode QKV GEMV with RoPE and the cache write in its epilogue (gemv_qkv_rope) against the
// GEMV then rope_kv: the same y (q rotated; k and v as projected) and the same cache, bit for bit
// (rope.cuh's shared arithmetic). 11 rows run as a group of 8 then 3 (the second group's rows
// from its own first); rows of two sequences, at positions past a sliding ring and not.
TEST(CudaKernels, GemvQkvRopeAsGemvThenRope) {
  const int Hq = 8, Hkv = 2, d = 64, K = 512, N = (Hq + 2 * Hkv) * d, KV = Hkv * d;
  const YarnParams yarn{150000, 32, 32, 1, 4096, false};
  std::vector<float> inv(d / 2);
  const float conc = yarn_inv_freq(yarn, d, inv.data());
  for (const int n : {1, 11})
    for (const int ring : {0, 160}) {
      const int slots = 400;
      std::vector<int> pos(n), seq(n);
      for (int t = 0; t < n; ++t) pos[t] = 37 * t + 5, seq[t] = t % 2;
      const auto x = normal(size_t(n) * K, 3);
      const auto g = normal_bf16(K), W = normal_bf16(size_t(N) * K, 0.05f), b = normal_bf16(N);
      Dev<float> dx(x), dinv(inv), y_a(size_t(n) * N), y_b(size_t(n) * N);
      Dev<uint16_t> dW(W), db(b), dg(g);
      Dev<int> dpos(pos), dseq(seq);
      Dev<uint16_t> k_a(size_t(2) * slots * KV), v_a(size_t(2) * slots * KV);
      Dev<uint16_t> k_b(size_t(2) * slots * KV), v_b(size_t(2) * slots * KV);
      const cuda::CacheRows rows{dpos.p, dseq.p, int64_t(slots) * KV};
      CUDA_OK(cuda::gemv_bf16(dx.p, dW.p, db.p, y_a.p, n, K, N, false, 0, dg.p, 1e-5f));
      const cuda::RopeKv rope_a{rows, dinv.p, conc, Hq, Hkv, d, ring, k_a.p, v_a.p};
      CUDA_OK(cuda::rope_kv(y_a.p, N, n, rope_a, 0));
      const cuda::RopeKv rope{rows, dinv.p, conc, Hq, Hkv, d, ring, k_b.p, v_b.p};
      CUDA_OK(cuda::gemv_qkv_rope(dx.p, dW.p, db.p, y_b.p, n, K, N, rope, 0, dg.p, 1e-5f));
      const std::string at = "n=" + std::to_string(n) + " ring=" + std::to_string(ring);
      const auto ya = y_a.get(), yb = y_b.get();
      ASSERT_EQ(ya.size(), yb.size());
      EXPECT_EQ(0, std::memcmp(ya.data(), yb.data(), ya.size() * sizeof(float))) << at;
      EXPECT_EQ(k_a.get(), k_b.get()) << at;
      EXPECT_EQ(v_a.get(), v_b.get()) << at;
    }
  // A head size the pairs do not tile, and a row count that is not the heads': refused.
  Dev<float> dx(8), dy(8);
  cuda::RopeKv bad{{nullptr, nullptr, 0}, nullptr, 1, 1, 0, 12, 0, nullptr, nullptr};
  EXPECT_EQ(cuda::gemv_qkv_rope(dx.p, nullptr, nullptr, dy.p, 1, 8, 12, bad, 0),
            cudaErrorInvalidValue);
}

// The decode attention's other head sizes: d = 128 takes two stages of 64-key tiles, the others
// four; d = 32 takes one x4 ldmatrix a key row, d = 64 two (AttentionWithSinksAndWindow).
TEST(CudaKernels, AttentionHeadSizes) {
  for (auto [Hq, Hkv, d, window] : {std::tuple{16, 2, 128, 0}, {16, 4, 32, 16}})
    check_attention(Hq, Hkv, d, window);
}

}  // namespace
}  // namespace vex
