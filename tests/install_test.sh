#!/usr/bin/env bash
# The installed C library as its users meet it: `cmake --install` into a fresh prefix, then the C
# example built with nothing but pkg-config, against libvex.so and against libvex.a (Libs.private
# lists what the archive needs), and the shared build run on the demo model.
#   tests/install_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
[ -f "$prefix/include/vex/vex.h" ] || { echo "FAIL: no include/vex/vex.h"; exit 1; }
libdir=$(pkg-config --variable=libdir vex)
cc "$src/tools/examples/chat.c" $(pkg-config --cflags --libs vex) -Wl,-rpath,"$libdir" \
  -o "$prefix/chat"
cc "$src/tools/examples/chat.c" $(pkg-config --cflags vex) \
  $(pkg-config --static --libs vex | sed "s|-lvex |$libdir/libvex.a |") -o "$prefix/chat_static"
ldd "$prefix/chat_static" | grep -q libvex && { echo "FAIL: the static build links libvex.so"; exit 1; }
out=$("$prefix/chat" "$src/models/vex-demo" "What is 2 + 2?")
[ -n "$out" ] || { echo "FAIL: the installed library generated nothing"; exit 1; }
echo "installed library: shared and static builds of the C example work"
