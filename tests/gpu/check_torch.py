"""The generated torch.nn.Module on CUDA tensors (the layer's generated
kernels through the runtime) against the same module on the CPU: y, dx and
every weight gradient in float32 and bfloat16, on the default and on a side
stream, BTT-MoE routing counts; the same for sequence mixers (their CUDA
libraries against the CPU JIT, y and every operand's gradient, float32)
and for einstruct.blocks' M2 and Hydra.
Exits 77 (CTest's skip) without PyTorch or a CUDA device.
    usage: check_torch.py EINSTRUCT"""
import copy
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "torch"))
from module_checks import Checks, require_torch  # noqa: E402

torch = require_torch()
if not torch.cuda.is_available():
    print("SKIP: no CUDA device (torch.cuda.is_available() is False)")
    sys.exit(77)

checks = Checks(sys.argv[1], "einstruct_torch_gpu_")
check = checks.check


def relative(a, b):
    a, b = a.double().cpu(), b.double().cpu()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


cases = [
    ("btt", ["--structure", "btt(rank=2)", "--d-in", "96", "--d-out", "200"]),
    ("monarch", ["--structure", "monarch(16)", "--d-in", "256", "--d-out", "256"]),
    ("moe", ["--structure", "btt-moe(experts=4, top_k=2)", "--d-in", "64",
             "--d-out", "64"]),
    ("dyad", ["--structure", "dyad(blocks=4, variant=DT)", "--d-in", "64",
              "--d-out", "96"]),
]
torch.manual_seed(0)
for name, args in cases:
    m = checks.emit(args, name)
    for dtype, tol in ((torch.float32, 1e-4), (torch.bfloat16, 3e-2)):
        cpu = getattr(m, name)(dtype=dtype)
        with torch.no_grad():
            for w in cpu.weights:  # a nonzero router too
                w.copy_(torch.randn_like(w.float()) * 0.3)
        gpu = copy.deepcopy(cpu).cuda()
        gpu.routing_stats = True
        x = torch.randn(300, m.D_IN).to(dtype)
        dy = torch.randn(300, m.D_OUT).to(dtype)
        results = {}
        for where, layer in (("cpu", cpu), ("cuda", gpu)):
            xs = x.to(where).requires_grad_()
            y = layer(xs)
            y.backward(dy.to(where))
            results[where] = [y, xs.grad, *[w.grad for w in layer.weights]]
        what = ["y", "dx"] + ["dW%d" % (k + 1) for k in range(len(cpu.weights))]
        for label, c, g in zip(what, results["cpu"], results["cuda"]):
            e = relative(g, c)
            check(g.device.type == "cuda" and e <= tol,
                  f"{name} {dtype}: {label} rel. error {e:.2e} (tolerance {tol:.0e})")
        if m.EXPERTS:
            counts = gpu.routing()["tokens_per_expert"]
            check(sum(counts) == 300 * 2, f"{name} {dtype}: routed {counts}")
        # A side stream gives the same y.
        side = torch.cuda.Stream()
        with torch.no_grad(), torch.cuda.stream(side):
            y_side = gpu(x.cuda())
        torch.cuda.synchronize()
        check(torch.equal(y_side, results["cuda"][0].detach()),
              f"{name} {dtype}: the same y on a side stream")

# Sequence mixers: `compile --mixer --emit torch` modules on CUDA tensors
# (the chain libraries) against the CPU JIT. L = 45 is not a multiple of
# the chunk (the libraries' own padding), nor fills m2-conv's DFT grid.
mixers = [
    ("hydra", "hydra(heads=2, head_dim=8, state=4, chunk=16)", 45, 0),
    ("ssd", "ssd(heads=3, head_dim=4, state=5, chunk=16)", 45, 0),
    ("monarchseq", "monarch-seq(blocks=4)", 64, 8),
    # Both directions; 45 tokens fill neither grid row (n = 10²).
    ("m2causal", "m2-conv(causal=true)", 45, 6),
    ("m2bidir", "m2-conv(causal=false)", 45, 6),
    # Whole blocks compiled into one chain each way: projections, short
    # convolution, gates, norm and mixer (45 tokens: the chunk's padding).
    ("hydrablock", "hydra-block(state=4, conv=3, expand=2, head_dim=4, "
     "chunk=16)", 45, 8),
    ("hydramonarch", "hydra-block(state=4, conv=3, expand=2, head_dim=4, "
     "chunk=16, proj=monarch(blocks=2))", 45, 8),
    ("m2block", "m2-block(causal=true, order=4, l_max=64)", 45, 8),
]
for name, spec, L, d_model in mixers:
    args = ["--mixer", spec, "--seq-len", str(L)]
    if d_model:
        args += ["--d-model", str(d_model)]
    m = checks.emit(args, name)
    mixer = getattr(m, name)()
    ops = []
    for (op, shape), each in zip(mixer.operands, mixer.per_sequence):
        t = torch.randn(((3,) if each else ()) + shape)
        if op == "dt":
            t = 0.1 + 0.9 * torch.rand(t.shape)
        if op == "a":
            t = -0.05 - 0.45 * torch.rand(t.shape)
        ops.append(t)
    dy = torch.randn((3,) + mixer.operands[0][1])
    results = {}
    for where in ("cpu", "cuda"):
        ts = [t.to(where).requires_grad_() for t in ops]
        y = mixer(*ts)
        y.backward(dy.to(where))
        results[where] = [y] + [t.grad for t in ts]
    what = ["y"] + ["d" + op for op, _ in mixer.operands]
    for label, c, g in zip(what, results["cpu"], results["cuda"]):
        e = relative(g, c)
        check(g.device.type == "cuda" and e <= 1e-4,
              f"mixer {spec}: {label} rel. error {e:.2e} (tolerance 1e-4)")
    # Above, the backward from the saving forward's residuals (ssd, hydra,
    # the blocks); without them (recompute=True) the library runs the
    # saving forward again first: the same gradients.
    mixer.recompute = True
    ts = [t.cuda().requires_grad_() for t in ops]
    mixer(*ts).backward(dy.cuda())
    mixer.recompute = False
    for label, t, g in zip(what[1:], ts, results["cuda"][1:]):
        e = relative(t.grad, g)
        check(e <= 1e-6, f"mixer {spec}: {label} recomputed, rel. error "
              f"{e:.2e} from the saved residuals' (tolerance 1e-6)")
    side = torch.cuda.Stream()
    with torch.no_grad(), torch.cuda.stream(side):
        y_side = mixer(*[t.cuda() for t in ops])
    torch.cuda.synchronize()
    check(torch.equal(y_side, results["cuda"][0].detach()),
          f"mixer {spec}: the same y on a side stream")
    try:
        mixer(ops[0].cuda(), *ops[1:])
        check(False, f"mixer {spec}: operands on two devices are refused")
    except RuntimeError as e:
        check("one device for all operands" in str(e),
              f"mixer {spec}: operands on two devices: {e}")

# Whole blocks on CUDA tensors (einstruct.blocks: their mixers through the
# CUDA libraries, the rest torch's) against the same blocks on the CPU: y,
# du and every parameter's gradient.
import einstruct.blocks as blocks  # noqa: E402  (the build's package)

# torch's own convolutions and projections in full float32 on the GPU too
# (cuDNN takes TF32 for convolutions by default).
torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False
torch.manual_seed(1)
for name, make, L in [
        ("M2", lambda: blocks.M2(16, l_max=45), 45),
        ("M2 bidirectional", lambda: blocks.M2(16, l_max=45,
                                               bidirectional=True), 45),
        ("Hydra", lambda: blocks.Hydra(32, d_state=8, headdim=16,
                                       chunk_size=16), 45)]:
    block = make()
    u, dy = torch.randn(2, L, block.d_model), torch.randn(2, L, block.d_model)
    results = {}
    for where in ("cpu", "cuda"):
        b = copy.deepcopy(block).to(where)
        x = u.to(where).requires_grad_()
        y = b(x)
        y.backward(dy.to(where))
        results[where] = [("y", y), ("du", x.grad)] + [
            ("d" + n, p.grad) for n, p in b.named_parameters()
            if p.grad is not None]
    for (label, c), (_, g) in zip(results["cpu"], results["cuda"]):
        e = relative(g, c)
        check(g.device.type == "cuda" and e <= 1e-4,
              f"block {name}: {label} rel. error {e:.2e} (tolerance 1e-4)")

checks.finish()
