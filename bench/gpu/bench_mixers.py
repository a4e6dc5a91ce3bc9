"""einstruct's CUDA mixer libraries against PyTorch, in one process.

  ssd  the chunked SSD (`compile --mixer ssd(...)`: NAME and NAME_backward)
       against a PyTorch chunked SSD of x·dt written from Mamba-2's
       algorithm (segment sums, four einsums, the inter-chunk recurrence as
       one more einsum) in eager mode and under torch.compile: forward, and
       forward+backward (every operand);
  hydra the Hydra library (the whole quasiseparable mixer) against
       goombalab/hydra's forward around that PyTorch chunked SSD (x and
       flip(x) as one doubled batch, each scaled by its half of dt, the
       output rolled by one token, the second half flipped back, + d·x),
       eager and compiled, forward and forward+backward (every operand);
  m2   the m2-conv library against M2's torch.fft convolution
       (fftconv_ref: rfft at 2L, product, irfft, + D·u, with the block's
       transposes to its (B, C, L) layout), eager and compiled, forward and
       forward+backward (every operand).
float32, or with a trailing ":bf16" bfloat16 (libraries
from `compile --mixer --dtype bf16`: bfloat16 inputs and outputs, float32
inside; PyTorch's forms then run in bfloat16 too, and both are compared
with the float32 PyTorch form on the same inputs). Times are medians of
CUDA-event timings after warm-up. Outputs are compared first; a mismatch
is reported and the timing still printed.

Usage:
  bench_mixers.py --ssd LIBDIR:NAME:H:P:N:Q:L[:bf16] \
      --hydra LIBDIR:NAME:H:P:N:Q:L[:bf16] --m2 LIBDIR:NAME:L:C[:bf16] \
      --batch 4 --out OUT
  bench_mixers.py --self-test     (CPU: the PyTorch chunked SSD and Hydra
                                   against the quadratic form, so the
                                   baselines are right)
where LIBDIR holds libNAME.so and libNAME_backward.so (nvcc -shared of the
generated .cu, -lcublas) and, for m2, NAME_constants.safetensors.
"""
import argparse
import ctypes
import json
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_gpu import time_ms  # noqa: E402  (CUDA-event medians, as the layers')


def segsum(x):
    """(..., T) -> (..., T, T): Σ_{t=s+1..l} x_t where l >= s, else -inf."""
    cs = torch.cumsum(x, -1)
    seg = cs[..., :, None] - cs[..., None, :]
    T = x.size(-1)
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool, device=x.device))
    return seg.masked_fill(~mask, float("-inf"))


def ssd_chunked(X, A, B, C, Q):
    """X (b, l, h, p), A (b, l, h) log decays, B and C (b, l, n) shared by
    the heads; chunk Q dividing l. Mamba-2's chunked algorithm."""
    b, l, h, p = X.shape
    n, c = B.shape[-1], l // Q
    X = X.reshape(b, c, Q, h, p)
    A = A.reshape(b, c, Q, h).permute(0, 3, 1, 2)  # b h c q
    B = B.reshape(b, c, Q, n)
    C = C.reshape(b, c, Q, n)
    A_cs = torch.cumsum(A, -1)
    within = torch.exp(segsum(A))  # b h c l s
    y_diag = torch.einsum("bcln,bcsn,bhcls,bcshp->bclhp", C, B, within, X)
    to_end = torch.exp(A_cs[..., -1:] - A_cs)  # b h c s
    states = torch.einsum("bcsn,bhcs,bcshp->bchpn", B, to_end, X)
    states = torch.cat([torch.zeros_like(states[:, :1]), states], 1)
    chunk_decay = torch.exp(segsum(torch.nn.functional.pad(A_cs[..., -1], (1, 0))))
    states = torch.einsum("bhzc,bchpn->bzhpn", chunk_decay, states)[:, :-1]
    y_off = torch.einsum("bcln,bchpn,bhcl->bclhp", C, states, torch.exp(A_cs))
    return (y_diag + y_off).reshape(b, l, h, p)


def ssd_quadratic(X, A, B, C):
    """The materialised semiseparable matrix, per head."""
    b, l, h, p = X.shape
    A = A.permute(0, 2, 1)  # b h l
    M = torch.exp(segsum(A)) * torch.einsum("bln,bsn->bls", C, B)[:, None]
    return torch.einsum("bhls,bshp->blhp", M, X)


def hydra_torch(X, dt, A, B, C, d, Q, core=None):
    """goombalab/hydra's forward: X (b, l, h, p); dt and A = dt·A (b, l, 2,
    h), B and C (b, l, 2, n), index 2 the direction; d (b, l, h). `core`:
    the SSD (ssd_chunked with chunk Q when None)."""
    def ssd(*a):
        return core(*a) if core else ssd_chunked(*a, Q)
    flip = lambda t: t.flip(1)  # noqa: E731
    y = ssd(torch.cat([X * dt[:, :, 0, :, None], flip(X * dt[:, :, 1, :, None])]),
            torch.cat([A[:, :, 0], flip(A[:, :, 1])]),
            torch.cat([B[:, :, 0], flip(B[:, :, 1])]),
            torch.cat([C[:, :, 0], flip(C[:, :, 1])]))
    # torch.roll(y, 1, dims=1) with y[:, 0] = 0.
    y = torch.nn.functional.pad(y[:, :-1], (0, 0, 0, 0, 1, 0))
    fw, bw = y.chunk(2)
    return fw + flip(bw) + X * d[..., None]


def fftconv_ref(u, k, D):
    """M2's fftconv_ref, causal: u (B, H, L), k (H, L), D (H)."""
    L = u.shape[-1]
    n = 2 * L
    k_f = torch.fft.rfft(k, n=n) / n
    u_f = torch.fft.rfft(u, n=n)
    y = torch.fft.irfft(u_f * k_f, n=n, norm="forward")[..., :L]
    return y + u * D[:, None]


class Chain:
    """One generated chain library: NAME(inputs, outputs, S, ws, bytes, stream)."""

    def __init__(self, libdir, name):
        self.lib = ctypes.CDLL(os.path.abspath(os.path.join(libdir, f"lib{name}.so")))
        self.fn = getattr(self.lib, name)
        vp = ctypes.c_void_p
        self.fn.argtypes = [vp, vp, ctypes.c_longlong, vp, ctypes.c_size_t, vp]
        self.ws = getattr(self.lib, name + "_workspace_bytes")
        self.ws.argtypes = [ctypes.c_longlong]
        self.ws.restype = ctypes.c_size_t
        self.buffer = None

    def __call__(self, inputs, outputs, S):
        need = self.ws(S)
        if self.buffer is None or self.buffer.numel() < need:
            self.buffer = torch.empty(max(need, 1), dtype=torch.uint8, device="cuda")
        ins = (ctypes.c_void_p * len(inputs))(*[t.data_ptr() for t in inputs])
        outs = (ctypes.c_void_p * len(outputs))(*[t.data_ptr() for t in outputs])
        rc = self.fn(ins, outs, S, self.buffer.data_ptr(), need,
                     torch.cuda.current_stream().cuda_stream)
        if rc:
            raise RuntimeError(f"chain library returned {rc}")


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def bench_pair(row, libdir, name, dtype, inputs, dy, torch_fn, results,
               constants=()):
    """The library NAME and NAME_backward in LIBDIR against `torch_fn` on
    `inputs` and `dy` (float32; in bfloat16 when `dtype`, the spec's tail,
    is ["bf16"]): errors first, then eager and torch.compile timings.
    `constants` follow the inputs in the library's calls (m2-conv's DFT
    matrices), not torch_fn's."""
    bf16 = dtype == ["bf16"]
    if bf16:
        inputs = [t.to(torch.bfloat16) for t in inputs]
        dy = dy.to(torch.bfloat16)
    row["dtype"] = "bf16" if bf16 else "f32"
    fwd, bwd = Chain(libdir, name), Chain(libdir, name + "_backward")
    S = inputs[0].shape[0]
    consts = list(constants)
    y = torch.empty_like(dy)
    grads = [torch.empty_like(t) for t in inputs]
    fwd(inputs + consts, [y], S)
    # The reference: PyTorch's form in float32 on the same inputs.
    ref = [t.float().requires_grad_() for t in inputs]
    want = torch_fn(*ref)
    want.backward(dy.float())
    row["forward_rel_err"] = rel_err(y.float(), want.detach())
    bwd(inputs + consts + [dy], grads, S)
    row["grad_rel_err"] = max(rel_err(g_.float(), r.grad)
                              for g_, r in zip(grads, ref))
    leaves = [t.clone().requires_grad_() for t in inputs]
    if inputs[0].dtype != torch.float32:  # PyTorch's own error in that dtype
        row["torch_forward_rel_err"] = rel_err(
            torch_fn(*inputs).float(), want.detach())
    compiled = torch.compile(torch_fn)

    def torch_fb(fn):
        def run():
            for l in leaves:
                l.grad = None
            fn(*leaves).backward(dy)
        return run

    row["einstruct_fwd_ms"] = time_ms(lambda: fwd(inputs + consts, [y], S))
    row["einstruct_fwdbwd_ms"] = time_ms(
        lambda: (fwd(inputs + consts, [y], S),
                 bwd(inputs + consts + [dy], grads, S)))
    with torch.no_grad():
        row["torch_fwd_ms"] = time_ms(lambda: torch_fn(*inputs))
        row["compile_fwd_ms"] = time_ms(lambda: compiled(*inputs))
    row["torch_fwdbwd_ms"] = time_ms(torch_fb(torch_fn))
    row["compile_fwdbwd_ms"] = time_ms(torch_fb(compiled))
    results.append(row)


def bench_ssd(spec, S, results, hydra=False):
    """ssd: x, dt, a, B, C; hydra: the same with two directions, and d."""
    libdir, name, H, P, N, Q, L, *dtype = spec.split(":")
    H, P, N, Q, L = int(H), int(P), int(N), int(Q), int(L)
    g = torch.Generator(device="cuda").manual_seed(0)
    dev = dict(device="cuda", dtype=torch.float32)
    dirs = (2,) if hydra else ()
    inputs = [torch.randn(S, L, H, P, generator=g, **dev),
              torch.rand(S, L, *dirs, H, generator=g, **dev) * 0.9 + 0.1,
              -torch.rand(S, L, *dirs, H, generator=g, **dev) * 0.45 - 0.05,
              torch.randn(S, L, *dirs, N, generator=g, **dev),
              torch.randn(S, L, *dirs, N, generator=g, **dev)]
    if hydra:
        inputs.append(torch.randn(S, L, H, generator=g, **dev))
    dy = torch.randn(S, L, H, P, generator=g, **dev)
    family = "hydra" if hydra else "ssd"
    row = {"mixer": f"{family}(heads={H}, head_dim={P}, state={N}, chunk={Q})",
           "L": L, "batch": S}
    fn = ((lambda *a: hydra_torch(*a, Q)) if hydra
          else (lambda x, dt, *a: ssd_chunked(x * dt[..., None], *a, Q)))
    bench_pair(row, libdir, name, dtype, inputs, dy, fn, results)


def safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = {}
    for key, v in header.items():
        if key == "__metadata__":
            continue
        a, b = v["data_offsets"]
        t = torch.frombuffer(bytearray(data[8 + n + a:8 + n + b]), dtype=torch.float32)
        out[key] = t.reshape(v["shape"])
    return out


def bench_m2(spec, S, results):
    """m2-conv (causal): x [S, L, C], k [L, C], D [C] channels last, as the
    block's projection gives them; M2's fftconv_ref takes (B, C, L), so its
    form includes the two transposes MonarchMixerSequenceMixing makes, and
    its casts to float32 and back."""
    libdir, name, L, Cn, *dtype = spec.split(":")
    L, Cn = int(L), int(Cn)
    consts = safetensors(os.path.join(libdir, f"{name}_constants.safetensors"))
    consts = [consts[k].cuda() for k in sorted(consts, key=lambda k: int(k[5:]))]
    g = torch.Generator(device="cuda").manual_seed(1)
    dev = dict(device="cuda", dtype=torch.float32)
    inputs = [torch.randn(S, L, Cn, generator=g, **dev),
              torch.randn(L, Cn, generator=g, **dev) / L,
              torch.randn(Cn, generator=g, **dev)]
    dy = torch.randn(S, L, Cn, generator=g, **dev)
    row = {"mixer": "m2-conv(causal=true)", "L": L, "d_model": Cn, "batch": S}

    def fn(u, k, D):  # M2 runs the FFTs in float32 and casts back
        y = fftconv_ref(u.transpose(1, 2).float(), k.t().float(), D.float())
        return y.transpose(1, 2).to(u.dtype)
    bench_pair(row, libdir, name, dtype, inputs, dy, fn, results, consts)


def self_test():
    torch.manual_seed(0)
    for b, l, h, p, n, q in [(2, 32, 3, 4, 5, 8), (1, 12, 1, 2, 3, 4), (1, 4, 2, 1, 1, 4)]:
        X = torch.randn(b, l, h, p, dtype=torch.float64)
        A = -torch.rand(b, l, h, dtype=torch.float64) * 0.45 - 0.05
        B = torch.randn(b, l, n, dtype=torch.float64)
        C = torch.randn(b, l, n, dtype=torch.float64)
        err = rel_err(ssd_chunked(X, A, B, C, q), ssd_quadratic(X, A, B, C))
        print(f"ssd_chunked vs quadratic b={b} l={l} h={h} q={q}: rel err {err:.2e}")
        if err > 1e-10:
            return 1
    # Hydra around the chunked SSD against it around the quadratic form, on
    # a length the chunk divides.
    b, l, h, p, n, q = 2, 12, 2, 3, 2, 4
    X = torch.randn(b, l, h, p, dtype=torch.float64)
    dt = torch.rand(b, l, 2, h, dtype=torch.float64) + 0.1
    A = -torch.rand(b, l, 2, h, dtype=torch.float64) * 0.45 - 0.05
    B = torch.randn(b, l, 2, n, dtype=torch.float64)
    C = torch.randn(b, l, 2, n, dtype=torch.float64)
    d = torch.randn(b, l, h, dtype=torch.float64)
    err = rel_err(hydra_torch(X, dt, A, B, C, d, q),
                  hydra_torch(X, dt, A, B, C, d, q, core=ssd_quadratic))
    print(f"hydra_torch chunked vs quadratic: rel err {err:.2e}")
    if err > 1e-10:
        return 1
    # fftconv_ref against the direct causal sum.
    u, k, D = torch.randn(2, 3, 10, dtype=torch.float64), torch.randn(3, 10, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    direct = torch.zeros_like(u)
    for i in range(10):
        for j in range(i + 1):
            direct[..., i] += k[:, i - j] * u[..., j]
    err = rel_err(fftconv_ref(u, k, D), direct + u * D[:, None])
    print(f"fftconv_ref vs direct sums: rel err {err:.2e}")
    return 0 if err < 1e-10 else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ssd", action="append", default=[])
    ap.add_argument("--hydra", action="append", default=[])
    ap.add_argument("--m2", action="append", default=[])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--out")
    ap.add_argument("--self-test", action="store_true")
    a = ap.parse_args()
    if a.self_test:
        return self_test()
    print("device:", torch.cuda.get_device_name(), "torch", torch.__version__)
    results = []

    def done():  # each row printed and saved as it comes (a timeout keeps them)
        print(json.dumps(results[-1]), flush=True)
        if a.out:
            with open(os.path.join(a.out, "mixers.json"), "w") as f:
                json.dump({"device": torch.cuda.get_device_name(),
                           "results": results}, f, indent=1)
    for spec in a.ssd:
        bench_ssd(spec, a.batch, results)
        done()
    for spec in a.hydra:
        bench_ssd(spec, a.batch, results, hydra=True)
        done()
    for spec in a.m2:
        bench_m2(spec, a.batch, results)
        done()
    return 0


if __name__ == "__main__":
    sys.exit(main())
