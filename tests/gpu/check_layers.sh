#!/usr/bin/env bash
# GPU checks of generated layers (tests/gpu/layers.txt) against the float64
# reference in layer_check.cu, plus compute-sanitizer memcheck.
#   check_layers.sh gen EINSTRUCT DIR   emit the sources (no GPU needed)
#   check_layers.sh run DIR             build with nvcc and run (GPU)
#   check_layers.sh all EINSTRUCT DIR   both (what `ctest -L gpu` runs)
# Exits 77 (a CTest skip) when there is no nvcc or no CUDA device.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=common.sh
. "$here/common.sh"

specs() { grep -v '^#' "$here/layers.txt" | grep -v '^ *$'; }
# Plans edited in the IR (sm_90a bf16): @edited runs its forward on the
# portable kernel with its own tile and its backward-input on the sm_90a
# kernel with tile 8:2:3, a mix the planner never picks for this layer.
edited=$here/../lit/cli/compile-edited-plan.mlir
edited_layers() { [ "$ARCH" = sm_90a ] && echo edited; true; }

gen() {
  local bin=$1 dir=$2
  mkdir -p "$dir"
  specs | while read -r line; do
    name=$(field "$line" 1)
    # shellcheck disable=SC2046
    eval "\"$bin\" compile $(field "$line" 2 | sed "s/\([^ ]*[()|>][^ ]*\)/'\1'/g") --arch $ARCH --name $name -o \"$dir\"" >/dev/null
  done
  [ -z "$(edited_layers)" ] || "$bin" compile "$edited" -o "$dir" >/dev/null
  echo "generated $(specs | wc -l) layers and the edited plans in $dir"
}

run() {
  local dir=$1
  need_gpu
  local fails=0 names=()
  while read -r line; do names+=("$(field "$line" 1)"); done < <(specs)
  for name in $(edited_layers); do names+=("$name"); done
  # Build in parallel, then run one at a time.
  build_harness "$here/layer_check.cu" "$dir" check "${names[@]}"
  while read -r line; do
    name=$(field "$line" 1)
    # A hung kernel fails its layer instead of stalling the run.
    # shellcheck disable=SC2046
    timeout "${CHECK_TIMEOUT:-120}" "$dir/$name.check" $(field "$line" 3) ||
      { echo "FAIL $name (exit $?; 124 = timed out)"; fails=$((fails + 1)); }
  done < <(specs)
  for name in $(edited_layers); do
    timeout "${CHECK_TIMEOUT:-120}" "$dir/$name.check" 1 300 ||
      { echo "FAIL $name (exit $?; 124 = timed out)"; fails=$((fails + 1)); }
  done
  if command -v compute-sanitizer >/dev/null; then
    for name in monarch64_bf16 monarch64_nwg2 monarch64_cl4 btt_padded exact_odd \
        $(edited_layers); do
      memcheck "$name" "$dir/$name.memcheck" "$dir/$name.check" 3 ||
        fails=$((fails + 1))
    done
  else
    echo "note: compute-sanitizer not found; memcheck not run"
  fi
  echo "gpu layer checks: $fails failing layer(s)"
  [ "$fails" = 0 ]
}

dispatch "$@"
