"""The Python package `einstruct` (PYTHONPATH=build/python): analyze, search
and search_model against the CLI's JSON; einstruct.nn.Linear (bias, CPU)
against torch.einsum + autograd in float64; state_dict round trip; BTTMoE;
project() on matrices of known structure; convert() on a linear model (the
output error equals the reported projection error) and on a trained MLP
(fine-tuning recovers); load_checkpoint of fly and einsum-search state dicts
and .pt files against our transcriptions of their forwards. Exits 77 (CTest's skip) without PyTorch.
    usage: check_package.py EINSTRUCT"""
import json
import os
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

checks.finish()
