#!/usr/bin/env bash
# Packs what the GPU machine needs into .device/pack (ignored, tens of MiB): the binaries and
# test executables of a Release build, plus the shared libraries the GPU machine lacks (abseil
# and friends; CUDA, glibc and libstdc++ are there). Run after building in build/. It also writes
# .device/pack.txz, the same folder compressed (a few MiB): carry that one when the working tree
# and the pack together pass the device tool's 64 MiB, and env.sh unpacks it on the machine.
#   tools/device/pack.sh [--only a,b,...] [--add NAME=PATH]... [BUILD_DIR]
#     --only   keep only these binaries (and the libraries they need)
#     --add    add another binary under NAME, e.g. a vexbench built from another commit for a
#              same-machine A/B (tools/device/ab.sh)
set -euo pipefail
top=$(git rev-parse --show-toplevel)
only=
adds=()
while [ $# -gt 0 ]; do
  case $1 in
    --only) only=$2; shift 2 ;;
    --add) adds+=("$2"); shift 2 ;;
    *) break ;;
  esac
done
build=${1:-$top/build}
pack=$top/.device/pack
rm -rf "$pack" "$top/.device/pack.txz" && mkdir -p "$pack/bin" "$pack/lib"
bins=("$build"/vexgen "$build"/vexrun "$build"/vexprobe "$build"/vexserve "$build"/vexbench "$build"/bench_kernels)
for t in "$build"/tests/test_*; do [ -x "$t" ] && bins+=("$t"); done
[ -d "$build/bench" ] && for b in "$build"/bench/*; do [ -x "$b" ] && [ -f "$b" ] && bins+=("$b"); done
for b in "${bins[@]}"; do
  name=$(basename "$b")
  [ -z "$only" ] || [[ ",$only," == *",$name,"* ]] && cp "$b" "$pack/bin/"
done
for a in "${adds[@]}"; do
  [ -x "${a#*=}" ] || { echo "pack.sh: --add $a: no executable at ${a#*=}" >&2; exit 1; }
  cp "${a#*=}" "$pack/bin/${a%%=*}"
done
# Libraries outside the base system: everything ldd resolves that is not libc/libstdc++/CUDA.
for b in "$pack"/bin/*; do
  ldd "$b" | awk '/=> \//{print $3}'
done | sort -u | grep -v -E '/(libc|libm|libdl|librt|libpthread|libgcc_s|libstdc\+\+|ld-linux[^/]*)\.so|libcuda|libcudart|libcublas|libnccl' \
  | while read -r lib; do cp -L "$lib" "$pack/lib/"; done
strip --strip-unneeded "$pack"/bin/* 2>/dev/null || true
tar -C "$top/.device" -cJf "$top/.device/pack.txz" pack
du -sh "$pack" "$top/.device/pack.txz"
