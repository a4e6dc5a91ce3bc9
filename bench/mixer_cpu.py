"""Chunked SSD and Hydra on the CPU: einstruct's compiled mixer against the
same chunked algorithm written in PyTorch and against the materialised
quadratic form, forward and forward+backward, in one process.

    PYTHONPATH=build/python /usr/bin/python3 bench/mixer_cpu.py \\
        [--mixer hydra] [--lengths 4096] [--threads 2] [--batch 2]

The PyTorch forms are ours, written from the published semantics:
- chunked: Mamba-2's ssd_minimal_discrete (state-spaces/mamba,
  mamba_ssm/modules/ssd_minimal.py): stable segsum per chunk, the diagonal
  blocks as one einsum, chunk states, the inter-chunk recurrence as a
  (T+1)×(T+1) decay einsum, the states read out; B and C shared by the heads
  (one group), as einstruct's;
- quadratic: the L×L matrix per head, (C·Bᵀ) ⊙ exp(segsum(a)), times x;
  and einstruct's own with one chunk of L (the same masked form, compiled);
- hydra: goombalab/hydra's forward: one SSD call on x and flip(x) (batch
  doubled, each scaled by its half of dt), y rolled by one with y[0] = 0,
  the second half flipped back, plus x ⊙ d.
Outputs and gradients are cross-checked against einstruct's (relative
1e-4 of the largest) before anything is timed. Times are medians.
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import einstruct


def segsum(x):
    """[..., T] -> [..., T, T]: out[i, j] = Σ_{t=j+1..i} x_t (i ≥ j), −inf
    above the diagonal; summed by cumsum of the masked repeat (stable)."""
    T = x.size(-1)
    x = x[..., None].expand(*x.shape, T)
    x = x.masked_fill(~torch.tril(torch.ones(T, T, dtype=torch.bool), -1), 0)
    s = torch.cumsum(x, dim=-2)
    return s.masked_fill(~torch.tril(torch.ones(T, T, dtype=torch.bool), 0),
                         float("-inf"))


def ssd_chunked(x, a, B, C, chunk):
    """x [b, L, h, p], a [b, L, h], B, C [b, L, n] -> y [b, L, h, p]."""
    b, L, h, p = x.shape
    pad = (-L) % chunk
    if pad:
        x, a, B, C = (F.pad(t, (0, 0) * (t.dim() - 2) + (0, pad))
                      for t in (x, a, B, C))
    T = x.shape[1] // chunk
    x = x.reshape(b, T, chunk, h, p)
    B = B.reshape(b, T, chunk, -1)
    C = C.reshape(b, T, chunk, -1)
    a = a.reshape(b, T, chunk, h).permute(0, 3, 1, 2)  # b h c l
    a_cum = torch.cumsum(a, dim=-1)
    Lm = torch.exp(segsum(a))                           # b h c l s
    y_diag = torch.einsum("bcln,bcsn,bhcls,bcshp->bclhp", C, B, Lm, x)
    decay_states = torch.exp(a_cum[..., -1:] - a_cum)    # b h c l
    states = torch.einsum("bcln,bhcl,bclhp->bchpn", B, decay_states, x)
    states = torch.cat([torch.zeros_like(states[:, :1]), states], dim=1)
    decay_chunk = torch.exp(segsum(F.pad(a_cum[..., -1], (1, 0))))
    states = torch.einsum("bhzc,bchpn->bzhpn", decay_chunk, states)[:, :-1]
    y_off = torch.einsum("bcln,bchpn,bhcl->bclhp", C, states, torch.exp(a_cum))
    return (y_diag + y_off).reshape(b, T * chunk, h, p)[:, :L]


def ssd_quadratic(x, a, B, C, chunk=None):
    """The materialised semiseparable matrix per head, applied."""
    M = torch.einsum("bln,bsn->bls", C, B)[:, None] * torch.exp(
        segsum(a.transpose(1, 2)))                        # b h l s
    return torch.einsum("bhls,bshp->blhp", M, x)


def discrete(ssd):
    """The mixer's ssd operands (x, dt, a, B, C): ssd_minimal_discrete takes
    X·dt and A·dt (= a)."""
    def run(x, dt, a, B, C, chunk):
        return ssd(x * dt[..., None], a, B, C, chunk)
    return run


def hydra(ssd):
    def run(x, dt, a, B, C, d, chunk):
        b, L = x.shape[:2]
        flip = lambda t: torch.flip(t, (1,))
        both = lambda t: torch.cat([t[:, :, 0], flip(t[:, :, 1])])
        y = ssd(torch.cat([x, flip(x)]) * both(dt)[..., None], both(a),
                both(B), both(C), chunk)
        y = torch.roll(y, shifts=1, dims=1)
        y[:, 0] = 0.0
        return y[:b] + flip(y[b:]) + x * d[..., None]
    return run


def operands(mixer, batch, gen):
    out = []
    for name, shape in mixer.operands:
        t = torch.randn((batch,) + shape, generator=gen)
        if name == "dt":  # softplus(dt + dt_bias), here in (0.1, 1)
            t = 0.1 + 0.9 * torch.rand((batch,) + shape, generator=gen)
        if name == "a":  # dt·A, A = −exp(A_log): here in (−0.5, −0.05)
            t = -(0.05 + 0.45 * torch.rand((batch,) + shape, generator=gen))
        out.append(t.requires_grad_())
    return out


def timed(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mixer", default="hydra", choices=["ssd", "hydra"])
    ap.add_argument("--lengths", default="4096")
    ap.add_argument("--d-model", type=int, default=768)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--state", type=int, default=64)
    ap.add_argument("--chunk", type=int, default=64)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quadratic-max", type=int, default=2048,
                    help="longest L for the quadratic form (its memory)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    head_dim = args.d_model // args.heads
    print("%s(heads=%d, head_dim=%d, state=%d, chunk=%d), batch %d, %d "
          "threads (torch %s)" % (args.mixer, args.heads, head_dim, args.state,
                                  args.chunk, args.batch, args.threads,
                                  torch.__version__))
    print("| L | form | forward ms | fwd+bwd ms | einstruct fwd speedup | "
          "einstruct fwd+bwd speedup |")
    print("|---|---|---|---|---|---|")
    for L in map(int, args.lengths.split(",")):
        chunk = min(args.chunk, L)  # a chunk longer than L is refused
        mixer = einstruct.Mixer("%s(heads=%d, head_dim=%d, state=%d, chunk=%d)"
                                % (args.mixer, args.heads, head_dim,
                                   args.state, chunk), L)
        gen = torch.Generator().manual_seed(L)
        ops = operands(mixer, args.batch, gen)
        dy = torch.randn((args.batch, L, args.heads, head_dim), generator=gen)
        forms = {"einstruct": lambda *t: mixer(*t)}
        if chunk < L <= args.quadratic_max:
            # One chunk: the masked C·Bᵀ applied to x, the quadratic form
            # compiled the same way.
            whole = einstruct.Mixer("%s(heads=%d, head_dim=%d, state=%d, "
                                    "chunk=%d)" % (args.mixer, args.heads,
                                                   head_dim, args.state, L), L)
            forms["einstruct chunk = L"] = lambda *t: whole(*t)
        ssd_forms = {"torch chunked": ssd_chunked}
        if L <= args.quadratic_max:
            ssd_forms["torch quadratic"] = ssd_quadratic
        for name, ssd in ssd_forms.items():
            f = discrete(ssd) if args.mixer == "ssd" else hydra(ssd)
            forms[name] = (lambda f: lambda *t: f(*t, chunk))(f)
        results = {}
        for name, f in forms.items():
            y = f(*ops)
            grads = torch.autograd.grad(y, ops, dy)
            results[name] = (y.detach(), grads)
        ref_y, ref_g = results["einstruct"]
        for name, (y, g) in results.items():
            def check(what, got, want):
                err = (got - want).abs().max() / want.abs().max()
                assert err < 1e-4, "%s: %s differs by %.2e" % (name, what, err)
            check("y", y, ref_y)
            for (n, _), gg, rg in zip(mixer.operands, g, ref_g):
                check("d" + n, gg, rg)
        times = {}
        for name, f in forms.items():
            with torch.no_grad():
                fwd = timed(lambda: f(*ops), args.repeats)
            both = timed(lambda: torch.autograd.grad(f(*ops), ops, dy),
                         args.repeats)
            times[name] = (fwd, both)
        e = times["einstruct"]
        for name, (fwd, both) in times.items():
            print("| %d | %s | %.1f | %.1f | %s | %s |" % (
                L, name, 1e3 * fwd, 1e3 * both,
                "" if name == "einstruct" else "%.2f×" % (fwd / e[0]),
                "" if name == "einstruct" else "%.2f×" % (both / e[1])))


if __name__ == "__main__":
    main()
