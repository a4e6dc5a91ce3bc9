"""The Python package `einstruct` (PYTHONPATH=build/python): analyze, search
and search_model against the CLI's JSON; einstruct.nn.Linear (bias, CPU)
against torch.einsum + autograd in float64; state_dict round trip; BTTMoE;
project() on matrices of known structure; convert() on a linear model (the
output error equals the reported projection error) and on a trained MLP
(fine-tuning recovers); load_checkpoint of fly and einsum-search state dicts
and .pt files against our transcriptions of their forwards; Mixer (Hydra)
against a float64 transcription with autograd, and blocks.Hydra against a
transcription of hydra.py's forward. Exits 77 (CTest's skip) without PyTorch.
    usage: check_package.py EINSTRUCT"""
import json
import os

import numpy as np
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "torch"))
sys.path.insert(0, os.path.join(here, "..", "interop"))
from module_checks import Checks, require_torch  # noqa: E402
from references import btt_moe, fly_monarch  # noqa: E402

torch = require_torch()
import einstruct  # noqa: E402

cli = sys.argv[1]
checks = Checks(cli, "einstruct_package_")
check = checks.check


def cli_json(args):
    out = subprocess.run([cli] + args, check=True, capture_output=True,
                         text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


# Analysis and search: the CLI's objects.
a = einstruct.analyze("btt(rank=4)", 768, 3072)
ref = cli_json(["analyze", "--structure", "btt(rank=4)", "--d-in", "768",
                "--d-out", "3072", "--json"])[0]
a.pop("label"), ref.pop("label")  # "spec" and the flag text
check(a == ref, "analyze equals `einstruct analyze --json`")
pair = einstruct.analyze([{"structure": "monarch(8)", "d_in": 64, "d_out": 64},
                          "(0.5|0|0.5|0|0.5|0.5|0)"], 64, 64)
check([p["params"] for p in pair] == [1024, 1024],
      f"analyze of a list: {[p['params'] for p in pair]}")
top = einstruct.search(768, 3072, top=4, max_flops_ratio=0.25)
ref = cli_json(["search", "--d-in", "768", "--d-out", "3072",
                "--max-flops-ratio", "0.25", "--top", "4", "--json"])
check([(c["name"], c["flops"], c["params"]) for c in top] ==
      [(c["name"], c["flops"], c["params"]) for c in ref],
      "search ranks as `einstruct search --json`")
model = json.load(open(os.path.join(os.path.dirname(__file__), "..", "..",
                                    "examples", "gpt2_small.json")))
r = einstruct.search_model(model["layers"], model["budget"])
ref = cli_json(["search", "--model", os.path.join(
    os.path.dirname(__file__), "..", "..", "examples", "gpt2_small.json"),
    "--json"])[0]
check((r["total_flops"], r["total_params"]) ==
      (ref["total_flops"], ref["total_params"]),
      "search_model equals `einstruct search --model --json`")
try:
    einstruct.analyze("btt(rank=0)", 64, 64)
    check(False, "a bad spec raises")
except RuntimeError as e:
    check("rank = '0' must be a positive integer" in str(e), f"bad spec: {e}")


def reference(layer, x, weights):
    """Σ_terms torch.einsum over x zero-padded to the term's input."""
    info = einstruct.analyze(layer.spec)
    y = x.new_zeros(x.shape[0], layer.d_out)
    w = list(weights)
    for term in info["terms"]:
        ins, out = term["einsum"].split("->")
        ops, sizes = ins.split(","), term["sizes"]
        n_in = n_out = 1
        for c in ops[0]:
            n_in *= sizes[c]
        for c in out:
            n_out *= sizes[c]
        xp = x.new_zeros(x.shape[0], n_in)
        k = min(n_in, layer.d_in)
        xp[:, :k] = x[:, :k]
        xs = xp.reshape(x.shape[0], *[sizes[c] for c in ops[0]])
        ws = [w.pop(0) for _ in ops[1:]]
        t = torch.einsum("..." + ops[0] + "," + ",".join(ops[1:]) + "->..." +
                         out, xs, *ws).reshape(x.shape[0], n_out)
        k = min(n_out, layer.d_out)
        y[:, :k] += t[:, :k]
    return y


def rel(a, b):
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())


torch.manual_seed(0)
for spec, d_in, d_out in [("btt(rank=2)", 48, 96),
                          ("monarch(nblocks=4, layout=fly)", 62, 70),
                          ("(0.5|0|0.5|0|0.5|0.5|0)", 22, 27)]:
    layer = einstruct.Linear(spec, d_in, d_out, bias=True)
    x = torch.randn(7, d_in, requires_grad=True)
    dy = torch.randn(7, d_out)
    layer(x).backward(dy)
    x64 = x.detach().double().requires_grad_()
    w64 = [w.detach().double().requires_grad_() for w in layer.weights]
    b64 = layer.bias.detach().double().requires_grad_()
    (reference(layer, x64, w64) + b64).backward(dy.double())
    errs = [rel(layer(x), reference(layer, x64, w64) + b64),
            rel(x.grad, x64.grad), rel(layer.bias.grad, b64.grad)] + [
        rel(w.grad, r.grad) for w, r in zip(layer.weights, w64)]
    check(max(errs) < 1e-5, f"Linear('{spec}', bias): y, dx, db, dW vs "
          f"einsum + autograd (max rel {max(errs):.1e})")
    back = einstruct.Linear(spec, d_in, d_out, bias=True)
    back.load_state_dict(layer.state_dict())
    check(torch.equal(back(x), layer(x)), f"'{spec}': state_dict round trip")

moe = einstruct.BTTMoE(48, 96, experts=4, top_k=2)
check(list(moe.weights[-1].shape) == [48, 4] and bool((moe.weights[-1] == 0).all()),
      "BTTMoE: the router is the last weight, [d_in, experts], zero")
with torch.no_grad():
    moe.weights[-1].normal_()
y = moe(torch.randn(10, 48))
routing = moe.routing()
check(y.shape == (10, 96) and sum(routing["tokens_per_expert"]) == 20,
      f"BTTMoE routes 10 tokens to 2 experts each: {routing}")

# project(): a matrix of known structure comes back exactly; a random one
# with the error the SVD says.
exact = einstruct.Linear("btt(rank=2)", 32, 48)
dense = exact(torch.eye(32)).detach().T  # [d_out, d_in]
weights, err = einstruct.project("btt(rank=2)", dense)
check(err < 1e-5, f"project of a BTT matrix onto its structure: error {err:.2e}")
rebuilt = reference(exact, torch.eye(32), [torch.from_numpy(w) for w in weights])
check(rel(rebuilt.T, dense) < 1e-5, "the projected weights rebuild the matrix")

# convert(): a linear map on white inputs: the mean squared change of the
# output is ‖W − M‖²/d_out, i.e. (err·‖W‖)²/d_out.
lin = torch.nn.Sequential(torch.nn.Linear(64, 64))
x = torch.randn(20000, 64)
with torch.no_grad():
    y_dense = lin(x)
report = einstruct.convert(lin, budget=0.5)
check(isinstance(lin[0], einstruct.Linear) and report[0]["layer"] == "0",
      f"convert replaced the layer: {report}")
with torch.no_grad():
    mse = float(((lin(x) - y_dense) ** 2).mean())
    w_mean_square = float(((y_dense - y_dense.mean(0)) ** 2).mean())
want = report[0]["projection_error"] ** 2 * w_mean_square
check(abs(mse / want - 1) < 0.1, f"convert: output MSE {mse:.4g} vs the "
      f"projection's {want:.4g} (error {report[0]['projection_error']:.3f})")
check(report[0]["macs"] <= 0.5 * 64 * 64 and report[0]["params"] < 64 * 64,
      f"convert: within the budget {report[0]}")

# A trained MLP: converted, then fine-tuned, its loss falls again.
torch.manual_seed(1)
teacher = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.Tanh(),
                              torch.nn.Linear(64, 16))
student = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.Tanh(),
                              torch.nn.Linear(64, 16))
xs = torch.randn(2048, 32)
with torch.no_grad():
    ys = teacher(xs)


def train(model, steps):
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        opt.zero_grad()
        loss = ((model(xs) - ys) ** 2).mean()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return float(((model(xs) - ys) ** 2).mean())


trained = train(student, 300)
report = einstruct.convert(student, budget=0.4)
with torch.no_grad():
    converted = float(((student(xs) - ys) ** 2).mean())
tuned = train(student, 150)
check(all(isinstance(student[k], einstruct.Linear) for k in (0, 2)) or
      any(e["structure"] == "dense" for e in report),
      f"convert replaced the MLP's layers: {report}")
check(tuned < converted, f"fine-tuning recovers: loss {trained:.4g} dense, "
      f"{converted:.4g} converted, {tuned:.4g} after 150 steps")
try:
    einstruct.convert(torch.nn.Sequential(torch.nn.Tanh()))
    check(False, "a model without nn.Linear is refused")
except ValueError as e:
    check("no nn.Linear" in str(e), f"a model without nn.Linear: {e}")

# load_checkpoint: a fly MonarchLinear (padded 62 -> 70) from a state dict,
# an einsum-search BTT-MoE from a .pt file, against references.py.
torch.manual_seed(2)
state = {"mlp.fc1.blkdiag1": torch.randn(4, 16, 16),
         "mlp.fc1.blkdiag2": torch.randn(4, 18, 16),
         "mlp.fc1.bias": torch.randn(70),
         "pos_ids": torch.arange(4)}  # an integer buffer: skipped
layers = einstruct.load_checkpoint(state, "fly", d_in=62)
x = torch.rand(5, 62) * 2 - 1
fc1 = layers.get("mlp.fc1")
check(fc1 is not None and fc1.d_in == 62 and fc1.d_out == 70,
      f"load_checkpoint(fly): {list(layers)}")
if fc1 is not None:
    ref = fly_monarch(x.numpy(), state["mlp.fc1.blkdiag1"].numpy(),
                      state["mlp.fc1.blkdiag2"].numpy(),
                      state["mlp.fc1.bias"].numpy(), 70)
    err = rel(fc1(x).detach(), torch.from_numpy(ref))
    check(err < 1e-5, f"load_checkpoint(fly): the module equals fly's forward "
          f"({err:.1e})")
m = "blocks.0.mlp.btt_layer"
moe_state = {f"{m}.matrix_params.0": torch.randn(8, 6, 8 * 4),
             f"{m}.matrix_params.1": torch.randn(8, 8 * 4, 10),
             f"{m}.matrix_params.2": torch.tensor(1.5),
             f"{m}.matrix_params.3": torch.tensor(0.7),
             f"{m}.b": torch.randn(80),
             "blocks.0.mlp.moe_gate.weight": torch.randn(4, 48)}
pt = os.path.join(checks.work, "moe.pt")
torch.save({"model": moe_state}, pt)
layers = einstruct.load_checkpoint(pt, "einsum-search", top_k=2)
moe_layer = layers.get("blocks.0.mlp")
check(moe_layer is not None and moe_layer.bias is not None,
      f"load_checkpoint(einsum-search .pt): {list(layers)}")
if moe_layer is not None:
    x = torch.rand(9, 48) * 2 - 1
    n = {k: v.numpy() for k, v in moe_state.items()}
    ref = btt_moe(x.numpy(), n[f"{m}.matrix_params.0"], n[f"{m}.matrix_params.1"],
                  (1.5, 0.7), n["blocks.0.mlp.moe_gate.weight"], n[f"{m}.b"], 2)
    err = rel(moe_layer(x).detach(), torch.from_numpy(ref))
    check(err < 1e-5, f"load_checkpoint(einsum-search): the BTT-MoE module "
          f"equals BTTMoELayer's forward ({err:.1e})")
try:
    einstruct.load_checkpoint({"w": torch.randn(3, 3)}, "fly")
    check(False, "a checkpoint without layers is refused")
except RuntimeError as e:
    check("no fly structured layer" in str(e), f"no layers: {e}")


# einstruct.Mixer: Hydra's mixer against a float64 transcription of the
# reference (two SSD passes on x ⊙ dt and flip(x) ⊙ dt as materialised
# semiseparable matrices, rolled by one, the second flipped back, plus
# x ⊙ d); every operand's gradient against autograd through that
# transcription.
def ssd64(x, dt, a, B, C):
    L = a.shape[1]
    cum = torch.cumsum(a, 1)                                  # b l h
    seg = cum[:, :, None] - cum[:, None]                      # b l s h
    mask = torch.tril(torch.ones(L, L, dtype=torch.bool))[None, :, :, None]
    decay = torch.exp(seg.masked_fill(~mask, float("-inf")))
    M = torch.einsum("bln,bsn->bls", C, B)[..., None] * decay
    return torch.einsum("blsh,bshp->blhp", M, x * dt[..., None])


def hydra64(x, dt, a, B, C, d):
    flip = lambda t: torch.flip(t, (1,))
    fw = ssd64(x, dt[:, :, 0], a[:, :, 0], B[:, :, 0], C[:, :, 0])
    bw = ssd64(flip(x), flip(dt[:, :, 1]), flip(a[:, :, 1]), flip(B[:, :, 1]),
               flip(C[:, :, 1]))
    roll = lambda y: torch.cat([torch.zeros_like(y[:, :1]), y[:, :-1]], 1)
    return roll(fw) + flip(roll(bw)) + x * d[..., None]


def check_mixer_grads(what, mixer, y, ops, y64, ops64):
    """Every operand's gradient of <dy, y> (dy drawn here) against autograd
    through the float64 transcription that gave y64."""
    dy = torch.rand(y.shape, generator=gen) * 2 - 1
    g = torch.autograd.grad(y, ops, dy)
    g64 = torch.autograd.grad(y64, ops64, dy.double())
    for (n, _), a, b in zip(mixer.operands, g, g64):
        check(rel(a, b) < 1e-4, f"{what} d{n} equals autograd through the "
              f"transcription ({rel(a, b):.1e})")


mixer = einstruct.Mixer("hydra(heads=3, head_dim=2, state=4, chunk=4)", 11)
check([n for n, _ in mixer.operands] == ["x", "dt", "a", "B", "C", "d"] and
      mixer.operands[2][1] == (11, 2, 3),
      f"Mixer operands: {mixer.operands}")
gen = torch.Generator().manual_seed(5)
ops = [torch.rand((2,) + shape, generator=gen) * 2 - 1
       for _, shape in mixer.operands]
ops[1] = 0.1 + 0.9 * torch.rand(ops[1].shape, generator=gen)   # dt
ops[2] = -0.05 - 0.45 * torch.rand(ops[2].shape, generator=gen)  # dt·A
ops = [t.requires_grad_() for t in ops]
ops64 = [t.detach().double().requires_grad_() for t in ops]
y, y64 = mixer(*ops), hydra64(*ops64)
check(rel(y.detach(), y64.detach()) < 1e-5,
      f"Mixer(hydra) forward equals the float64 transcription "
      f"({rel(y.detach(), y64.detach()):.1e})")
check_mixer_grads("Mixer(hydra)", mixer, y, ops, y64, ops64)
# Training keeps the forward's residuals for the backward (and for a second
# backward through a retained graph); recompute=True keeps the operands
# alone and runs the forward again: the same bits either way. Without
# autograd nothing is kept.
again = einstruct.Mixer("hydra(heads=3, head_dim=2, state=4, chunk=4)", 11,
                        recompute=True)
dy = torch.rand(y.shape, generator=gen) * 2 - 1
y_kept = mixer(*ops)
g_kept = torch.autograd.grad(y_kept, ops, dy, retain_graph=True)
g_twice = torch.autograd.grad(y_kept, ops, dy)
g_again = torch.autograd.grad(again(*ops), ops, dy)
check(all(torch.equal(a, b) and torch.equal(a, c)
          for a, b, c in zip(g_kept, g_twice, g_again)),
      "Mixer: gradients from the kept residuals, again from them, and with "
      "recompute=True are the same bits")
with torch.no_grad():
    y_inference = mixer(*ops)
check(rel(y_inference, y.detach()) < 1e-6 and "recompute=True" in repr(again),
      f"Mixer under no_grad: {rel(y_inference, y.detach()):.1e}; {again}")
try:
    mixer(*ops[:5])
    check(False, "Mixer with an operand missing is refused")
except ValueError as e:
    check("5 operands given" in str(e) and "x, dt, a, B, C, d" in str(e),
          f"Mixer operand count: {e}")
try:
    mixer(*[t.detach().to("meta") for t in ops])
    check(False, "Mixer on meta tensors is refused")
except RuntimeError as e:
    check("runs on CPU or CUDA tensors" in str(e), f"Mixer device: {e}")
try:
    einstruct.Mixer("hydra(heads=3, head_dim=2, state=4, chunk=12)", 11)
    check(False, "a chunk longer than the sequence is refused")
except RuntimeError as e:
    check("chunk = 12 exceeds" in str(e), f"Mixer chunk: {e}")



# einstruct.Mixer("m2-conv"): M2's fftconv_ref (hyena_utils.py) in float64
# with numpy's FFT, channels last: k zero-padded to 2L (bidirectional: k_rev
# flipped into the second half), y = irfft(rfft(x)·rfft(k))[:L] + x·D; the
# gradients against autograd through the same transcription in torch.
def fftconv_np(x, k, k_rev, D):
    L = x.shape[1]
    kk = np.zeros((2 * L,) + k.shape[1:])
    kk[:L] = k
    if k_rev is not None:
        kk[L:] += k_rev[::-1]
    y = np.fft.irfft(np.fft.rfft(x, n=2 * L, axis=1) *
                     np.fft.rfft(kk, axis=0)[None], n=2 * L, axis=1)[:, :L]
    return y + x * D


def fftconv64(x, k, *rest):
    k_rev, D = (rest[0], rest[1]) if len(rest) == 2 else (None, rest[0])
    L = x.shape[1]
    kk = torch.cat([k, torch.zeros_like(k)], 0)
    if k_rev is not None:
        kk = kk + torch.cat([torch.zeros_like(k_rev), torch.flip(k_rev, (0,))])
    y = torch.fft.irfft(torch.fft.rfft(x, n=2 * L, dim=1) *
                        torch.fft.rfft(kk, dim=0)[None], n=2 * L, dim=1)
    return y[:, :L] + x * D


for causal, L in (("true", 37), ("false", 20)):
    conv = einstruct.Mixer("m2-conv(causal=%s)" % causal, L, d_model=5)
    names = [n for n, _ in conv.operands]
    check(names == (["x", "k", "D"] if causal == "true" else
                    ["x", "k", "k_rev", "D"]) and
          conv.per_sequence == [True] + [False] * (len(names) - 1),
          f"m2-conv operands: {conv.operands} {conv.per_sequence}")
    ops = [torch.rand(((3,) if each else ()) + shape, generator=gen) * 2 - 1
           for (_, shape), each in zip(conv.operands, conv.per_sequence)]
    y = conv(*ops)
    want = fftconv_np(*[t.double().numpy() for t in ops[:1]],
                      ops[1].double().numpy(),
                      ops[2].double().numpy() if causal == "false" else None,
                      ops[-1].double().numpy())
    err = float(np.abs(y.numpy() - want).max() / np.abs(want).max())
    check(err < 1e-5, f"Mixer(m2-conv causal={causal}, L={L}) equals numpy's "
          f"FFT convolution ({err:.1e})")
    ops = [t.requires_grad_() for t in ops]
    ops64 = [t.detach().double().requires_grad_() for t in ops]
    y, y64 = conv(*ops), fftconv64(*ops64)
    check_mixer_grads(f"Mixer(m2-conv causal={causal})", conv, y, ops, y64,
                      ops64)


# einstruct.Mixer("monarch-seq"): fly's blockdiag_butterfly_multiply_reference
# (version 2) on each channel's column, in float64.
def monarch64(x, w1, w2):
    b, L, C = x.shape
    k, q, p = w1.shape
    l, s, r = w2.shape
    xs = x.permute(0, 2, 1).reshape(b * C, k, p)
    out1 = torch.einsum("kqp,bkp->bkq", w1, xs).reshape(b * C, r, l)
    out1 = out1.transpose(1, 2)
    y = torch.einsum("lsr,blr->bsl", w2, out1).reshape(b, C, s * l)
    return y.permute(0, 2, 1)


mon = einstruct.Mixer("monarch-seq(blocks=4)", 32, d_model=3)
check(mon.operands == [("x", (32, 3)), ("w1", (4, 8, 8)), ("w2", (4, 8, 8))],
      f"monarch-seq operands: {mon.operands}")
ops = [(torch.rand(((2,) if each else ()) + shape, generator=gen) * 2 - 1)
       .requires_grad_() for (_, shape), each in
       zip(mon.operands, mon.per_sequence)]
ops64 = [t.detach().double().requires_grad_() for t in ops]
y, y64 = mon(*ops), monarch64(*ops64)
x_cols = ops[0].detach().numpy().transpose(0, 2, 1).reshape(6, 32)
want = fly_monarch(x_cols, ops[1].detach().numpy().astype(np.float64),
                   ops[2].detach().numpy().astype(np.float64), None, 32)
want = torch.from_numpy(want.reshape(2, 3, 32).transpose(0, 2, 1).copy())
check(rel(y.detach(), want) < 1e-5 and rel(y64.detach(), want) < 1e-12,
      f"Mixer(monarch-seq) equals fly's Monarch per channel "
      f"({rel(y.detach(), want):.1e})")
check_mixer_grads("Mixer(monarch-seq)", mon, y, ops, y64, ops64)
try:
    mon(ops[0], ops[1][None], ops[2])
    check(False, "a batched shared weight is refused")
except ValueError as e:
    check("w1 (shared by the batch) must be (4, 8, 8)" in str(e),
          f"Mixer shared operand shape: {e}")

def check_block(what, block, u, ref_fn, params=None):
    """The block's forward against ref_fn(float64 parameters by name, u in
    float64), and the gradients of u and of every parameter (`params`, by
    name: the block's own by default) against autograd through ref_fn."""
    out = block(u)
    params = params if params is not None else list(block.named_parameters())
    prm64 = {k: v.detach().double().requires_grad_() for k, v in params}
    u64 = u.detach().double().requires_grad_()
    ref = ref_fn(prm64, u64)
    check(out.shape == u.shape and rel(out.detach(), ref.detach()) < 1e-5,
          f"{what} forward equals the transcription "
          f"({rel(out.detach(), ref.detach()):.1e})")
    dout = torch.randn(out.shape)
    names = [k for k, _ in params]
    got = torch.autograd.grad(out, [u] + [v for _, v in params], dout)
    want = torch.autograd.grad(ref, [u64] + [prm64[k] for k in names],
                               dout.double())
    worst = max(zip(["u"] + names, got, want), key=lambda t: rel(t[1], t[2]))
    check(rel(worst[1], worst[2]) < 1e-4,
          f"{what} gradients (input and {len(names)} parameters) equal "
          f"autograd through the transcription (worst {worst[0]}: "
          f"{rel(worst[1], worst[2]):.1e})")


# einstruct.blocks.Hydra: the block against a float64 transcription of
# goombalab/hydra's forward (in_proj split into z, xBC, dt; dt's halves,
# the second flipped, softplus(dt + dt_bias); depthwise conv (padding
# d_conv // 2) and SiLU; x and flip(x) through the SSD with A = −exp(A_log);
# roll by one, flip back, + x ⊙ (fc_D(x) + D); RMSNormGated with
# norm_before_gate; out_proj), sharing the block's parameters; the
# gradients of the input and of every parameter against autograd through
# it. Then einstruct.convert() structures its three projections.
from einstruct.blocks import Hydra  # noqa: E402


def hydra_block64(prm, u, d_inner, H, P, N):
    flip = lambda t: torch.flip(t, (1,))
    b, L, _ = u.shape
    zxbcdt = u @ prm["in_proj.weight"].T
    z, xBC, dt = torch.split(zxbcdt, [d_inner, d_inner + 4 * N, 2 * H], -1)
    dt = torch.cat([dt[:, :, :H], flip(dt[:, :, H:])], 0)
    dt = F.softplus(dt + prm["dt_bias"])
    xBC = F.conv1d(xBC.transpose(1, 2), prm["conv1d.weight"],
                   prm["conv1d.bias"], padding=prm["conv1d.weight"].shape[-1] // 2,
                   groups=xBC.shape[-1]).transpose(1, 2)
    xBC = F.silu(xBC)
    x, BC = torch.split(xBC, [d_inner, 4 * N], -1)
    x_og = x
    x = torch.cat([x, flip(x)], 0)
    BC = torch.cat([BC[:, :, :2 * N], flip(BC[:, :, 2 * N:])], 0)
    B, C = torch.split(BC, [N, N], -1)
    A = -torch.exp(prm["A_log"])
    xs = x.reshape(2 * b, L, H, P) * dt[..., None]
    cum = torch.cumsum(dt * A, 1)
    seg = cum[:, :, None] - cum[:, None]
    mask = torch.tril(torch.ones(L, L, dtype=torch.bool))[None, :, :, None]
    M = torch.einsum("bln,bsn->bls", C, B)[..., None] * torch.exp(
        seg.masked_fill(~mask, float("-inf")))
    y = torch.einsum("blsh,bshp->blhp", M, xs).reshape(2 * b, L, d_inner)
    y = torch.roll(y, shifts=1, dims=1)
    y = torch.cat([torch.zeros_like(y[:, :1]), y[:, 1:]], 1)
    y = y[:b] + flip(y[b:]) + x_og * torch.repeat_interleave(
        x_og @ prm["fc_D.weight"].T + prm["D"], P, dim=-1)
    y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + 1e-5)
    y = y * prm["norm_weight"] * F.silu(z)
    return y @ prm["out_proj.weight"].T


F = torch.nn.functional
torch.manual_seed(3)
block = Hydra(d_model=8, d_state=4, d_conv=3, expand=2, headdim=4,
              chunk_size=4)
u = torch.randn(2, 10, 8, requires_grad=True)
check_block("blocks.Hydra (hydra.py)", block, u,
            lambda prm, u64: hydra_block64(prm, u64, block.d_inner,
                                           block.nheads, block.headdim,
                                           block.d_state))

# The same block compiled whole (Mixer("hydra-block(...)"): projections,
# convolution, activations, norm and mixer in one einstruct function, its
# backward from --einstruct-autodiff), given the block's parameters by
# name: forward and every gradient against the same transcription.
whole = einstruct.Mixer("hydra-block(state=4, conv=3, expand=2, head_dim=4, "
                        "chunk=4)", 10, d_model=8)
check(sorted(n for n, _ in whole.operands[1:]) ==
      sorted(n for n, _ in block.named_parameters()) and
      all(tuple(s) == tuple(dict(block.named_parameters())[n].shape)
          for n, s in whole.operands[1:]),
      f"hydra-block's operands are x and blocks.Hydra's parameters by name "
      f"and shape: {[n for n, _ in whole.operands]}")
prm = dict(block.named_parameters())
check_block("hydra-block (the whole block compiled)",
            lambda x: whole(x, *[prm[n] for n, _ in whole.operands[1:]]), u,
            lambda p64, u64: hydra_block64(p64, u64, block.d_inner,
                                           block.nheads, block.headdim,
                                           block.d_state),
            params=list(block.named_parameters()))

# Structured projections in the compiled block: proj=STRUCTURE makes
# in_proj and out_proj that structure, its weights named as
# einstruct.Linear's ("in_proj.weights.0", ...). Against blocks.Hydra with
# the same einstruct.Linear layers (their own backward through torch) and,
# forward, against the float64 transcription with each layer's dense
# matrix (the layer applied to the identity).
structured = Hydra(d_model=8, d_state=4, d_conv=3, expand=2, headdim=4,
                   chunk_size=4)
structured.load_state_dict(block.state_dict())
structured.in_proj = einstruct.Linear("monarch(blocks=2)", 8, 56)
structured.out_proj = einstruct.Linear("monarch(blocks=2)", 16, 8)
whole_s = einstruct.Mixer("hydra-block(state=4, conv=3, expand=2, head_dim=4, "
                          "chunk=4, proj=monarch(blocks=2))", 10, d_model=8)
check("in_proj.weights.0" in dict(whole_s.operands) and
      "out_proj.weights.1" in dict(whole_s.operands),
      f"proj=monarch names the projections' weights as einstruct.Linear's: "
      f"{[n for n, _ in whole_s.operands]}")
try:
    einstruct.Mixer("hydra-block(state=4, conv=3, expand=2, head_dim=4, "
                    "chunk=4, proj=monarch(blocks=3))", 10, d_model=8)
    check(False, "proj=monarch(blocks=3) on d_model 8 is refused")
except RuntimeError as e:
    check("proj = 'monarch(blocks=3)' as in_proj (8 -> 56)" in str(e),
          f"a projection the structure cannot take is refused: {e}")
prm_s = dict(structured.named_parameters())
eye = lambda n: torch.eye(n)
dense_of = lambda layer, n: layer(eye(n)).detach().T  # [d_out, d_in]
check_block("hydra-block(proj=monarch(blocks=2)) against the transcription "
            "with the layers' dense matrices",
            lambda x: whole_s(x, *[prm_s[n] for n, _ in whole_s.operands[1:]]),
            u, lambda p64, u64: hydra_block64(
                dict(p64, **{"in_proj.weight":
                             dense_of(structured.in_proj, 8).double(),
                             "out_proj.weight":
                             dense_of(structured.out_proj, 16).double()}),
                u64, block.d_inner, block.nheads, block.headdim,
                block.d_state),
            params=[(n, v) for n, v in prm_s.items()
                    if not n.startswith(("in_proj.", "out_proj."))])


def check_as_module(what, compiled, module, u):
    """The compiled block, given module's parameters by the names of its
    operands (which must be all of module's), equals module: y and the
    gradients of u and every parameter (torch's own backward)."""
    prm = dict(module.named_parameters())
    names = [n for n, _ in compiled.operands[1:]]
    check(sorted(names) == sorted(prm) and
          all(tuple(s) == tuple(prm[n].shape)
              for n, s in compiled.operands[1:]),
          f"{what}: the operands are the module's {len(prm)} parameters by "
          f"name and shape" + ("" if sorted(names) == sorted(prm) else
                               f": {names} vs {sorted(prm)}"))
    y_c = compiled(u, *[prm[n] for n in names])
    y_m = module(u)
    dout = torch.randn(y_c.shape)
    g_c = torch.autograd.grad(y_c, [u] + [prm[n] for n in names], dout)
    g_m = torch.autograd.grad(y_m, [u] + [prm[n] for n in names], dout)
    worst = max(zip(["u"] + names, g_c, g_m), key=lambda t: rel(t[1], t[2]))
    check(rel(y_c.detach(), y_m.detach()) < 1e-5 and
          rel(worst[1], worst[2]) < 1e-4,
          f"{what}: y {rel(y_c.detach(), y_m.detach()):.1e}, every gradient "
          f"(worst {worst[0]}: {rel(worst[1], worst[2]):.1e})")


check_as_module("hydra-block(proj=monarch) equals blocks.Hydra with "
                "einstruct.Linear projections", whole_s, structured, u)

# A structure per projection (in_proj=, out_proj=), here low-rank in and
# Monarch out, against blocks.Hydra with those einstruct.Linear layers.
structured.in_proj = einstruct.Linear("low-rank(rank=3)", 8, 56)
whole_p = einstruct.Mixer("hydra-block(state=4, conv=3, expand=2, head_dim=4, "
                          "chunk=4, in_proj=low-rank(rank=3), "
                          "out_proj=monarch(blocks=2))", 10, d_model=8)
check_as_module("hydra-block(in_proj=low-rank, out_proj=monarch) equals "
                "blocks.Hydra with those layers", whole_p, structured, u)

report = einstruct.convert(block, budget=0.75)
out2 = block(u)
out2.sum().backward()
check(all(isinstance(m, einstruct.Linear) for m in
          (block.in_proj, block.out_proj, block.fc_D)) and
      u.grad is not None and torch.isfinite(out2).all(),
      f"convert() structures the Hydra block's projections: {report}")


# einstruct.blocks.M2: the block against a float64 transcription of
# HazyResearch/m2's MonarchMixerSequenceMixing.forward (in_linear, the
# depthwise short conv cut to L, x1, x2, v; v·x1; HyenaFilter.filter: the
# sine MLP over z, the exponential modulation; k = pad(k_fwd) +
# pad(flip(k_rev)) when bidirectional; fftconv_ref at 2L with the bias;
# ·x2; out_linear), sharing the block's parameters, layout [b, d, l] as
# the reference; gradients of the input and every parameter against
# autograd through it. Then convert() structures its projections.
from einstruct.blocks import M2  # noqa: E402


def hyena_filter64(prm, pre, L, w_mod, deltas, t):
    h = prm["filter_fn.z"][:, :L]
    freq = prm["filter_fn.freq"]  # one Sin, shared by both MLPs
    for i in range(3):
        h = h @ prm[pre + ".layers.%d.weight" % i].T + \
            prm[pre + ".layers.%d.bias" % i]
        h = torch.sin(w_mod * freq * h)
    h = h @ prm[pre + ".layers.3.weight"].T
    return (h * torch.exp(-t[:, :L] * deltas.abs()))[0].T  # [d, L]


def m2_block64(prm, u, bidirectional, w_mod, deltas, t):
    b, L, d = u.shape
    x = (u @ prm["in_linear.weight"].T + prm["in_linear.bias"]).transpose(1, 2)
    uc = F.conv1d(x, prm["short_filter.weight"], prm["short_filter.bias"],
                  padding=2, groups=3 * d)[..., :L]
    x1, x2, v = uc.split(d, dim=1)
    v = v * x1
    k = hyena_filter64(prm, "filter_fn", L, w_mod, deltas, t)
    if bidirectional:
        k_rev = hyena_filter64(prm, "filter_rev", L, w_mod, deltas, t)
        k = F.pad(k, (0, L)) + F.pad(k_rev.flip(-1), (L, 0))
    k_f = torch.fft.rfft(k, n=2 * L) / (2 * L)
    u_f = torch.fft.rfft(v, n=2 * L)
    y = torch.fft.irfft(u_f * k_f, n=2 * L, norm="forward")[..., :L]
    y = (y + v * prm["bias"][None, :, None]) * x2
    return y.transpose(1, 2) @ prm["out_linear.weight"].T + \
        prm["out_linear.bias"]


for bidirectional in (False, True):
    torch.manual_seed(4)
    block = M2(d_model=6, l_max=16, bidirectional=bidirectional)
    u = torch.randn(2, 13, 6, requires_grad=True)
    fn = block.filter_fn
    check_block(f"blocks.M2(bidirectional={bidirectional}) (m2's sequence "
                f"mixer)", block, u,
                lambda prm, u64: m2_block64(prm, u64, bidirectional,
                                            fn.w_mod, fn.deltas.double(),
                                            fn.t.double()))
    # The same block compiled whole (Mixer("m2-block(...)"): projections,
    # short convolution, the filters' sine MLPs, gates and the long
    # convolution in one function), given the block's parameters by name.
    whole = einstruct.Mixer("m2-block(causal=%s, l_max=16)" % (
        "false" if bidirectional else "true"), 13, d_model=6)
    prm = dict(block.named_parameters())
    check(sorted(n for n, _ in whole.operands[1:]) == sorted(prm) and
          all(tuple(s) == tuple(prm[n].shape) for n, s in whole.operands[1:]),
          f"m2-block's operands are x and blocks.M2's parameters by name and "
          f"shape: {[n for n, _ in whole.operands]}")
    check_block(f"m2-block(bidirectional={bidirectional}) (the whole block "
                f"compiled)",
                lambda x: whole(x, *[prm[n] for n, _ in whole.operands[1:]]),
                u, lambda prm, u64: m2_block64(prm, u64, bidirectional,
                                               fn.w_mod, fn.deltas.double(),
                                               fn.t.double()),
                params=[(n, prm[n]) for n, _ in whole.operands[1:]])
report = einstruct.convert(block, budget=0.75,
                           layers=["in_linear", "out_linear"])
out2 = block(u)
out2.sum().backward()
check(all(isinstance(m, einstruct.Linear) for m in
          (block.in_linear, block.out_linear)) and
      isinstance(block.filter_fn.layers[1], torch.nn.Linear) and
      u.grad is not None and torch.isfinite(out2).all(),
      f"convert(layers=...) structures the M2 block's projections and "
      f"leaves its filter MLP: {report}")

# proj=search(ratio) picks what convert(budget=ratio) picks for the same
# two projections (one model search, one budget), so the compiled block
# runs the converted module's state_dict as it is.
searched = einstruct.Mixer("m2-block(causal=false, l_max=16, "
                           "proj=search(0.75))", 13, d_model=6)
check_as_module("m2-block(proj=search(0.75)) equals blocks.M2 after "
                "convert(budget=0.75)", searched, block, u)

checks.finish()
