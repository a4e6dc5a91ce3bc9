#!/usr/bin/env bash
# The generated CUDA sources stay byte-identical to the ones the GPU verified:
# every row of tests/gpu/layers.txt and every bundled example spec is emitted
# for sm_80 and sm_90a and its .h and .cu hashed against golden.sha256. A
# change to the emitter that alters a kernel fails here until the GPU checks
# it again and the hashes are renewed (--update, with the reason in the
# commit). No GPU or nvcc needed.
#   golden_sources.sh EINSTRUCT [--update]
set -uo pipefail
bin=$1
update=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
golden=$here/golden.sha256
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fails=0
emit() { # NAME ARCH FLAGS...
  local name=$1 arch=$2; shift 2
  if ! "$bin" compile "$@" --arch "$arch" --name "$name" -o "$work/out" \
       >/dev/null 2>"$work/err"; then
    # A refusal is part of today's behaviour too: its message is hashed.
    sed "s|$work|WORK|g" "$work/err" >"$work/out/$name.refused"
  fi
}
mkdir -p "$work/out" "$work/specs"
while IFS=';' read -r name flags _; do
  name=$(echo "$name" | xargs)
  [[ -z $name || $name == \#* ]] && continue
  read -ra args <<<"$flags"
  emit "${name}_sm_90a" sm_90a "${args[@]}"
  [[ $flags == *--hopper-tile* ]] || emit "${name}_sm_80" sm_80 "${args[@]}"
done <"$root/tests/gpu/layers.txt"
/usr/bin/python3 "$root/tests/cuda/example_specs.py" "$work/specs" "$root"/examples/*.json
for spec in "$work"/specs/*.json; do
  for arch in sm_80 sm_90a; do
    emit "$(basename "$spec" .json)_$arch" $arch "$spec"
  done
done
(cd "$work/out" && sha256sum -- * | sort -k2) >"$work/now.sha256"
if [[ $update == --update ]]; then
  cp "$work/now.sha256" "$golden"
  echo "golden_sources: wrote $(wc -l <"$golden") hashes to $golden"
  exit 0
fi
if ! diff -u "$golden" "$work/now.sha256" >"$work/diff"; then
  echo "FAIL: generated sources differ from tests/cuda/golden.sha256:"
  grep '^[-+][0-9a-f]' "$work/diff" | awk '{print "  " substr($1, 1, 1) " " $2}'
  echo "(if intended and verified on a GPU: $0 EINSTRUCT --update)"
  exit 1
fi
echo "golden_sources: $(wc -l <"$golden") generated files byte-identical"
