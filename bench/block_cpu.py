"""Hydra's and M2's whole blocks on the CPU, forward and forward+backward,
in one process, three ways with the same parameters:
- einstruct block: Mixer("hydra-block(...)") or Mixer("m2-block(...)"),
  the block compiled as one function (projections, convolutions,
  activations, filters, gates, the mixer, the norm; the backward from
  --einstruct-autodiff);
- blocks.Hydra / blocks.M2: PyTorch's projections, convolutions, filters
  and norm around einstruct's compiled mixer;
- torch: the same block with a PyTorch mixer: the chunked SSD of
  mixer_cpu.py (Mamba-2's ssd_minimal_discrete) for Hydra, M2's
  fftconv_ref with torch.fft (conv_mixer_cpu.py) for M2 (causal).

    PYTHONPATH=build/python /usr/bin/python3 bench/block_cpu.py \\
        [--block hydra|m2] [--lengths 1024,4096] [--d-model 768] \\
        [--threads 2] [--batch 2] [--proj 'monarch(blocks=8)'|'search(0.25)']

--proj structures the two large projections in all three: a named
structure as einstruct.Linear layers, or search(r) as
einstruct.convert(budget=r) on those two layers; the compiled block gets
the same as its proj=.

The output and every gradient (input and parameters) are cross-checked
against the einstruct block's (relative 1e-3 of the largest) before
anything is timed. Times are medians.
"""
import argparse
import os
import sys

import torch

import einstruct
from einstruct.blocks import M2, Hydra

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conv_mixer_cpu import fftconv_ref  # noqa: E402
from mixer_cpu import hydra, ssd_chunked, timed  # noqa: E402


def structure(module, names, proj):
    """module's projections `names` as --proj says (see above)."""
    if proj == "dense":
        return
    if proj.startswith("search(") and proj.endswith(")"):
        einstruct.convert(module, budget=float(proj[len("search("):-1]),
                          project=False, layers=names)
        return
    for n in names:
        dense = getattr(module, n)
        setattr(module, n, einstruct.Linear(proj, dense.in_features,
                                            dense.out_features,
                                            bias=dense.bias is not None))


def blocks(args, lengths):
    """The einstruct-mixer block, its all-PyTorch twin (same parameters)
    and a function L -> the whole-block Mixer."""
    torch.manual_seed(0)
    proj = "" if args.proj == "dense" else ", proj=%s" % args.proj
    if args.block == "m2":
        l_max = max(lengths)
        block, reference = (M2(args.d_model, l_max=l_max) for _ in range(2))
        for m in (block, reference):
            structure(m, ["in_linear", "out_linear"], args.proj)
        reference.load_state_dict(block.state_dict())
        # fftconv_ref takes [b, d, L]; the block's mixer [b, L, d].
        reference.mixer = lambda L: lambda x, k, D: fftconv_ref(
            x.transpose(1, 2), k.T, D).transpose(1, 2)
        whole = lambda L: einstruct.Mixer(
            "m2-block(causal=true, l_max=%d%s)" % (l_max, proj), L,
            d_model=args.d_model)
        return block, reference, whole
    block, reference = (Hydra(args.d_model, d_state=args.state,
                              headdim=args.head_dim, chunk_size=args.chunk)
                        for _ in range(2))
    for m in (block, reference):
        structure(m, ["in_proj", "out_proj"], args.proj)
    reference.load_state_dict(block.state_dict())
    reference.mixer = lambda L: lambda *ops: hydra(ssd_chunked)(
        *ops, min(args.chunk, L))
    whole = lambda L: einstruct.Mixer(
        "hydra-block(state=%d, conv=%d, expand=%d, head_dim=%d, chunk=%d%s)"
        % (args.state, block.d_conv, block.d_inner // args.d_model,
           args.head_dim, min(args.chunk, L), proj), L, d_model=args.d_model)
    return block, reference, whole


def add_arguments(ap, batch):
    """The options this and bench/gpu/bench_blocks.py share."""
    ap.add_argument("--block", default="hydra", choices=["hydra", "m2"])
    ap.add_argument("--lengths", default="1024,4096")
    ap.add_argument("--d-model", type=int, default=768)
    ap.add_argument("--state", type=int, default=64)
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--chunk", type=int, default=64)
    ap.add_argument("--batch", type=int, default=batch)
    ap.add_argument("--proj", default="dense")


def forms(block, reference, whole, u):
    """name -> (the block's y as a function, the parameters to
    differentiate): the einstruct block, blocks.X and the torch block; and
    the differentiated operands' names (u, then the block's)."""
    prm = dict(block.named_parameters())
    ref_prm = dict(reference.named_parameters())
    params = [prm[n] for n, _ in whole.operands[1:]]
    ref_params = [ref_prm[n] for n, _ in whole.operands[1:]]
    name = type(block).__name__
    return {"einstruct block": (lambda: whole(u, *params), params),
            "blocks.%s (einstruct mixer)" % name: (lambda: block(u), params),
            "torch (%s)" % ("chunked SSD" if name == "Hydra" else "torch.fft"):
                (lambda: reference(u), ref_params)}, \
        ["u"] + [n for n, _ in whole.operands[1:]]


def cross_check(forms, names, u, dy):
    """Every form's y and gradients against the einstruct block's
    (relative 1e-3 of the largest)."""
    results = {}
    for name, (f, ps) in forms.items():
        y = f()
        results[name] = (y.detach(), torch.autograd.grad(y, [u] + ps, dy))
    ref_y, ref_g = results["einstruct block"]
    for name, (y, g) in results.items():
        def check(what, got, want):
            err = ((got - want).abs().max() / want.abs().max()).item()
            assert err < 1e-3, "%s: %s differs by %.2e" % (name, what, err)
        check("y", y, ref_y)
        for n, gg, rg in zip(names, g, ref_g):
            check("d" + n, gg, rg)


def main():
    ap = argparse.ArgumentParser()
    add_arguments(ap, batch=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    lengths = list(map(int, args.lengths.split(",")))
    block, reference, compiled = blocks(args, lengths)
    print("%s(%s), projections %s, batch %d, %d threads (torch %s)" % (
        type(block).__name__, block.extra_repr(), args.proj, args.batch,
        args.threads, torch.__version__))
    print("| L | form | forward ms | fwd+bwd ms | einstruct block fwd "
          "speedup | einstruct block fwd+bwd speedup |")
    print("|---|---|---|---|---|---|")
    for L in lengths:
        gen = torch.Generator().manual_seed(L)
        u = torch.randn(args.batch, L, args.d_model,
                        generator=gen).requires_grad_()
        dy = torch.randn(args.batch, L, args.d_model, generator=gen)
        fs, names = forms(block, reference, compiled(L), u)
        cross_check(fs, names, u, dy)
        times = {}
        for name, (f, ps) in fs.items():
            with torch.no_grad():
                fwd = timed(f, args.repeats)
            both = timed(lambda: torch.autograd.grad(f(), [u] + ps, dy),
                         args.repeats)
            times[name] = (fwd, both)
        e = times["einstruct block"]
        for name, (fwd, both) in times.items():
            print("| %d | %s | %.1f | %.1f | %s | %s |" % (
                L, name, 1e3 * fwd, 1e3 * both,
                "" if name == "einstruct block" else "%.2f×" % (fwd / e[0]),
                "" if name == "einstruct block" else "%.2f×" % (both / e[1])))


if __name__ == "__main__":
    main()
