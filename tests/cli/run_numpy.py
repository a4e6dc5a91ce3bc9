#!/usr/bin/python3
"""`einstruct run` against NumPy, an independent implementation: random x and
weights written as .npy (weights in structures.md layouts, some with their
size-1 axes kept), y and the gradients read back and compared with np.einsum.
Also checks that bad .npy inputs are refused with a byte offset."""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

EINSTRUCT = sys.argv[1]
work = tempfile.mkdtemp()
passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what)


def run(args):
    return subprocess.run([EINSTRUCT] + args, capture_output=True, text=True)


def case(name, spec_args, batch, keep_unit_axes=False):
    info = json.loads(run(["analyze", "--json"] + spec_args).stdout)
    d_in, d_out = info["d_in"], info["d_out"]
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    x = rng.uniform(-1, 1, (batch, d_in)).astype(np.float32)
    dy = rng.uniform(-1, 1, (batch, d_out)).astype(np.float32)
    np.save(f"{work}/x.npy", x)
    np.save(f"{work}/dy.npy", dy)
    files, ws = [], []
    for t in info["terms"]:
        spec, sizes = t["einsum"], t["sizes"]
        for k, letters in enumerate(spec.split("->")[0].split(",")[1:]):
            w = rng.uniform(-1, 1, [sizes[c] for c in letters]).astype(np.float32)
            ws.append(w)
            path = f"{work}/w{len(files)}.npy"
            # Optionally store with an extra size-1 axis, which run accepts.
            np.save(path, w[None] if keep_unit_axes else w)
            files.append(path)
    r = run(["run"] + spec_args + ["--input", f"{work}/x.npy", "--weights",
             ",".join(files), "--output", f"{work}/y.npy", "--grad",
             f"{work}/dy.npy", "--grad-dir", work, "--repeat", "1"])
    check(r.returncode == 0, f"{name}: run failed: {r.stderr}")
    if r.returncode:
        return
    # Reference: each term as an einsum over x padded/cut to its index sizes.
    y_ref = np.zeros((batch, d_out))
    dx_ref = np.zeros((batch, d_in))
    dw_ref = []
    i = 0
    for t in info["terms"]:
        spec, sizes = t["einsum"], t["sizes"]
        ins, out = spec.split("->")
        ops = ins.split(",")
        p_in = int(np.prod([sizes[c] for c in ops[0]]))
        p_out = int(np.prod([sizes[c] for c in out]))
        xp = np.zeros((batch, p_in))
        m = min(p_in, d_in)
        xp[:, :m] = x[:, :m]
        xs = xp.reshape([batch] + [sizes[c] for c in ops[0]])
        tw = [w.astype(np.float64) for w in ws[i:i + len(ops) - 1]]
        full = "Z" + ops[0] + "," + ",".join(ops[1:]) + "->Z" + out
        yt = np.einsum(full, xs, *tw).reshape(batch, p_out)
        mo = min(p_out, d_out)
        y_ref[:, :mo] += yt[:, :mo]
        dyp = np.zeros((batch, p_out))
        dyp[:, :mo] = dy[:, :mo]
        dys = dyp.reshape([batch] + [sizes[c] for c in out])
        dxt = np.einsum("Z" + out + "," + ",".join(ops[1:]) + "->Z" + ops[0],
                        dys, *tw).reshape(batch, p_in)
        dx_ref[:, :m] += dxt[:, :m]
        for k in range(len(tw)):
            others = [tw[j] for j in range(len(tw)) if j != k]
            letters = [ops[1 + j] for j in range(len(tw)) if j != k]
            e = ",".join(["Z" + ops[0], "Z" + out] + letters) + "->" + ops[1 + k]
            dw_ref.append(np.einsum(e, xs, dys, *others))
        i += len(ops) - 1

    def close(a, b):
        return np.max(np.abs(a - b)) <= 1e-5 * max(1.0, np.max(np.abs(b)))

    check(close(np.load(f"{work}/y.npy"), y_ref), f"{name}: y")
    check(close(np.load(f"{work}/dx.npy"), dx_ref), f"{name}: dx")
    for k, ref in enumerate(dw_ref):
        check(close(np.load(f"{work}/dw{k + 1}.npy"), ref), f"{name}: dw{k + 1}")


case("monarch", ["--structure", "monarch(8)", "--d-in", "64", "--d-out", "64"], 5)
case("btt rank 3, padded", ["--theta", "(0.5|0|0.5|0|0.5|0.5|0.25)", "--d-in",
                            "22", "--d-out", "27"], 3, keep_unit_axes=True)
case("low-rank", ["--structure", "low-rank(4)", "--d-in", "30", "--d-out", "18"], 1)
case("kronecker", ["--structure", "kronecker", "--d-in", "24", "--d-out", "36"], 4)
case("dyad DT", ["--structure", "dyad(4, DT)", "--d-in", "32", "--d-out", "48"], 6)
case("einsum 3 cores", ["--einsum", "abc,xap,pybq,qzc->xyz", "--sizes",
                        "a=3,b=4,c=2,x=2,y=3,z=5,p=2,q=3"], 2)

# Bad inputs: exit 2, the file and the problem (with a byte offset) named.
np.save(f"{work}/f64.npy", np.zeros((2, 64)))
r = run(["run", "--structure", "monarch(8)", "--d-in", "64", "--d-out", "64",
         "--input", f"{work}/f64.npy"])
check(r.returncode == 2 and "dtype must be little-endian float32" in r.stderr
      and "byte" in r.stderr, f"float64 input: {r.stderr}")
data = open(f"{work}/x.npy", "rb").read()
open(f"{work}/cut.npy", "wb").write(data[:-10])
r = run(["run", "--structure", "monarch(8)", "--d-in", "64", "--d-out", "64",
         "--input", f"{work}/cut.npy"])
check(r.returncode == 2 and "truncated data" in r.stderr, f"truncated: {r.stderr}")
np.save(f"{work}/wrong.npy", np.zeros((2, 63), np.float32))
r = run(["run", "--structure", "monarch(8)", "--d-in", "64", "--d-out", "64",
         "--input", f"{work}/wrong.npy"])
check(r.returncode == 2 and "must be (N, d_in = 64)" in r.stderr, f"shape: {r.stderr}")
r = run(["run", "--structure", "monarch(8)", "--d-in", "64", "--d-out", "64",
         "--weights", f"{work}/wrong.npy"])
check(r.returncode == 2 and "2 weight tensors" in r.stderr, f"count: {r.stderr}")

print(f"run_numpy: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
