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
# The installed Python package finds the installed library (analysis needs
# no PyTorch, so the package's torch import is what is skipped without it).
if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  PYTHONPATH="$work/prefix/lib/python3/dist-packages" /usr/bin/python3 -c '
import einstruct, einstruct.nn, sys
a = einstruct.analyze("monarch(4)", 16, 16)
assert a["params"] == 128, a
assert einstruct.nn._runtime_path().startswith(sys.argv[1]), einstruct.nn._runtime_path()
' "$work/prefix"
  # pip from the source tree, where the machine has pip (offline: the
  # system's setuptools; a copy, so the tree stays clean).
  if /usr/bin/python3 -m pip --version >/dev/null 2>&1; then
    cp -r "$here/../../python" "$work/python-src"
    /usr/bin/python3 -m pip install --quiet --no-build-isolation --no-deps \
      --no-index --target "$work/pip" "$work/python-src" 2>"$work/pip.log" ||
      { cat "$work/pip.log"; exit 1; }
    EINSTRUCT_RUNTIME=$(ls "$work"/prefix/lib*/libeinstruct_runtime.so* "$work"/prefix/lib/*/libeinstruct_runtime.so* 2>/dev/null | head -1) \
      PYTHONPATH="$work/pip" /usr/bin/python3 -c '
import einstruct
assert einstruct.analyze("monarch(4)", 16, 16)["params"] == 128'
  fi
fi
cmake -S "$here" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/build" >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
/usr/bin/python3 - "$work" "$einstruct" <<'PY'
import json, os, re, subprocess, sys
import numpy as np
work, einstruct = sys.argv[1], sys.argv[2]
bad = 0
# A BTT and a BTT-MoE (router as the last weight; its gradient is dwg.npy).
for n, spec in enumerate([{"structure": "btt(rank=2)", "d_in": 48, "d_out": 96},
                          {"structure": "btt-moe(experts=4, top_k=2)",
                           "d_in": 48, "d_out": 96}]):
    d = f"{work}/case{n}"
    os.makedirs(d)
    info = json.loads(subprocess.run(
        [einstruct, "analyze", "--json", "--structure", spec["structure"],
         "--d-in", "48", "--d-out", "96"],
        capture_output=True, text=True, check=True).stdout)
    rng = np.random.default_rng(3)
    arrays = {"x": rng.uniform(-1, 1, (7, 48)), "dy": rng.uniform(-1, 1, (7, 96))}
    t = info["terms"][0]
    names = []
    for k, letters in enumerate(t["einsum"].split("->")[0].split(",")[1:]):
        arrays[f"w{k + 1}"] = rng.uniform(-1, 1, [t["sizes"][c] for c in letters])
        names.append(f"w{k + 1}")
    moe = "experts" in spec["structure"]
    if moe:
        arrays["w3"] = rng.uniform(-1, 1, (48, 4))
    for name, a in arrays.items():
        a.astype("<f4").tofile(f"{d}/{name}.bin")
        np.save(f"{d}/{name}.npy", a.astype(np.float32))
    subprocess.run([f"{work}/build/consumer", json.dumps(spec), d], check=True)
    cmd = [einstruct, "run", "--structure", spec["structure"], "--d-in", "48",
           "--d-out", "96", "--input", f"{d}/x.npy", "--weights",
           ",".join(f"{d}/{w}.npy" for w in names), "-o", f"{d}/y.npy", "--grad",
           f"{d}/dy.npy", "--grad-dir", d, "--repeat", "1"]
    if moe:
        cmd += ["--router", f"{d}/w3.npy"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    outputs = ["y", "dx"] + [f"d{w}" for w in names]
    if moe:
        os.rename(f"{d}/dwg.npy", f"{d}/dw3.npy")
        outputs.append("dw3")
        counts, aux = open(f"{d}/counts.txt").read().split("\n")[:2]
        want = re.search(r"tokens per expert \[([0-9, ]+)\]", out).group(1)
        want_aux = float(re.search(r"aux loss ([0-9.e+-]+)", out).group(1))
        if counts.split() != want.replace(",", " ").split() or \
                abs(float(aux) - want_aux) > 1e-5 * abs(want_aux):
            print(f"routing: runtime {counts} / {aux}, einstruct run {want} / {want_aux}")
            bad += 1
    for name in outputs:
        ref = np.load(f"{d}/{name}.npy")
        got = np.fromfile(f"{d}/{name}.bin", "<f4").reshape(ref.shape)
        if not np.array_equal(got, ref):
            print(f"{spec['structure']} {name}: runtime differs from einstruct "
                  f"run by {np.abs(got - ref).max()}")
            bad += 1
print("consumer: installed runtime equals einstruct run" if not bad else "FAILED")
sys.exit(1 if bad else 0)
PY
