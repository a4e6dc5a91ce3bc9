"""convert(): a model's torch.nn.Linear layers replaced by the structures a
model-level search picks under a total MAC budget, initialised by the SVD
projection of their trained dense weights."""
import torch

from .api import project as _project
from .api import search_model
from .nn import Linear


def _spec_of(pick):
    """The runtime spec of a search candidate."""
    if pick.get("experts"):
        sizes = pick["sizes"]
        return {"structure": "btt-moe(experts=%d, top_k=%d, in_blocks=%d, "
                "out_blocks=%d)" % (pick["experts"], pick["top_k"], sizes["g"],
                                    sizes["f"]),
                "d_in": pick["d_in"], "d_out": pick["d_out"]}
    return {"terms": pick["terms"], "d_in": pick["d_in"], "d_out": pick["d_out"]}


def convert(model, budget=0.25, project=True, layers=None):
    """Replaces model's nn.Linear layers (all, or those whose names are in
    `layers`) in place. budget: the model's MAC budget as a fraction of the
    dense layers' MACs, or a dict ({"max_flops": n}). With project=True each
    structured layer starts at the projection of its dense weight (and keeps
    its bias). Returns a report: per layer its structure, params, MACs and
    the projection's relative error (None when not projected)."""
    found = [(name, m) for name, m in model.named_modules()
             if isinstance(m, torch.nn.Linear)
             and (layers is None or name in layers)]
    if not found:
        raise ValueError("einstruct.convert: the model has no nn.Linear layer%s"
                         % ("" if layers is None else " named %s" % layers))
    if not isinstance(budget, dict):
        budget = {"max_flops_ratio": float(budget)}
    result = search_model([{"name": name, "d_in": m.in_features,
                            "d_out": m.out_features} for name, m in found],
                          budget)
    picks = {c["layer"]: c for c in result["layers"]}
    report = []
    for name, dense in found:
        pick = picks[name]
        entry = {"layer": name, "structure": pick["name"],
                 "params": pick["params"], "macs": pick["flops"],
                 "dense_params": dense.in_features * dense.out_features,
                 "projection_error": None}
        report.append(entry)
        if pick["name"] == "dense":
            continue  # the search kept it dense: the module stays
        spec = _spec_of(pick)
        layer = Linear(spec, bias=dense.bias is not None,
                       dtype=dense.weight.dtype)
        layer.to(dense.weight.device)
        if project:
            weights, error = _project(spec, dense.weight)
            with torch.no_grad():
                for w, p in zip(layer.weights, weights):
                    w.copy_(torch.from_numpy(p))
                if dense.bias is not None:
                    layer.bias.copy_(dense.bias)
            entry["projection_error"] = error
        parent, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, attr, layer)
    return report
