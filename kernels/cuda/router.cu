#include "kernels/cuda/common.cuh"
#include "kernels/cuda/router.cuh"

namespace vex::cuda {
namespace {

constexpr int kThreads = 1024, kMaxE = 256, kMaxK = 8;

__global__ void router_kernel(const float* __restrict__ x, const uint16_t* __restrict__ W,
                              const uint16_t* __restrict__ b, const vex_slot* __restrict__ slots,
                              int D, int E, int k, int* __restrict__ idx,
                              float* __restrict__ weight, float* __restrict__ logits,
                              const uint16_t* __restrict__ gain, float eps,
                              float* __restrict__ xn_out, const int* __restrict__ forced,
                              int n_forced) {
  pdl_prologue();
  const int t = blockIdx.x, w = threadIdx.x / 32, lane = threadIdx.x % 32;
  const float* xt = x + static_cast<int64_t>(t) * D;
  __shared__ float s[kMaxE];
  __shared__ float part[kThreads / 32];
  extern __shared__ float xs[];  // [D]: the router's input, normed when gain is given
  float ss = 0;
  for (int i = threadIdx.x; i < D; i += kThreads) xs[i] = xt[i], ss += xt[i] * xt[i];
  if (gain) {
    ss = warp_sum(ss);
    if (lane == 0) part[w] = ss;
    __syncthreads();
    float total = 0;
    for (int i = 0; i < kThreads / 32; ++i) total += part[i];
    const float r = rsqrtf(total / D + eps);
    for (int i = threadIdx.x; i < D; i += kThreads) {
      xs[i] = (xs[i] * r) * bf16(gain[i]);  // (x * r) * g, as the CPU twin rounds it
      xn_out[static_cast<int64_t>(t) * D + i] = xs[i];
    }
  }
  __syncthreads();
  for (int e = w; e < E; e += kThreads / 32) {
    // 16-byte loads of 8 weights; the block's 32 warps cover 32 rows at once.
    const uint4* row = reinterpret_cast<const uint4*>(W + static_cast<int64_t>(e) * D);
    float acc = 0;
    for (int c = lane; c < D / 8; c += 32) {
      float wf[8];
      bf16x8(__ldg(row + c), wf);
      const float4* xv = reinterpret_cast<const float4*>(xs) + 2 * c;
      const float4 a = xv[0], b4 = xv[1];
      acc += wf[0] * a.x + wf[1] * a.y + wf[2] * a.z + wf[3] * a.w + wf[4] * b4.x + wf[5] * b4.y +
             wf[6] * b4.z + wf[7] * b4.w;
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
  // Top-k by k rounds of a warp-wide arg-max (ties to the lower slot id, as the CPU twin);
  // PRUNED slots never compete. Each lane holds slots lane, lane + 32, ... (E <= 256).
  uint32_t taken = 0;  // bit i: slot lane + 32 i already chosen or pruned
  for (int i = 0; lane + 32 * i < E; ++i)
    if (slots[lane + 32 * i].kind == VEX_SLOT_PRUNED) taken |= 1u << i;
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
                   const int* forced, int n_forced) {
  if (n <= 0) return cudaSuccess;
  if (E > kMaxE || k > kMaxK || k > E || D % 8 != 0) return cudaErrorInvalidValue;
  if (norm_gain && !xn_out) return cudaErrorInvalidValue;
  if (n_forced < 0 || n_forced > k || (n_forced > 0 && !forced)) return cudaErrorInvalidValue;
  launch_pdl(router_kernel, n, kThreads, D * sizeof(float), stream,
      x, W, b, slots, D, E, k, idx, weight,
                                                            logits, norm_gain, eps, xn_out,
                                                            forced, n_forced);
  return cudaGetLastError();
}

}  // namespace vex::cuda
