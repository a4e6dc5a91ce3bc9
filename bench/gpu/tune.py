"""Measured tiles of the sm_90a wgmma/TMA kernel (einstruct_hopper.cuh).

For each candidate (a generated layer built with `einstruct compile
--hopper-tile FC:NWG:STAGES`), in one process: the forward's output is
checked against an fp32 torch.einsum of the same weights (fresh random
inputs, output poisoned with NaN first), then its median time is taken
(CUDA events, inputs rotated over 4 sets). Prints a table and writes
`tuning_rows.json`: per layer the fastest correct tile, as rows of
compiler/cuda/tuning.json.

Usage: tune.py --tokens 16384 --out DIR NAME:FC:NWG:STAGES[:CL]=LIB ...
"""
import argparse
import datetime
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_gpu import Layer, check, time_ms  # noqa: E402


def reference(x, w1, w2, L):
    g, a, f, r, e = L.g, L.a, L.f, L.r, L.e
    z = torch.einsum("nga,frga->nfrg", x.view(-1, g, a), w1.view(f, r, g, a))
    return torch.einsum("nfrg,ferg->nfe", z, w2.view(f, e, r, g)).reshape(x.shape[0], f * e)


def tile_text(t):
    return f"{t['FC']}:{t['NWG']}:{t['STAGES']}:{t['CL']}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("candidates", nargs="+")
    ap.add_argument("--tokens", type=int, default=16384)
    ap.add_argument("--out", default=".")
    args = ap.parse_args()
    dev = torch.cuda.get_device_name()
    bf = torch.bfloat16
    results = []
    for cand in args.candidates:
        key, path = cand.split("=", 1)
        name, tile = key.split(":", 1)
        L = Layer(path)
        n, din, dout = args.tokens, L.info.d_in, L.info.d_out
        torch.manual_seed(len(results))
        xs = [torch.randn(n, din, device="cuda", dtype=bf) for _ in range(4)]
        w1 = torch.randn(L.info.w1_elems, device="cuda", dtype=bf) * L.a ** -0.5
        w2 = torch.randn(L.info.w2_elems, device="cuda", dtype=bf) * (L.r * L.g) ** -0.5
        y = torch.full((n, dout), float("nan"), device="cuda", dtype=bf)
        stream = lambda: torch.cuda.current_stream().cuda_stream
        check(L.fwd(xs[0].data_ptr(), w1.data_ptr(), w2.data_ptr(), y.data_ptr(), n, stream()), "forward")
        torch.cuda.synchronize()
        ref = reference(xs[0].float(), w1.float(), w2.float(), L)
        finite = bool(torch.isfinite(y).all())
        rel = ((y.float() - ref).norm() / ref.norm()).item() if finite else float("inf")
        ok = finite and rel < 1.5e-2
        it = [0]

        def fwd():
            it[0] = (it[0] + 1) % 4
            check(L.fwd(xs[it[0]].data_ptr(), w1.data_ptr(), w2.data_ptr(), y.data_ptr(), n, stream()), "forward")

        ms = time_ms(fwd) if ok else float("nan")
        v = [int(x) for x in tile.split(":")] + [1]
        results.append({"layer": name, "tile": {"FC": v[0], "NWG": v[1], "STAGES": v[2], "CL": v[3]},
                        "fwd_ms": ms, "rel_err": rel, "ok": ok, "tokens": n,
                        "sizes": {"G": L.g, "A": L.a, "F": L.f, "E": L.e, "R": L.r},
                        "dtype": L.info.dtype.decode()})
        print(f"{name} {tile}: rel err {rel:.2e} {'ok' if ok else 'WRONG'}  fwd {ms:.4f} ms", flush=True)
        del xs, y, ref
    rows = []
    for name in dict.fromkeys(r["layer"] for r in results):
        good = [r for r in results if r["layer"] == name and r["ok"]]
        if not good:
            continue
        best = min(good, key=lambda r: r["fwd_ms"])
        rows.append({"arch": "sm_90a", "dtype": best["dtype"], "sizes": best["sizes"],
                     "tokens": "large", "tile": best["tile"],
                     "measured": {"device": dev, "date": datetime.date.today().isoformat(),
                                  "tokens": best["tokens"], "fwd_ms": round(best["fwd_ms"], 4),
                                  "candidates": {tile_text(r["tile"]):
                                                 round(r["fwd_ms"], 4) for r in results if r["layer"] == name and r["ok"]}}})
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "tuning_rows.json"), "w") as fh:
        json.dump({"device": dev, "results": results, "rows": rows}, fh, indent=1)
    print(f"\n| layer | tile FC:NWG:STAGES:CL | fwd ms | rel err |\n|---|---|---|---|")
    for r in results:
        print(f"| {r['layer']} | {tile_text(r['tile'])} | {r['fwd_ms']:.4f} | {r['rel_err']:.1e}{'' if r['ok'] else ' WRONG'} |")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
