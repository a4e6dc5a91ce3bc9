"""einstruct's generated CUDA layers against the PyTorch ways of running them.

For each layer (Monarch / BTT, bf16) and token count, in one process:
  einstruct  the generated fused kernels through their C ABI (ctypes)
  (a) bmm    the public Monarch/BTT code's way: bmm, transpose in HBM, bmm
  (b) compile  torch.compile of (a)
  (c) dense  torch.nn.functional.linear with the d_in x d_out matrix (cuBLAS)
forward, and forward+backward (dx and both weight gradients). Times are
medians of CUDA-event timings after warm-up, inputs rotated among several
sets so they do not sit in L2. The HBM roofline is a measured
device-to-device copy (bytes read + written); the tensor roofline a measured
8192^3 bf16 matmul.

Usage: python3 bench_gpu.py LIB:SPECJSON [...] --tokens 16384 --out DIR
where LIB is a shared library built from a generated .cu and SPECJSON its
header's einstruct_layer_info (read through ctypes).
"""
import argparse
import ctypes
import json
import os
import statistics
import sys

import torch
import torch.nn.functional as F


class Info(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("family", ctypes.c_char_p),
                ("einsum", ctypes.c_char_p), ("dtype", ctypes.c_char_p),
                ("d_in", ctypes.c_int64), ("d_out", ctypes.c_int64),
                ("padded_in", ctypes.c_int64), ("padded_out", ctypes.c_int64),
                ("sizes", ctypes.c_int64 * 7), ("x_strides", ctypes.c_int64 * 7),
                ("w1_strides", ctypes.c_int64 * 7),
                ("w2_strides", ctypes.c_int64 * 7),
                ("y_strides", ctypes.c_int64 * 7),
                ("w1_elems", ctypes.c_int64), ("w2_elems", ctypes.c_int64),
                ("dtype_bytes", ctypes.c_int), ("forward_smem", ctypes.c_size_t),
                ("backward_input_smem", ctypes.c_size_t)]


def time_ms(fn, reps=30, warmup=5):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e))
    return statistics.median(times)


def ceilings():
    n = 1 << 28  # 512 MiB of bf16
    a = torch.empty(n, dtype=torch.bfloat16, device="cuda")
    b = torch.empty_like(a)
    a.uniform_()
    ms = time_ms(lambda: b.copy_(a), reps=20)
    hbm = 2 * a.numel() * 2 / (ms * 1e-3)
    m = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    ms = time_ms(lambda: m @ m, reps=10)
    tc = 2 * 8192 ** 3 / (ms * 1e-3)
    return hbm, tc


class Layer:
    def __init__(self, lib_path):
        self.lib = ctypes.CDLL(os.path.abspath(lib_path))
        name = os.path.basename(lib_path)[3:-3]  # libNAME.so
        self.name = name
        f = getattr(self.lib, name + "_info")
        f.restype = ctypes.POINTER(Info)
        self.info = f().contents
        vp, i64 = ctypes.c_void_p, ctypes.c_int64
        self.fwd = getattr(self.lib, name + "_forward")
        self.fwd.argtypes = [vp, vp, vp, vp, i64, vp]
        self.bwi = getattr(self.lib, name + "_backward_input")
        self.bwi.argtypes = [vp, vp, vp, vp, i64, vp]
        self.wsz = getattr(self.lib, name + "_backward_weights_workspace")
        self.wsz.argtypes = [i64]
        self.wsz.restype = ctypes.c_size_t
        self.bww = getattr(self.lib, name + "_backward_weights")
        self.bww.argtypes = [vp, vp, vp, vp, vp, vp, i64, vp, ctypes.c_size_t, vp]
        s = list(self.info.sizes)
        self.a, self.b, self.g, self.d, self.e, self.f, self.r = s
        assert self.b == 1 and self.d == 1, "bench covers BTT/Monarch (b = d = 1)"


def check(rc, what):
    if rc != 0:
        raise RuntimeError(f"{what} returned status {rc}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("libs", nargs="+")
    ap.add_argument("--tokens", type=int, default=16384)
    ap.add_argument("--out", default=".")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--latency", default="",
                    help="comma-separated small token counts: forward latency vs dense")
    args = ap.parse_args()
    dev = torch.cuda.get_device_name()
    hbm, tc = ceilings()
    print(f"device: {dev}; measured HBM copy {hbm/1e12:.2f} TB/s, "
          f"bf16 matmul {tc/1e12:.0f} TFLOP/s")
    rows = []
    for path in args.libs:
        L = Layer(path)
        n, din, dout = args.tokens, L.info.d_in, L.info.d_out
        assert L.info.padded_in == din and L.info.padded_out == dout
        g, a, f, r, e = L.g, L.a, L.f, L.r, L.e
        bf = torch.bfloat16
        stream = lambda: ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
        sets = 4  # rotate inputs so repeated calls do not hit L2
        xs = [torch.randn(n, din, device="cuda", dtype=bf) for _ in range(sets)]
        dys = [torch.randn(n, dout, device="cuda", dtype=bf) for _ in range(sets)]
        # Weights in the generated layouts (w1: f,r,g,a order by letters of
        # the layer, here [f, (r,) g, a]; w2: [f, e, (r,) g]).
        w1 = (torch.randn(L.info.w1_elems, device="cuda", dtype=bf) * a ** -0.5)
        w2 = (torch.randn(L.info.w2_elems, device="cuda", dtype=bf) * (r * g) ** -0.5)
        W1 = w1.view(f, r, g, a)
        W2 = w2.view(f, e, r, g)
        # (a): weights kept in bmm layouts, as the public code stores them.
        A_bmm = W1.permute(2, 3, 0, 1).reshape(g, a, f * r).contiguous().requires_grad_()
        B_bmm = W2.permute(0, 2, 3, 1).reshape(f, r * g, e).contiguous().requires_grad_()

        def torch_btt(x, A, B):
            z = torch.bmm(x.view(n, g, a).transpose(0, 1), A)        # g, n, f*r
            z = z.view(g, n, f, r).permute(2, 1, 3, 0).reshape(f, n, r * g)
            y = torch.bmm(z, B)                                        # f, n, e
            return y.transpose(0, 1).reshape(n, f * e)

        compiled = None if args.no_compile else torch.compile(torch_btt)
        # Check (a) against einstruct first: the same function.
        y_ours = torch.empty(n, dout, device="cuda", dtype=bf)
        check(L.fwd(xs[0].data_ptr(), w1.data_ptr(), w2.data_ptr(),
                    y_ours.data_ptr(), n, stream()), "forward")
        y_ref = torch_btt(xs[0].float(), A_bmm.detach().float(), B_bmm.detach().float())
        rel = ((y_ours.float() - y_ref).norm() / y_ref.norm()).item()
        dense = torch.randn(dout, din, device="cuda", dtype=bf) * din ** -0.5
        dense.requires_grad_()

        it = [0]
        def nxt():
            it[0] = (it[0] + 1) % sets
            return it[0]
        ys = torch.empty(n, dout, device="cuda", dtype=bf)
        dxs = torch.empty(n, din, device="cuda", dtype=bf)
        dw1, dw2 = torch.empty_like(w1), torch.empty_like(w2)
        ws = torch.empty(L.wsz(n), device="cuda", dtype=torch.uint8)

        def ours_fwd():
            k = nxt()
            check(L.fwd(xs[k].data_ptr(), w1.data_ptr(), w2.data_ptr(),
                        ys.data_ptr(), n, stream()), "forward")

        def ours_fwdbwd():
            k = nxt()
            s = stream()
            check(L.fwd(xs[k].data_ptr(), w1.data_ptr(), w2.data_ptr(), ys.data_ptr(), n, s), "fwd")
            check(L.bwi(dys[k].data_ptr(), w1.data_ptr(), w2.data_ptr(), dxs.data_ptr(), n, s), "bwd-in")
            check(L.bww(xs[k].data_ptr(), dys[k].data_ptr(), w1.data_ptr(), w2.data_ptr(),
                        dw1.data_ptr(), dw2.data_ptr(), n, ws.data_ptr(), ws.numel(), s), "bwd-w")

        xg = [x.clone().requires_grad_() for x in xs]

        def torch_fwd(fn):
            return lambda: fn(xs[nxt()], A_bmm, B_bmm)

        def torch_fwdbwd(fn):
            def run():
                k = nxt()
                xg[k].grad = None
                A_bmm.grad = B_bmm.grad = None
                fn(xg[k], A_bmm, B_bmm).backward(dys[k])
            return run

        def dense_fwd():
            F.linear(xs[nxt()], dense)

        def dense_fwdbwd():
            k = nxt()
            xg[k].grad = None
            dense.grad = None
            F.linear(xg[k], dense).backward(dys[k])

        with torch.no_grad():
            t = {"einstruct": time_ms(ours_fwd), "(a) bmm": time_ms(torch_fwd(torch_btt)),
                 "(c) dense": time_ms(dense_fwd)}
            if compiled:
                t["(b) compile"] = time_ms(torch_fwd(compiled))
        tb = {"einstruct": time_ms(ours_fwdbwd), "(a) bmm": time_ms(torch_fwdbwd(torch_btt)),
              "(c) dense": time_ms(dense_fwdbwd)}
        if compiled:
            tb["(b) compile"] = time_ms(torch_fwdbwd(compiled))
        macs = n * (f * r * g * a + f * e * r * g)
        io_bytes = 2 * (n * din + n * dout) + 2 * (L.info.w1_elems + L.info.w2_elems)
        for impl in t:
            fl = 2 * (din * dout * n) if impl == "(c) dense" else 2 * macs
            by = io_bytes if impl != "(c) dense" else 2 * (n * din + n * dout + din * dout)
            rows.append({
                "layer": L.name, "einsum": L.info.einsum.decode(), "tokens": n,
                "impl": impl, "fwd_ms": t[impl], "fwdbwd_ms": tb[impl],
                "fwd_tflops": fl / (t[impl] * 1e-3) / 1e12,
                "fwd_gbs": by / (t[impl] * 1e-3) / 1e9,
                "fwd_hbm_roofline_frac": (by / hbm) / (t[impl] * 1e-3),
                "fwd_vs_a": t[impl] / t["(a) bmm"],
                "fwdbwd_speedup_vs_a": tb["(a) bmm"] / tb[impl],
                "check_rel_err_vs_a": rel, "device": dev})
    lat = []
    for path in args.libs if args.latency else []:
        L = Layer(path)
        din, dout = L.info.d_in, L.info.d_out
        bf = torch.bfloat16
        w1 = torch.randn(L.info.w1_elems, device="cuda", dtype=bf) * L.a ** -0.5
        w2 = torch.randn(L.info.w2_elems, device="cuda", dtype=bf) * (L.r * L.g) ** -0.5
        dense = torch.randn(dout, din, device="cuda", dtype=bf) * din ** -0.5
        for n in (int(v) for v in args.latency.split(",")):
            x = torch.randn(n, din, device="cuda", dtype=bf)
            y = torch.empty(n, dout, device="cuda", dtype=bf)
            s_ = lambda: ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
            ours = time_ms(lambda: check(L.fwd(x.data_ptr(), w1.data_ptr(), w2.data_ptr(),
                                               y.data_ptr(), n, s_()), "forward"), reps=200, warmup=20)
            with torch.no_grad():
                dn = time_ms(lambda: F.linear(x, dense), reps=200, warmup=20)
            lat.append({"layer": L.name, "tokens": n, "einstruct_ms": ours, "dense_ms": dn,
                        "ratio": ours / dn, "device": dev})
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "gpu_bench.json"), "w") as fh:
        json.dump({"device": dev, "hbm_bytes_per_s": hbm, "bf16_flops": tc,
                   "rows": rows, "latency": lat}, fh, indent=1)
    if lat:
        print("\n| layer | tokens | einstruct fwd ms | dense fwd ms | einstruct / dense |\n|---|---|---|---|---|")
        for r_ in lat:
            print(f"| {r_['layer']} | {r_['tokens']} | {r_['einstruct_ms']:.4f} | {r_['dense_ms']:.4f} | {r_['ratio']:.2f}x |")
    print(f"\n| layer | tokens | impl | fwd ms | TFLOP/s | GB/s | HBM roofline | fwd vs (a) | fwd+bwd ms | fwd+bwd speedup vs (a) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r_ in rows:
        print(f"| {r_['layer']} | {r_['tokens']} | {r_['impl']} | {r_['fwd_ms']:.3f} | "
              f"{r_['fwd_tflops']:.1f} | {r_['fwd_gbs']:.0f} | {100*r_['fwd_hbm_roofline_frac']:.0f}% | "
              f"{r_['fwd_vs_a']:.2f}x | {r_['fwdbwd_ms']:.3f} | {r_['fwdbwd_speedup_vs_a']:.2f}x |")
    print("\nforward check vs (a) in fp32: " +
          ", ".join(f"{r_['layer']} {r_['check_rel_err_vs_a']:.1e}" for r_ in rows if r_['impl'] == 'einstruct'))


if __name__ == "__main__":
    sys.exit(main())
