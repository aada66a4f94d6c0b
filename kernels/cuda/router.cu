#include "kernels/cuda/common.cuh"
#include "kernels/cuda/router.cuh"
#include "kernels/cuda/split.cuh"

namespace vex::cuda {
namespace {

constexpr int kMaxE = 256, kMaxK = 8;
constexpr int kManyTokens = 256;  // from this many tokens a call, blocks of 256 threads
constexpr int kLoads = 3;         // 16-byte weight loads a lane has in flight together
constexpr int kPer = 3;  // elements of x a thread holds (rows longer than kPer * threads loop)

// acc += row . xs over the 16-byte chunks c0, c0 + 32, ... (kLoads of them) already loaded in v.
__device__ __forceinline__ void dot_chunks(const uint4* v, int c0, int chunks, const float* xs,
                                           float& acc) {
#pragma unroll
  for (int u = 0; u < kLoads; ++u) {
    const int c = c0 + 32 * u;
    if (c >= chunks) break;
    float wf[8];
    bf16x8(v[u], wf);
    const float4* xv = reinterpret_cast<const float4*>(xs) + 2 * c;
    const float4 a = xv[0], b4 = xv[1];
    acc += wf[0] * a.x + wf[1] * a.y + wf[2] * a.z + wf[3] * a.w + wf[4] * b4.x + wf[5] * b4.y +
           wf[6] * b4.z + wf[7] * b4.w;
  }
}

__device__ __forceinline__ void load_chunks(const uint4* row, int c0, int chunks, uint4* v) {
#pragma unroll
  for (int u = 0; u < kLoads; ++u)
    if (c0 + 32 * u < chunks) v[u] = __ldg(row + c0 + 32 * u);
}

// kThreads: 1,024 for a few tokens (decode: each block's chain of loads is the step's), 256 for
// many (a prefill pass: its 1,024 blocks of 1,024 threads ran in ~4 waves; with 256 threads the
// router of a 1,024-token pass of gpt-oss-20b took 1.23 ms instead of 1.78, with 128 1.20, with
// 512 1.49: bench/NOTES.md, session 9).
template <int kThreads>
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
    load_chunks(row, lane, chunks, first);
    for (int c = lane + 32 * kLoads; c < chunks; c += 32)  // the rest of the row into L2
      asm volatile("prefetch.global.L2 [%0];" ::"l"(row + c));
  }
  float g[kPer];
#pragma unroll
  for (int u = 0; u < kPer; ++u) {
    const int i = threadIdx.x + u * kThreads;
    g[u] = gain && i < D ? bf16(__ldg(gain + i)) : 1.0f;
  }
  // Top-k bookkeeping of warp 0: lane holds slots lane, lane + 32, ... (E <= 256); bit i set:
  // slot lane + 32 i already chosen or pruned (PRUNED slots never compete).
  uint32_t taken = 0;
  if (w == 0)
    for (int i = 0; lane + 32 * i < E; ++i)
      if (slots[lane + 32 * i].kind == VEX_SLOT_PRUNED) taken |= 1u << i;
  pdl_prologue();
  const float* xt = x + static_cast<int64_t>(t) * D;
  __shared__ float s[kMaxE];
  __shared__ float part[kThreads / 32];
  extern __shared__ float xs[];  // [D]: the router's input, normed when gain is given
  float xi[kPer], ss = 0;
#pragma unroll
  for (int u = 0; u < kPer; ++u) {  // all of a thread's loads of x in flight at once
    const int i = threadIdx.x + u * kThreads;
    xi[u] = i < D ? xt[i] : 0.0f;
  }
#pragma unroll
  for (int u = 0; u < kPer; ++u) ss += xi[u] * xi[u];
  for (int i = threadIdx.x + kPer * kThreads; i < D; i += kThreads) ss += xt[i] * xt[i];
  float r = 1.0f;
  if (gain) {
    ss = warp_sum(ss);
    if (lane == 0) part[w] = ss;
    __syncthreads();
    float total = 0;
    for (int i = 0; i < kThreads / 32; ++i) total += part[i];
    r = rsqrtf(total / D + eps);
  }
  // (x * r) * g, as the CPU twin rounds it; x itself without a gain.
#pragma unroll
  for (int u = 0; u < kPer; ++u) {
    const int i = threadIdx.x + u * kThreads;
    if (i < D) xs[i] = gain ? (xi[u] * r) * g[u] : xi[u];
  }
  for (int i = threadIdx.x + kPer * kThreads; i < D; i += kThreads)
    xs[i] = gain ? (xt[i] * r) * bf16(gain[i]) : xt[i];
  if (gain)
    for (int i = threadIdx.x; i < D; i += kThreads) xn_out[static_cast<int64_t>(t) * D + i] = xs[i];
  __syncthreads();
  if (xf_out) {  // the MoE decode kernels' input (split.cuh)
    uint16_t* o = reinterpret_cast<uint16_t*>(xf_out + static_cast<int64_t>(t) * split_words(D));
    for (int i = threadIdx.x; i < D; i += kThreads) store_split(xs[i], i, D, o);
  }
  for (int e = w; e < E; e += kThreads / 32) {
    // 16-byte loads of 8 weights, kLoads in flight per lane; the block's 32 warps cover 32 rows.
    const uint4* row = reinterpret_cast<const uint4*>(W + static_cast<int64_t>(e) * D);
    float acc = 0;
    int c0 = lane;
    if (e == w) dot_chunks(first, c0, chunks, xs, acc), c0 += 32 * kLoads;
    for (; c0 < chunks; c0 += 32 * kLoads) {
      uint4 next[kLoads];
      load_chunks(row, c0, chunks, next);
      dot_chunks(next, c0, chunks, xs, acc);
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
  if (w != 0) return;
  // Top-k by k rounds of a warp-wide arg-max (ties to the lower slot id, as the CPU twin).
  float chosen_logit[kMaxK];
  int chosen[kMaxK];
  for (int r = 0; r < k; ++r) {
    float best = -INFINITY;
    int at = 0x7FFFFFFF;
    if (r < n_forced) {  // forced slots first (vexprobe --force), in the order given
      at = forced[r], best = slots[at].kind == VEX_SLOT_PRUNED ? -INFINITY : s[at];
    } else {
      for (int i = 0; lane + 32 * i < E; ++i)
        if (!(taken >> i & 1) && (s[lane + 32 * i] > best || at == 0x7FFFFFFF))
          best = s[lane + 32 * i], at = lane + 32 * i;
#pragma unroll
      for (int off = 16; off > 0; off /= 2) {
        const float ob = __shfl_xor_sync(0xffffffffu, best, off);
        const int oa = __shfl_xor_sync(0xffffffffu, at, off);
        if (ob > best || (ob == best && oa < at)) best = ob, at = oa;
      }
    }
    chosen[r] = at, chosen_logit[r] = best;
    if (at % 32 == lane) taken |= 1u << (at / 32);
  }
  if (lane != 0) return;
  float m = chosen_logit[0];  // a forced slot may rank below the others
  for (int i = 1; i < k; ++i) m = fmaxf(m, chosen_logit[i]);
  float den = 0;
  for (int i = 0; i < k; ++i) den += expf(chosen_logit[i] - m);
  for (int i = 0; i < k; ++i) {
    idx[t * k + i] = chosen[i];
    weight[t * k + i] = expf(chosen_logit[i] - m) / den;
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
  if (n >= kManyTokens)
    launch_pdl(router_kernel<256>, n, 256, D * sizeof(float), stream, x, W, b, slots, D, E, k, idx,
               weight, logits, norm_gain, eps, xn_out, forced, n_forced, xf_out);
  else
    launch_pdl(router_kernel<1024>, n, 1024, D * sizeof(float), stream, x, W, b, slots, D, E, k,
               idx, weight, logits, norm_gain, eps, xn_out, forced, n_forced, xf_out);
  return cudaGetLastError();
}

}  // namespace vex::cuda
