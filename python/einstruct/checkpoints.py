"""Checkpoints of the public structured-layer code (fly/M2 Monarch and
block-diagonal, einsum-search BTT and BTT-MoE) as einstruct.nn.Linear
modules, through the runtime's importer (`einstruct import`'s): safetensors
files, .pt files and state dicts."""
import ctypes
import json
import os
import struct
import tempfile

import numpy as np
import torch

from .nn import _P, _check, _library, Linear


def _write_safetensors(path, tensors):
    """Floating tensors as float32 (what the importer reads)."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        if not torch.is_tensor(t) or not t.is_floating_point():
            continue  # buffers such as position ids are no layer's weights
        b = t.detach().cpu().float().contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    text = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def _read_safetensors(path):
    """The F32 tensors of a file einstruct wrote."""
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        begin, end = e["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(
            data[8 + n + begin:8 + n + end], dtype="<f4").reshape(e["shape"]).copy())
    return out


def _state_dict(checkpoint):
    if isinstance(checkpoint, dict):
        return checkpoint
    state = torch.load(checkpoint, map_location="cpu")
    if hasattr(state, "state_dict"):
        return state.state_dict()
    for key in ("state_dict", "model"):  # Lightning and common trainers
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            return state[key]
    return state


def load_checkpoint(checkpoint, source, layer=None, d_in=None, d_out=None,
                    top_k=2, theta=None, normalized=False):
    """{module path: einstruct.nn.Linear} for every structured layer of
    `checkpoint` (a .safetensors path, a .pt/.pth path, or a state dict),
    their weights, router and bias loaded. source: "fly", "m2" or
    "einsum-search". d_in/d_out: fly's unpadded features (one layer);
    top_k: BTT-MoE's, which checkpoints do not store. theta, normalized:
    einsum-search's generic layers (their θ text and d_in, d_out)."""
    options = {"top_k": int(top_k), "normalized": bool(normalized)}
    if theta is not None:
        options["theta"] = theta
    if layer is not None:
        options["layer"] = layer
    for key, value in (("d_in", d_in), ("d_out", d_out)):
        if value is not None:
            options[key] = int(value)
    with tempfile.TemporaryDirectory(prefix="einstruct_import_") as work:
        path = checkpoint
        if not (isinstance(checkpoint, str) and checkpoint.endswith(".safetensors")):
            path = os.path.join(work, "checkpoint.safetensors")
            _write_safetensors(path, _state_dict(checkpoint))
        out = _P()
        _check(_library().einstruct_import(
            str(path).encode(), source.encode(), json.dumps(options).encode(),
            work.encode(), ctypes.byref(out)))
        try:
            manifest = json.loads(ctypes.string_at(out).decode())
        finally:
            _library().einstruct_free(out)
        layers = {}
        for entry in manifest:
            spec = json.load(open(os.path.join(work, entry["spec"])))
            tensors = _read_safetensors(os.path.join(work, entry["weights"]))
            module = Linear(spec, bias=entry["bias"])
            with torch.no_grad():
                names = ["w%d" % (k + 1) for k in range(entry["num_weights"])]
                if entry["router"]:
                    names.append("router")
                for w, name in zip(module.weights, names):
                    w.copy_(tensors[name].reshape(w.shape))
                if entry["bias"]:
                    module.bias.copy_(tensors["bias"])
            module.import_notes = entry["notes"]
            layers[entry["name"]] = module
        return layers
