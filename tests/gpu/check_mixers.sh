#!/usr/bin/env bash
# Sequence mixers' CUDA libraries (`einstruct compile --mixer`: forward and
# backward) on the GPU against references in double (mixer_check.cu), plus
# compute-sanitizer memcheck.
#   check_mixers.sh gen EINSTRUCT DIR   emit the sources (no GPU needed)
#   check_mixers.sh run DIR             build with nvcc and run (GPU)
#   check_mixers.sh all EINSTRUCT DIR   both (what `ctest -L gpu` runs)
# Exits 77 (a CTest skip) when there is no nvcc or no CUDA device.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=common.sh
. "$here/common.sh"

# name ; mixer ; seq-len d-model ; harness arguments (after the family)
cases() {
  cat <<'CASES'
ssd_pad     ; ssd(heads=2, head_dim=16, state=16, chunk=16)  ; 45 0   ; ssd 2 16 16 45 3
ssd_wide    ; ssd(heads=2, head_dim=64, state=64, chunk=64)  ; 128 0  ; ssd 2 64 64 128 2
hydra_pad   ; hydra(heads=2, head_dim=16, state=16, chunk=16); 45 0   ; hydra 2 16 16 45 2
hydra_wide  ; hydra(heads=2, head_dim=64, state=64, chunk=64); 128 0  ; hydra 2 64 64 128 2
m2_causal   ; m2-conv(causal=true)                          ; 20 3   ; m2 20 3 1 2
m2_bidir    ; m2-conv(causal=false)                         ; 20 3   ; m2 20 3 0 2
m2_odd      ; m2-conv(causal=false)                         ; 45 5   ; m2 45 5 0 3
monarch     ; monarch-seq(blocks=4)                         ; 64 2   ; monarch 64 2 4 2
CASES
}

gen() {
  local bin=$1 dir=$2
  mkdir -p "$dir"
  while read -r line; do
    read -r L D <<<"$(field "$line" 3)"
    width=()
    [ "$D" = 0 ] || width=(--d-model "$D")
    "$bin" compile --mixer "$(field "$line" 2)" --seq-len "$L" "${width[@]}" \
      --name "$(field "$line" 1)" -o "$dir" >/dev/null
  done < <(cases)
  echo "generated $(cases | wc -l) mixers in $dir"
}

run() {
  local dir=$1
  need_gpu
  local fails=0
  while read -r line; do
    name=$(field "$line" 1)
    "$NVCC" -std=c++17 -O3 -gencode=arch=compute_${ARCH#sm_},code=$ARCH \
      -I"$root" -include "$dir/$name.h" -include "$dir/${name}_backward.h" \
      -DMIXER="$name" "$here/mixer_check.cu" "$dir/$name.cu" \
      "$dir/${name}_backward.cu" -lcublas -o "$dir/$name.check" ||
      { echo "FAIL build $name"; fails=$((fails + 1)); continue; }
    # shellcheck disable=SC2046
    args=($(field "$line" 4))
    [ "${args[0]}" = m2 ] && args+=("$dir/${name}_constants.safetensors")
    timeout "${CHECK_TIMEOUT:-300}" "$dir/$name.check" "${args[@]}" ||
      { echo "FAIL $name (exit $?; 124 = timed out)"; fails=$((fails + 1)); }
    memcheck "$name" "$dir/$name.memcheck.log" "$dir/$name.check" "${args[@]}" ||
      fails=$((fails + 1))
  done < <(cases)
  echo "gpu mixer checks: $fails failure(s)"
  [ "$fails" = 0 ]
}

dispatch "$@"
