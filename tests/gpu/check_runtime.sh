#!/usr/bin/env bash
# The runtime's CUDA path on a GPU (runtime_check.cu) against its CPU path.
#   check_runtime.sh BUILD_DIR WORKDIR   (exits 77 without nvcc or a GPU)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=common.sh
. "$here/common.sh"
build=$1
work=$2
need_gpu
mkdir -p "$work"
"$NVCC" -std=c++17 -O2 -I "$build/include" "$here/runtime_check.cu" \
  -L "$build/lib" -leinstruct_runtime -Xlinker -rpath="$build/lib" \
  -o "$work/runtime_check"
# A cache of its own, so the first creation of each layer runs nvcc.
EINSTRUCT_CACHE_DIR="$work/cache" "$work/runtime_check"
