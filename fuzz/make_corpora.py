#!/usr/bin/python3
"""Seed corpora for the fuzz targets, from the bundled examples and tests.

usage: make_corpora.py REPO OUTDIR  ->  OUTDIR/<target>/<seed files>
"""
import hashlib
import json
import pathlib
import re
import struct
import sys

import numpy as np

repo, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = out / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


def dims(d_in, d_out):
    return struct.pack("<HH", d_in % 65536, d_out % 65536)


specs = []
for f in sorted((repo / "examples").glob("*.json")):
    text = f.read_text()
    doc = json.loads(text)
    if isinstance(doc, dict) and "layers" in doc:
        put("fuzz_model_config", text)
        continue
    put("fuzz_spec_json", text)
    specs += doc if isinstance(doc, list) else [doc]
for s in specs:
    put("fuzz_spec_json", json.dumps(s))
    d = dims(s.get("d_in", 768), s.get("d_out", 3072)).decode("latin-1")
    if "theta" in s:
        put("fuzz_theta", s["theta"] + "\n" + d)
    if isinstance(s.get("structure"), str):
        put("fuzz_named", s["structure"] + "\n" + d)
    for t in s.get("terms", [s]):
        if "einsum" in t:
            sizes = t.get("sizes", "")
            if isinstance(sizes, dict):
                sizes = ",".join(f"{k}={v}" for k, v in sizes.items())
            put("fuzz_einsum", t["einsum"] + "\n" + sizes)
for f in (repo / "examples" / "sweep").glob("*.json"):
    put("fuzz_sweep_config", f.read_text())

# Sweep result lines (the shapes `einstruct report` reads): a row with a
# top candidate and a front, one with nothing feasible, and a torn line.
row = {"row": 0, "d_in": 768, "d_out": 3072, "budget_label": "quarter",
       "objective": "paper", "feasible": 3,
       "top": [{"name": "btt", "params": 294912, "flops": 73728,
                "omega": 0.0, "psi": 1.0, "nu": 0.5,
                "sizes": {"a": 16, "b": 1, "g": 48, "d": 1, "e": 48,
                          "f": 64, "r": 1}}],
       "front": [{"name": "low-rank", "params": 1536, "flops": 1536,
                  "omega": 0.0, "psi": 0.0, "nu": 0.0,
                  "sizes": [768, 1, 1, 1, 768, 1, 1]}]}
empty = dict(row, row=1, top=[], front=[], feasible=0)
put("fuzz_report", json.dumps(row) + "\n" + json.dumps(empty) + "\n")
put("fuzz_report", json.dumps(row) + "\n" + json.dumps(empty)[:40])

# Dialect text: every split of the lit tests.
for f in sorted((repo / "tests" / "lit").rglob("*.mlir")):
    for chunk in f.read_text().split("// -----"):
        body = "\n".join(l for l in chunk.splitlines()
                         if not l.lstrip().startswith("//"))
        if body.strip():
            put("fuzz_mlir", body)

# Arrays: the shapes `einstruct run` reads, each .npy version.
for shape in [(), (3,), (2, 5), (4, 1, 3), (0, 7)]:
    a = np.arange(int(np.prod(shape)), dtype="<f4").reshape(shape)
    from io import BytesIO
    for version in [(1, 0), (2, 0), (3, 0)]:
        buf = BytesIO()
        np.lib.format.write_array(buf, a, version=version)
        put("fuzz_npy", buf.getvalue())


def safetensors(tensors, metadata=None):
    header, data = {}, b""
    for name, dtype, arr in tensors:
        raw = arr.tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape),
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


f32 = np.linspace(-1, 1, 6, dtype="<f4").reshape(2, 3)
put("fuzz_safetensors", safetensors([("w", "F32", f32)]))
put("fuzz_safetensors", safetensors(
    [("a", "F16", f32.astype("<f2")), ("b", "BF16",
      (f32.view("<u4") >> 16).astype("<u2")), ("c", "F64", f32.astype("<f8")),
     ("i", "I64", np.arange(3, dtype="<i8"))], {"format": "pt"}))
put("fuzz_safetensors", safetensors([]))
