"""Hydra's and M2's whole blocks on a GPU, forward and forward+backward, in
one process, with the same parameters four ways:
- einstruct block: Mixer("hydra-block(...)") / Mixer("m2-block(...)") on
  CUDA tensors, the block compiled as one CUDA chain each way (the
  projections on cuBLAS, the convolution, activations, gates, norm and
  mixer as the chain's kernels; `compile --mixer` writes the same);
- blocks.Hydra / blocks.M2: PyTorch's projections, convolutions and norm
  around einstruct's CUDA mixer;
- torch: the same block with PyTorch's mixer (bench/block_cpu.py's: the
  chunked SSD for Hydra, M2's fftconv_ref for M2), eager,
- and under torch.compile.
float32 throughout (TF32 off, as the libraries compute). The output and
every gradient are cross-checked against the einstruct block's (relative
1e-3 of the largest) before anything is timed; times are medians of
CUDA-event timings after warm-up (bench_gpu.time_ms).

    PYTHONPATH=build/python python3 bench/gpu/bench_blocks.py \\
        [--block hydra|m2] [--lengths 1024,4096] [--d-model 768] \\
        [--batch 4] [--proj dense|'monarch(blocks=8)'|'search(0.25)'] [--out DIR]
"""
import argparse
import json
import os
import sys

import torch

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
sys.path.insert(0, os.path.dirname(here))
from bench_gpu import time_ms  # noqa: E402  (CUDA-event medians)
from block_cpu import add_arguments, blocks, cross_check, forms  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    add_arguments(ap, batch=4)
    ap.add_argument("--out")
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    lengths = list(map(int, args.lengths.split(",")))
    block, reference, compiled = blocks(args, lengths)
    block, reference = block.cuda(), reference.cuda()
    device = torch.cuda.get_device_name()
    print("%s(%s), projections %s, batch %d on %s (torch %s)" % (
        type(block).__name__, block.extra_repr(), args.proj, args.batch,
        device, torch.__version__))
    rows = []
    for L in lengths:
        gen = torch.Generator(device="cuda").manual_seed(L)
        u = torch.randn(args.batch, L, args.d_model, device="cuda",
                        generator=gen).requires_grad_()
        dy = torch.randn(args.batch, L, args.d_model, device="cuda",
                         generator=gen)
        fs, names = forms(block, reference, compiled(L), u)
        eager = [k for k in fs if k.startswith("torch (")][0]
        fs["torch.compile of " + eager] = (torch.compile(fs[eager][0]),
                                           fs[eager][1])
        cross_check(fs, names, u, dy)
        times = {}
        for form, (f, ps) in fs.items():
            with torch.no_grad():
                fwd = time_ms(f, reps=20)
            both = time_ms(lambda: torch.autograd.grad(f(), [u] + ps, dy),
                           reps=20)
            times[form] = (fwd, both)
        e = times["einstruct block"]
        for form, (fwd, both) in times.items():
            row = {"block": type(block).__name__, "L": L,
                   "d_model": args.d_model, "batch": args.batch,
                   "proj": args.proj, "form": form, "fwd_ms": fwd,
                   "fwdbwd_ms": both, "einstruct_fwd_speedup": fwd / e[0],
                   "einstruct_fwdbwd_speedup": both / e[1]}
            rows.append(row)
            print(json.dumps(row), flush=True)
        if args.out:
            with open(os.path.join(args.out, "blocks_%s.json" % args.block),
                      "w") as f:
                json.dump({"device": device, "results": rows}, f, indent=1)


if __name__ == "__main__":
    main()
