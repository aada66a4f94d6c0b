# shellcheck shell=bash
# Sourced by the GPU machine's scripts (tools/device/*.sh), run from the repository root after
# tools/device/pack.sh here (carry .device): the packed binaries and their libraries, NCCL where
# the machine has it (the CUDA toolkit's, else PyTorch's wheel), the demo model (the binaries live
# away from the source tree), and the output folder $out.
pack=$PWD/.device/pack
# Sent compressed (pack.sh's .device/pack.txz): unpack it once.
[ -d "$pack" ] || { [ -f "$pack.txz" ] && tar -C "$PWD/.device" -xJf "$pack.txz"; }
nccl=
for d in /usr/local/cuda/lib /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -e "$d/libnccl.so.2" ] && nccl=$d && break
done
[ -n "$nccl" ] || nccl=$(python3 -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "lib"))' 2>/dev/null)
export LD_LIBRARY_PATH=$pack/lib${nccl:+:$nccl}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export VEX_DEMO_MODEL=$PWD/models/vex-demo
out=${OUT:-/tmp/vex-out}
mkdir -p "$out"
