// RMSNorm (docs/gpt-oss.md §4.1), twin of kernels/cpu/rmsnorm.cpp.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace vex::cuda {

// y = x * rsqrt(mean(x^2) + eps) * g per row; x, y fp32 [n, dim] (may alias), g bf16 [dim].
cudaError_t rmsnorm(const float* x, const uint16_t* g, float* y, int n, int dim, float eps,
                    cudaStream_t stream);
// The same rounded to bf16 (nearest even) into yb [n, dim]: the input of the projections' GEMMs.
cudaError_t rmsnorm_bf16(const float* x, const uint16_t* g, uint16_t* yb, int n, int dim,
                         float eps, cudaStream_t stream);

}  // namespace vex::cuda
