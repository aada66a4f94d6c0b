// Token selection on the GPU so that only the token comes back: argmax over the logits (ties to
// the lower id, as vex::argmax), written where the next decode step reads its token.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace vex::cuda {

// For each row r < rows of logits [rows, V]: out[r] = argmax(row r), then pos[r] += advance (the
// step's tokens are now in the cache; a batched step advances each sequence).
cudaError_t argmax_next(const float* logits, int V, int rows, int32_t* out, int* pos, int advance,
                        cudaStream_t stream);

}  // namespace vex::cuda
