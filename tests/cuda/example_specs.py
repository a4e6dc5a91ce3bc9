"""Writes every layer spec of the bundled examples (examples/*.json, model
and sweep files left out) to OUTDIR/<file>_<index>.json, one spec per file,
for the scripts that emit CUDA for each.   example_specs.py OUTDIR FILE..."""
import json
import os
import sys

out = sys.argv[1]
for path in sys.argv[2:]:
    doc = json.load(open(path))
    if isinstance(doc, dict) and ("layers" in doc or "shapes" in doc):
        continue  # model and sweep files, not layer specs
    for i, spec in enumerate(doc if isinstance(doc, list) else [doc]):
        name = f"{os.path.basename(path)[:-5]}_{i}"
        json.dump(spec, open(os.path.join(out, name + ".json"), "w"))
