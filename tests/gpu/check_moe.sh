#!/usr/bin/env bash
# BTT-MoE layers on the GPU (tests/gpu/moe_check.cu) against `einstruct run`
# on the CPU, plus compute-sanitizer memcheck.
#   check_moe.sh gen EINSTRUCT DIR   emit the sources, inputs and CPU results
#   check_moe.sh run DIR             build with nvcc and run (GPU)
#   check_moe.sh all EINSTRUCT DIR   both (what `ctest -L gpu` runs)
# Exits 77 (a CTest skip) when there is no nvcc or no CUDA device.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=common.sh
. "$here/common.sh"

# name ; structure ; d_in d_out ; dtype ; tokens ; aux weight
cases() {
  cat <<'CASES'
moe8_bf16      ; btt-moe(experts=8, top_k=2)                             ; 256 384   ; bf16 ; 1000 ; 0.01
moe4_f32       ; btt-moe(experts=4, top_k=1, in_blocks=4, out_blocks=6)  ; 96 120    ; f32  ; 77   ; 1.0
moe16_768_bf16 ; btt-moe(experts=16, top_k=2)                            ; 768 3072  ; bf16 ; 300  ; 0.01
moe8_f16       ; btt-moe(experts=8, top_k=3)                             ; 512 512   ; f16  ; 129  ; 0.1
moe_odd_bf16   ; btt-moe(experts=4, top_k=2, in_blocks=3, out_blocks=5)  ; 21 35     ; bf16 ; 50   ; 0.01
CASES
}

gen() {
  local bin=$1 dir=$2
  mkdir -p "$dir"
  while read -r line; do
    name=$(field "$line" 1) s=$(field "$line" 2) dt=$(field "$line" 4)
    read -r din dout <<<"$(field "$line" 3)"
    spec=(--structure "$s" --d-in "$din" --d-out "$dout")
    "$bin" compile "${spec[@]}" --dtype "$dt" --arch "$ARCH" --name "$name" -o "$dir" >/dev/null
    mkdir -p "$dir/$name"
    "$bin" analyze --json "${spec[@]}" >"$dir/$name/analysis.json"
    /usr/bin/python3 - "$dir/$name" "$dt" "$(field "$line" 5)" <<'PY'
import json, sys
import numpy as np
out, dt, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
info = json.load(open(f"{out}/analysis.json"))
spec, sizes = info["terms"][0]["einsum"], info["terms"][0]["sizes"]
rng = np.random.default_rng(5)

def exact(a):  # values the layer's dtype holds exactly
    a = a.astype(np.float32)
    if dt == "bf16":
        u = a.view(np.uint32)
        u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
        return u.astype(np.uint32).view(np.float32)
    if dt == "f16":
        return a.astype(np.float16).astype(np.float32)
    return a

l1, l2 = spec.split("->")[0].split(",")[1:]
arrays = {"x": (n, info["d_in"]), "dy": (n, info["d_out"]),
          "wg": (info["d_in"], info["experts"]),
          "w1": [sizes[c] for c in l1], "w2": [sizes[c] for c in l2]}
for k, shape in arrays.items():
    np.save(f"{out}/{k}.npy", exact(rng.uniform(-1, 1, shape)))
PY
    d="$dir/$name"
    r=$("$bin" run "${spec[@]}" --input "$d/x.npy" --router "$d/wg.npy" \
      --weights "$d/w1.npy,$d/w2.npy" -o "$d/y.npy" --grad "$d/dy.npy" \
      --grad-dir "$d" --aux-weight "$(field "$line" 6)" --repeat 1)
    # routing.txt: the aux loss, then the tokens per expert.
    echo "$r" | sed -n 's/.*aux loss \([^ ]*\).*/\1/p' >"$d/routing.txt"
    echo "$r" | sed -n 's/.*tokens per expert \[\([^]]*\)\].*/\1/p' | tr -d ',' >>"$d/routing.txt"
  done < <(cases)
  echo "generated $(cases | wc -l) BTT-MoE layers with CPU results in $dir"
}

run() {
  local dir=$1
  need_gpu
  local fails=0 names=()
  while read -r line; do names+=("$(field "$line" 1)"); done < <(cases)
  build_harness "$here/moe_check.cu" "$dir" moecheck "${names[@]}"
  while read -r line; do
    name=$(field "$line" 1)
    "$dir/$name.moecheck" "$dir/$name" "$(field "$line" 6)" || fails=$((fails + 1))
  done < <(cases)
  if command -v compute-sanitizer >/dev/null; then
    for name in moe8_bf16 moe4_f32 moe_odd_bf16; do
      w=$(field "$(cases | grep "^$name ")" 6)
      memcheck "$name" "$dir/$name.memcheck" "$dir/$name.moecheck" \
        "$dir/$name" "$w" || fails=$((fails + 1))
    done
  else
    echo "note: compute-sanitizer not found; memcheck not run"
  fi
  echo "gpu moe checks: $fails failing"
  [ "$fails" = 0 ]
}

dispatch "$@"
