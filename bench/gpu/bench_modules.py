"""einstruct's generated torch modules on CUDA (the runtime's CUDA path:
fused kernels for two-factor layers, cuBLAS for one-weight ones) against
torch.einsum of the same terms (torch's own contraction: bmm chains with
transposes in memory, the published code's way) and dense F.linear, in one
process. Forward, and forward + backward (dx and every weight gradient);
medians of CUDA-event timings after warm-up. Includes the module's Python
and ctypes overhead, which the C ABI numbers of bench_gpu.py do not.

Usage: python3 bench_modules.py EINSTRUCT [--tokens 16384] [--out DIR]
"""
import argparse
import importlib
import os
import subprocess
import sys
import tempfile

import torch
import torch.nn.functional as F

from bench_gpu import time_ms  # the same CUDA-event medians

LAYERS = [
    ("monarch64", ["--structure", "monarch(64)"]),
    ("btt_r4", ["--structure", "btt(rank=4)"]),
    ("blockdiag64", ["--structure", "block-diagonal(64)"]),
    ("dyad64_dt", ["--structure", "dyad(blocks=64, variant=DT)"]),
]


def reference(spec, weights):
    """y = sum over terms of torch.einsum(term, x, W...), weights viewed in
    their full letter shapes."""
    terms, k = [], 0
    for t in spec["terms"]:
        lhs, out = t["einsum"].split("->")
        ops = lhs.split(",")
        size = lambda c: t["sizes"].get(c, 1)
        ws = []
        for w in ops[1:]:
            ws.append((w, [size(c) for c in w], k))
            k += 1
        eq = "..." + ops[0] + "," + ",".join(ops[1:]) + "->..." + out
        terms.append((eq, ops[0], [size(c) for c in ops[0]], ws))

    def run(x):
        y = 0
        for eq, _, xshape, ws in terms:
            y = y + torch.einsum(eq, x.view(x.shape[0], *xshape),
                                 *[weights[j].view(*shape) for _, shape, j in ws]
                                 ).reshape(x.shape[0], -1)
        return y
    return run


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("einstruct")
    ap.add_argument("--tokens", type=int, default=16384)
    ap.add_argument("--d", type=int, default=4096)
    ap.add_argument("--out", default="bench-gpu-out")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure")
        return 1
    work = tempfile.mkdtemp(prefix="einstruct_bench_modules_")
    sys.path.insert(0, work)
    dt, n, d = torch.bfloat16, a.tokens, a.d
    x = torch.randn(n, d, device="cuda", dtype=dt)
    dy = torch.randn(n, d, device="cuda", dtype=dt)
    dense = torch.randn(d, d, device="cuda", dtype=dt) / d ** 0.5
    rows = []
    for name, args in LAYERS:
        subprocess.run([a.einstruct, "compile", *args, "--d-in", str(d), "--d-out",
                        str(d), "--emit", "torch", "--name", name, "-o", work],
                       check=True, capture_output=True)
        m = importlib.import_module(name)
        layer = getattr(m, name)(dtype=dt).cuda()
        ref = reference(m.SPEC, [w for w in layer.weights])
        layer(x)  # builds the CUDA library (nvcc, cached) before timing
        xg = x.clone().requires_grad_()

        def fwd_bwd(f):
            def go():
                y = f(xg)
                y.backward(dy)
            return go
        with torch.no_grad():
            t = {"einstruct": time_ms(lambda: layer(x)),
                 "torch.einsum": time_ms(lambda: ref(x)),
                 "dense": time_ms(lambda: F.linear(x, dense))}
        tb = {"einstruct": time_ms(fwd_bwd(layer)),
              "torch.einsum": time_ms(fwd_bwd(ref)),
              "dense": time_ms(fwd_bwd(lambda v: F.linear(v, dense.requires_grad_())))}
        rows.append((name, t, tb))
    os.makedirs(a.out, exist_ok=True)
    lines = ["%s, bf16, %d tokens, d = %d: ms (einstruct speedup)" % (
        torch.cuda.get_device_name(), n, d), "",
        "| layer | einstruct fwd | torch.einsum fwd | dense fwd | einstruct fwd+bwd | torch.einsum fwd+bwd | dense fwd+bwd |",
        "|---|---|---|---|---|---|---|"]
    for name, t, tb in rows:
        cell = lambda r, k: "%.3f (%.2fx)" % (r[k], r[k] / r["einstruct"])
        lines.append("| %s | %.3f | %s | %s | %.3f | %s | %s |" % (
            name, t["einstruct"], cell(t, "torch.einsum"), cell(t, "dense"),
            tb["einstruct"], cell(tb, "torch.einsum"), cell(tb, "dense")))
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(a.out, "modules.md"), "w") as f:
        f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
