#include "kernels/cuda/common.cuh"
#include "kernels/cuda/rope.cuh"

namespace vex::cuda {
namespace {

// Block (token, head) over q heads then kv heads; thread i rotates the pair (i, i + d/2).
__global__ void rope_kv_kernel(float* __restrict__ qkv, int stride, CacheRows rows,
                               const float* __restrict__ inv_freq, float concentration, int n_heads,
                               int n_kv_heads, int head_dim, int ring,
                               uint16_t* __restrict__ k_cache, uint16_t* __restrict__ v_cache) {
  pdl_prologue();
  const int t = blockIdx.x, h = blockIdx.y, i = threadIdx.x, half = head_dim / 2;
  const int pos = rows.pos[t];
  float s, c;
  sincosf(static_cast<float>(pos) * inv_freq[i], &s, &c);
  c *= concentration, s *= concentration;
  float* row = qkv + static_cast<int64_t>(t) * stride;
  const bool is_q = h < n_heads;
  float* x = row + h * head_dim;  // q heads, then k heads right after them
  const float x1 = x[i], x2 = x[i + half];
  const float r1 = x1 * c - x2 * s, r2 = x2 * c + x1 * s;
  if (is_q) {
    x[i] = r1, x[i + half] = r2;
    return;
  }
  const int g = h - n_heads, kv_dim = n_kv_heads * head_dim;
  const int64_t at = cache_base(rows, t) + (ring > 0 ? pos % ring : pos) * int64_t(kv_dim);
  uint16_t* kd = k_cache + at + g * head_dim;
  uint16_t* vd = v_cache + at + g * head_dim;
  const float* v = row + (n_heads + n_kv_heads + g) * head_dim;
  kd[i] = to_bf16(r1), kd[i + half] = to_bf16(r2);
  vd[i] = to_bf16(v[i]), vd[i + half] = to_bf16(v[i + half]);
}

}  // namespace

cudaError_t rope_kv(float* qkv, int stride, int n, CacheRows rows, const float* inv_freq,
                    float concentration, int n_heads, int n_kv_heads, int head_dim, int ring,
                    uint16_t* k_cache, uint16_t* v_cache, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  if (head_dim % 2 != 0 || head_dim > 2048) return cudaErrorInvalidValue;
  launch_pdl(rope_kv_kernel, dim3(n, n_heads + n_kv_heads), head_dim / 2, 0, stream,
      qkv, stride, rows, inv_freq, concentration, n_heads, n_kv_heads, head_dim, ring, k_cache,
      v_cache);
  return cudaGetLastError();
}

}  // namespace vex::cuda
