#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "loader/file.h"
#include "loader/json_util.h"

namespace vex {

absl::Status validate(const SamplingParams& p) {
  if (!(p.temperature >= 0) || !std::isfinite(p.temperature))
    return absl::InvalidArgumentError(
        absl::StrCat("temperature must be >= 0, got ", p.temperature));
  if (p.top_k < 0)
    return absl::InvalidArgumentError(absl::StrCat("top_k must be >= 0, got ", p.top_k));
  if (!(p.top_p > 0 && p.top_p <= 1))
    return absl::InvalidArgumentError(absl::StrCat("top_p must be in (0, 1], got ", p.top_p));
  if (!(p.min_p >= 0 && p.min_p <= 1))
    return absl::InvalidArgumentError(absl::StrCat("min_p must be in [0, 1], got ", p.min_p));
  return absl::OkStatus();
}

absl::StatusOr<SamplingParams> sampling_from_generation_config(const std::string& path,
                                                               SamplingParams base) {
  VEX_ASSIGN_OR_RETURN(const bool there, file_present(path));
  if (!there) return base;
  VEX_ASSIGN_OR_RETURN(auto j, read_json_file(path));
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat(path, ": expected an object"));
  auto number = [&](const char* key, float* out) -> absl::Status {
    if (!j.contains(key) || j[key].is_null()) return absl::OkStatus();
    if (!j[key].is_number())
      return absl::InvalidArgumentError(absl::StrCat(path, ": key '", key, "': expected a number"));
    *out = j[key].get<float>();
    return absl::OkStatus();
  };
  SamplingParams p = base;
  VEX_RETURN_IF_ERROR(number("temperature", &p.temperature));
  VEX_RETURN_IF_ERROR(number("top_p", &p.top_p));
  VEX_RETURN_IF_ERROR(number("min_p", &p.min_p));
  if (j.contains("top_k") && !j["top_k"].is_null()) {
    const std::optional<int32_t> k = json_int32(j["top_k"]);
    if (!k)
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": key 'top_k': expected an integer that fits 32 bits"));
    p.top_k = *k;
  }
  if (j.contains("do_sample")) {
    if (!j["do_sample"].is_boolean())
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": key 'do_sample': expected a boolean"));
    if (!j["do_sample"].get<bool>()) p.temperature = 0;
  }
  if (absl::Status st = validate(p); !st.ok())
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", st.message()));
  return p;
}

int32_t argmax(std::span<const float> logits) {
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[best]) best = static_cast<int32_t>(i);
  return best;
}

double Sampler::uniform() {
  // splitmix64 of (seed, draw index): a counter-based stream, identical on every platform.
  uint64_t z = p_.seed + 0x9E3779B97F4A7C15ull * (++draws_);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53;
}

int32_t Sampler::sample(std::span<const float> logits) {
  if (p_.temperature == 0 || p_.top_k == 1) return argmax(logits);
  const size_t V = logits.size();
  const auto larger = [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  cand_.resize(V);
  bool overflow = false;
  for (size_t i = 0; i < V; ++i) {
    cand_[i] = {logits[i] / p_.temperature, static_cast<int32_t>(i)};
    overflow |= std::isinf(cand_[i].first) && std::isfinite(logits[i]);
  }
  // A temperature so small that a finite logit / T overflows is the T -> 0 limit: greedy (the
  // softmax below would otherwise subtract inf from inf).
  if (overflow) return argmax(logits);
  size_t n = V;
  bool permuted = false;  // candidates no longer in id order
  if (p_.top_k > 0 && static_cast<size_t>(p_.top_k) < V) {
    n = p_.top_k, permuted = true;
    std::nth_element(cand_.begin(), cand_.begin() + n - 1, cand_.end(), larger);
  }
  // Softmax over the n candidates, in double: the mass sums below decide membership.
  float mx = -INFINITY;
  for (size_t i = 0; i < n; ++i) mx = std::max(mx, cand_[i].first);
  double total = 0;
  for (size_t i = 0; i < n; ++i) {
    cand_[i].first = std::exp(cand_[i].first - mx);
    total += cand_[i].first;
  }
  if (p_.top_p < 1) {
    // The most probable tokens in order until their mass reaches top_p. Sorting all 201,088 is
    // slow, so sort a growing prefix: the tokens above the m-th largest, m = 64, 256, ...
    size_t m = std::min<size_t>(64, n);
    permuted = true;
    for (;;) {
      std::partial_sort(cand_.begin(), cand_.begin() + m, cand_.begin() + n, larger);
      double mass = 0;
      size_t keep = 0;
      while (keep < m && mass < p_.top_p * total) mass += cand_[keep++].first;
      if (mass >= p_.top_p * total || m == n) {
        n = keep;
        break;
      }
      m = std::min(n, m * 4);
    }
    total = 0;
    for (size_t i = 0; i < n; ++i) total += cand_[i].first;
  }
  if (p_.min_p > 0) {
    // Relative to the largest probability, which is exp(0) = 1 after subtracting the max.
    size_t keep = 0;
    total = 0;
    for (size_t i = 0; i < n; ++i)
      if (cand_[i].first >= p_.min_p) cand_[keep++] = cand_[i], total += cand_[i].first;
    n = keep;
  }
  // Draw in id order so that the result does not depend on how the candidates were permuted.
  if (permuted)
    std::sort(cand_.begin(), cand_.begin() + n,
              [](const auto& a, const auto& b) { return a.second < b.second; });
  const double u = uniform() * total;
  double acc = 0;
  for (size_t i = 0; i < n; ++i) {
    acc += cand_[i].first;
    if (u < acc) return cand_[i].second;
  }
  return cand_[n - 1].second;  // u rounded up to total
}

}  // namespace vex
