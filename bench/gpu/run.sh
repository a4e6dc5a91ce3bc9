#!/usr/bin/env bash
# The GPU benchmark in one command:  bench/gpu/run.sh [EINSTRUCT] [OUTDIR]
# Emits the benchmarked layers (when EINSTRUCT, the CLI, is given; otherwise
# uses OUTDIR/gen made earlier), builds each into a shared library with nvcc
# and runs bench_gpu.py and bench_moe.py (need PyTorch with CUDA) at 16384
# tokens, bf16; with EINSTRUCT also bench_modules.py (the torch modules).
# On a lent GPU, bench/gpu/session.sh is the one prepared script (checks,
# sanitizers, tuning of the sm_90a tiles and this benchmark side by side).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-}
out=${2:-bench-gpu-out}
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
mkdir -p "$out/gen"
layers=(
  "monarch64;--structure monarch(64) --d-in 4096 --d-out 4096"
  "monarch64_smem100;--structure monarch(64) --d-in 4096 --d-out 4096 --smem-kb 100"
  "btt_r4_4096;--einsum gba,fdrga,fergb->fed --sizes g=64,b=1,a=64,f=64,d=1,r=4,e=64"
  "moe8_2048;--structure btt-moe(experts=8,top_k=2) --d-in 2048 --d-out 2048"
)
libs=()
for entry in "${layers[@]}"; do
  name=${entry%%;*}
  if [ -n "$bin" ]; then
    eval "\"$bin\" compile $(echo "${entry#*;}" | sed "s/\([^ ]*[()>][^ ]*\)/'\1'/g") --dtype bf16 --arch sm_90a --name $name -o \"$out/gen\""
  fi
  [ "$name" = moe8_2048 ] || libs+=("$out/gen/lib$name.so")
done
for entry in "${layers[@]}"; do
  name=${entry%%;*}
  "$NVCC" -std=c++17 -O3 -shared -Xcompiler -fPIC \
    -gencode=arch=compute_90a,code=sm_90a "$out/gen/$name.cu" \
    -o "$out/gen/lib$name.so" &
done
wait
python3 "$here/bench_gpu.py" "${libs[@]}" --tokens 16384 --out "$out"
python3 "$here/bench_moe.py" "$out/gen/libmoe8_2048.so" --top-k 2 --tokens 16384 --out "$out"
# The generated torch modules through the runtime (needs the CLI and the
# runtime library built here).
[ -z "$bin" ] || python3 "$here/bench_modules.py" "$bin" --tokens 16384 --out "$out"
