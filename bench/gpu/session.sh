#!/usr/bin/env bash
# The one script a lent GPU runs (issue: measured autotuning), in two halves:
#   session.sh prepare EINSTRUCT DIR   here (no GPU): emit every source into DIR
#   session.sh run DIR OUT             on the GPU machine (no MLIR needed there)
# and, for the runtime's CUDA path (CudaLayer, CudaMixer, torch on CUDA
# tensors, einstruct.blocks), which needs MLIR where it runs:
#   session.sh pack BUILD DIR          here: DIR/runtime.tar.xz, the build's
#                                      einstruct, runtime and python package
#                                      with the shared libraries they need
#                                      that a CUDA image lacks (~62 MB: carry
#                                      DIR alone, not with prepare's DIR)
#   session.sh runtime DIR OUT         on the GPU machine: unpacked to /tmp,
#                                      gpu_torch's and gpu_runtime's checks,
#                                      then the whole blocks' benchmark
#                                      (bench_blocks.py)
# run: builds everything with nvcc (all cores), runs the GPU layer checks
# (tests/gpu/check_layers.sh; check_mixers.sh for the mixers) with
# compute-sanitizer memcheck, racecheck and
# synccheck on the sm_90a kernel, tunes the wgmma tile of the benchmarked
# layers (tune.py), then benchmarks side by side (bench_gpu.py: einstruct vs
# bmm chain, torch.compile, dense; latency at 1-512 tokens). Everything it
# prints and measures lands in OUT (summary.txt last).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}

# Benchmarked layers: name ; compile flags. *_wmma: the portable kernel, for
# the side-by-side with the sm_90a one. SESSION_TUNE=0 / SESSION_NCU=0 skip
# the tuning and the ncu profile.
bench_layers=(
  "monarch64;--structure monarch(64) --d-in 4096 --d-out 4096"
  "monarch64_wmma;--structure monarch(64) --d-in 4096 --d-out 4096 --no-wgmma"
  "btt_r4;--einsum gba,fdrga,fergb->fed --sizes g=64,b=1,a=64,f=64,d=1,r=4,e=64"
  "btt_r4_wmma;--einsum gba,fdrga,fergb->fed --sizes g=64,b=1,a=64,f=64,d=1,r=4,e=64 --no-wgmma"
  "monarch32_1024;--structure monarch(32) --d-in 1024 --d-out 1024"
)
# Tiles tried per tuned layer (FC:NWG:STAGES within the 220 KiB budget).
tune_layers=(
  "monarch64;--structure monarch(64) --d-in 4096 --d-out 4096;16:1:7 16:1:7:2 16:1:7:4 8:1:8:8 8:2:3:4 8:2:3:8"
  "btt_r4;--einsum gba,fdrga,fergb->fed --sizes g=64,b=1,a=64,f=64,d=1,r=4,e=64;2:1:4 2:1:4:2 2:1:4:4 2:1:4:8 4:1:2:4"
)

emit() { # EINSTRUCT NAME FLAGS DIR
  # shellcheck disable=SC2046
  eval "\"$1\" compile $(echo "$3" | sed "s/\([^ ]*[()>|][^ ]*\)/'\1'/g") --dtype bf16 --arch sm_90a --name $2 -o \"$4\"" >/dev/null
}

prepare() {
  local bin=$1 dir=$2
  rm -rf "$dir" && mkdir -p "$dir/layers" "$dir/bench" "$dir/tune"
  bash "$root/tests/gpu/check_layers.sh" gen "$bin" "$dir/layers"
  bash "$root/tests/gpu/check_mixers.sh" gen "$bin" "$dir/mixers"
  # The issue's mixer shapes for bench_mixers.py (float32).
  "$bin" compile --mixer 'ssd(heads=12, head_dim=64, state=64, chunk=64)' \
    --seq-len 4096 --name ssdb -o "$dir/mixbench" >/dev/null
  "$bin" compile --mixer 'hydra(heads=12, head_dim=64, state=64, chunk=64)' \
    --seq-len 4096 --name hydrab -o "$dir/mixbench" >/dev/null
  "$bin" compile --mixer 'm2-conv(causal=true)' --seq-len 4096 --d-model 768 \
    --name m2b -o "$dir/mixbench" >/dev/null
  # The same three with bfloat16 inputs and outputs.
  "$bin" compile --mixer 'm2-conv(causal=true)' --seq-len 4096 --d-model 768 \
    --dtype bf16 --name m2b16 -o "$dir/mixbench" >/dev/null
  "$bin" compile --mixer 'ssd(heads=12, head_dim=64, state=64, chunk=64)' \
    --seq-len 4096 --dtype bf16 --name ssdb16 -o "$dir/mixbench" >/dev/null
  "$bin" compile --mixer 'hydra(heads=12, head_dim=64, state=64, chunk=64)' \
    --seq-len 4096 --dtype bf16 --name hydrab16 -o "$dir/mixbench" >/dev/null
  for entry in "${bench_layers[@]}"; do
    emit "$bin" "${entry%%;*}" "${entry#*;}" "$dir/bench"
  done
  for entry in "${tune_layers[@]}"; do
    IFS=';' read -r name flags tiles <<<"$entry"
    for t in $tiles; do
      # A tile the planner refuses (over the budget) is skipped, not fatal.
      emit "$bin" "${name}_t${t//:/_}" "$flags --hopper-tile $t" "$dir/tune" 2>/dev/null ||
        echo "tile $t of $name refused by the planner"
    done
  done
  echo "prepared $(ls "$dir"/*/*.cu | wc -l) sources in $dir"
}

run() {
  local dir=$1 out=$2
  mkdir -p "$out"
  exec > >(tee "$out/session.log") 2>&1
  nvidia-smi -L; nvcc --version | tail -1
  python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
  # Every library at once (one nvcc per core), then the checks.
  for cu in "$dir"/bench/*.cu "$dir"/tune/*.cu; do
    echo "$cu"
  done | xargs -P "$(nproc)" -I{} sh -c 'f={}; "$0" -std=c++17 -O3 -shared -Xcompiler -fPIC \
      -gencode=arch=compute_90a,code=sm_90a "$f" -o "$(dirname "$f")/lib$(basename "$f" .cu).so" \
      || echo "BUILD FAILED $f"' "$NVCC"
  # Smoke test of the sm_90a kernel first: if it hangs or fails, stop here
  # and keep the rest of the lease for a fixed build.
  if [ -x "$dir/layers/monarch64_bf16.check" ] || "$NVCC" -std=c++17 -O3 \
      -gencode=arch=compute_90a,code=sm_90a -include "$dir/layers/monarch64_bf16.h" \
      -DLAYER=monarch64_bf16 "$root/tests/gpu/layer_check.cu" \
      "$dir/layers/monarch64_bf16.cu" -o "$dir/layers/monarch64_bf16.check"; then
    timeout 60 "$dir/layers/monarch64_bf16.check" 1 300 | tee "$out/smoke.txt"
    rc=${PIPESTATUS[0]}
    if [ "$rc" != 0 ]; then
      echo "SMOKE FAILED (exit $rc; 124 = timed out): stopping"
      return 1
    fi
  fi
  echo "== GPU layer checks"
  SECONDS=0
  bash "$root/tests/gpu/check_layers.sh" run "$dir/layers" 2>&1 | tee "$out/layers.txt"
  echo "layer checks took ${SECONDS}s"
  echo "== GPU mixer checks (contraction chains, float32)"
  bash "$root/tests/gpu/check_mixers.sh" run "$dir/mixers" 2>&1 | tee "$out/mixers.txt"
  if command -v compute-sanitizer >/dev/null; then
    # The cluster kernel under every tool; memcheck of the TMA weight
    # gradients of a rank-2 BTT. All logs in one file.
    for run in "racecheck monarch64_cl4 300" "synccheck monarch64_cl4 300" \
               "memcheck btt_r2_hopper 300" "memcheck btt_r4_cl4 3"; do
      set -- $run
      echo "=== $1 $2" >>"$out/sanitizers.txt"
      timeout 180 compute-sanitizer --tool "$1" --error-exitcode 9 "$dir/layers/$2.check" "$3" \
        >>"$out/sanitizers.txt" 2>&1 && echo "ok   $1 $2: $(grep 'SUMMARY' "$out/sanitizers.txt" | tail -1)" ||
        { echo "FAIL $1 $2"; tail -5 "$out/sanitizers.txt"; }
    done
  fi
  if [ "${SESSION_TUNE:-1}" = 1 ]; then
  echo "== tuning"
  local cands=()
  for so in "$dir"/tune/lib*.so; do
    b=$(basename "$so" .so); b=${b#lib}; name=${b%_t*}; t=${b##*_t}
    cands+=("$name:${t//_/:}=$so")
  done
  timeout 240 python3 "$here/tune.py" --tokens 16384 --out "$out" "${cands[@]}"
  fi
  echo "== benchmark"
  local libs=()
  for entry in "${bench_layers[@]}"; do libs+=("$dir/bench/lib${entry%%;*}.so"); done
  timeout 300 python3 "$here/bench_gpu.py" "${libs[@]}" --tokens 16384 --out "$out" --latency 1,8,64,512
  echo "== mixer benchmark (float32 and bfloat16): chunked SSD and Hydra vs PyTorch and torch.compile, m2-conv vs torch.fft"
  for cu in "$dir"/mixbench/*.cu; do
    "$NVCC" -std=c++17 -O3 -shared -Xcompiler -fPIC -gencode=arch=compute_90a,code=sm_90a \
      "$cu" -lcublas -o "$dir/mixbench/lib$(basename "$cu" .cu).so" || echo "BUILD FAILED $cu"
  done
  timeout 420 python3 "$here/bench_mixers.py" --ssd "$dir/mixbench:ssdb:12:64:64:64:4096" \
    --hydra "$dir/mixbench:hydrab:12:64:64:64:4096" \
    --ssd "$dir/mixbench:ssdb16:12:64:64:64:4096:bf16" \
    --hydra "$dir/mixbench:hydrab16:12:64:64:64:4096:bf16" \
    --m2 "$dir/mixbench:m2b:4096:768" --m2 "$dir/mixbench:m2b16:4096:768:bf16" \
    --batch 4 --out "$out"
  if [ "${SESSION_NCU:-1}" = 1 ] && command -v ncu >/dev/null; then
    echo "== ncu: one forward of the tuned Monarch kernel (clocks left alone)"
    timeout 120 ncu --clock-control none -k regex:twoStageHopper -c 1 \
      --section SpeedOfLight --section MemoryWorkloadAnalysis \
      python3 "$here/tune.py" --tokens 16384 --out "$dir" \
      "monarch64:16:1:7=$dir/bench/libmonarch64.so" >"$out/ncu.txt" 2>&1 ||
      echo "ncu failed (exit $?): $(tail -3 "$out/ncu.txt")"
  fi
}

# The libraries glibc and the toolchain provide everywhere: not packed.
system_lib() {
  case $(basename "$1") in
  libc.so* | libm.so* | libdl.so* | librt.so* | libpthread.so* | ld-linux* | \
    libstdc++.so* | libgcc_s.so*) return 0 ;;
  esac
  return 1
}

pack() {
  local build=$1 dir=$2 stage
  stage=$(mktemp -d)
  mkdir -p "$stage/bin" "$stage/lib" "$dir"
  cp "$build/bin/einstruct" "$stage/bin/"
  cp -P "$build"/lib/libeinstruct_runtime.so* "$stage/lib/"
  cp -r "$build/python" "$stage/python"
  cp -r "$build/include" "$stage/include"
  local lib
  for lib in $(ldd "$build/bin/einstruct" "$build/lib/libeinstruct_runtime.so" |
                 awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u); do
    system_lib "$lib" || cp -L "$lib" "$stage/lib/"
  done
  tar -cf - -C "$stage" . | xz -9e -T"$(nproc)" >"$dir/runtime.tar.xz" || return 1
  rm -rf "$stage"
  echo "packed $(du -h "$dir/runtime.tar.xz" | cut -f1) into $dir/runtime.tar.xz"
}

runtime() {
  local dir=$1 out=$2 rt=/tmp/einstruct-rt fails=0
  mkdir -p "$out" "$rt"
  exec > >(tee "$out/runtime.log") 2>&1
  xz -dc "$dir/runtime.tar.xz" | tar -xf - -C "$rt" || return 1
  export LD_LIBRARY_PATH=$rt/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  # The package's _config.py names the build machine's runtime.
  export EINSTRUCT_RUNTIME=$rt/lib/libeinstruct_runtime.so
  export PYTHONPATH=$rt/python EINSTRUCT_NVCC=$NVCC
  # The carried binary loads (its libraries found) before anything else.
  "$rt/bin/einstruct" analyze --structure 'monarch(4)' --d-in 16 --d-out 16 ||
    return 1
  # Each check exits 77 (skipped) without a GPU, 0 when it passes.
  check() {
    "$@"
    local rc=$?
    [ "$rc" = 0 ] || [ "$rc" = 77 ] || { echo "FAIL (exit $rc) $*"; fails=$((fails + 1)); }
  }
  echo "== gpu_torch: layers, mixers and blocks on CUDA tensors against the CPU"
  check timeout 600 python3 "$root/tests/gpu/check_torch.py" "$rt/bin/einstruct"
  echo "== gpu_runtime: the C ABI on CUDA"
  check timeout 300 bash "$root/tests/gpu/check_runtime.sh" "$rt" "$out/runtime_check"
  echo "== whole blocks: the einstruct block's chain against blocks.Hydra/M2, PyTorch eager and torch.compile"
  for block in hydra m2; do
    check timeout 300 python3 "$here/bench_blocks.py" --block $block \
      --lengths 4096 --batch 4 --out "$out"
  done
  echo "runtime checks: $fails failure(s)"
  [ "$fails" = 0 ]
}

case ${1:-} in
prepare) prepare "$2" "$3" ;;
run) run "$2" "$3" ;;
pack) pack "$2" "$3" ;;
runtime) runtime "$2" "$3" ;;
*) echo "usage: $0 prepare EINSTRUCT DIR | run DIR OUT | pack BUILD DIR |" \
     "runtime DIR OUT" >&2; exit 2 ;;
esac
