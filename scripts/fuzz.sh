#!/usr/bin/env bash
# Runs every libFuzzer target (or those named) for SECONDS each, two at a
# time per core pair, on corpora seeded from examples/ and the tests and kept
# in build-sanitize/fuzz-corpus/ between runs. Crashing inputs are saved in
# build-sanitize/fuzz-artifacts/. Exit 1 if any target found a crash, leak,
# timeout or sanitizer report.
#   usage: scripts/fuzz.sh [SECONDS] [TARGET...]     (default 30 s, all)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
shift || true
targets=("$@")
if ((${#targets[@]} == 0)); then
  targets=(fuzz_theta fuzz_einsum fuzz_named fuzz_spec_json fuzz_sweep_config
           fuzz_model_config fuzz_report fuzz_npy fuzz_safetensors fuzz_mlir)
fi
[[ -x build-sanitize/bin/fuzz_theta ]] || scripts/setup-sanitized.sh
cmake --build build-sanitize -j "$(nproc)" >/dev/null

work=build-sanitize
seeds=$(mktemp -d)
trap 'rm -rf "$seeds"' EXIT
/usr/bin/python3 fuzz/make_corpora.py . "$seeds"
mkdir -p "$work/fuzz-artifacts" "$work/fuzz-logs"

fuzz_one() {
  local t=$1 dict=fuzz/spec.dict
  case $t in
    fuzz_npy|fuzz_safetensors) dict=fuzz/binary.dict ;;
    fuzz_mlir) dict=fuzz/mlir.dict ;;
  esac
  mkdir -p "$work/fuzz-corpus/$t"
  [[ -d "$seeds/$t" ]] && cp -n "$seeds/$t"/* "$work/fuzz-corpus/$t/" 2>/dev/null
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$work/bin/$t" "$work/fuzz-corpus/$t" -dict="$dict" \
      -max_total_time="$seconds" -max_len=4096 -timeout=10 \
      -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$work/fuzz-artifacts/$t-" \
      >"$work/fuzz-logs/$t.log" 2>&1
}
export -f fuzz_one
export work seeds seconds

status=0
printf '%s\n' "${targets[@]}" |
  xargs -P "$(nproc)" -I{} bash -c 'fuzz_one {} || echo {} >> "$work/fuzz-logs/failed"' || true
printf '%-20s %8s %11s %8s %6s  %s\n' target seconds execs exec/s cov result
for t in "${targets[@]}"; do
  log="$work/fuzz-logs/$t.log"
  execs=$(awk '/stat::number_of_executed_units:/ {n=$2} END {print n}' "$log")
  rate=$(awk '/stat::average_exec_per_sec:/ {n=$2} END {print n}' "$log")
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | awk '{print $2}')
  result=ok
  if grep -qx "$t" "$work/fuzz-logs/failed" 2>/dev/null; then
    result="FAILED: see $log"
    status=1
  fi
  printf '%-20s %8s %11s %8s %6s  %s\n' "$t" "$seconds" "${execs:-?}" \
    "${rate:-?}" "${cov:-?}" "$result"
done
rm -f "$work/fuzz-logs/failed"
if ((status)); then
  for t in "${targets[@]}"; do
    grep -m1 -A30 -E 'ERROR: |runtime error|invariant failed|deadly signal' \
      "$work/fuzz-logs/$t.log" || true
  done
fi
exit $status
