// Tokenizer microbenchmarks: loading tokenizer.json, and encode throughput (MB/s) on English
// prose with code (the spec, docs/gpt-oss.md), the committed corpus
// (CJK, emoji, long words, whitespace runs), and decode.
//   bench_tokenizer [--benchmark_filter=...]   (VEX_TOKENIZER_JSON overrides the path)
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "runtime/tokenizer.h"

namespace {

std::string tokenizer_path() {
  const char* p = std::getenv("VEX_TOKENIZER_JSON");
  return p ? p : VEX_TOKENIZER_JSON;
}

const vex::Tokenizer& tok() {
  static auto t = [] {
    auto r = vex::Tokenizer::load(tokenizer_path());
    if (!r.ok()) {
      fprintf(stderr, "%s\n", std::string(r.status().message()).c_str());
      std::exit(1);
    }
    return std::move(*r);
  }();
  return *t;
}

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string corpus_text() {
  std::ifstream in(std::string(VEX_SOURCE_DIR) + "/tests/data/tokenizer_corpus.jsonl");
  std::string line, all;
  while (std::getline(in, line)) all += nlohmann::json::parse(line)["text"].get<std::string>();
  return all;
}

void BM_Load(benchmark::State& state) {
  for (auto _ : state) {
    auto t = vex::Tokenizer::load(tokenizer_path());
    benchmark::DoNotOptimize(t);
  }
}
BENCHMARK(BM_Load)->Unit(benchmark::kMillisecond)->Iterations(3);

void encode(benchmark::State& state, const std::string& text) {
  if (text.empty()) return state.SkipWithError("no text");
  tok();  // load outside the timed loop
  size_t n = 0;
  for (auto _ : state) {
    auto ids = tok().encode(text, false);
    n = ids.size();
    benchmark::DoNotOptimize(ids);
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * text.size());
  state.counters["tokens"] = n;
}

void BM_EncodeProse(benchmark::State& state) {
  static const std::string text = read(std::string(VEX_SOURCE_DIR) + "/docs/gpt-oss.md");
  encode(state, text);
}
BENCHMARK(BM_EncodeProse)->Unit(benchmark::kMillisecond);

void BM_EncodeCorpus(benchmark::State& state) {
  static const std::string text = corpus_text();
  encode(state, text);
}
BENCHMARK(BM_EncodeCorpus)->Unit(benchmark::kMillisecond);

void BM_Decode(benchmark::State& state) {
  static const auto ids = tok().encode(corpus_text(), false);
  for (auto _ : state) benchmark::DoNotOptimize(tok().decode(ids));
  state.counters["tokens/s"] =
      benchmark::Counter(double(state.iterations()) * ids.size(), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Decode)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
