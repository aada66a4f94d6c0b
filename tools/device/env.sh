# Sourced by the GPU machine's scripts (tools/device/*.sh), run from the repository root after
# tools/device/pack.sh here (carry .device): the packed binaries and their libraries, the demo
# model (the binaries live away from the source tree), and the output folder $out.
pack=$PWD/.device/pack
export LD_LIBRARY_PATH=$pack/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export VEX_DEMO_MODEL=$PWD/models/vex-demo
out=${OUT:-/tmp/vex-out}
mkdir -p "$out"
