#!/usr/bin/env bash
# Packs what the GPU machine needs into .device/pack (ignored, tens of MiB): the binaries and
# test executables of a Release build, plus the shared libraries the GPU machine lacks (abseil
# and friends; CUDA, glibc and libstdc++ are there). Run after building in build/.
#   tools/device/pack.sh [BUILD_DIR]
set -euo pipefail
top=$(git rev-parse --show-toplevel)
build=${1:-$top/build}
pack=$top/.device/pack
rm -rf "$pack" && mkdir -p "$pack/bin" "$pack/lib"
bins=("$build"/vexgen "$build"/vexrun "$build"/vexprobe "$build"/vexserve "$build"/vexbench "$build"/bench_kernels)
for t in "$build"/tests/test_*; do [ -x "$t" ] && bins+=("$t"); done
[ -d "$build/bench" ] && for b in "$build"/bench/*; do [ -x "$b" ] && [ -f "$b" ] && bins+=("$b"); done
cp "${bins[@]}" "$pack/bin/"
# Libraries outside the base system: everything ldd resolves that is not libc/libstdc++/CUDA.
for b in "${bins[@]}"; do
  ldd "$b" | awk '/=> \//{print $3}'
done | sort -u | grep -v -E '/(libc|libm|libdl|librt|libpthread|libgcc_s|libstdc\+\+|ld-linux[^/]*)\.so|libcuda|libcudart|libcublas|libnccl' \
  | while read -r lib; do cp -L "$lib" "$pack/lib/"; done
strip --strip-unneeded "$pack"/bin/* 2>/dev/null || true
du -sh "$pack"
