"""`einstruct compile --emit torch`: the generated torch.nn.Module against
torch.einsum references (forward, and every gradient through torch's own
autograd in float64), `einstruct run` for BTT-MoE (bit for bit, routing
too), the reference initialisation, bf16, shapes, copies and errors.
Exits 77 (CTest's skip) when PyTorch is not installed.
    usage: check_module.py EINSTRUCT"""
import copy
import io
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from module_checks import Checks, require_torch  # noqa: E402

torch = require_torch()
import numpy as np  # noqa: E402

einstruct = sys.argv[1]
checks = Checks(einstruct, "einstruct_torch_")
check, emit, work = checks.check, checks.emit, checks.work


def reference(module, x, weights):
    """Σ_terms einsum(x zero-padded to the term's input, weights), cut or
    zero-padded to d_out, in whatever dtype x and the weights have."""
    y = x.new_zeros(x.shape[0], module.D_OUT)
    w = list(weights)
    for term in module.SPEC["terms"]:
        ins, out = term["einsum"].split("->")
        letters = ins.split(",")
        sizes = term["sizes"]
        n_in = int(np.prod([sizes[c] for c in letters[0]]))
        n_out = int(np.prod([sizes[c] for c in out]))
        xp = x.new_zeros(x.shape[0], n_in)
        k = min(n_in, module.D_IN)
        xp[:, :k] = x[:, :k]
        xs = xp.reshape(x.shape[0], *[sizes[c] for c in letters[0]])
        ws = [w.pop(0) for _ in letters[1:]]
        spec = "..." + letters[0] + "," + ",".join(letters[1:]) + "->..." + out
        t = torch.einsum(spec, xs, *ws).reshape(x.shape[0], n_out)
        k = min(n_out, module.D_OUT)
        y[:, :k] += t[:, :k]
    return y


def relative(a, b):
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())


# Forward and gradients against torch.einsum + torch autograd in float64.
cases = [
    ("btt", ["--structure", "btt(rank=2)", "--d-in", "48", "--d-out", "96"]),
    ("monarch", ["--structure", "monarch(4)", "--d-in", "64", "--d-out", "64"]),
    ("padded", ["--theta", "(0.5|0|0.5|0|0.5|0.5|0)", "--d-in", "22",
                "--d-out", "27"]),
    ("dyad", ["--structure", "dyad(4, OT)", "--d-in", "32", "--d-out", "48"]),
    ("lowrank", ["--structure", "low-rank(16)", "--d-in", "64", "--d-out", "96"]),
]
torch.manual_seed(0)
for name, args in cases:
    m = emit(args, name)
    layer = getattr(m, name)()
    for batch in (1, 7, 70):
        x = torch.randn(batch, m.D_IN, requires_grad=True)
        dy = torch.randn(batch, m.D_OUT)
        y = layer(x)
        y.backward(dy)
        x64 = x.detach().double().requires_grad_()
        w64 = [w.detach().double().requires_grad_() for w in layer.weights]
        y64 = reference(m, x64, w64)
        y64.backward(dy.double())
        errs = [relative(y, y64), relative(x.grad, x64.grad)] + [
            relative(w.grad, r.grad) for w, r in zip(layer.weights, w64)]
        check(max(errs) < 1e-5, f"{name} batch {batch}: y, dx, dW vs einsum "
              f"+ autograd (max rel {max(errs):.1e})")
        layer.zero_grad()
    # Leading dimensions, an empty batch, a wrong feature size.
    x3 = torch.randn(2, 3, m.D_IN)
    check(torch.equal(layer(x3), layer(x3.reshape(6, m.D_IN)).reshape(2, 3, m.D_OUT)),
          f"{name}: [2, 3, d_in] equals the flattened rows")
    check(layer(torch.randn(0, m.D_IN)).shape == (0, m.D_OUT), f"{name}: empty batch")
    try:
        layer(torch.randn(4, m.D_IN + 1))
        check(False, f"{name}: a wrong d_in is refused")
    except ValueError as e:
        check(str(m.D_IN) in str(e), f"{name}: a wrong d_in is refused ({e})")

# Copies share the compiled layer; pickling recompiles; both compute the same.
m = emit(cases[0][1], "btt_copy")
layer = m.btt_copy()
x = torch.randn(5, 48)
buffer = io.BytesIO()
torch.save(layer, buffer)
buffer.seek(0)
loaded = torch.load(buffer)
check(torch.equal(copy.deepcopy(layer)(x), layer(x)) and torch.equal(loaded(x), layer(x)),
      "deepcopy and torch.save/torch.load give the same outputs")

# bf16 and f16 parameters and input: float32 arithmetic, a result in their
# dtype within its rounding.
for dtype, tol in ((torch.bfloat16, 1e-2), (torch.float16, 2e-3)):
    low = m.btt_copy(dtype=dtype)
    with torch.no_grad():
        for a, b in zip(low.weights, layer.weights):
            a.copy_(b)
    y_low = low(x.to(dtype))
    check(y_low.dtype == dtype and relative(y_low, layer(x.to(dtype).float())) < tol,
          f"{dtype} module: output within its rounding of float32")

# Tensors on another device: refused with the devices named (the meta device
# stands in for a second device on a machine without CUDA).
try:
    layer(torch.empty(3, 48, device="meta"))
    check(False, "a meta tensor is refused")
except RuntimeError as e:
    check("CPU or CUDA" in str(e) and "meta" in str(e), f"a meta tensor is refused ({e})")
on_meta = m.btt_copy().to("meta")
try:
    on_meta(x)
    check(False, "weights on another device than x are refused")
except RuntimeError as e:
    check("weight 0 is on meta" in str(e) and ".to(device)" in str(e),
          f"weights on another device than x are refused ({e})")

# The reference initialisation: std per core (structures.md §4).
m = emit(["--structure", "monarch(16)", "--d-in", "256", "--d-out", "256"], "init")
layer = m.init()
for k, w in enumerate(layer.weights):
    std = float(w.detach().double().std())
    check(abs(std / m.INIT_STD[k] - 1) < 0.03 and abs(float(w.mean())) < 0.01,
          f"init weight {k}: std {std:.4f} vs {m.INIT_STD[k]:.4f}")

# BTT-MoE: bit for bit what `einstruct run` computes, routing included.
args = ["--structure", "btt-moe(experts=4, top_k=2)", "--d-in", "48", "--d-out", "96"]
m = emit(args, "moe")
layer = m.moe()
check(bool((layer.weights[-1] == 0).all()) and list(layer.weights[-1].shape) == [48, 4],
      "MoE: the router is the last weight, [d_in, experts], zero-initialised")
rng = np.random.default_rng(5)
arrays = {"x": rng.uniform(-1, 1, (9, 48)), "dy": rng.uniform(-1, 1, (9, 96))}
for k, w in enumerate(layer.weights):
    arrays[f"w{k + 1}"] = rng.uniform(-1, 1, tuple(w.shape))
for key, a in arrays.items():
    np.save(f"{work}/{key}.npy", a.astype(np.float32))
with torch.no_grad():
    for k, w in enumerate(layer.weights):
        w.copy_(torch.from_numpy(arrays[f"w{k + 1}"].astype(np.float32)))
for aux in (0.01, 1.0):
    layer.aux_weight = aux
    layer.zero_grad()
    x = torch.from_numpy(arrays["x"].astype(np.float32)).requires_grad_()
    y = layer(x)
    y.backward(torch.from_numpy(arrays["dy"].astype(np.float32)))
    out = subprocess.run(
        [einstruct, "run", *args, "--input", f"{work}/x.npy", "--weights",
         f"{work}/w1.npy,{work}/w2.npy", "--router", f"{work}/w3.npy", "-o",
         f"{work}/y.npy", "--grad", f"{work}/dy.npy", "--grad-dir", work,
         "--aux-weight", str(aux), "--repeat", "1"],
        check=True, capture_output=True, text=True).stdout
    got = {"y": y, "dx": x.grad, "dw1": layer.weights[0].grad,
           "dw2": layer.weights[1].grad, "dwg": layer.weights[2].grad}
    same = all(np.array_equal(t.detach().numpy(), np.load(f"{work}/{key}.npy"))
               for key, t in got.items())
    check(same, f"MoE aux weight {aux}: y, dx, dW1, dW2, dWg equal einstruct run")
    r = layer.routing()
    counts = [int(c) for c in re.search(r"tokens per expert \[([0-9, ]+)\]",
                                        out).group(1).split(",")]
    aux_loss = float(re.search(r"aux loss ([0-9.e+-]+)", out).group(1))
    check(r["tokens_per_expert"] == counts and abs(r["aux_loss"] - aux_loss) < 1e-5,
          f"MoE routing {r['tokens_per_expert']} aux {r['aux_loss']:.5f} as einstruct run")

# CLI errors: a name that is not a Python identifier; a --target (the module
# follows its tensors' device).
bad = subprocess.run([einstruct, "compile", *cases[0][1], "--emit", "torch",
                      "--name", "2x", "-o", work], capture_output=True, text=True)
check(bad.returncode == 2 and "Python identifier" in bad.stderr,
      "--name 2x is refused: " + bad.stderr.strip())
bad = subprocess.run([einstruct, "compile", *cases[0][1], "--emit", "torch",
                      "--target", "cuda", "-o", work], capture_output=True, text=True)
check(bad.returncode == 2 and "--target" in bad.stderr,
      "--emit torch --target cuda is refused: " + bad.stderr.strip())

# A mixer module: `compile --mixer ... --emit torch` writes einstruct.nn and
# a Mixer subclass with the spec fixed; it equals the package's Mixer on the
# same operands (the same compiled code), its gradients too, and it knows
# its operands.
mixer_spec = "ssd(heads=2, head_dim=3, state=4, chunk=4)"
m = emit(["--mixer", mixer_spec, "--seq-len", "10"], "ssd_mod")
mod = m.ssd_mod()
check([n for n, _ in mod.operands] == ["x", "dt", "a", "B", "C"] and
      mod.seq_len == 10 and m.MIXER == mixer_spec,
      f"mixer module: {mod.operands}")
gen = torch.Generator().manual_seed(4)
ops = [torch.rand((3,) + shape, generator=gen) for _, shape in mod.operands]
ops[1] = ops[1] + 0.1          # dt > 0
ops[2] = -0.5 * ops[2]         # a = dt·A < 0
ops = [t.requires_grad_() for t in ops]
y = mod(*ops)
# The same y from the materialised matrix: y_l = Σ_{s≤l} C_l·B_s
# exp(Σ_{t=s+1..l} a_t) dt_s x_s, per head, in float64.
x, dt, a, B, C = [t.detach().double() for t in ops]
cum = torch.cumsum(a, 1)
L = 10
mask = torch.tril(torch.ones(L, L, dtype=torch.bool))[None, :, :, None]
M = torch.einsum("bln,bsn->bls", C, B)[..., None] * torch.exp(
    (cum[:, :, None] - cum[:, None]).masked_fill(~mask, float("-inf")))
want = torch.einsum("blsh,bshp->blhp", M, x * dt[..., None])
err = float((y.detach().double() - want).abs().max() / want.abs().max())
check(err < 1e-5, f"mixer module forward equals the materialised SSD ({err:.1e})")
g = torch.autograd.grad(y.sum(), ops)
check(all(t.shape == o.shape and torch.isfinite(t).all() for t, o in zip(g, ops)),
      "mixer module gradients reach every operand")
bad = subprocess.run([einstruct, "compile", "--mixer", "toeplitz", "--seq-len",
                      "8", "--emit", "torch", "-o", work], capture_output=True,
                     text=True)
check(bad.returncode == 2 and
      "the CPU runs ssd, hydra, m2-conv, monarch-seq, hydra-block and "
      "m2-block" in bad.stderr,
      "--mixer toeplitz is refused: " + bad.stderr.strip())
# An m2-conv module: d_model fixed with the spec; its y is the causal
# convolution y_i = sum_{j<=i} k_{i-j} x_j + D x_i (direct sums, float64).
m = emit(["--mixer", "m2-conv(causal=true)", "--seq-len", "12",
          "--d-model", "4"], "conv_mod")
mod = m.conv_mod()
check(m.D_MODEL == 4 and mod.per_sequence == [True, False, False],
      f"m2-conv module: {mod.operands} {mod.per_sequence}")
x = torch.rand(2, 12, 4, generator=gen)
k = torch.rand(12, 4, generator=gen) - 0.5
D = torch.rand(4, generator=gen)
y = mod(x, k, D).double()
want = x.double() * D.double()
for i in range(12):
    for j in range(i + 1):
        want[:, i] += k[i - j].double() * x[:, j].double()
err = float((y - want).abs().max() / want.abs().max())
check(err < 1e-5, f"m2-conv module forward equals direct sums ({err:.1e})")
bad = subprocess.run([einstruct, "compile", "--mixer", mixer_spec, "-o", work],
                     capture_output=True, text=True)
check(bad.returncode == 2 and "--mixer needs --seq-len L" in bad.stderr,
      "--mixer without --seq-len is refused: " + bad.stderr.strip())

shutil.rmtree(work)
checks.finish()
