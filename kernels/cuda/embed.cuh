// Embedding lookup (docs/gpt-oss.md §4.0), twin of the loop at the top of forward_cpu.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace vex::cuda {

// x[t] = float(emb[tokens[t]]) for t < n. emb: bf16 [V, D]; x: fp32 [n, D]. Token ids are
// checked on the host before the call.
cudaError_t embed(const int32_t* tokens, int n, const uint16_t* emb, int D, float* x,
                  cudaStream_t stream);

}  // namespace vex::cuda
