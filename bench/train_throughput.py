#!/usr/bin/env python3
"""Training throughput of one sweep row on the CPU: einstruct against the
same residual MLP in PyTorch, in one run, same threads, same work per step.

The PyTorch model is the einsum-search reference's (nn/mlp.py: input linear,
GELU, LayerNorm; blocks x + L2(GELU(L1(LN(x)))); readout) with its structured
linears written as the published code runs them: BTT as two torch.bmm calls
with the transposes between them (mm/btt_mvm.py BlockTeTr.forward), dense as
nn.Linear; autograd for the backward; torch.optim.AdamW with one parameter
group per tensor (the µP multipliers) and CosineAnnealingLR. Each step draws
fresh Gaussian inputs, runs the teacher (a ReLU·√2 MLP), trains on the MSE;
both evaluate the held-out set once at the end.

    bench/train_throughput.py build/bin/einstruct [--threads 1] [--steps 60]

Prints tokens/s of each and the ratio; einstruct's figure is the sweep
row's own tokens_per_s (the training loop, JIT compilation excluded)."""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

STRUCTURES = {"dense": "dense", "btt": "(0.5|0|0.5|0|0.5|0.5|0)"}


def factor(n):
    """n = a·b with a ≤ b closest to √n (einstruct's exact sizing)."""
    a = int(math.isqrt(n))
    while n % a:
        a -= 1
    return a, n // a


class BTT(torch.nn.Module):
    """BTT as mm/btt_mvm.py's BlockTeTr runs it: x(γ, α) -> y(φ, ε) with
    A (γ, α, φ) and B (φ, γ, ε), two bmm and a transpose between."""

    def __init__(self, d_in, d_out):
        super().__init__()
        self.a, self.g = factor(d_in)
        self.e, self.f = factor(d_out)
        self.A = torch.nn.Parameter(torch.randn(self.g, self.a, self.f) * self.a ** -0.5)
        self.B = torch.nn.Parameter(torch.randn(self.f, self.g, self.e) * self.g ** -0.5)
        self.bias = torch.nn.Parameter(torch.zeros(d_out))

    def forward(self, x):
        bsz = x.shape[0]
        X = x.reshape(bsz, self.g, self.a).transpose(0, 1)    # (γ, bsz, α)
        Z = torch.bmm(X, self.A)                              # (γ, bsz, φ)
        Z = Z.transpose(0, 2).contiguous()                    # (φ, bsz, γ)
        Y = torch.bmm(Z, self.B)                              # (φ, bsz, ε)
        return Y.transpose(0, 1).reshape(bsz, -1) + self.bias


def linear(kind, d_in, d_out):
    return torch.nn.Linear(d_in, d_out) if kind == "dense" else BTT(d_in, d_out)


class Block(torch.nn.Module):
    def __init__(self, kind, width):
        super().__init__()
        self.ln = torch.nn.LayerNorm(width)
        self.l1 = linear(kind, width, 4 * width)
        self.l2 = linear(kind, 4 * width, width)

    def forward(self, x):
        return x + self.l2(F.gelu(self.l1(self.ln(x))))


class MLP(torch.nn.Module):
    def __init__(self, kind, d_in, width, depth):
        super().__init__()
        self.inp = torch.nn.Linear(d_in, width)
        self.ln = torch.nn.LayerNorm(width)
        self.blocks = torch.nn.ModuleList(Block(kind, width) for _ in range(depth))
        self.out = torch.nn.Linear(width, 1)
        torch.nn.init.zeros_(self.out.weight)

    def forward(self, x):
        x = self.ln(F.gelu(self.inp(x)))
        for b in self.blocks:
            x = b(x)
        return self.out(x)


def torch_row(kind, a):
    torch.manual_seed(0)
    teacher = [torch.randn(a.teacher_width, 8) * 8 ** -0.5] + [
        torch.randn(a.teacher_width, a.teacher_width) * a.teacher_width ** -0.5
        for _ in range(a.teacher_depth - 1)] + [
        torch.randn(1, a.teacher_width) * a.teacher_width ** -0.5]

    @torch.no_grad()
    def target(x):
        for w in teacher[:-1]:
            x = torch.relu(x @ w.T) * math.sqrt(2)
        return x @ teacher[-1].T

    model = MLP(kind, 8, a.width, 3)
    # One group per tensor, as µP needs (multipliers left at 1 here: the
    # cost is the same).
    opt = torch.optim.AdamW([{"params": [p]} for p in model.parameters()],
                            lr=1e-3, weight_decay=0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=a.steps)
    test_x = torch.randn(a.batch, 8)
    test_y = target(test_x)

    def step():
        x = torch.randn(a.batch, 8)
        y = target(x)
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        sched.step()
        return loss.item()

    for _ in range(3):  # warm-up (allocator, oneDNN primitives)
        step()
    start = time.perf_counter()
    for _ in range(a.steps):
        step()
    with torch.no_grad():
        F.mse_loss(model(test_x), test_y).item()
    return a.steps * a.batch / (time.perf_counter() - start)


def einstruct_row(kind, a):
    config = {"train": {
        "task": {"teacher": {"input_dim": 8, "width": a.teacher_width,
                             "depth": a.teacher_depth}},
        "model": {"widths": [a.width], "depth": 3},
        "sizing": "exact",
        "structures": [STRUCTURES[kind]],
        "optimizer": {"lr": 1e-3},
        "steps": a.steps, "batch": a.batch, "log_every": a.steps,
        "test_rows": a.batch, "threads": a.threads}}
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "c.json")
        with open(path, "w") as f:
            json.dump(config, f)
        env = dict(os.environ, EINSTRUCT_NUM_THREADS=str(a.threads))
        subprocess.run([a.einstruct, "sweep", path, "-o",
                        os.path.join(d, "r.jsonl"), "-q"], check=True, env=env)
        with open(os.path.join(d, "r.jsonl")) as f:
            return json.loads(f.readline())["tokens_per_s"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("einstruct")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--teacher-width", type=int, default=256)
    p.add_argument("--teacher-depth", type=int, default=6)
    p.add_argument("--structures", default="btt,dense")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, {a.threads} thread(s), width {a.width} "
          f"(hidden {4 * a.width}), depth 3, batch {a.batch}, {a.steps} steps, "
          f"teacher {a.teacher_depth}×{a.teacher_width}")
    print("| structure | einstruct tokens/s | PyTorch tokens/s | einstruct ÷ PyTorch |")
    print("|---|---|---|---|")
    for kind in a.structures.split(","):
        t = torch_row(kind, a)
        e = einstruct_row(kind, a)
        print(f"| {kind} | {e:,.0f} | {t:,.0f} | {e / t:.2f}× |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
