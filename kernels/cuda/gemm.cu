#include "kernels/cuda/common.cuh"
#include "kernels/cuda/gemm.cuh"

namespace vex::cuda {
namespace {

__global__ void to_bf16_kernel(const float* __restrict__ x, uint16_t* __restrict__ xb,
                               int64_t count) {
  pdl_prologue();
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x)
    xb[i] = to_bf16(x[i]);
}

int grid_for(int64_t count) {
  return static_cast<int>(std::min<int64_t>((count + 255) / 256, 4096));
}

}  // namespace

Gemm::~Gemm() {
  for (Plan& p : plans_) {
    cublasLtMatrixLayoutDestroy(p.a), cublasLtMatrixLayoutDestroy(p.b);
    cublasLtMatrixLayoutDestroy(p.c), cublasLtMatmulDescDestroy(p.op);
  }
  if (workspace_) cudaFree(workspace_);
  if (handle_) cublasLtDestroy(handle_);
}

cudaError_t Gemm::fail(cublasStatus_t s, const char* what, int n, int K, int N) {
  std::snprintf(error_, sizeof(error_), "%s (cuBLAS status %d; n %d, K %d, N %d)", what,
                static_cast<int>(s), n, K, N);
  return cudaErrorUnknown;
}

cudaError_t Gemm::init() {
  if (handle_) return cudaSuccess;
  if (cublasStatus_t s = cublasLtCreate(&handle_); s != CUBLAS_STATUS_SUCCESS)
    return fail(s, "cublasLtCreate failed");
  return cudaMalloc(&workspace_, kWorkspaceBytes);
}

// Row-major Y[n, N] = X[n, K] W[N, K]^T is, column-major, Y^T (N x n) = W^T' (N x K) X^T (K x n):
// A = W stored K x N (ld K) transposed, B = X stored K x n (ld K), C = D = Y stored N x n (ld N).
// The bias (one value per row of D) is broadcast over its n columns by the epilogue.
const Gemm::Plan* Gemm::plan(int n, int K, int N, const float* bias) {
  for (const Plan& p : plans_)
    if (p.n == n && p.K == K && p.N == N && p.bias == (bias != nullptr)) return &p;
  Plan p;
  p.n = n, p.K = K, p.N = N, p.bias = bias != nullptr;
  const cublasOperation_t trans = CUBLAS_OP_T;
  const cublasLtEpilogue_t epilogue = p.bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
  cublasLtMatmulPreference_t pref = nullptr;
  cublasLtMatmulHeuristicResult_t best{};
  int found = 0;
  const size_t ws = kWorkspaceBytes;
  cublasStatus_t st = CUBLAS_STATUS_SUCCESS;
  auto good = [&](cublasStatus_t r) { return (st = r) == CUBLAS_STATUS_SUCCESS; };
  bool ok = good(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F)) &&
            good(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &trans,
                                                sizeof(trans))) &&
            good(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue,
                                                sizeof(epilogue))) &&
            // The heuristic reads the pointer's alignment; every bias is a cudaMalloc of its own.
            good(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                                sizeof(bias))) &&
            good(cublasLtMatrixLayoutCreate(&p.a, CUDA_R_16BF, K, N, K)) &&
            good(cublasLtMatrixLayoutCreate(&p.b, CUDA_R_16BF, K, n, K)) &&
            good(cublasLtMatrixLayoutCreate(&p.c, CUDA_R_32F, N, n, N)) &&
            good(cublasLtMatmulPreferenceCreate(&pref)) &&
            good(cublasLtMatmulPreferenceSetAttribute(
                pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws))) &&
            good(cublasLtMatmulAlgoGetHeuristic(handle_, p.op, p.a, p.b, p.c, p.c, pref, 1, &best,
                                                &found)) &&
            found > 0;
  if (pref) cublasLtMatmulPreferenceDestroy(pref);
  if (!ok) {
    cublasLtMatrixLayoutDestroy(p.a), cublasLtMatrixLayoutDestroy(p.b);
    cublasLtMatrixLayoutDestroy(p.c), cublasLtMatmulDescDestroy(p.op);
    fail(st, found ? "cuBLASLt setup failed" : "cuBLASLt has no algorithm for this bf16 GEMM", n, K,
         N);
    return nullptr;
  }
  p.algo = best.algo;
  plans_.push_back(p);
  return &plans_.back();
}

cudaError_t Gemm::run(const uint16_t* xb, const uint16_t* W, const float* b, float* y, int n, int K,
                      int N, bool accumulate, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  if (!handle_) return cudaErrorNotReady;  // init() first
  const Plan* p = plan(n, K, N, b);
  if (!p) return cudaErrorUnknown;
  if (b) {
    const cublasStatus_t s =
        cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &b, sizeof(b));
    if (s != CUBLAS_STATUS_SUCCESS) return fail(s, "cuBLASLt bias pointer", n, K, N);
  }
  const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;  // beta 0: y is not read
  const cublasStatus_t s = cublasLtMatmul(handle_, p->op, &alpha, W, p->a, xb, p->b, &beta, y, p->c,
                                          y, p->c, &p->algo, workspace_, kWorkspaceBytes, stream);
  return s == CUBLAS_STATUS_SUCCESS ? cudaSuccess : fail(s, "cublasLtMatmul failed", n, K, N);
}

cudaError_t to_bf16(const float* x, uint16_t* xb, int64_t count, cudaStream_t stream) {
  if (count <= 0) return cudaSuccess;
  launch_pdl(to_bf16_kernel, grid_for(count), 256, 0, stream, x, xb, count);
  return cudaGetLastError();
}

}  // namespace vex::cuda
