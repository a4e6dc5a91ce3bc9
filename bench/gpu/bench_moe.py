"""BTT-MoE: einstruct's routed kernels against the all-experts way, bf16, in
one process.

  einstruct    the generated MoE layer (routing, grouping, one rank-1 BTT
               per expert on its rows only) through its C ABI (ctypes)
  all-experts  the published code's way: router, top-k, dense gate; z for
               every expert and every token by bmm, z multiplied by the gate,
               second bmm; autograd for the backward pass
forward, and forward+backward (dx, dWg, dW1, dW2, aux loss weighted 0.01).
Both include the router. Medians of CUDA-event timings after warm-up, inputs
rotated among 4 sets. The einstruct output is first checked against the
all-experts output in fp32.

Usage: python3 bench_moe.py LIB --top-k K --tokens 16384 --out DIR
"""
import argparse
import ctypes
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_gpu import Info, check, time_ms  # noqa: E402


class MoeStats(ctypes.Structure):
    _fields_ = [("aux_loss", ctypes.c_double), ("entropy", ctypes.c_double),
                ("experts", ctypes.c_int64), ("counts", ctypes.c_int64 * 64)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("lib")
    ap.add_argument("--top-k", type=int, required=True)
    ap.add_argument("--tokens", type=int, default=16384)
    ap.add_argument("--out", default=".")
    ap.add_argument("--profile", action="store_true",
                    help="also print per-kernel GPU times (torch.profiler)")
    args = ap.parse_args()
    lib = ctypes.CDLL(os.path.abspath(args.lib))
    name = os.path.basename(args.lib)[3:-3]
    f_info = getattr(lib, name + "_info")
    f_info.restype = ctypes.POINTER(Info)
    info = f_info().contents
    assert info.einsum.decode() == "ga,frga,ferg->fe", info.einsum
    vp, i64, sz = ctypes.c_void_p, ctypes.c_int64, ctypes.c_size_t
    wsz = getattr(lib, name + "_moe_workspace")
    wsz.argtypes, wsz.restype = [i64], sz
    fwd = getattr(lib, name + "_moe_forward")
    fwd.argtypes = [vp, vp, vp, vp, vp, i64, vp, sz, vp, vp]
    bwd = getattr(lib, name + "_moe_backward")
    bwd.argtypes = [vp, vp, vp, vp, vp, ctypes.c_float, vp, vp, vp, vp, i64, vp, sz, vp]

    a, _, g, _, e, f, E = list(info.sizes)
    K, n, din, dout = args.top_k, args.tokens, info.d_in, info.d_out
    bf = torch.bfloat16
    dev = torch.cuda.get_device_name()
    torch.manual_seed(0)
    sets = 4
    xs = [torch.randn(n, din, device="cuda", dtype=bf) for _ in range(sets)]
    dys = [torch.randn(n, dout, device="cuda", dtype=bf) for _ in range(sets)]
    wg = (torch.randn(din, E, device="cuda", dtype=bf) * din ** -0.5)
    w1 = torch.randn(f, E, g, a, device="cuda", dtype=bf) * a ** -0.5
    w2 = torch.randn(f, e, E, g, device="cuda", dtype=bf) * g ** -0.5
    stream = lambda: ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)

    def all_experts(x, wg, w1, w2):
        logits = x.float() @ wg.float()
        top, idx = logits.topk(K, dim=-1)
        gates = torch.zeros_like(logits).scatter(1, idx, torch.softmax(top, -1) + 1e-6)
        p = torch.softmax(logits, -1)
        counts = torch.zeros(E, device=x.device).scatter_add(
            0, idx.flatten(), torch.ones(idx.numel(), device=x.device))
        lse = torch.logsumexp(logits, -1)
        aux = E * (p.mean(0) * counts / (n * K)).sum() + 0.1 * (lse ** 2).mean()
        A = w1.permute(2, 3, 0, 1).reshape(g, a, f * E)               # g, a, f·r
        z = torch.bmm(x.view(n, g, a).transpose(0, 1), A)              # g, n, f·r
        z = z.view(g, n, f, E) * gates.to(x.dtype)[None, :, None, :]   # every expert, gated
        z = z.permute(2, 1, 3, 0).reshape(f, n, E * g)                 # f, n, r·g
        B = w2.permute(0, 2, 3, 1).reshape(f, E * g, e)                # f, r·g, e
        y = torch.bmm(z, B).transpose(0, 1).reshape(n, f * e)
        return y, aux

    y = torch.empty(n, dout, device="cuda", dtype=bf)
    dx = torch.empty(n, din, device="cuda", dtype=bf)
    dwg, dw1, dw2 = torch.empty_like(wg), torch.empty_like(w1), torch.empty_like(w2)
    ws = torch.empty(wsz(n), device="cuda", dtype=torch.uint8)
    stats = MoeStats()
    check(fwd(xs[0].data_ptr(), wg.data_ptr(), w1.data_ptr(), w2.data_ptr(),
              y.data_ptr(), n, ws.data_ptr(), ws.numel(), ctypes.byref(stats),
              stream()), "moe_forward")
    y_ref, aux_ref = all_experts(xs[0].float(), wg.float(), w1.float(), w2.float())
    rel = ((y.float() - y_ref).norm() / y_ref.norm()).item()
    counts = list(stats.counts[:E])

    it = [0]

    def nxt():
        it[0] = (it[0] + 1) % sets
        return it[0]

    def ours_fwd():
        k = nxt()
        check(fwd(xs[k].data_ptr(), wg.data_ptr(), w1.data_ptr(), w2.data_ptr(),
                  y.data_ptr(), n, ws.data_ptr(), ws.numel(), None, stream()), "fwd")

    def ours_fwdbwd():
        k = nxt()
        s = stream()
        check(fwd(xs[k].data_ptr(), wg.data_ptr(), w1.data_ptr(), w2.data_ptr(),
                  y.data_ptr(), n, ws.data_ptr(), ws.numel(), None, s), "fwd")
        check(bwd(xs[k].data_ptr(), wg.data_ptr(), w1.data_ptr(), w2.data_ptr(),
                  dys[k].data_ptr(), 0.01, dx.data_ptr(), dwg.data_ptr(),
                  dw1.data_ptr(), dw2.data_ptr(), n, ws.data_ptr(), ws.numel(), s), "bwd")

    params = [t.clone().requires_grad_() for t in (wg, w1, w2)]
    xg = [x.clone().requires_grad_() for x in xs]

    def ref_fwd():
        all_experts(xs[nxt()], wg, w1, w2)

    def ref_fwdbwd():
        k = nxt()
        xg[k].grad = None
        for p in params:
            p.grad = None
        out, aux = all_experts(xg[k], *params)
        ((out * dys[k]).sum() + 0.01 * aux).backward()

    if args.profile:
        from torch.profiler import ProfilerActivity, profile
        for what, fn in [("forward", ours_fwd), ("forward+backward", ours_fwdbwd)]:
            fn()
            torch.cuda.synchronize()
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                for _ in range(5):
                    fn()
                torch.cuda.synchronize()
            print(f"einstruct {what}, 5 calls:")
            print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=14,
                                            max_name_column_width=60))
    with torch.no_grad():
        t_ours, t_ref = time_ms(ours_fwd), time_ms(ref_fwd)
    tb_ours, tb_ref = time_ms(ours_fwdbwd), time_ms(ref_fwdbwd)
    target = 0.8 * E / K
    row = {"device": dev, "layer": name, "experts": E, "top_k": K, "tokens": n,
           "d_in": din, "d_out": dout, "tokens_per_expert": counts,
           "entropy": stats.entropy, "aux_loss": stats.aux_loss,
           "aux_loss_all_experts": aux_ref.item(), "check_rel_err": rel,
           "fwd_ms": {"einstruct": t_ours, "all-experts": t_ref},
           "fwdbwd_ms": {"einstruct": tb_ours, "all-experts": tb_ref},
           "fwd_speedup": t_ref / t_ours, "fwdbwd_speedup": tb_ref / tb_ours,
           "target_speedup": target}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, f"moe_bench_{name}.json"), "w") as fh:
        json.dump(row, fh, indent=1)
    print(f"device: {dev}; {name}: {E} experts, top-{K}, {n} tokens, d {din}->{dout}, bf16")
    print(f"tokens per expert {counts}, entropy {stats.entropy:.3f} nats, "
          f"aux loss {stats.aux_loss:.4f} (all-experts code: {aux_ref.item():.4f}); "
          f"forward check vs all-experts in fp32: {rel:.1e}")
    print("| impl | fwd ms | fwd+bwd ms |\n|---|---|---|")
    print(f"| einstruct (routed) | {t_ours:.3f} | {tb_ours:.3f} |")
    print(f"| all experts (published way) | {t_ref:.3f} | {tb_ref:.3f} |")
    print(f"speedup: forward {t_ref / t_ours:.2f}x, forward+backward {tb_ref / tb_ours:.2f}x "
          f"(target >= 0.8*E/k = {target:.1f}x)")


if __name__ == "__main__":
    sys.exit(main())
