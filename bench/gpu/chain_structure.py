#!/usr/bin/env python3
"""What a sequence mixer's or block's CUDA libraries run, read off the code
`einstruct compile --mixer` writes (no GPU, no nvcc): per library the
launches (kernels and cuBLAS calls) and the workspace per sequence, from
the generated scratch-slot table. A structural count, not a timing: fewer
launches and less workspace are what a GPU run would then have to show.

  chain_structure.py EINSTRUCT [--seq-len 1024] [--d-model 768] [MIXER ...]
"""
import argparse
import pathlib
import re
import subprocess
import sys
import tempfile

DEFAULT = [
    "ssd(heads=12, head_dim=64, state=64, chunk=64)",
    "hydra(heads=12, head_dim=64, state=64, chunk=64)",
    "m2-conv(causal=true)",
    "hydra-block(state=64, head_dim=64, chunk=64)",
    "m2-block(causal=false, order=16)",
]


def structure(cu_text):
    """(launches, workspace bytes per sequence) of one generated .cu."""
    # The launches in the chain's body: after the last helper definition,
    # each kernel launch and each GEMM call of a step.
    body = cu_text[cu_text.rindex("_workspace_bytes(long long S) {"):]
    launches = len(re.findall(r"<<<", body)) + len(
        re.findall(r"einstruct_gemm::gemm<float>\(", body))
    table = re.search(r"kScratch\[\]\[2\] = \{(.*?)\};", cu_text, re.S)
    slots = re.findall(r"\{(\d+)LL, (\d)\}", table.group(1)) if table else []
    # Floats per slot at S = 1, each 64-float aligned as scratchOffset does.
    floats = sum((int(n) + 63) // 64 * 64 for n, _ in slots)
    return launches, 4 * floats


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("einstruct")
    p.add_argument("mixers", nargs="*", default=DEFAULT)
    p.add_argument("--seq-len", type=int, default=1024)
    p.add_argument("--d-model", type=int, default=768)
    a = p.parse_args()
    print(f"| mixer (L = {a.seq_len}, d_model = {a.d_model}) | library "
          "| launches | workspace per sequence |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as work:
        for k, mixer in enumerate(a.mixers):
            out = pathlib.Path(work) / f"m{k}"
            r = subprocess.run(
                [a.einstruct, "compile", "--mixer", mixer, "--seq-len",
                 str(a.seq_len), "--d-model", str(a.d_model), "--name", "m",
                 "-o", str(out)], capture_output=True, text=True)
            if r.returncode:
                sys.exit(f"{mixer}: {r.stderr.strip()}")
            for kind in ["", "_saving", "_backward", "_backward_saved"]:
                cu = out / f"m{kind}.cu"
                if not cu.exists():
                    continue
                launches, ws = structure(cu.read_text())
                name = {"": "forward", "_saving": "saving forward",
                        "_backward": "backward (recomputing)",
                        "_backward_saved": "backward (from residuals)"}[kind]
                print(f"| {mixer} | {name} | {launches} | {ws / 1e6:.1f} MB |")


if __name__ == "__main__":
    main()
