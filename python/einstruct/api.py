"""Analysis, search and projection: JSON through the C ABI, Python objects
back (the objects `einstruct analyze --json`, `sweep` and `search --model
--json` print)."""
import ctypes
import json

import numpy as np

from .nn import _P, _call_json, _check, _library, runtime_spec


def analyze(spec, d_in=None, d_out=None):
    """The analysis of one spec (a dict), or a list of them for a list:
    params, flops (multiply-adds per input vector), omega/psi/nu, sizes,
    theta, terms, layout, ..."""
    if isinstance(spec, list):
        return _call_json("einstruct_analyze", json.dumps(
            [runtime_spec(s, d_in, d_out) for s in spec]))
    return _call_json("einstruct_analyze",
                      json.dumps(runtime_spec(spec, d_in, d_out)))[0]


def search(d_in, d_out, top=10, objective="paper", grid=None, moe=None,
           include_rounded=False, **budget):
    """The best structures for one layer shape under a budget, ranked:
    a list of candidate dicts (analysis, score, Pareto flags, why). Budget
    keys: max_flops_ratio, max_flops, max_params, min_psi, max_omega,
    families (a list of family names). moe: [(experts, top_k), ...]."""
    config = {"shapes": [[int(d_in), int(d_out)]], "budgets": [budget],
              "objectives": [objective], "top": int(top),
              "include_rounded": bool(include_rounded)}
    if grid is not None:
        config["grid"] = int(grid)
    if moe:
        config["moe"] = [[int(e), int(k)] for e, k in moe]
    return _call_json("einstruct_search", json.dumps(config))[0]["top"]


def search_model(layers, budget, name="model"):
    """One structure per layer so that the model fits a total MAC budget
    with the most parameters. layers: dicts with name, d_in, d_out (and
    count); budget: {"max_flops_ratio": r} or {"max_flops": n}. Returns the
    totals and "layers": each layer's chosen candidate."""
    return _call_json("einstruct_search_model", json.dumps(
        {"name": name, "layers": list(layers), "budget": dict(budget)}))


def project(spec, dense, d_in=None, d_out=None):
    """The weights of `spec`'s layer nearest to the dense matrix `dense`
    [d_out, d_in] (as torch.nn.Linear.weight; a numpy array or a tensor),
    by per-block SVD: (list of float32 numpy arrays, relative error)."""
    w = np.ascontiguousarray(np.asarray(
        dense.detach().cpu().float() if hasattr(dense, "detach") else dense,
        dtype=np.float32))
    if d_in is None and d_out is None and w.ndim == 2:
        d_out, d_in = w.shape
    s = runtime_spec(spec, d_in, d_out)
    info = analyze(s)  # the shapes, without compiling the layer
    if w.shape != (info["d_out"], info["d_in"]):
        raise ValueError("einstruct.project: dense is %s, the layer needs "
                         "(d_out, d_in) = (%d, %d)"
                         % (w.shape, info["d_out"], info["d_in"]))
    # Each weight's axes as its einsum operand names them (the runtime's
    # weight shapes, search/Layer.h weightShapes).
    out = []
    for term in info["terms"]:
        for letters in term["einsum"].split("->")[0].split(",")[1:]:
            out.append(np.empty([term["sizes"][c] for c in letters], np.float32))
    pointers = (_P * len(out))(*[a.ctypes.data for a in out])
    error = ctypes.c_double()
    _check(_library().einstruct_project(json.dumps(s).encode(), w.ctypes.data,
                                        pointers, ctypes.byref(error)))
    return out, error.value
