#!/usr/bin/env bash
# `cmake --install` einstruct into a temporary prefix, build tests/consumer
# against it with find_package(einstruct), and check that its forward and
# backward equal `einstruct run` on the same data.
#   usage: run.sh BUILD_DIR EINSTRUCT
set -euo pipefail
build=$1 einstruct=$2
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
# The installed CLI runs from the prefix.
"$work/prefix/bin/einstruct" analyze --structure 'monarch(4)' --d-in 16 \
  --d-out 16 --json | grep -q '"params":128'
cmake -S "$here" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/build" >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
/usr/bin/python3 - "$work" "$einstruct" <<'PY'
import json, subprocess, sys
import numpy as np
work, einstruct = sys.argv[1], sys.argv[2]
spec = {"structure": "btt(rank=2)", "d_in": 48, "d_out": 96}
info = json.loads(subprocess.run([einstruct, "analyze", "--json", "--structure",
                                  spec["structure"], "--d-in", "48", "--d-out", "96"],
                                 capture_output=True, text=True, check=True).stdout)
rng = np.random.default_rng(3)
arrays = {"x": rng.uniform(-1, 1, (7, 48)), "dy": rng.uniform(-1, 1, (7, 96))}
t = info["terms"][0]
for k, letters in enumerate(t["einsum"].split("->")[0].split(",")[1:]):
    arrays[f"w{k + 1}"] = rng.uniform(-1, 1, [t["sizes"][c] for c in letters])
for name, a in arrays.items():
    a.astype("<f4").tofile(f"{work}/{name}.bin")
    np.save(f"{work}/{name}.npy", a.astype(np.float32))
subprocess.run([f"{work}/build/consumer", json.dumps(spec), work], check=True)
subprocess.run([einstruct, "run", "--structure", spec["structure"], "--d-in", "48",
                "--d-out", "96", "--input", f"{work}/x.npy", "--weights",
                f"{work}/w1.npy,{work}/w2.npy", "-o", f"{work}/y.npy", "--grad",
                f"{work}/dy.npy", "--grad-dir", work, "--repeat", "1"],
               check=True, capture_output=True)
bad = 0
for name in ["y", "dx", "dw1", "dw2"]:
    ref = np.load(f"{work}/{name}.npy")
    got = np.fromfile(f"{work}/{name}.bin", "<f4").reshape(ref.shape)
    if not np.array_equal(got, ref):
        print(f"{name}: runtime differs from einstruct run by "
              f"{np.abs(got - ref).max()}")
        bad += 1
print("consumer: installed runtime equals einstruct run" if not bad else "FAILED")
sys.exit(1 if bad else 0)
PY
