#!/usr/bin/env bash
# The test suite, as CI runs it (.ci/run) and the README gives it:
#   1. build/      the release build (CUDA too where nvcc is), CPU tests;
#   2. build-san/  clang with AddressSanitizer + UndefinedBehaviorSanitizer, CPU engine only: the
#                  CPU tests again, then every libFuzzer target (tests/fuzz/) for
#                  VEX_FUZZ_SECONDS each (default 30) from its committed seed corpus.
# `tools/test.sh --no-san` runs step 1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
cmake -S . -B build -G Ninja
cmake --build build -j2
ctest --test-dir build -L cpu --output-on-failure
[ "${1:-}" = "--no-san" ] && exit 0

# -O1 keeps the sanitized suite fast enough for CI; line tables are all a report needs; NDEBUG as
# in the release build (toml++'s internal asserts are not part of what ships).
cmake -S . -B build-san -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only -DNDEBUG" \
  -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only -DNDEBUG" \
  -DVEX_CUDA=OFF -DVEX_FUZZ=ON -DVEX_FUZZ_SECONDS="${VEX_FUZZ_SECONDS:-30}"
# The sanitizers' settings hold for the build too (gtest_discover_tests runs every test binary).
export LSAN_OPTIONS="suppressions=$PWD/tools/lsan.supp:print_suppressions=0"
cmake --build build-san -j2
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1
# The CLI script (tests/cli_test.sh) runs the demo model for minutes per command at -O1 with
# ASan (12 minutes in all); the sanitized run covers the same parsers through the unit tests and
# the fuzz targets, and the tools' bad-input paths run in the release build above.
ctest --test-dir build-san -L cpu -E '^cli$' --output-on-failure -j2
ctest --test-dir build-san -L fuzz --output-on-failure -j2
