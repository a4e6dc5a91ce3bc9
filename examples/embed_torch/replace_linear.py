"""Replace the nn.Linear layers of a small PyTorch model by einstruct layers.

A teacher-student regression: the teacher is a random dense MLP
64 -> 256 -> 64 (tanh). Two students train with Adam on its outputs: the
same MLP with dense nn.Linear layers, and a copy whose nn.Linear layers were
replaced by einstruct modules generated with `einstruct compile --emit
torch` (forward and backward run einstruct's compiled CPU code). Prints both
loss curves and parameter counts.
    usage: replace_linear.py EINSTRUCT [STRUCTURE [STEPS]]
           (defaults: "btt(rank=2)", 300)
Exit 1 unless the structured student's loss falls below half its start."""
import importlib
import subprocess
import sys
import tempfile

try:
    import torch
except ImportError:
    print("SKIP: PyTorch is not installed (Debian: python3-torch)")
    sys.exit(77)

einstruct = sys.argv[1]
structure = sys.argv[2] if len(sys.argv) > 2 else "btt(rank=2)"
steps = int(sys.argv[3]) if len(sys.argv) > 3 else 300
work = tempfile.mkdtemp(prefix="einstruct_embed_")
sys.path.insert(0, work)


def structured(d_in, d_out, name):
    """An einstruct module class for a d_in -> d_out layer of `structure`."""
    subprocess.run([einstruct, "compile", "--structure", structure, "--d-in",
                    str(d_in), "--d-out", str(d_out), "--emit", "torch",
                    "--name", name, "-o", work], check=True, capture_output=True)
    return getattr(importlib.import_module(name), name)


def replace_linear(model):
    """Every nn.Linear (bias kept as a separate parameter) becomes the
    einstruct layer of the same shape."""
    for name, child in model.named_children():
        if isinstance(child, torch.nn.Linear):
            cls = structured(child.in_features, child.out_features,
                             f"layer_{name}_{child.in_features}x{child.out_features}")
            layer = torch.nn.Sequential(cls(), Bias(child.out_features))
            setattr(model, name, layer)
        else:
            replace_linear(child)
    return model


class Bias(torch.nn.Module):
    def __init__(self, n):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(n))

    def forward(self, x):
        return x + self.bias


def mlp(hidden=256):
    return torch.nn.Sequential(torch.nn.Linear(64, hidden), torch.nn.Tanh(),
                               torch.nn.Linear(hidden, 64))


def train(model, teacher, steps, seed):
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step in range(steps):
        x = torch.randn(64, 64)
        with torch.no_grad():
            target = teacher(x)
        loss = torch.nn.functional.mse_loss(model(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


torch.manual_seed(0)
teacher = mlp()
dense = mlp()
student = replace_linear(mlp())
curves = {"dense nn.Linear": train(dense, teacher, steps, 1),
          "einstruct " + structure: train(student, teacher, steps, 1)}
for name, model in [("dense nn.Linear", dense), ("einstruct " + structure, student)]:
    params = sum(p.numel() for p in model.parameters())
    c = curves[name]
    print(f"{name:28s} params {params:6d}  loss {c[0]:.4f} -> "
          f"{sum(c[-20:]) / 20:.4f} (mean of the last 20 steps)")
c = curves["einstruct " + structure]
sys.exit(0 if sum(c[-20:]) / 20 < 0.5 * c[0] else 1)
