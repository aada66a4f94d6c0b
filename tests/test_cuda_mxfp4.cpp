// CUDA MXFP4 matvec against the CPU reference (kernels/cpu/mxfp4.cpp), on fresh random codes
// and scales, output poisoned with NaN before the launch.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/cpu/mxfp4.h"
#include "kernels/cuda/mxfp4.cuh"

namespace vex {
namespace {

#define CUDA_OK(x) ASSERT_EQ((x), cudaSuccess) << #x << ": " << cudaGetErrorString(x)

TEST(CudaMxfp4, MatvecMatchesCpu) {
  for (auto [rows, cols] : {std::pair{5760, 2880}, {2880, 2880}, {128, 64}, {33, 96}}) {
    std::mt19937 rng(rows * 7 + cols);
    const int groups = cols / 32;
    std::vector<uint8_t> blocks(size_t(rows) * groups * 16), scales(size_t(rows) * groups);
    std::vector<float> x(cols), y_ref(rows), y(rows);
    for (auto& b : blocks) b = rng() & 0xFF;
    for (auto& s : scales) s = 118 + rng() % 8;  // 2^-9 .. 2^-2: realistic expert scales
    std::normal_distribution<float> nd;
    for (auto& v : x) v = nd(rng);
    mxfp4_matvec(blocks.data(), scales.data(), cols, 0, rows, x.data(), y_ref.data());

    uint8_t *db, *ds;
    float *dx, *dy;
    CUDA_OK(cudaMalloc(&db, blocks.size()));
    CUDA_OK(cudaMalloc(&ds, scales.size()));
    CUDA_OK(cudaMalloc(&dx, cols * sizeof(float)));
    CUDA_OK(cudaMalloc(&dy, rows * sizeof(float)));
    CUDA_OK(cudaMemcpy(db, blocks.data(), blocks.size(), cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemcpy(ds, scales.data(), scales.size(), cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemcpy(dx, x.data(), cols * sizeof(float), cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemset(dy, 0xFF, rows * sizeof(float)));  // NaN poison: unwritten rows fail
    CUDA_OK(cuda::mxfp4_matvec(db, ds, rows, cols, dx, dy, nullptr));
    CUDA_OK(cudaDeviceSynchronize());
    CUDA_OK(cudaMemcpy(y.data(), dy, rows * sizeof(float), cudaMemcpyDeviceToHost));
    cudaFree(db), cudaFree(ds), cudaFree(dx), cudaFree(dy);

    // The decode is exact on both sides; only the summation order differs (fp32 lanes +
    // shuffle tree vs double). Bound: a few fp32 ulps of the sum of |terms|.
    double max_err = 0;
    for (int r = 0; r < rows; ++r) {
      std::vector<float> w(cols);
      mxfp4_decode_row(blocks.data(), scales.data(), cols, r, w.data());
      double abs_sum = 0;
      for (int k = 0; k < cols; ++k) abs_sum += std::fabs(double(w[k]) * x[k]);
      const double tol = 1e-6 * abs_sum + 1e-30;
      ASSERT_FALSE(std::isnan(y[r])) << "row " << r << " not written";
      ASSERT_LE(std::fabs(y[r] - y_ref[r]), tol) << "row " << r << " of " << rows << "x" << cols;
      max_err = std::max(max_err, std::fabs(y[r] - y_ref[r]) / abs_sum);
    }
    printf("mxfp4_matvec %dx%d: max |gpu-cpu| / sum|w x| = %.2e\n", rows, cols, max_err);
  }
}

}  // namespace
}  // namespace vex
