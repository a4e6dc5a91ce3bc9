# Shared by the GPU check scripts (sourced): tool lookup, the skip rule, the
# parallel build of a harness against each generated layer, and memcheck.
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
ARCH=${EINSTRUCT_GPU_ARCH:-sm_90a}

# Field N of a ';'-separated table line, trimmed.
field() { echo "$1" | cut -d';' -f"$2" | sed 's/^ *//; s/ *$//'; }

# Exits 77 (a CTest skip) without nvcc or a CUDA device.
need_gpu() {
  [ -x "$NVCC" ] || { echo "SKIP: no nvcc"; exit 77; }
  command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 ||
    { echo "SKIP: no CUDA device"; exit 77; }
}

# build_harness HARNESS.cu DIR SUFFIX NAME...: DIR/NAME.SUFFIX for each layer,
# built in parallel.
build_harness() {
  local src=$1 dir=$2 suffix=$3
  shift 3
  printf '%s\n' "$@" | xargs -P "$(nproc)" -I{} "$NVCC" -std=c++17 -O3 \
    -gencode=arch=compute_${ARCH#sm_},code=$ARCH -include "$dir/{}.h" \
    -DLAYER={} "$src" "$dir/{}.cu" -o "$dir/{}.$suffix"
}

# memcheck NAME LOG COMMAND...: COMMAND under compute-sanitizer memcheck,
# its output in LOG; prints ok/FAIL and returns 1 on errors.
memcheck() {
  local name=$1 log=$2
  shift 2
  timeout 300 compute-sanitizer --tool memcheck --error-exitcode 9 "$@" >"$log" 2>&1 &&
    echo "ok   memcheck $name: $(grep -m1 'ERROR SUMMARY' "$log")" ||
    { echo "FAIL memcheck $name"; tail -20 "$log"; return 1; }
}

# dispatch MODE ARGS...: the scripts' gen|run|all, over their gen and run;
# `all` (what `ctest -L gpu` runs) skips with 77 before generating anything
# when there is no device.
dispatch() {
  case $1 in
  gen) gen "$2" "$3" ;;
  run) run "$2" ;;
  all) command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 ||
         { echo "SKIP: no CUDA device (the GPU checks run where one is present)"; exit 77; }
       gen "$2" "$3" && run "$3" ;;
  *) echo "usage: $0 gen|run|all ..." >&2; exit 2 ;;
  esac
}
