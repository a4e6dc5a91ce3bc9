#!/usr/bin/env bash
# Every bundled example spec that the CUDA emitter takes is emitted and its
# code compiled by nvcc for sm_80 and sm_90a (each with that arch's plan);
# the specs it refuses must be refused with a reason. The GPU test harness is
# compiled too (and the runtime's). No GPU needed.   compile_examples.sh EINSTRUCT WORKDIR
set -uo pipefail
bin=$1
work=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
if [ ! -x "$NVCC" ]; then
  echo "SKIP: nvcc not found (CUDA 13 is expected at /usr/local/cuda)"
  exit 77
fi
rm -rf "$work" && mkdir -p "$work/specs"
# One file per spec, named after the example file and its index.
/usr/bin/python3 "$root/tests/cuda/example_specs.py" "$work/specs" "$root"/examples/*.json
fails=0 emitted=0 refused=0
jobs=()
for spec in "$work"/specs/*.json; do
  name=$(basename "$spec" .json)
  for arch in sm_80 sm_90a; do
    if msg=$("$bin" compile "$spec" --arch $arch --dtype bf16 --name "${name}_$arch" -o "$work" 2>&1); then
      emitted=$((emitted + 1))
      jobs+=("$name $arch")
    elif echo "$msg" | grep -qE "not emitted|needs two weight|one letter per class|takes at most"; then
      [ $arch = sm_80 ] && { refused=$((refused + 1)); echo "refused $name: ${msg#einstruct: error: }"; }
    else
      echo "FAIL emit $name $arch: $msg"; fails=$((fails + 1))
    fi
  done
done
# f32 and f16 for the Monarch example of worked_rows (the kernels' other paths).
for dt in f32 f16; do
  "$bin" compile --structure 'monarch(64)' --d-in 4096 --d-out 4096 --dtype $dt \
    --arch sm_90a --name monarch_${dt}_sm_90a -o "$work" >/dev/null &&
    jobs+=("monarch_$dt sm_90a")
done
# Every library `compile` wrote into DIR, queued for ARCH (sm_90a).
queue_dir() {
  local cu n arch=${2:-sm_90a}
  for cu in "$1"/*.cu; do
    n=$(basename "$cu" .cu)
    cp "$cu" "$work/${n}_$arch.cu" && cp "${cu%.cu}.h" "$work/"
    jobs+=("$n $arch")
  done
}
# A whole model (compile --model): every layer's library, for sm_90a.
if "$bin" compile --model "$root/examples/gpt2_small.json" --arch sm_90a \
     --name gpt2 -o "$work/model" >/dev/null; then
  queue_dir "$work/model"
else
  echo "FAIL compile --model"; fails=$((fails + 1))
fi
# Kernels from a plan edited in the IR (the forward on the portable kernel
# with its own tile, the backward-input on the sm_90a kernel), for sm_90a.
if "$bin" compile "$root/tests/lit/cli/compile-edited-plan.mlir" \
     -o "$work/edited" >/dev/null; then
  queue_dir "$work/edited"
else
  echo "FAIL compile of an edited #einstruct.cuda_plan"; fails=$((fails + 1))
fi
# Sequence mixers' contraction chains (forward and backward), for sm_90a:
# a chain's source is the same for every arch (the chain emitter takes
# none), so only the bf16 Hydra's, which converts, compiles for sm_80 too.
mixers=0
# Hydra on 250 tokens: the chunk's zero padding is in its library.
for entry in 'ssd(heads=2, head_dim=64, state=64, chunk=64)@256' \
    'hydra(heads=4, head_dim=32, state=16, chunk=32)@250' \
    'm2-conv(causal=true)@256' 'm2-conv(causal=false)@256' \
    'monarch-seq(blocks=16)@256' \
    'hydra-block(state=16, head_dim=32, chunk=32)@250' \
    'm2-block(causal=false, order=16, l_max=256)@256'; do
  mixer=${entry%@*}
  id=mixer$((++mixers))
  dir="$work/$id"
  if "$bin" compile --mixer "$mixer" --seq-len "${entry##*@}" --d-model 128 \
       --name "$id" \
       -o "$dir" >/dev/null; then
    queue_dir "$dir" sm_90a
  else
    echo "FAIL compile --mixer $mixer"; fails=$((fails + 1))
  fi
done
# Hydra with bfloat16 inputs and outputs (the boundary's conversions).
id=mixer$((++mixers))
if "$bin" compile --mixer 'hydra(heads=4, head_dim=32, state=16, chunk=32)' \
     --seq-len 250 --dtype bf16 --name "$id" -o "$work/$id" >/dev/null; then
  queue_dir "$work/$id" sm_80
  queue_dir "$work/$id" sm_90a
else
  echo "FAIL compile --mixer hydra --dtype bf16"; fails=$((fails + 1))
fi
compile_one() {
  local name=$1 arch=$2
  "$NVCC" -std=c++17 -O3 -gencode=arch=compute_${arch#sm_},code=$arch \
    -c "$work/${name}_$arch.cu" -o "$work/${name}_$arch.o" 2>"$work/${name}_$arch.log" &&
    ! grep -q "warning" "$work/${name}_$arch.log"
}
export -f compile_one
export NVCC work
printf '%s\n' "${jobs[@]}" | xargs -P 2 -L 1 bash -c 'compile_one $0 $1 || { echo "FAIL nvcc $0 $1"; cat "$work/${0}_$1.log" | head -20; exit 1; }' ||
  fails=$((fails + 1))
# The sm_90a kernels (einstruct_hopper.cuh) of Monarch and BTT: wgmma and
# TMA copies in their PTX; ptxas reports no spills and no serialised wgmma
# for any of them (C7514/C7517: accumulators read while a wgmma is in flight).
hopper_check() {
  local name=$1
  shift
  "$bin" compile "$@" --dtype bf16 --arch sm_90a --name "$name" -o "$work" >/dev/null ||
    { echo "FAIL emit $name"; return 1; }
  "$NVCC" -std=c++17 -O3 -gencode=arch=compute_90a,code=compute_90a -ptx \
    "$work/$name.cu" -o "$work/$name.ptx" || { echo "FAIL ptx $name"; return 1; }
  local need
  for need in wgmma.mma_async cp.async.bulk.tensor.2d.shared::cluster.global \
      cp.async.bulk.tensor.2d.global.shared::cta stmatrix.sync.aligned; do
    grep -q "$need" "$work/$name.ptx" || { echo "FAIL $name: no $need in the PTX"; return 1; }
  done
  "$NVCC" -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a -Xptxas -v \
    -c "$work/$name.cu" -o "$work/$name.o" 2>"$work/$name.ptxas" ||
    { echo "FAIL nvcc $name"; return 1; }
  # Each entry function's properties follow its name: the Hopper kernels'
  # lines must say 0 bytes of spill.
  if awk '/Compiling entry function/ {h = /Hopper/} h && /spill stores/ && !/ 0 bytes spill stores, 0 bytes spill loads/' \
      "$work/$name.ptxas" | grep -q .; then
    echo "FAIL $name: spills in an sm_90a kernel"; grep -B2 spill "$work/$name.ptxas" | head; return 1
  fi
  if grep -qE "C7514|C7517" "$work/$name.ptxas"; then
    echo "FAIL $name: wgmma serialised"; grep -E "C751" "$work/$name.ptxas" | head -3; return 1
  fi
  [ "$(grep -c "Compiling entry function.*Hopper" "$work/$name.ptxas")" -ge 4 ] ||
    { echo "FAIL $name: expected the forward, z and gradient kernels"; return 1; }
  echo "ok   $name: wgmma + TMA in the PTX, no spills, wgmma not serialised"
}
hopper_check hopper_monarch --structure 'monarch(64)' --d-in 4096 --d-out 4096 ||
  fails=$((fails + 1))
hopper_check hopper_btt --einsum 'gba,fdrga,fergb->fed' \
  --sizes g=64,b=1,a=64,f=64,d=1,r=4,e=64 || fails=$((fails + 1))
# The GPU harness, against the first emitted layer.
first=${jobs[0]// /_}
"$NVCC" -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a -include "$work/$first.h" \
  -DLAYER="$first" -c "$root/tests/gpu/layer_check.cu" -o "$work/layer_check.o" ||
  { echo "FAIL nvcc layer_check.cu"; fails=$((fails + 1)); }
# The MoE harness, against the BTT-MoE example.
moe=$(printf '%s\n' "${jobs[@]}" | grep -m1 "^named_8 sm_90a" | tr ' ' _)
if [ -n "$moe" ]; then
  "$NVCC" -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a -include "$work/$moe.h" \
    -DLAYER="$moe" -c "$root/tests/gpu/moe_check.cu" -o "$work/moe_check.o" ||
    { echo "FAIL nvcc moe_check.cu"; fails=$((fails + 1)); }
else
  echo "FAIL the BTT-MoE example (named_8) was not emitted"; fails=$((fails + 1))
fi
# The mixer harness, against the first mixer's forward and backward (an
# SSD), linked with both as tests/gpu/check_mixers.sh links them: the two
# libraries' shared kernels must not clash.
"$NVCC" -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a -I"$root" \
  -include "$work/mixer1.h" -include "$work/mixer1_backward.h" -DMIXER=mixer1 \
  -c "$root/tests/gpu/mixer_check.cu" -o "$work/mixer_check.o" &&
  "$NVCC" -gencode=arch=compute_90a,code=sm_90a "$work/mixer_check.o" \
    "$work/mixer1_sm_90a.o" "$work/mixer1_backward_sm_90a.o" -lcublas \
    -o "$work/mixer_check" ||
  { echo "FAIL nvcc mixer_check.cu (compile and link)"; fails=$((fails + 1)); }
# The runtime's GPU check, against the runtime's installed-style headers.
include=$(cd "$(dirname "$bin")/.." && pwd)/include
"$NVCC" -std=c++17 -O2 -I "$include" -c "$root/tests/gpu/runtime_check.cu" \
  -o "$work/runtime_check.o" ||
  { echo "FAIL nvcc runtime_check.cu"; fails=$((fails + 1)); }
# The glue the runtime appends to every layer's library (device choice,
# scratch memory, the bias kernels), on its own: no warnings.
for arch in sm_80 sm_90a; do
  "$NVCC" -std=c++17 -O3 -gencode=arch=compute_${arch#sm_},code=$arch \
    -c "$root/compiler/cuda/kernels/runtime_glue.cu" -o "$work/glue_$arch.o" \
    2>"$work/glue_$arch.log" && ! grep -q warning "$work/glue_$arch.log" ||
    { echo "FAIL nvcc runtime_glue.cu $arch"; head -20 "$work/glue_$arch.log"; fails=$((fails + 1)); }
done
echo "cuda compile: ${#jobs[@]} sources compiled, $refused spec(s) refused with a reason, $fails failure(s)"
[ "$fails" = 0 ] && [ "${#jobs[@]}" -gt 10 ]
