// MXFP4 expert matrix-vector product on the GPU (decode path building block), twin of
// kernels/cpu/mxfp4.cpp. Launchers take raw pointers and a stream and return cudaError_t.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace vex::cuda {

// y[rows] = W x, W MXFP4 [rows, cols] (blocks [rows, cols/32, 16], scales [rows, cols/32]),
// x fp32 [cols], y fp32 [rows]. cols must be a multiple of 32.
cudaError_t mxfp4_matvec(const uint8_t* blocks, const uint8_t* scales, int rows, int cols,
                         const float* x, float* y, cudaStream_t stream);

}  // namespace vex::cuda
