"""What the checks of generated torch modules share (tests/torch/check_module.py
and tests/gpu/check_torch.py): the skip without PyTorch, a work directory on
sys.path for the generated modules, emitting one, and counting checks."""
import importlib
import subprocess
import sys
import tempfile


def require_torch():
    """torch, or exit 77 (CTest's skip) when it is not installed."""
    try:
        import torch
    except ImportError:
        print("SKIP: PyTorch is not installed (Debian: python3-torch)")
        sys.exit(77)
    return torch


class Checks:
    def __init__(self, einstruct, prefix):
        self.einstruct = einstruct
        self.work = tempfile.mkdtemp(prefix=prefix)
        sys.path.insert(0, self.work)
        self.failures = 0

    def check(self, ok, what):
        print(("ok   " if ok else "FAIL ") + what)
        self.failures += 0 if ok else 1

    def emit(self, args, name):
        """`einstruct compile ARGS --emit torch --name NAME`, imported as a
        user would: the work directory on sys.path."""
        subprocess.run([self.einstruct, "compile", *args, "--emit", "torch",
                        "--name", name, "-o", self.work], check=True,
                       capture_output=True)
        return importlib.import_module(name)

    def finish(self):
        print(f"{self.failures} failure(s)")
        sys.exit(1 if self.failures else 0)
