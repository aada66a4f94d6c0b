// Token selection on the GPU so that only the token comes back: argmax over the logits (ties to
// the lower id, as vex::argmax), written where the next decode step reads its token.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace vex::cuda {

// out[0] = argmax(logits[0..V)); then *pos += advance (the step's tokens are now in the cache).
cudaError_t argmax_next(const float* logits, int V, int32_t* out, int* pos, int advance,
                        cudaStream_t stream);

}  // namespace vex::cuda
