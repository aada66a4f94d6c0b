// One checking macro family for CUDA runtime calls (docs/architecture.md §6): the statement, file and line
// go into the error, which is returned, never aborted on.
#pragma once

#include <cuda_runtime.h>

#include "core/status.h"

#define VEX_CUDA_CHECK(stmt)                                                                \
  do {                                                                                      \
    cudaError_t _err = (stmt);                                                              \
    if (_err != cudaSuccess)                                                                \
      return absl::InternalError(absl::StrFormat("%s failed at %s:%d: %s", #stmt, __FILE__, \
                                                 __LINE__, cudaGetErrorString(_err)));      \
  } while (0)
