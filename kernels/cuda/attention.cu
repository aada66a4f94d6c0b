#include "kernels/cuda/attention.cuh"
#include "kernels/cuda/common.cuh"

namespace vex::cuda {
namespace {

// Block (token, query head), one warp: decode spreads the 64 heads over 64 SMs (the 8 heads
// of a KV group read the same K/V rows, which stay in L2). Within a warp each lane scores one key
// of a 32-key tile (a full d-wide dot product), the tile updates the online softmax, and the values
// are accumulated with lanes over dimensions. The sink starts the running max with its own term in
// the sum (§7.5).
template <int D>
__global__ void attention_kernel(const float* __restrict__ q, int q_stride,
                                 const uint16_t* __restrict__ kc, const uint16_t* __restrict__ vc,
                                 const uint16_t* __restrict__ sinks, float* __restrict__ out,
                                 const int* __restrict__ pos0, int window, int ring, int n_heads,
                                 int n_kv_heads, float sm_scale) {
  constexpr int kPer = (D + 31) / 32;  // output dims per lane
  const int t = blockIdx.x, h = blockIdx.y, lane = threadIdx.x;
  const int g = h / (n_heads / n_kv_heads), kv_dim = n_kv_heads * D;
  const int p = *pos0 + t, lo = window > 0 ? max(0, p - window + 1) : 0;
  __shared__ float qh[D];
  for (int c = lane; c < D; c += 32) qh[c] = q[static_cast<int64_t>(t) * q_stride + h * D + c];
  __syncwarp();
  auto slot = [&](int j) { return static_cast<int64_t>(ring > 0 ? j % ring : j) * kv_dim + g * D; };

  float m = bf16(sinks[h]), l = 1.0f;
  float acc[kPer] = {};
  for (int j0 = lo; j0 <= p; j0 += 32) {
    const int j = j0 + lane;
    float s = -INFINITY;
    if (j <= p) {
      const uint4* kr = reinterpret_cast<const uint4*>(kc + slot(j));
      float dot = 0;
#pragma unroll
      for (int c = 0; c < D / 8; ++c) {
        float kf[8];
        bf16x8(kr[c], kf);
#pragma unroll
        for (int e = 0; e < 8; ++e) dot += qh[8 * c + e] * kf[e];
      }
      s = dot * sm_scale;
    }
    const float m_new = fmaxf(m, warp_max(s));
    const float scale = expf(m - m_new);
    const float pj = j <= p ? expf(s - m_new) : 0.0f;
    l = l * scale + warp_sum(pj);
#pragma unroll
    for (int i = 0; i < kPer; ++i) acc[i] *= scale;
    const int last = min(31, p - j0);
#pragma unroll 8
    for (int jj = 0; jj <= last; ++jj) {
      const float pw = __shfl_sync(0xffffffffu, pj, jj);
      const uint16_t* vr = vc + slot(j0 + jj);
#pragma unroll
      for (int i = 0; i < kPer; ++i)
        if (lane + 32 * i < D) acc[i] += pw * bf16(vr[lane + 32 * i]);
    }
    m = m_new;
  }
  float* o = out + static_cast<int64_t>(t) * n_heads * D + h * D;
#pragma unroll
  for (int i = 0; i < kPer; ++i)
    if (lane + 32 * i < D) o[lane + 32 * i] = acc[i] / l;
}

template <int D>
cudaError_t launch(const float* q, int q_stride, const uint16_t* kc, const uint16_t* vc,
                   const uint16_t* sinks, float* out, int n, const int* pos0, int window, int ring,
                   int n_heads, int n_kv_heads, float sm_scale, cudaStream_t stream) {
  attention_kernel<D><<<dim3(n, n_heads), 32, 0, stream>>>(
      q, q_stride, kc, vc, sinks, out, pos0, window, ring, n_heads, n_kv_heads, sm_scale);
  return cudaGetLastError();
}

}  // namespace

cudaError_t attention(const float* q, int q_stride, const uint16_t* k_cache,
                      const uint16_t* v_cache, const uint16_t* sinks, float* out, int n,
                      const int* pos0, int window, int ring, int n_heads, int n_kv_heads,
                      int head_dim, float sm_scale, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  if (n_heads % n_kv_heads != 0 || n_heads / n_kv_heads > 32) return cudaErrorInvalidValue;
  switch (head_dim) {
    case 16:
      return launch<16>(q, q_stride, k_cache, v_cache, sinks, out, n, pos0, window, ring, n_heads,
                        n_kv_heads, sm_scale, stream);
    case 32:
      return launch<32>(q, q_stride, k_cache, v_cache, sinks, out, n, pos0, window, ring, n_heads,
                        n_kv_heads, sm_scale, stream);
    case 64:
      return launch<64>(q, q_stride, k_cache, v_cache, sinks, out, n, pos0, window, ring, n_heads,
                        n_kv_heads, sm_scale, stream);
    case 128:
      return launch<128>(q, q_stride, k_cache, v_cache, sinks, out, n, pos0, window, ring, n_heads,
                         n_kv_heads, sm_scale, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace vex::cuda
