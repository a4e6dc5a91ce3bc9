"""M2's long convolution and a Monarch matrix along the sequence on the
CPU: einstruct's compiled mixers against the published PyTorch forms, forward
and forward+backward, in one process.

    PYTHONPATH=build/python /usr/bin/python3 bench/conv_mixer_cpu.py \\
        [--lengths 1024,4096] [--d-model 768] [--threads 2] [--batch 2]

The PyTorch forms are ours, written from the published semantics:
- m2-conv: M2's fftconv_ref (HazyResearch/m2, bert/src/mm/hyena_utils.py):
  rfft of x and k at 2L, their product, irfft, the first L, + x·D, in M2's
  layout [batch, d, L]; einstruct runs the same convolution through
  Monarch-factored DFTs (n = b² >= 2L) as contractions;
- monarch-seq: fly's blockdiag_butterfly_multiply_reference (HazyResearch/
  fly, version 2: two einsums and the reshape between them) on every
  channel's column, and the same with torch.bmm as fly's
  BlockdiagButterflyMultiply runs it.
Outputs and gradients are cross-checked against einstruct's (relative 1e-4
of the largest) before anything is timed. Times are medians.
"""
import argparse
import math
import statistics
import time

import torch

import einstruct


def fftconv_ref(x, k, D):
    """x [b, d, L], k [d, L], D [d] -> y [b, d, L] (M2's fftconv_ref)."""
    L = x.shape[-1]
    k_f = torch.fft.rfft(k, n=2 * L) / (2 * L)
    x_f = torch.fft.rfft(x, n=2 * L)
    y = torch.fft.irfft(x_f * k_f, n=2 * L, norm="forward")[..., :L]
    return y + x * D[:, None]


def monarch_einsum(x, w1, w2):
    """x [b, d, L] -> y [b, d, L]: fly's reference (version 2) per row."""
    b, d, L = x.shape
    k, q, p = w1.shape
    l, s, r = w2.shape
    out1 = torch.einsum("kqp,bkp->bkq", w1, x.reshape(b * d, k, p))
    out1 = out1.reshape(b * d, r, l).transpose(1, 2)
    return torch.einsum("lsr,blr->bsl", w2, out1).reshape(b, d, s * l)


def monarch_bmm(x, w1, w2):
    """The same as fly's BlockdiagButterflyMultiply.forward: two bmm."""
    b, d, L = x.shape
    k, q, p = w1.shape
    l, s, r = w2.shape
    xs = x.reshape(b * d, k, p).transpose(0, 1)
    out1 = torch.bmm(xs, w1.transpose(-1, -2))              # k, bd, q
    out1 = out1.transpose(0, 1).reshape(b * d, r, l).transpose(-1, -2)
    out1 = out1.contiguous().transpose(0, 1)                # l, bd, r
    out2 = torch.bmm(out1, w2.transpose(-1, -2))            # l, bd, s
    return out2.permute(1, 2, 0).reshape(b, d, s * l)


def median_ms(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


def bench(name, mixer, ops, torch_forms, to_torch, from_torch, repeat):
    """ops: einstruct's operands (channels last); each torch form runs on
    to_torch(ops) (its own layout, made once, outside the timing) and its y
    is compared through from_torch."""
    ops = [t.requires_grad_() for t in ops]
    y = mixer(*ops)
    dy = torch.randn_like(y)
    g = torch.autograd.grad(y, ops, dy)
    theirs = [t.detach().clone().contiguous().requires_grad_()
              for t in to_torch(ops)]
    their_dy = to_torch([dy])[0].contiguous()
    for form_name, form in torch_forms:
        ref = form(*theirs)
        ref_g = torch.autograd.grad(ref, theirs, their_dy)
        err = max([rel(y.detach(), from_torch(ref.detach()))] +
                  [rel(a, b) for a, b in zip(to_torch(g), ref_g)])
        if err > 1e-4:
            raise SystemExit("%s: einstruct and %s differ (%.1e)"
                             % (name, form_name, err))
    def timed(f, args, grad_out):
        return (median_ms(lambda: f(*args), repeat),
                median_ms(lambda: torch.autograd.grad(f(*args), args,
                                                      grad_out), repeat))
    ours = timed(mixer, ops, dy)
    print("%-40s forward %8.1f ms   fwd+bwd %8.1f ms" % (
        "einstruct " + name, ours[0], ours[1]))
    for form_name, form in torch_forms:
        t = timed(form, theirs, their_dy)
        print("%-40s forward %8.1f ms   fwd+bwd %8.1f ms   einstruct "
              "%.2fx / %.2fx faster" % (form_name, t[0], t[1], t[0] / ours[0],
                                        t[1] / ours[1]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lengths", default="1024,4096")
    ap.add_argument("--d-model", type=int, default=768)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    d, b = args.d_model, args.batch
    print("threads %d, batch %d, d_model %d (torch %s)"
          % (args.threads, b, d, torch.__version__))
    # Torch's layout: [batch, d, L] for x and y, [d, L] for the filter.
    chan_first = lambda ts: [t.transpose(-1, -2) if t.dim() > 1 else t
                             for t in ts]
    weights_as_is = lambda ts: [ts[0].transpose(-1, -2)] + list(ts[1:])
    back = lambda y: y.transpose(-1, -2)
    for L in map(int, args.lengths.split(",")):
        conv = einstruct.Mixer("m2-conv(causal=true)", L, d_model=d)
        b_dft = int(math.ceil(math.sqrt(2 * L)))
        print("L = %d: the DFT of %d = %d² points, %d multiply-adds per "
              "sequence" % (L, b_dft * b_dft, b_dft, conv.macs))
        bench("m2-conv L=%d" % L, conv,
              [torch.randn(b, L, d), torch.randn(L, d) / L ** 0.5,
               torch.randn(d)],
              [("torch.fft (M2's fftconv_ref)", fftconv_ref)], chan_first,
              back, args.repeat)
        mon = einstruct.Mixer("monarch-seq", L, d_model=d)
        shape = mon.operands[1][1]
        bench("monarch-seq(blocks=%d) L=%d" % (shape[0], L), mon,
              [torch.randn(b, L, d), torch.randn(shape) / shape[-1] ** 0.5,
               torch.randn(shape) / shape[-1] ** 0.5],
              [("fly reference (einsum)", monarch_einsum),
               ("fly BlockdiagButterflyMultiply (bmm)", monarch_bmm)],
              weights_as_is, back, args.repeat)

if __name__ == "__main__":
    main()
