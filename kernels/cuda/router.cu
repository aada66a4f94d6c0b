#include "kernels/cuda/common.cuh"
#include "kernels/cuda/router.cuh"
#include "kernels/cuda/split.cuh"
#include "kernels/cuda/top_k.cuh"

namespace vex::cuda {
namespace {

constexpr int kManyTokens = 256;         // from this many tokens a call, router_many_kernel
constexpr size_t kManySmem = 160 << 10;  // its rows' shared memory at most (D <= 5,120)
constexpr int kLoads = 3;                // 16-byte weight loads a lane has in flight together
constexpr int kPer = 3;  // elements of x a thread holds (rows longer than kPer * threads loop)

// The 8 weights wf (one 16-byte chunk) times the chunk's x (a: its first 4, b4: its last 4), in
// one order for both kernels.
__device__ __forceinline__ float dot8(const float* wf, float4 a, float4 b4) {
  return wf[0] * a.x + wf[1] * a.y + wf[2] * a.z + wf[3] * a.w + wf[4] * b4.x + wf[5] * b4.y +
         wf[6] * b4.z + wf[7] * b4.w;
}

// acc += row . xs over the 16-byte chunks c0, c0 + 32, ... (n of them) already loaded in v.
template <int n>
__device__ __forceinline__ void dot_chunks(const uint4* v, int c0, int chunks, const float* xs,
                                           float& acc) {
#pragma unroll
  for (int u = 0; u < n; ++u) {
    const int c = c0 + 32 * u;
    if (c >= chunks) break;
    float wf[8];
    bf16x8(v[u], wf);
    const float4* xv = reinterpret_cast<const float4*>(xs) + 2 * c;
    acc += dot8(wf, xv[0], xv[1]);
  }
}

template <int n>
__device__ __forceinline__ void load_chunks(const uint4* row, int c0, int chunks, uint4* v) {
#pragma unroll
  for (int u = 0; u < n; ++u)
    if (c0 + 32 * u < chunks) v[u] = __ldg(row + c0 + 32 * u);
}

// The router's input of one token normed into shared memory xs[D] (x itself without a gain), in
// one order of sums whatever the block's shape: the block plays the kNormThreads threads of
// router_kernel, each warp kPlays of its warps (warp v = w * kPlays + p holding
// elements v * 32 + lane + u * kNormThreads in xv[p][u], the rest of the row summed in a loop),
// whose partial sums meet in part[] in warp order. So router_kernel and router_scores_kernel
// write the same xn bit for bit, and the CPU twin's rounding: (x * r) * g.
constexpr int kNormThreads = 1024;
template <int kPlays>
__device__ __forceinline__ void load_gain(const uint16_t* gain, int D, float (&gv)[kPlays][kPer]) {
  const int w = threadIdx.x / 32, lane = threadIdx.x % 32;
#pragma unroll
  for (int p = 0; p < kPlays; ++p)
#pragma unroll
    for (int u = 0; u < kPer; ++u) {
      const int i = (w * kPlays + p) * 32 + lane + u * kNormThreads;
      gv[p][u] = gain && i < D ? bf16(__ldg(gain + i)) : 1.0f;
    }
}
template <int kPlays>
__device__ __forceinline__ void norm_to_shared(const float* xt, int D, const uint16_t* gain,
                                               float eps, const float (&gv)[kPlays][kPer],
                                               float* part, float* xs) {
  const int w = threadIdx.x / 32, lane = threadIdx.x % 32;
  float xv[kPlays][kPer];
#pragma unroll
  for (int p = 0; p < kPlays; ++p)  // all of a thread's loads of x in flight at once
#pragma unroll
    for (int u = 0; u < kPer; ++u) {
      const int i = (w * kPlays + p) * 32 + lane + u * kNormThreads;
      xv[p][u] = i < D ? xt[i] : 0.0f;
    }
  float r = 1.0f;
  if (gain) {
#pragma unroll
    for (int p = 0; p < kPlays; ++p) {
      const int v = w * kPlays + p;
      float ss = 0;
#pragma unroll
      for (int u = 0; u < kPer; ++u) ss += xv[p][u] * xv[p][u];
      for (int i = v * 32 + lane + kPer * kNormThreads; i < D; i += kNormThreads)
        ss += xt[i] * xt[i];
      ss = warp_sum(ss);
      if (lane == 0) part[v] = ss;
    }
    __syncthreads();
    float total = 0;
    for (int i = 0; i < kNormThreads / 32; ++i) total += part[i];
    r = rsqrtf(total / D + eps);
  }
#pragma unroll
  for (int p = 0; p < kPlays; ++p)
#pragma unroll
    for (int u = 0; u < kPer; ++u) {
      const int i = (w * kPlays + p) * 32 + lane + u * kNormThreads;
      if (i < D) xs[i] = gain ? (xv[p][u] * r) * gv[p][u] : xv[p][u];
    }
  for (int i = kPer * kNormThreads + threadIdx.x; i < D; i += blockDim.x)
    xs[i] = gain ? (xt[i] * r) * bf16(gain[i]) : xt[i];
  __syncthreads();
}

// A token a block, for a few tokens (decode: each block's chain of loads is the step's).
constexpr int kThreads = kNormThreads;  // router_kernel's block
__global__ void __launch_bounds__(kThreads)
    router_kernel(const float* __restrict__ x, const uint16_t* __restrict__ W,
                  const uint16_t* __restrict__ b, const vex_slot* __restrict__ slots, int D, int E,
                  int k, int* __restrict__ idx, float* __restrict__ weight,
                  float* __restrict__ logits, const uint16_t* __restrict__ gain, float eps,
                  float* __restrict__ xn_out, const int* __restrict__ forced, int n_forced,
                  uint32_t* __restrict__ xf_out) {
  const int t = blockIdx.x, w = threadIdx.x / 32, lane = threadIdx.x % 32, chunks = D / 8;
  // What does not depend on the kernel before is asked for before waiting on it (pdl_prologue):
  // each warp's first row (its start in registers, the rest into L2), the norm's gain and (warp
  // 0) the slots that cannot be chosen. These loads then overlap that kernel's tail, and the
  // chain after the wait is one read of x, the sums, and the remaining weight loads.
  uint4 first[kLoads];
  if (w < E) {
    const uint4* row = reinterpret_cast<const uint4*>(W + static_cast<int64_t>(w) * D);
    load_chunks<kLoads>(row, lane, chunks, first);
    for (int c = lane + 32 * kLoads; c < chunks; c += 32)  // the rest of the row into L2
      asm volatile("prefetch.global.L2 [%0];" ::"l"(row + c));
  }
  float g[1][kPer];
  load_gain<1>(gain, D, g);
  // Top-k bookkeeping of warp 0: lane holds slots lane, lane + 32, ... (E <= 256); bit i set:
  // slot lane + 32 i already chosen or pruned.
  uint32_t taken = 0;
  if (w == 0) taken = pruned_bits(slots, E, lane);
  pdl_prologue();
  const float* xt = x + static_cast<int64_t>(t) * D;
  __shared__ float s[kMaxE];
  __shared__ float part[kThreads / 32];
  extern __shared__ float xs[];  // [D]: the router's input, normed when gain is given
  norm_to_shared<1>(xt, D, gain, eps, g, part, xs);
  if (gain)
    for (int i = threadIdx.x; i < D; i += kThreads) xn_out[static_cast<int64_t>(t) * D + i] = xs[i];
  if (xf_out) {  // the MoE decode kernels' input (split.cuh)
    uint16_t* o = reinterpret_cast<uint16_t*>(xf_out + static_cast<int64_t>(t) * split_words(D));
    for (int i = threadIdx.x; i < D; i += kThreads) store_split(xs[i], i, D, o);
  }
  for (int e = w; e < E; e += kThreads / 32) {
    // 16-byte loads of 8 weights, kLoads in flight per lane; the block's 32 warps cover 32 rows.
    const uint4* row = reinterpret_cast<const uint4*>(W + static_cast<int64_t>(e) * D);
    float acc = 0;
    int c0 = lane;
    if (e == w) dot_chunks<kLoads>(first, c0, chunks, xs, acc), c0 += 32 * kLoads;
    for (; c0 < chunks; c0 += 32 * kLoads) {
      uint4 next[kLoads];
      load_chunks<kLoads>(row, c0, chunks, next);
      dot_chunks<kLoads>(next, c0, chunks, xs, acc);
    }
    acc = warp_sum(acc) + bf16(b[e]);
    if (lane == 0) {
      s[e] = acc;
      // As the CPU engine shows them to observers: slots that cannot be chosen at -inf.
      if (logits)
        logits[static_cast<int64_t>(t) * E + e] =
            slots[e].kind == VEX_SLOT_PRUNED ? -INFINITY : acc;
    }
  }
  __syncthreads();
  if (w == 0) top_k(s, slots, E, k, forced, n_forced, taken, t, idx, weight);
}

// kTok tokens a block, for many (a prefill pass): a token a block read the E weight rows from L2
// once per token, 189 MB a 1,024-token pass of gpt-oss-20b (1.23 ms a pass; bench/NOTES.md).
// Warp w norms token t0 + w into shared memory (each row in two halves: the first 4 floats of
// every 8-float chunk, then the last 4, so a warp's 16-byte reads of consecutive chunks meet no
// bank twice); then each warp takes kRows rows at a time (w, w + kTok, ...) for all kTok tokens,
// a lane's chunk of x read once for the kRows rows and each weight chunk once for the kTok
// tokens, kGroup chunks' loads in flight together (every token's sum in router_kernel's order);
// then warp w chooses token t0 + w's top k. The norm sums a row in a warp (router_kernel: in the
// block).
constexpr int kTok = 8, kRows = 4, kGroup = 2, kQuads = 12;
__global__ void __launch_bounds__(32 * kTok)
    router_many_kernel(const float* __restrict__ x, const uint16_t* __restrict__ W,
                       const uint16_t* __restrict__ b, const vex_slot* __restrict__ slots, int n,
                       int D, int E, int k, int* __restrict__ idx, float* __restrict__ weight,
                       float* __restrict__ logits, const uint16_t* __restrict__ gain, float eps,
                       float* __restrict__ xn_out, const int* __restrict__ forced, int n_forced,
                       uint32_t* __restrict__ xf_out) {
  pdl_prologue();
  const int w = threadIdx.x / 32, lane = threadIdx.x % 32, chunks = D / 8, quads = D / 4;
  const int t0 = blockIdx.x * kTok, t = t0 + w;
  extern __shared__ float4 xs4[];  // [kTok][quads]: chunk c's halves at c and chunks + c
  __shared__ float s[kTok][kMaxE];
  float4* xw = xs4 + static_cast<int64_t>(w) * quads;
  auto half_at = [&](int q) { return q % 2 * chunks + q / 2; };  // where float4 q of the row goes
  if (t < n) {
    const float4* xt = reinterpret_cast<const float4*>(x + static_cast<int64_t>(t) * D);
    float r = 1.0f;
    if (gain) {
      float ss = 0;
      for (int q0 = lane; q0 < quads; q0 += 32 * kQuads) {
        float4 v[kQuads];
#pragma unroll
        for (int u = 0; u < kQuads; ++u)
          if (q0 + 32 * u < quads) v[u] = xt[q0 + 32 * u];
#pragma unroll
        for (int u = 0; u < kQuads; ++u)
          if (q0 + 32 * u < quads)
            ss += v[u].x * v[u].x + v[u].y * v[u].y + v[u].z * v[u].z + v[u].w * v[u].w;
      }
      r = rsqrtf(warp_sum(ss) / D + eps);
    }
    // (x * r) * g, as the CPU twin rounds it; x itself without a gain. The row is in L1 now.
    float4* xo = reinterpret_cast<float4*>(xn_out + static_cast<int64_t>(t) * D);
    for (int q0 = lane; q0 < quads; q0 += 32 * kQuads) {
      float4 v[kQuads];
      uint2 gq[kQuads];
#pragma unroll
      for (int u = 0; u < kQuads; ++u)
        if (q0 + 32 * u < quads) {
          v[u] = xt[q0 + 32 * u];
          if (gain) gq[u] = __ldg(reinterpret_cast<const uint2*>(gain) + q0 + 32 * u);
        }
#pragma unroll
      for (int u = 0; u < kQuads; ++u) {
        const int q = q0 + 32 * u;
        if (q >= quads) break;
        if (gain) {
          v[u].x = (v[u].x * r) * bf16(gq[u].x & 0xFFFF);
          v[u].y = (v[u].y * r) * bf16(gq[u].x >> 16);
          v[u].z = (v[u].z * r) * bf16(gq[u].y & 0xFFFF);
          v[u].w = (v[u].w * r) * bf16(gq[u].y >> 16);
          xo[q] = v[u];
        }
        xw[half_at(q)] = v[u];
      }
    }
    __syncwarp();
    if (xf_out) {  // the MoE decode kernels' input (split.cuh)
      uint16_t* o = reinterpret_cast<uint16_t*>(xf_out + static_cast<int64_t>(t) * split_words(D));
      const float* xf = reinterpret_cast<const float*>(xw);
      for (int i = lane; i < D; i += 32) store_split(xf[half_at(i / 4) * 4 + i % 4], i, D, o);
    }
  } else {
    for (int q = lane; q < quads; q += 32) xw[q] = make_float4(0, 0, 0, 0);
  }
  __syncthreads();
  for (int e0 = w; e0 < E; e0 += kTok * kRows) {
    float acc[kRows][kTok] = {};
    for (int c0 = lane; c0 < chunks; c0 += 32 * kGroup) {
      uint4 v[kRows][kGroup];
#pragma unroll
      for (int r = 0; r < kRows; ++r)
        if (e0 + kTok * r < E)
          load_chunks<kGroup>(
              reinterpret_cast<const uint4*>(W) + static_cast<int64_t>(e0 + kTok * r) * chunks, c0,
              chunks, v[r]);
#pragma unroll
      for (int u = 0; u < kGroup; ++u) {
        const int c = c0 + 32 * u;
        if (c >= chunks) break;
        float4 lo[kTok], hi[kTok];
#pragma unroll
        for (int j = 0; j < kTok; ++j)
          lo[j] = xs4[j * quads + c], hi[j] = xs4[j * quads + chunks + c];
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
          if (e0 + kTok * r >= E) break;
          float wf[8];
          bf16x8(v[r][u], wf);
#pragma unroll
          for (int j = 0; j < kTok; ++j) acc[r][j] += dot8(wf, lo[j], hi[j]);
        }
      }
    }
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const int e = e0 + kTok * r;
      if (e >= E) break;
      const float be = bf16(b[e]);
#pragma unroll
      for (int j = 0; j < kTok; ++j) {
        const float v = warp_sum(acc[r][j]) + be;
        if (lane == 0) {
          s[j][e] = v;
          if (logits && t0 + j < n)
            logits[static_cast<int64_t>(t0 + j) * E + e] =
                slots[e].kind == VEX_SLOT_PRUNED ? -INFINITY : v;
        }
      }
    }
  }
  __syncthreads();
  if (t < n)
    top_k(s[w], slots, E, k, forced, n_forced, pruned_bits(slots, E, lane), t, idx, weight);
}

// The decode router spread over SMs (router_scores): grid (ceil(E / kScoreWarps), n), warp w of
// block b scores slot b * kScoreWarps + w of token blockIdx.y. A warp holds its whole row in
// registers from before the wait on the kernel before (kHold chunks a lane: D <= 3,072 in one
// round), so what follows the wait is x, the norm, one dot product and a store; the top k is the
// gate-up kernel's (moe.cu). Every block norms the whole token (norm_to_shared, a warp playing 4
// of router_kernel's), so xn, xf and the scores are router_kernel's bit for bit; block b
// writes its share of xn and xf.
constexpr int kScoreWarps = 8, kHold = 12;
constexpr int kPlays = kNormThreads / (32 * kScoreWarps);  // router_kernel warps a warp plays
__global__ void __launch_bounds__(32 * kScoreWarps)
    router_scores_kernel(const float* __restrict__ x, const uint16_t* __restrict__ W,
                         const uint16_t* __restrict__ b, const vex_slot* __restrict__ slots, int D,
                         int E, float* __restrict__ scores, float* __restrict__ logits,
                         const uint16_t* __restrict__ gain, float eps, float* __restrict__ xn_out,
                         uint32_t* __restrict__ xf_out) {
  const int t = blockIdx.y, w = threadIdx.x / 32, lane = threadIdx.x % 32, chunks = D / 8;
  const int e = blockIdx.x * kScoreWarps + w;
  const uint4* row = reinterpret_cast<const uint4*>(W + static_cast<int64_t>(min(e, E - 1)) * D);
  uint4 held[kHold];
  if (e < E) load_chunks<kHold>(row, lane, chunks, held);
  float gv[kPlays][kPer];
  load_gain<kPlays>(gain, D, gv);
  pdl_prologue();
  __shared__ float part[kNormThreads / 32];
  extern __shared__ float xs[];  // [D]: the router's input, normed when gain is given
  norm_to_shared<kPlays>(x + static_cast<int64_t>(t) * D, D, gain, eps, gv, part, xs);
  const int share = (D + gridDim.x - 1) / gridDim.x, i0 = blockIdx.x * share;
  const int i1 = min(D, i0 + share);
  if (gain)
    for (int i = i0 + threadIdx.x; i < i1; i += blockDim.x)
      xn_out[static_cast<int64_t>(t) * D + i] = xs[i];
  if (xf_out) {  // the MoE decode kernels' input (split.cuh)
    uint16_t* o = reinterpret_cast<uint16_t*>(xf_out + static_cast<int64_t>(t) * split_words(D));
    for (int i = i0 + threadIdx.x; i < i1; i += blockDim.x) store_split(xs[i], i, D, o);
  }
  if (e >= E) return;
  float acc = 0;
  dot_chunks<kHold>(held, lane, chunks, xs, acc);
  for (int c0 = lane + 32 * kHold; c0 < chunks; c0 += 32 * kLoads) {
    uint4 next[kLoads];
    load_chunks<kLoads>(row, c0, chunks, next);
    dot_chunks<kLoads>(next, c0, chunks, xs, acc);
  }
  acc = warp_sum(acc) + bf16(b[e]);
  if (lane == 0) {
    scores[static_cast<int64_t>(t) * E + e] = acc;
    if (logits)
      logits[static_cast<int64_t>(t) * E + e] = slots[e].kind == VEX_SLOT_PRUNED ? -INFINITY : acc;
  }
}

}  // namespace

cudaError_t router(const float* x, const uint16_t* W, const uint16_t* b, const vex_slot* slots,
                   int n, int D, int E, int k, int* idx, float* weight, float* logits,
                   cudaStream_t stream, const uint16_t* norm_gain, float eps, float* xn_out,
                   const int* forced, int n_forced, uint32_t* xf_out) {
  if (n <= 0) return cudaSuccess;
  if (E > kMaxE || k > kMaxK || k > E || D % 8 != 0) return cudaErrorInvalidValue;
  if (xf_out && D % 32 != 0) return cudaErrorInvalidValue;
  if (norm_gain && !xn_out) return cudaErrorInvalidValue;
  if (n_forced < 0 || n_forced > k || (n_forced > 0 && !forced)) return cudaErrorInvalidValue;
  // Many tokens take router_many_kernel while its kTok rows fit in shared memory (gpt-oss's D =
  // 2,880: 92 KB); a wider model's tokens take a block each.
  const size_t many_smem = size_t(kTok) * D * sizeof(float);
  if (n >= kManyTokens && many_smem <= kManySmem) {
    static const cudaError_t allowed = allow_smem(router_many_kernel);
    if (allowed != cudaSuccess) return allowed;
    launch_pdl(router_many_kernel, (n + kTok - 1) / kTok, 32 * kTok, many_smem, stream, x, W, b,
               slots, n, D, E, k, idx, weight, logits, norm_gain, eps, xn_out, forced, n_forced,
               xf_out);
  } else
    launch_pdl(router_kernel, n, kThreads, D * sizeof(float), stream, x, W, b, slots, D, E, k,
               idx, weight, logits, norm_gain, eps, xn_out, forced, n_forced, xf_out);
  return cudaGetLastError();
}

cudaError_t router_scores(const float* x, const uint16_t* W, const uint16_t* b,
                          const vex_slot* slots, int n, int D, int E, float* scores, float* logits,
                          cudaStream_t stream, const uint16_t* norm_gain, float eps, float* xn_out,
                          uint32_t* xf_out) {
  if (n <= 0) return cudaSuccess;
  if (E > kMaxE || E <= 0 || D % 8 != 0 || !scores) return cudaErrorInvalidValue;
  if (xf_out && D % 32 != 0) return cudaErrorInvalidValue;
  if (norm_gain && !xn_out) return cudaErrorInvalidValue;
  launch_pdl(router_scores_kernel, dim3((E + kScoreWarps - 1) / kScoreWarps, n), 32 * kScoreWarps,
             D * sizeof(float), stream, x, W, b, slots, D, E, scores, logits, norm_gain, eps,
             xn_out, xf_out);
  return cudaGetLastError();
}

}  // namespace vex::cuda
