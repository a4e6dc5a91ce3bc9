#!/usr/bin/python3
"""`einstruct import` and `export` against the public code's forward passes
(references.py: our transcriptions of fly's and einsum-search's sources).
Random checkpoints in those layouts are imported, run through `einstruct run`
with the written spec, weights, router and bias, and compared to 1e-5; then
exported back and compared with the original tensors."""
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from references import btt_forward, btt_moe, einsum_search_generic, \
    fly_blockdiag, fly_monarch, opt_btt_cores  # noqa: E402

EINSTRUCT = sys.argv[1]
work = tempfile.mkdtemp()
rng = np.random.default_rng(7)
passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what)


def run(args):
    return subprocess.run([EINSTRUCT] + args, capture_output=True, text=True)


def save_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, a in tensors.items():
        b = np.ascontiguousarray(a, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(np.shape(a)),
                        "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def load_safetensors(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        out[name] = np.frombuffer(data[8 + n + b:8 + n + end],
                                  dtype="<f4").reshape(e["shape"])
    return out


def rel_err(got, ref):
    return float(np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-30))


# ---- the cases ----------------------------------------------------------------
def import_ckpt(source, tensors, extra=()):
    ckpt = f"{work}/ckpt.safetensors"
    save_safetensors(ckpt, tensors)
    out = f"{work}/imported"
    subprocess.run(["rm", "-rf", out])
    r = run(["import", "--from", source, ckpt, "-o", out] + list(extra))
    return r, out


def run_layer(out, entry, x):
    stem = entry["spec"][:-5]
    w = f"{out}/{stem}.safetensors"
    tensors = load_safetensors(w)
    nw = len([n for n in tensors if n.startswith("w")])
    args = ["run", f"{out}/{entry['spec']}", "--input", f"{work}/x.npy",
            "--weights", ",".join(f"{w}:w{k + 1}" for k in range(nw)),
            "-o", f"{work}/y.npy", "--repeat", "1"]
    if entry["router"]:
        args += ["--router", f"{w}:router"]
    if entry["bias"]:
        args += ["--bias", f"{w}:bias"]
    np.save(f"{work}/x.npy", x)
    r = run(args)
    if r.returncode:
        return None, r.stderr
    return np.load(f"{work}/y.npy"), ""


def fly_case(name, nb, d_in, d_out, monarch=True, bias=True, give_d_in=True):
    in_blk, out_blk = -(-d_in // nb), -(-d_out // nb)
    t = {}
    if monarch:
        q = in_blk if in_blk < out_blk else out_blk
        t["mlp.fc1.blkdiag1"] = rng.standard_normal((nb, q, in_blk))
        t["mlp.fc1.blkdiag2"] = rng.standard_normal((nb, out_blk, q))
    else:
        t["mlp.fc1.weight"] = rng.standard_normal((nb, out_blk, in_blk))
    t = {k: v.astype(np.float32) for k, v in t.items()}
    t["mlp.fc1.bias"] = rng.standard_normal(d_out).astype(np.float32)
    if not bias:
        del t["mlp.fc1.bias"]
    # Tensors of other modules are left alone: a norm, a conv kernel.
    t["norm.weight"] = np.ones(8, np.float32)
    t["conv.weight"] = rng.standard_normal((16, 1, 3)).astype(np.float32)
    extra = ["--d-in", str(d_in)] if give_d_in else []
    if not bias:
        extra += ["--d-out", str(d_out)]
    r, out = import_ckpt("m2" if not monarch else "fly", t, extra)
    check(r.returncode == 0, f"{name}: import failed: {r.stderr}")
    if r.returncode:
        return None
    manifest = json.load(open(f"{out}/manifest.json"))
    check(len(manifest) == 1 and manifest[0]["name"] == "mlp.fc1",
          f"{name}: manifest {manifest}")
    x = rng.uniform(-1, 1, (9, d_in)).astype(np.float32)
    y, err = run_layer(out, manifest[0], x)
    check(y is not None, f"{name}: run failed: {err}")
    if y is None:
        return None
    b = t.get("mlp.fc1.bias")
    ref = (fly_monarch(x, t["mlp.fc1.blkdiag1"], t["mlp.fc1.blkdiag2"], b, d_out)
           if monarch else fly_blockdiag(x, t["mlp.fc1.weight"], b, d_out))
    e = rel_err(y, ref)
    check(e <= 1e-5, f"{name}: relative error {e:.3g} vs fly's forward")
    # Export back: fly's own tensor names and values, bit for bit.
    w = f"{out}/mlp.fc1.safetensors"
    nw = 2 if monarch else 1
    args = ["export", "--to", "fly", f"{out}/mlp.fc1.json", "--weights",
            ",".join(f"{w}:w{k + 1}" for k in range(nw)), "--name", "mlp.fc1",
            "-o", f"{work}/back.safetensors"]
    if bias:
        args += ["--bias", f"{w}:bias"]
    r = run(args)
    check(r.returncode == 0, f"{name}: export failed: {r.stderr}")
    if r.returncode == 0:
        back = load_safetensors(f"{work}/back.safetensors")
        want = {k: v for k, v in t.items() if k.startswith("mlp.fc1.")}
        check(sorted(back) == sorted(want) and
              all(np.array_equal(back[k], want[k]) for k in want),
              f"{name}: export gave {sorted(back)}, not fly's tensors")
    return out


def einsum_search_case(name, d_in, d_out, sizes, rank, normalised=False,
                       experts=0, top_k=2):
    g, a, f, e = sizes
    assert g * a == d_in and f * e == d_out
    r = experts or rank
    m = "blocks.0.mlp" + (".btt_layer" if experts else "")
    t = {f"{m}.matrix_params.0": rng.standard_normal((g, a, f * r)),
         f"{m}.matrix_params.1": rng.standard_normal((f, g * r, e)),
         f"{m}.b": rng.standard_normal(d_out)}
    gammas = None
    if normalised or experts:
        gammas = (1.7, 0.6)
        t[f"{m}.matrix_params.2"] = np.array(gammas[0])
        t[f"{m}.matrix_params.3"] = np.array(gammas[1])
    if experts:
        t["blocks.0.mlp.moe_gate.weight"] = rng.standard_normal((experts, d_in))
        t["blocks.0.mlp.b"] = t[f"{m}.b"]
    t = {k: np.asarray(v, np.float32) for k, v in t.items()}
    r_, out = import_ckpt("einsum-search", t, ["--top-k", str(top_k)])
    check(r_.returncode == 0, f"{name}: import failed: {r_.stderr}")
    if r_.returncode:
        return
    manifest = json.load(open(f"{out}/manifest.json"))
    check(len(manifest) == 1 and manifest[0]["name"] == "blocks.0.mlp",
          f"{name}: manifest {manifest}")
    x = rng.uniform(-1, 1, (11, d_in)).astype(np.float32)
    y, err = run_layer(out, manifest[0], x)
    check(y is not None, f"{name}: run failed: {err}")
    if y is None:
        return
    A, B, b = t[f"{m}.matrix_params.0"], t[f"{m}.matrix_params.1"], t[f"{m}.b"]
    if experts:
        ref = btt_moe(x, A, B, gammas, t["blocks.0.mlp.moe_gate.weight"], b,
                      top_k)
    else:
        W0, W1 = opt_btt_cores(A, B, gammas)
        ref = btt_forward(x, W0, W1) + b
    err = rel_err(y, ref)
    check(err <= 1e-5, f"{name}: relative error {err:.3g} vs einsum-search's "
          "forward")
    # Export, then the reference on the exported tensors: the same function.
    w = f"{out}/blocks.0.mlp.safetensors"
    args = ["export", "--to", "einsum-search", f"{out}/blocks.0.mlp.json",
            "--weights", f"{w}:w1,{w}:w2", "--bias", f"{w}:bias", "--name",
            "blocks.0.mlp", "-o", f"{work}/back.safetensors"]
    if experts:
        args += ["--router", f"{w}:router"]
    r_ = run(args)
    check(r_.returncode == 0, f"{name}: export failed: {r_.stderr}")
    if r_.returncode:
        return
    back = load_safetensors(f"{work}/back.safetensors")
    # A normalised plain BTT goes back as einsum-search's unnormalised 'btt'
    # holding the folded cores; a MoE layer always normalises, with γ set
    # so that its normalisation gives back the folded cores.
    want = sorted(k for k in t if experts or not k.endswith(("2", "3")))
    check(sorted(back) == want, f"{name}: export keys {sorted(back)} vs {want}")
    A2, B2 = back[f"{m}.matrix_params.0"], back[f"{m}.matrix_params.1"]
    g2 = ((float(back[f"{m}.matrix_params.2"]),
           float(back[f"{m}.matrix_params.3"])) if experts else None)
    if experts:
        ref2 = btt_moe(x, A2, B2, g2, back["blocks.0.mlp.moe_gate.weight"],
                       back[f"{m}.b"], top_k)
    else:
        ref2 = btt_forward(x, A2, B2) + back[f"{m}.b"]
    err = rel_err(ref2, ref)
    check(err <= 1e-5, f"{name}: exported tensors compute another function "
          f"(relative error {err:.3g})")
    if not normalised and not experts:
        check(np.array_equal(A2, A) and np.array_equal(B2, B),
              f"{name}: export did not give back the stored cores")


fly_case("fly monarch 8 blocks of 8 on 64", 8, 64, 64)
fly_case("fly monarch 4 blocks on 64 (BTT rank 4)", 4, 64, 64)
fly_case("fly monarch 16 blocks on 64", 16, 64, 64)
fly_case("fly monarch padded 62 -> 70", 4, 62, 70)
fly_case("fly monarch 64 -> 32", 4, 64, 32)
fly_case("fly monarch 32 -> 96 without bias", 4, 32, 96, bias=False)
fly_case("m2 block-diagonal padded 62 -> 90", 4, 62, 90, monarch=False)
einsum_search_case("einsum-search btt rank 2", 48, 80, (8, 6, 8, 10), 2)
einsum_search_case("einsum-search btt rank 1 normalised", 48, 80,
                   (8, 6, 8, 10), 1, normalised=True)
einsum_search_case("einsum-search btt-moe 4 experts top-2", 48, 80,
                   (8, 6, 8, 10), 1, experts=4, top_k=2)
einsum_search_case("einsum-search btt-moe 3 experts top-1", 24, 30,
                   (4, 6, 5, 6), 1, experts=3, top_k=1)

# einsum-search's generic θ layers (build_einsum): cores squeezed, padded
# sizes, the θ named on the command line; two layers of one θ at once.
def generic_case(name, theta_text, theta, d_in, d_out, normalize):
    dims = [d_in, d_in, d_in, d_out, d_out, d_out, min(d_in, d_out)]
    α, β, γ, δ, ε, φ, ρ = [round(n ** t) for n, t in zip(dims, theta)]
    t = {}
    for m in ("h.0.attn", "h.1.attn"):
        t[f"{m}.matrix_params.0"] = np.squeeze(
            rng.standard_normal((φ, δ, ρ, γ, α))).astype(np.float32)
        t[f"{m}.matrix_params.1"] = np.squeeze(
            rng.standard_normal((φ, ε, ρ, γ, β))).astype(np.float32)
        t[f"{m}.b"] = rng.standard_normal(φ * ε * δ).astype(np.float32)
    extra = ["--theta", theta_text, "--d-in", str(d_in), "--d-out", str(d_out)]
    r, out = import_ckpt("einsum-search", t,
                         extra + (["--normalized"] if normalize else []))
    check(r.returncode == 0, f"{name}: import failed: {r.stderr}")
    if r.returncode:
        return
    manifest = json.load(open(f"{out}/manifest.json"))
    check([e["name"] for e in manifest] == ["h.0.attn", "h.1.attn"],
          f"{name}: manifest {manifest}")
    x = rng.uniform(-1, 1, (6, d_in)).astype(np.float32)
    for entry in manifest:
        m = entry["name"]
        y, err = run_layer(out, entry, x)
        check(y is not None, f"{name} {m}: run failed: {err}")
        if y is None:
            continue
        ref = einsum_search_generic(x, t[f"{m}.matrix_params.0"],
                                    t[f"{m}.matrix_params.1"], theta, d_in,
                                    d_out, t[f"{m}.b"], normalize)
        e = rel_err(y, ref)
        check(e <= 1e-5, f"{name} {m}: relative error {e:.3g} vs build_einsum's "
              "forward")


generic_case("einsum-search θ (1/2|1/4|1/4|1/4|1/2|1/4|1/4), padded 64 -> 70",
             "(0.5|0.25|0.25|0.25|0.5|0.25|0.25)",
             (0.5, 0.25, 0.25, 0.25, 0.5, 0.25, 0.25), 64, 70, False)
generic_case("einsum-search θ normalised", "(0.5|0.25|0.25|0.25|0.5|0.25|0.25)",
             (0.5, 0.25, 0.25, 0.25, 0.5, 0.25, 0.25), 64, 64, True)

# A fly-layout file is refused for an einstruct-layout spec, naming both.
out = fly_case("fly monarch for the layout check", 8, 64, 64)
if out:
    w = f"{out}/mlp.fc1.safetensors"
    np.save(f"{work}/x.npy", rng.uniform(-1, 1, (2, 64)).astype(np.float32))
    r = run(["run", "--structure", "monarch(blocks=8)", "--d-in", "64",
             "--d-out", "64", "--input", f"{work}/x.npy", "--weights",
             f"{w}:w1,{w}:w2"])
    check(r.returncode == 2 and "'fly' layout" in r.stderr and
          "'einstruct'" in r.stderr, f"wrong layout accepted: {r.stderr}")

# Bad input: located errors, exit code 2, nothing written.
save_safetensors(f"{work}/none.safetensors",
                 {"linear.weight": np.ones((4, 4), np.float32)})
for args, want in [
    (["import", "--from", "jax", f"{work}/none.safetensors", "-o",
      f"{work}/bad"], "unknown checkpoint source 'jax'"),
    (["import", "--from", "fly", f"{work}/none.safetensors", "-o",
      f"{work}/bad"], "no fly structured layer in the checkpoint"),
    (["import", "--from", "fly", f"{work}/none.npy", "-o", f"{work}/bad"],
     "must be a .safetensors file"),
]:
    r = run(args)
    check(r.returncode == 2 and want in r.stderr and
          not os.path.exists(f"{work}/bad/manifest.json"),
          f"{args}: rc {r.returncode}, {r.stderr!r}")
save_safetensors(f"{work}/odd.safetensors", {
    "l.blkdiag1": np.ones((4, 16, 16), np.float32),
    "l.blkdiag2": np.ones((4, 8, 16), np.float32)})
r = run(["import", "--from", "fly", f"{work}/odd.safetensors", "-o",
         f"{work}/bad"])
check(r.returncode == 2 and "not what MonarchLinear(nblocks=4) builds" in
      r.stderr, f"inconsistent fly shapes: {r.stderr!r}")
r = run(["import", "--from", "fly", f"{work}/ckpt.safetensors", "-o",
         f"{work}/bad", "--d-in", "30"])
check(r.returncode == 2 and "d_in = 30 does not fit blocks of 8" in r.stderr,
      f"a d_in the blocks cannot hold: {r.stderr!r}")
r = run(["export", "--to", "fly", "--structure", "btt(rank=2)", "--d-in", "16",
         "--d-out", "16", "--weights", f"{work}/x.npy,{work}/x.npy", "-o",
         f"{work}/bad.safetensors"])
check(r.returncode == 2 and not os.path.exists(f"{work}/bad.safetensors"),
      f"export of a layer fly cannot hold: {r.stderr!r}")

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
