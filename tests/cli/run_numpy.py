#!/usr/bin/python3
"""`einstruct run` against NumPy, an independent implementation: random x and
weights written as .npy (weights in structures.md layouts, some with their
size-1 axes kept), y and the gradients read back and compared with np.einsum.
Also safetensors inputs (F32, BF16, F16 converted exactly), and that bad .npy
and safetensors inputs are refused with a byte offset and leave no output.
And `run --mixer` (SSD, Hydra, Hydra's whole block) against the materialised
matrix in float64, m2-conv (and M2's whole block) against numpy's FFT
convolution, monarch-seq against fly's reference."""
import json
import os
import struct
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


def case(name, spec_args, batch, keep_unit_axes=False, bias=False):
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
    b = rng.uniform(-1, 1, d_out).astype(np.float32)
    np.save(f"{work}/b.npy", b)
    r = run(["run"] + spec_args + ["--input", f"{work}/x.npy", "--weights",
             ",".join(files), "--output", f"{work}/y.npy", "--grad",
             f"{work}/dy.npy", "--grad-dir", work, "--repeat", "1"] +
            (["--bias", f"{work}/b.npy"] if bias else []))
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

    if bias:
        y_ref += b
        check(close(np.load(f"{work}/db.npy"), dy.astype(np.float64).sum(0)),
              f"{name}: db")
    check(close(np.load(f"{work}/y.npy"), y_ref), f"{name}: y")
    check(close(np.load(f"{work}/dx.npy"), dx_ref), f"{name}: dx")
    for k, ref in enumerate(dw_ref):
        dw = np.load(f"{work}/dw{k + 1}.npy")
        # Each dW keeps the axes its weight's file had.
        want = (1,) + ref.shape if keep_unit_axes else ref.shape
        check(dw.shape == want, f"{name}: dw{k + 1} shape {dw.shape}, not {want}")
        check(close(dw.reshape(ref.shape), ref), f"{name}: dw{k + 1}")


case("monarch", ["--structure", "monarch(8)", "--d-in", "64", "--d-out", "64"], 5)
case("btt rank 3, padded", ["--theta", "(0.5|0|0.5|0|0.5|0.5|0.25)", "--d-in",
                            "22", "--d-out", "27"], 3, keep_unit_axes=True)
case("low-rank", ["--structure", "low-rank(4)", "--d-in", "30", "--d-out", "18"], 1)
case("kronecker", ["--structure", "kronecker", "--d-in", "24", "--d-out", "36"], 4)
case("dyad DT", ["--structure", "dyad(4, DT)", "--d-in", "32", "--d-out", "48"], 6)
# fly's Monarch layout (4 square blocks, padded 62 -> 70) with a bias.
case("fly monarch + bias", ["--structure", "monarch(nblocks=4, layout=fly)",
                            "--d-in", "62", "--d-out", "70"], 3, bias=True)
case("einsum 3 cores", ["--einsum", "abc,xap,pybq,qzc->xyz", "--sizes",
                        "a=3,b=4,c=2,x=2,y=3,z=5,p=2,q=3"], 2)

# BTT-MoE: the all-experts reference with z gated, in float64 (structures.md
# §3): y and the routing report, and every gradient of
# L = <dy, y> + aux_weight·aux against central differences of it.
def moe_reference(spec, sizes, x, wg, w1, w2, k):
    ins, out = spec.split("->")
    xl, l1, l2 = ins.split(",")
    r = next(c for c in l1 if c in l2 and c not in xl + out)
    t = x.shape[0]
    logits = x @ wg
    e = logits.shape[1]
    lse = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + \
        logits.max(1)
    p = np.exp(logits - lse[:, None])
    gate = np.zeros_like(logits)
    counts = np.zeros(e)
    for i in range(t):
        sel = sorted(range(e), key=lambda j: (-logits[i, j], j))[:k]
        z = np.exp(logits[i, sel] - logits[i, sel].max())
        gate[i, sel] = z / z.sum() + 1e-6
        counts[sel] += 1
    aux = e * np.sum(p.mean(0) * counts / (t * k)) + 0.1 * np.mean(lse ** 2)
    xs = x.reshape([t] + [sizes[c] for c in xl])
    y = np.einsum(f"Z{xl},{l1},{l2},Z{r}->Z{out}", xs, w1, w2, gate)
    return y.reshape(t, -1), aux, counts


def moe_case(name, structure, d_in, d_out, batch, aux_weight):
    args = ["--structure", structure, "--d-in", str(d_in), "--d-out", str(d_out)]
    info = json.loads(run(["analyze", "--json"] + args).stdout)
    spec, sizes, k = info["terms"][0]["einsum"], info["terms"][0]["sizes"], info["top_k"]
    rng = np.random.default_rng(11)
    x = rng.uniform(-1, 1, (batch, d_in))
    dy = rng.uniform(-1, 1, (batch, d_out))
    wg = rng.uniform(-1, 1, (d_in, info["experts"]))
    w1, w2 = [rng.uniform(-1, 1, [sizes[c] for c in l])
              for l in spec.split("->")[0].split(",")[1:]]
    for n, a in [("x", x), ("dy", dy), ("wg", wg), ("w1", w1), ("w2", w2)]:
        np.save(f"{work}/moe_{n}.npy", a.astype(np.float32))
        a[...] = a.astype(np.float32)  # the reference sees what run reads
    r = run(["run"] + args + ["--input", f"{work}/moe_x.npy", "--router",
             f"{work}/moe_wg.npy", "--weights",
             f"{work}/moe_w1.npy,{work}/moe_w2.npy", "-o", f"{work}/moe_y.npy",
             "--grad", f"{work}/moe_dy.npy", "--grad-dir", work,
             "--aux-weight", str(aux_weight), "--repeat", "1", "--check"])
    check(r.returncode == 0, f"{name}: run failed: {r.stderr}")
    if r.returncode:
        return
    y, aux, counts = moe_reference(spec, sizes, x, wg, w1, w2, k)
    got = np.load(f"{work}/moe_y.npy")
    check(np.max(np.abs(got - y)) <= 1e-5 * np.max(np.abs(y)), f"{name}: y")
    report = r.stdout.split("tokens per expert [")[1].split("]")[0]
    check([int(v) for v in report.split(",")] == list(counts),
          f"{name}: counts {report} vs {counts}")
    got_aux = float(r.stdout.split("aux loss ")[1].split()[0])
    check(abs(got_aux - aux) <= 1e-5 * aux, f"{name}: aux {got_aux} vs {aux}")

    def loss(x, wg, w1, w2):
        y_, aux_, _ = moe_reference(spec, sizes, x, wg, w1, w2, k)
        return np.sum(dy * y_) + aux_weight * aux_
    params = {"x": x, "wg": wg, "w1": w1, "w2": w2}
    files = {"x": "dx", "wg": "dwg", "w1": "dw1", "w2": "dw2"}
    for n, a in params.items():
        g = np.load(f"{work}/{files[n]}.npy").reshape(a.shape)
        worst = 0
        for i in rng.choice(a.size, 12, replace=False):
            idx = np.unravel_index(i, a.shape)
            old = a[idx]
            a[idx] = old + 1e-6
            hi = loss(**params)
            a[idx] = old - 1e-6
            lo = loss(**params)
            a[idx] = old
            worst = max(worst, abs((hi - lo) / 2e-6 - g[idx]))
        check(worst <= 1e-3 * max(1.0, np.max(np.abs(g))),
              f"{name}: {files[n]} off by {worst} from finite differences")


moe_case("btt-moe 8:2", "btt-moe(experts=8, top_k=2)", 64, 48, 40, 0.01)
moe_case("btt-moe 4:1, aux weighted", "btt-moe(experts=4, top_k=1, in_blocks=4, "
         "out_blocks=6)", 32, 36, 17, 1.0)
r = run(["run", "--structure", "btt-moe(experts=4, top_k=1)", "--d-in", "16",
         "--d-out", "16", "--router", f"{work}/moe_wg.npy"])
check(r.returncode == 2 and "must be (d_in = 16, experts = 4)" in r.stderr,
      f"router shape: {r.stderr}")

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


def safetensors(path, tensors):
    """Writes (name, dtype, raw array) triples the way the format specifies."""
    header, data = {}, b""
    for name, dtype, arr in tensors:
        raw = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape),
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + data)


# The same layer from .npy and from safetensors must give identical bits. x is
# stored as BF16 and dy as F16, so the .npy twins hold the values rounded the
# way NumPy rounds them: any conversion slip shows.
rng = np.random.default_rng(7)
mon = ["--structure", "monarch(8)", "--d-in", "64", "--d-out", "64"]
a = rng.uniform(-1, 1, (8, 8, 8)).astype(np.float32)
b = rng.uniform(-1, 1, (8, 8, 8)).astype(np.float32)
x32 = rng.uniform(-1, 1, (3, 64)).astype(np.float32)
x_bf16 = (x32.view(np.uint32) >> 16).astype(np.uint16)
x = (x_bf16.astype(np.uint32) << 16).view(np.float32)
dy16 = rng.uniform(-1, 1, (3, 64)).astype(np.float16)
for name, arr in [("a", a), ("b", b), ("xr", x), ("dyr", dy16.astype(np.float32))]:
    np.save(f"{work}/{name}.npy", arr)
st = f"{work}/layer.safetensors"
safetensors(st, [("layer.A", "F32", a), ("layer.B", "F32", b),
                 ("x", "BF16", x_bf16), ("dy", "F16", dy16)])
os.makedirs(f"{work}/g_npy", exist_ok=True)
os.makedirs(f"{work}/g_st", exist_ok=True)
r1 = run(["run"] + mon + ["--input", f"{work}/xr.npy", "--weights",
         f"{work}/a.npy,{work}/b.npy", "--output", f"{work}/y_npy.npy",
         "--grad", f"{work}/dyr.npy", "--grad-dir", f"{work}/g_npy"])
r2 = run(["run"] + mon + ["--input", f"{st}:x", "--weights",
         f"{st}:layer.A,{st}:layer.B", "--output", f"{work}/y_st.npy",
         "--grad", f"{st}:dy", "--grad-dir", f"{work}/g_st"])
check(r1.returncode == 0 and r2.returncode == 0,
      f"safetensors run: {r1.stderr} {r2.stderr}")
if r1.returncode == 0 and r2.returncode == 0:
    for f in ["y_npy.npy:y_st.npy", "g_npy/dx.npy:g_st/dx.npy",
              "g_npy/dw1.npy:g_st/dw1.npy", "g_npy/dw2.npy:g_st/dw2.npy"]:
        p, q = f.split(":")
        check(np.array_equal(np.load(f"{work}/{p}"), np.load(f"{work}/{q}")),
              f"safetensors vs .npy: {f}")
one = f"{work}/one.safetensors"
safetensors(one, [("only", "F32", x32)])
r = run(["run"] + mon + ["--input", one, "--repeat", "1"])
check(r.returncode == 0, f"one-tensor file needs no name: {r.stderr}")


def refused(args, want, what):
    """Exit 2, the wanted text on stderr, and no output file written."""
    out = f"{work}/never.npy"
    r = run(["run"] + mon + args + ["--output", out])
    check(r.returncode == 2 and want in r.stderr and not os.path.exists(out),
          f"{what}: rc {r.returncode}: {r.stderr}")


refused(["--input", f"{st}:nope"], "no tensor 'nope' (tensors: dy, layer.A, "
        "layer.B, x)", "unknown tensor")
refused(["--input", st], "holds 4 tensors; name one", "ambiguous file")
data = open(st, "rb").read()
open(f"{work}/cut.safetensors", "wb").write(data[:-10])
refused(["--input", f"{work}/cut.safetensors:x"], "truncated data",
        "truncated safetensors")
open(f"{work}/huge.safetensors", "wb").write(struct.pack("<Q", 2**62) + b"{}")
refused(["--input", f"{work}/huge.safetensors:x"],
        "byte 0: header length 4611686018427387904 exceeds", "header length")
safetensors(f"{work}/ints.safetensors", [("x", "I64", np.zeros((3, 64), np.int64))])
refused(["--input", f"{work}/ints.safetensors:x"], "has dtype I64",
        "integer tensor")
# A bad gradient file is found before anything is written.
refused(["--grad", f"{work}/cut.npy"], "truncated data", "bad --grad")
refused(["--input", f"{work}/xr.npy", "--grad", f"{work}/dyr.npy",
         "--grad-dir", f"{work}/missing"],
        "not a directory", "missing --grad-dir")
np.save(f"{work}/empty.npy", np.zeros((0, 64), np.float32))
refused(["--input", f"{work}/empty.npy"], "holds no rows", "zero rows")
refused(["--repeat", "0"], "--repeat 0 must be in [1, 1000]", "repeat 0")
r = run(["run", "--structure", "low-rank(1)", "--d-in", "2",
         "--d-out", "1099511627776", "--batch", "4096"])
check(r.returncode == 2 and "exceed 2^32" in r.stderr,
      f"huge output: {r.stderr}")

# `einstruct project`: a matrix with the structure comes back exactly and
# `run` with the projected factors reproduces x·Wᵀ; a random matrix onto
# low-rank meets the bound from NumPy's own SVD (LAPACK).
bt = ["--structure", "btt(rank=2)", "--d-in", "48", "--d-out", "96"]
info = json.loads(run(["analyze", "--json"] + bt).stdout)
t = info["terms"][0]
ops = t["einsum"].split("->")[0].split(",")
factors = [rng.standard_normal([t["sizes"][c] for c in o]) for o in ops[1:]]
eye = np.eye(48).reshape([48] + [t["sizes"][c] for c in ops[0]])
W = np.einsum(f"n{ops[0]},{','.join(ops[1:])}->n{t['einsum'].split('->')[1]}",
              eye, *factors).reshape(48, 96).T.astype(np.float32)
np.save(f"{work}/W.npy", W)  # a transposed view: saved in Fortran order
r = run(["project"] + bt + ["--weight", f"{work}/W.npy", "-o", f"{work}/proj"])
err = float(r.stdout.split("relative Frobenius error ")[1].split()[0]) \
    if r.returncode == 0 else 1
check(r.returncode == 0 and err < 1e-5, f"project exact BTT: {r.stdout} {r.stderr}")
xs = rng.uniform(-1, 1, (5, 48)).astype(np.float32)
np.save(f"{work}/xs.npy", xs)
r = run(["run"] + bt + ["--input", f"{work}/xs.npy", "--weights",
        f"{work}/proj/w1.npy,{work}/proj/w2.npy", "-o", f"{work}/ys.npy"])
check(r.returncode == 0 and
      np.allclose(np.load(f"{work}/ys.npy"), xs @ W.T, rtol=1e-4, atol=1e-4),
      f"run with projected factors: {r.stderr}")
r = run(["project"] + bt + ["--weight", f"{work}/W.npy", "-o",
         f"{work}/proj.safetensors"])
st_w = f"{work}/proj.safetensors"
r2 = run(["run"] + bt + ["--input", f"{work}/xs.npy", "--weights",
          f"{st_w}:w1,{st_w}:w2", "-o", f"{work}/ys_st.npy"])
check(r.returncode == 0 and r2.returncode == 0 and
      np.array_equal(np.load(f"{work}/ys_st.npy"), np.load(f"{work}/ys.npy")),
      f"project to safetensors: {r.stderr} {r2.stderr}")
Wr = rng.standard_normal((30, 40)).astype(np.float32)
np.save(f"{work}/Wr_in_out.npy", np.ascontiguousarray(Wr.T))
lr = ["--structure", "low-rank(4)", "--d-in", "40", "--d-out", "30"]
r = run(["project"] + lr + ["--weight", f"{work}/Wr_in_out.npy", "--in-out",
         "-o", f"{work}/lr"])
s = np.linalg.svd(Wr.astype(np.float64), compute_uv=False)
bound = np.sqrt((s[4:] ** 2).sum() / (s ** 2).sum())
err = float(r.stdout.split("relative Frobenius error ")[1].split()[0]) \
    if r.returncode == 0 else 1
check(r.returncode == 0 and abs(err - bound) < 1e-5 * bound,
      f"low-rank projection error {err} vs NumPy's SVD bound {bound}: {r.stderr}")
r = run(["project"] + lr + ["--weight", f"{work}/Wr_in_out.npy", "-o",
         f"{work}/never"])
check(r.returncode == 2 and "for a (d_in, d_out) file give --in-out" in r.stderr
      and not os.path.exists(f"{work}/never"), f"transposed file: {r.stderr}")


# Sequence mixers: `run --mixer` on a safetensors file of named operands,
# against the materialised semiseparable matrix in float64
# (M[l, s] = C_l·B_s exp(Σ_{t=s+1..l} a_t), structures.md §7) applied to
# x ⊙ dt and, for Hydra, the reference's two flipped passes
# (goombalab/hydra: each half of dt scaling its pass's x, y rolled by one,
# y[0] = 0, the backward half flipped back, plus x ⊙ d). Every gradient is
# checked by central differences of <dy, y> in float64 along a random
# direction.
def ssd_matrix(a, B, C):
    """a [L, H], B, C [L, N] -> M [H, L, L] in float64."""
    cum = np.cumsum(a.astype(np.float64), axis=0)          # [L, H]
    L = a.shape[0]
    seg = cum[:, None, :] - cum[None, :, :]                  # [l, s, H]
    mask = np.tril(np.ones((L, L), bool))[:, :, None]
    decay = np.where(mask, np.exp(np.where(mask, seg, 0)), 0)
    cb = C.astype(np.float64) @ B.astype(np.float64).T       # [l, s]
    return np.transpose(cb[:, :, None] * decay, (2, 0, 1))


def ssd_ref(x, dt, a, B, C):
    xs = x.astype(np.float64) * dt[..., None]
    return np.stack([np.einsum("hls,shp->lhp", ssd_matrix(a[b], B[b], C[b]),
                               xs[b]) for b in range(len(x))])


def hydra_ref(x, dt, a, B, C, d):
    flip = lambda t: t[:, ::-1]
    fw = ssd_ref(x, dt[:, :, 0], a[:, :, 0], B[:, :, 0], C[:, :, 0])
    bw = ssd_ref(flip(x), flip(dt[:, :, 1]), flip(a[:, :, 1]),
                 flip(B[:, :, 1]), flip(C[:, :, 1]))
    roll = lambda y: np.concatenate([np.zeros_like(y[:, :1]), y[:, :-1]], 1)
    return roll(fw) + flip(roll(bw)) + x * d[..., None]


def m2_conv_ref(x, k, D, k_rev=None):
    """M2's fftconv_ref with numpy's FFT: x [b, L, C], k [L, C] zero-padded
    to 2L (k_rev flipped into the second half), + x·D."""
    L = x.shape[1]
    kk = np.zeros((2 * L,) + k.shape[1:])
    kk[:L] = k
    if k_rev is not None:
        kk[L:] += k_rev[::-1]
    y = np.fft.irfft(np.fft.rfft(x.astype(np.float64), n=2 * L, axis=1) *
                     np.fft.rfft(kk, axis=0)[None], n=2 * L, axis=1)[:, :L]
    return y + x * D


def monarch_seq_ref(x, w1, w2):
    """fly's blockdiag_butterfly_multiply_reference (version 2) on each
    channel: x [b, L, C], w1 (k, q, p), w2 (l, s, r)."""
    b, L, C = x.shape
    k, q, p = w1.shape
    l, s, r = w2.shape
    cols = x.astype(np.float64).transpose(0, 2, 1).reshape(b * C, k, p)
    out1 = np.einsum("kqp,bkp->bkq", w1, cols).reshape(b * C, r, l)
    y = np.einsum("lsr,blr->bsl", w2, out1.transpose(0, 2, 1))
    return y.reshape(b, C, s * l).transpose(0, 2, 1)


def mixer_case(spec, L, batch, shapes, ref, shared=(), d_model=None):
    rng = np.random.default_rng(L * 7 + batch)
    ops = {}
    for name, shape in shapes.items():
        v = rng.uniform(-1, 1, (() if name in shared else (batch,)) + shape)
        if name == "a":
            v = -rng.uniform(0.05, 0.5, (batch,) + shape)
        if name == "dt":
            v = rng.uniform(0.1, 1, (batch,) + shape)
        ops[name] = v.astype(np.float32)
    st = f"{work}/mixer.safetensors"
    safetensors(st, [(n, "F32", v) for n, v in ops.items()])
    y_ref = ref(*ops.values())
    dy = rng.uniform(-1, 1, y_ref.shape).astype(np.float32)
    np.save(f"{work}/mixer_dy.npy", dy)
    os.makedirs(f"{work}/mg", exist_ok=True)
    r = run(["run", "--mixer", spec, "--input", st, "-o", f"{work}/my.npy",
             "--grad", f"{work}/mixer_dy.npy", "--grad-dir", f"{work}/mg",
             "--repeat", "1"] +
            (["--d-model", str(d_model)] if d_model else []))
    if r.returncode != 0:
        check(False, f"run --mixer {spec}: {r.stderr}")
        return
    y = np.load(f"{work}/my.npy")
    err = np.abs(y - y_ref).max() / np.abs(y_ref).max()
    check(y.shape == y_ref.shape and err < 1e-5,
          f"{spec} L={L}: y relative error {err}")
    f = lambda o: float((dy.astype(np.float64) * ref(*o.values())).sum())
    for name, v in ops.items():
        g = np.load(f"{work}/mg/d{name}.npy")
        direction = rng.standard_normal(v.shape)
        h = 1e-4
        plus = {k: (w + h * direction if k == name else w).astype(np.float64)
                for k, w in ops.items()}
        minus = {k: (w - h * direction if k == name else w).astype(np.float64)
                 for k, w in ops.items()}
        fd = (f(plus) - f(minus)) / (2 * h)
        got = float((g.astype(np.float64) * direction).sum())
        check(g.shape == v.shape and abs(got - fd) <= 1e-4 * max(1, abs(fd)),
              f"{spec} L={L}: d{name}·v = {got}, finite differences {fd}")


mixer_case("ssd(heads=2, head_dim=3, state=4, chunk=4)", 10, 2,
           {"x": (10, 2, 3), "dt": (10, 2), "a": (10, 2), "B": (10, 4),
            "C": (10, 4)}, ssd_ref)
mixer_case("hydra(heads=2, head_dim=2, state=3, chunk=3)", 7, 1,
           {"x": (7, 2, 2), "dt": (7, 2, 2), "a": (7, 2, 2), "B": (7, 2, 3),
            "C": (7, 2, 3), "d": (7, 2)}, hydra_ref)
# m2-conv and monarch-seq: parameters shared by the batch are stored
# without its axis (their gradients summed over it); d_model from x.
mixer_case("m2-conv(causal=true)", 9, 2, {"x": (9, 3), "k": (9, 3), "D": (3,)},
           m2_conv_ref, shared=("k", "D"))
mixer_case("m2-conv(causal=false)", 6, 2,
           {"x": (6, 2), "k": (6, 2), "D": (2,), "k_rev": (6, 2)},
           lambda x, k, D, k_rev: m2_conv_ref(x, k, D, k_rev),
           shared=("k", "D", "k_rev"), d_model=2)
mixer_case("monarch-seq(blocks=2)", 8, 2,
           {"x": (8, 3), "w1": (2, 4, 4), "w2": (2, 4, 4)}, monarch_seq_ref,
           shared=("w1", "w2"))


def hydra_block_ref(x, w_in, conv_w, conv_b, dt_bias, A_log, D, fc_D, norm_w,
                    w_out):
    """goombalab/hydra's block (hydra.py, the non-fused path) in float64:
    in_proj into z, xBC, dt; dt = softplus(dt + dt_bias) per pass; SiLU of
    the depthwise convolution (padding K // 2); the mixer (hydra_ref) on x
    with B, C of each pass, a = dt·(−exp(A_log)), d = fc_D(x) + D;
    RMSNormGated (y·rsqrt(mean(y²) + 1e-5)·weight·silu(z)); out_proj."""
    x, w_in, conv_w, conv_b, dt_bias, A_log, D, fc_D, norm_w, w_out = (
        v.astype(np.float64) for v in (x, w_in, conv_w, conv_b, dt_bias,
                                       A_log, D, fc_D, norm_w, w_out))
    silu = lambda v: v / (1 + np.exp(-v))
    b, L, _ = x.shape
    H, E, K = len(dt_bias), len(norm_w), conv_w.shape[2]
    N = (conv_w.shape[0] - E) // 4
    zxd = x @ w_in.T
    z, xBC, dt = zxd[..., :E], zxd[..., E:2 * E + 4 * N], zxd[..., 2 * E + 4 * N:]
    dt = np.logaddexp(0, dt.reshape(b, L, 2, H) + dt_bias)
    pad = np.pad(xBC, ((0, 0), (K // 2, K // 2), (0, 0)))
    xBC = silu(sum(pad[:, k:k + L] * conv_w[:, 0, k] for k in range(K)) + conv_b)
    xs, BC = xBC[..., :E], xBC[..., E:].reshape(b, L, 2, 2, N)
    y = hydra_ref(xs.reshape(b, L, H, E // H), dt, dt * -np.exp(A_log),
                  BC[:, :, :, 0], BC[:, :, :, 1], xs @ fc_D.T + D)
    y = y.reshape(b, L, E)
    y = y / np.sqrt((y ** 2).mean(-1, keepdims=True) + 1e-5)
    return (y * norm_w * silu(z)) @ w_out.T


# The whole Hydra block: its parameters named as blocks.Hydra's state_dict
# (the CLI reads them from the file by those names and writes d<name>.npy).
mixer_case("hydra-block(state=3, conv=3, expand=2, head_dim=4, chunk=3)", 7, 2,
           {"x": (7, 4), "in_proj.weight": (32, 4), "conv1d.weight": (20, 1, 3),
            "conv1d.bias": (20,), "dt_bias": (2,), "A_log": (2,), "D": (2,),
            "fc_D.weight": (2, 8), "norm_weight": (8,),
            "out_proj.weight": (4, 8)}, hydra_block_ref,
           shared=("in_proj.weight", "conv1d.weight", "conv1d.bias", "dt_bias",
                   "A_log", "D", "fc_D.weight", "norm_weight",
                   "out_proj.weight"))


def hyena_filter_ref(p, pre, L, l_max, d):
    """hyena_utils.py's HyenaFilter.filter with its default modulation: the
    sine MLP over the positional embedding's first L rows (the frequencies
    shared), the last layer without a bias, times exp(−t·|δ|)."""
    h, freq = p["filter_fn.z"][0, :L], p["filter_fn.freq"][0]
    for i in range(3):
        h = np.sin(freq * (h @ p[f"{pre}.layers.{i}.weight"].T +
                           p[f"{pre}.layers.{i}.bias"]))
    t = np.linspace(0, 1, l_max)[:L, None]
    deltas = np.linspace(np.log(1e-2) / 1.5, np.log(1e-2) / 0.3, d)
    return (h @ p[f"{pre}.layers.3.weight"].T) * np.exp(-t * np.abs(deltas))


def m2_block_ref(p, l_max, causal):
    """m2's MonarchMixerSequenceMixing.forward in float64: in_linear, the
    short depthwise convolution (padding 2, cut to L), x1, x2, v; the long
    convolution (m2_conv_ref) of v·x1 with Hyena's filters and the bias;
    ·x2; out_linear."""
    p = {k: v.astype(np.float64) for k, v in p.items()}
    b, L, d = p["x"].shape
    u = p["x"] @ p["in_linear.weight"].T + p["in_linear.bias"]
    pad = np.pad(u, ((0, 0), (2, 0), (0, 0)))
    w = p["short_filter.weight"]
    u = sum(pad[:, k:k + L] * w[:, 0, k] for k in range(3)) + \
        p["short_filter.bias"]
    x1, x2, v = u[..., :d], u[..., d:2 * d], u[..., 2 * d:]
    k = hyena_filter_ref(p, "filter_fn", L, l_max, d)
    k_rev = None if causal else hyena_filter_ref(p, "filter_rev", L, l_max, d)
    y = m2_conv_ref(v * x1, k, p["bias"], k_rev)
    return (y * x2) @ p["out_linear.weight"].T + p["out_linear.bias"]


# M2's whole block, bidirectional, named as blocks.M2's state_dict (filter_rev
# shares filter_fn's z and freq, which the file holds once).
m2_shapes = {"x": (6, 3), "in_linear.weight": (9, 3), "in_linear.bias": (9,),
             "short_filter.weight": (9, 1, 3), "short_filter.bias": (9,),
             "filter_fn.z": (1, 8, 3), "filter_fn.freq": (1, 4)}
for pre in ("filter_fn", "filter_rev"):
    m2_shapes.update({f"{pre}.layers.0.weight": (4, 3),
                      f"{pre}.layers.0.bias": (4,),
                      f"{pre}.layers.1.weight": (4, 4),
                      f"{pre}.layers.1.bias": (4,),
                      f"{pre}.layers.2.weight": (4, 4),
                      f"{pre}.layers.2.bias": (4,),
                      f"{pre}.layers.3.weight": (3, 4)})
m2_shapes.update({"bias": (3,), "out_linear.weight": (3, 3),
                  "out_linear.bias": (3,)})
mixer_case("m2-block(causal=false, order=4, l_max=8)", 6, 2, m2_shapes,
           lambda *v: m2_block_ref(dict(zip(m2_shapes, v)), 8, False),
           shared=tuple(m2_shapes)[1:])
# A wrong operand shape or a missing operand: located, exit 2, no output.
st = f"{work}/bad_mixer.safetensors"
safetensors(st, [("x", "F32", np.zeros((1, 8, 2, 3), np.float32)),
                 ("dt", "F32", np.zeros((1, 8, 2), np.float32)),
                 ("a", "F32", np.zeros((1, 8, 3), np.float32)),
                 ("B", "F32", np.zeros((1, 8, 4), np.float32))])
r = run(["run", "--mixer", "ssd(heads=2, head_dim=3, state=4)", "--input", st,
         "-o", f"{work}/never.npy"])
check(r.returncode == 2 and "a has shape (1, 8, 3)" in r.stderr and
      not os.path.exists(f"{work}/never.npy"), f"mixer operand shape: {r.stderr}")
safetensors(st, [("x", "F32", np.zeros((1, 8, 2, 3), np.float32)),
                 ("dt", "F32", np.zeros((1, 8, 2), np.float32)),
                 ("a", "F32", np.zeros((1, 8, 2), np.float32)),
                 ("B", "F32", np.zeros((1, 8, 4), np.float32))])
r = run(["run", "--mixer", "ssd(heads=2, head_dim=3, state=4)", "--input", st,
         "-o", f"{work}/never.npy"])
check(r.returncode == 2 and "'C'" in r.stderr and
      not os.path.exists(f"{work}/never.npy"), f"mixer operand missing: {r.stderr}")
r = run(["run", "--mixer", "ssd(heads=2, head_dim=3, state=4)", "--input", st,
         "--seq-len", "9"])
check(r.returncode == 2 and "--seq-len 9 but" in r.stderr,
      f"mixer seq-len conflict: {r.stderr}")

print(f"run_numpy: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
