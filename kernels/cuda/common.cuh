// Small device helpers shared by the kernels: bf16 bit patterns, warp reductions.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace vex::cuda {

// Programmatic dependent launch (Hopper): every kernel here starts by waiting for the grid before
// it in the stream to finish and flush (a no-op when it was not launched as a dependent), then
// lets the grid after it launch, so that the next kernel's launch and scheduling overlap this one's
// work instead of following it. launch_pdl() launches with that permission; a kernel launched so must
// begin with pdl_prologue().
__device__ __forceinline__ void pdl_prologue() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// VEX_NO_PDL=1 launches every kernel in plain stream order instead (pdl_prologue is then a
// no-op): slower, for triage of ordering bugs (docs/multi-gpu.md).
inline bool pdl_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("VEX_NO_PDL");
    return !v || !*v || std::strcmp(v, "0") == 0;
  }();
  return on;
}

template <typename... KernelArgs, typename... Args>
cudaError_t launch_pdl(void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t smem,
                   cudaStream_t stream, Args&&... args) {
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = grid, config.blockDim = block, config.dynamicSmemBytes = smem;
  config.stream = stream, config.attrs = &attr, config.numAttrs = pdl_enabled() ? 1 : 0;
  return cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
}

// bf16 is stored as its 16-bit pattern (uint16_t), as in the checkpoint.
__device__ __forceinline__ float bf16(uint16_t h) {
  return __uint_as_float(uint32_t(h) << 16);
}
// fp32 -> bf16 with round-to-nearest-even (finite inputs).
__device__ __forceinline__ uint16_t to_bf16(float f) {
  const uint32_t u = __float_as_uint(f);
  return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}
// Eight bf16 from one 16-byte word, in memory order.
__device__ __forceinline__ void bf16x8(const uint4& w, float* out) {
  const uint32_t v[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    out[2 * i] = __uint_as_float(v[i] << 16);
    out[2 * i + 1] = __uint_as_float(v[i] & 0xFFFF0000u);
  }
}

// 16 bytes from global to shared memory without passing through registers (sm_80+): issued
// now, complete after cp_async_wait<n>() (at most n of this thread's committed groups pending).
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
  const uint32_t dst = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(gmem) : "memory");
}
// The same to a shared-window address (from __cvta_generic_to_shared).
__device__ __forceinline__ void cp_async16(uint32_t smem, const void* gmem) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem), "l"(gmem) : "memory");
}
// 16 bytes to a shared-window address, the first n (16 or 0) from gmem and the rest zeros: with
// n = 0 nothing is read, so gmem may point past the data. kL1: through L1 (kept there for other
// loads of the same bytes).
template <bool kL1 = false>
__device__ __forceinline__ void cp_async16_fill(uint32_t smem, const void* gmem, int n) {
  if constexpr (kL1)
    asm volatile("cp.async.ca.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem), "l"(gmem), "r"(n)
                 : "memory");
  else
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem), "l"(gmem), "r"(n)
                 : "memory");
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
template <int n>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(n) : "memory");
}

// Lets a kernel take up to the device's shared memory per block in dynamic shared memory, less
// its static shared memory (once per kernel).
template <typename Kernel>
cudaError_t allow_smem(Kernel kernel) {
  int device = 0, most = 0;
  cudaFuncAttributes attr{};
  cudaError_t err = cudaGetDevice(&device);
  if (err == cudaSuccess)
    err = cudaDeviceGetAttribute(&most, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  if (err == cudaSuccess) err = cudaFuncGetAttributes(&attr, kernel);
  if (err == cudaSuccess)
    err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               most - static_cast<int>(attr.sharedSizeBytes));
  return err;
}

// c += A B for one m16n8k16 tile: bf16 inputs, fp32 accumulate (sm_80+). Fragment layouts
// (g = lane / 4, c = lane % 4): a = rows g, g+8 x k pairs 2c and 2c+8; b = k pairs 2c and 2c+8
// of column g; c = rows g, g+8 x columns 2c, 2c+1.
__device__ __forceinline__ void mma_bf16(float* c, const uint32_t* a, const uint32_t* b) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// Sum over the warp's 32 lanes, every lane gets it (float, double, int).
template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}
// The clamped SwiGLU of gpt-oss (docs/gpt-oss.md §4.6, §7.7), twin of vex::swiglu: gate clamped above
// only, up on both sides, alpha 1.702 in the sigmoid, +1 on up.
__device__ __forceinline__ float swiglu(float gate, float up, float limit) {
  gate = fminf(gate, limit);
  up = fminf(fmaxf(up, -limit), limit);
  return gate / (1.0f + expf(-gate * 1.702f)) * (up + 1.0f);
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int off = 16; off > 0; off /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

// E2M1 code -> value (docs/gpt-oss.md §3) by building the fp32 bits: exponent field e (bias 1) and
// mantissa bit m give (1 + m/2) 2^(e-1), or m/2 when e = 0; bit 3 is the sign. No table, so
// lanes with different codes never serialize on a memory lookup.
__device__ __forceinline__ float e2m1(uint32_t code) {
  const uint32_t e = (code >> 1) & 3u, m = code & 1u;
  uint32_t bits = e ? ((126u + e) << 23) | (m << 22) : (m ? 0x3F000000u : 0u);
  return __uint_as_float(bits | ((code & 8u) << 28));
}

}  // namespace vex::cuda
