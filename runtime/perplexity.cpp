#include "runtime/perplexity.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_format.h"

namespace vex {

absl::StatusOr<Perplexity> measure_perplexity(Engine& engine, std::span<const int32_t> tokens,
                                              int ctx,
                                              const std::function<void(int, double)>& on_chunk) {
  if (ctx < 4) return absl::InvalidArgumentError(absl::StrFormat("chunk size %d is below 4", ctx));
  if (ctx > engine.max_ctx())
    return absl::InvalidArgumentError(absl::StrFormat(
        "chunk size %d exceeds the engine's context of %d tokens", ctx, engine.max_ctx()));
  const int64_t n_chunks = static_cast<int64_t>(tokens.size()) / ctx;
  if (n_chunks == 0)
    return absl::InvalidArgumentError(absl::StrFormat(
        "the text has %d tokens, fewer than one chunk of %d (-c)", tokens.size(), ctx));
  const int vocab = engine.vocab();
  // Logits of a piece of the chunk at a time: [ctx, vocab] floats are 400 MB for gpt-oss.
  constexpr int kPiece = 128;
  std::vector<float> logits(static_cast<size_t>(std::min(ctx, kPiece)) * vocab);
  const int first = ctx / 2;
  Perplexity r;
  r.ctx = ctx;
  double total_nll = 0;
  for (int64_t c = 0; c < n_chunks; ++c) {
    const std::span<const int32_t> chunk = tokens.subspan(c * ctx, ctx);
    if (engine.truncate(0) != 0) return absl::InternalError("the engine could not empty its cache");
    double nll = 0;
    int count = 0;
    for (int at = 0; at < ctx; at += kPiece) {
      const int n = std::min(kPiece, ctx - at);
      VEX_RETURN_IF_ERROR(engine.forward(chunk.subspan(at, n), logits.data(), /*last_only=*/false));
      for (int i = 0; i < n; ++i) {
        const int j = at + i;  // position j predicts token j + 1
        if (j < first || j + 1 >= ctx) continue;
        const float* row = &logits[static_cast<size_t>(i) * vocab];
        const double max = *std::max_element(row, row + vocab);
        double sum = 0;
        for (int v = 0; v < vocab; ++v) sum += std::exp(static_cast<double>(row[v]) - max);
        const double term = max + std::log(sum) - row[chunk[j + 1]];
        if (!std::isfinite(term))
          return absl::InternalError(absl::StrFormat(
              "non-finite logits in chunk %d at position %d", c + 1, j));
        nll += term;
        ++count;
      }
    }
    total_nll += nll;
    r.scored += count;
    r.chunks.push_back(std::exp(nll / count));
    if (on_chunk) on_chunk(static_cast<int>(c), r.chunks.back());
  }
  const double k = static_cast<double>(r.chunks.size());
  for (double p : r.chunks) r.mean += p / k;
  if (r.chunks.size() > 1) {
    double var = 0;
    for (double p : r.chunks) var += (p - r.mean) * (p - r.mean) / (k - 1);
    r.stderr_mean = std::sqrt(var / k);
  }
  r.overall = std::exp(total_nll / static_cast<double>(r.scored));
  return r;
}

}  // namespace vex
