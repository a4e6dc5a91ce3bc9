"""einstruct layers as torch.nn.Modules, built at run time from a spec.

Forward and backward run einstruct's compiled code through the runtime's C
ABI, libeinstruct_runtime.so, loaded with ctypes: on CPU tensors the MLIR
pipeline + LLVM JIT (float32 arithmetic); on CUDA tensors the layer's
generated CUDA kernels in the parameters' dtype with float32 accumulation,
on torch's current stream (built by nvcc on first use and cached on disk,
see the runtime's README). Parameters are float32, bfloat16 or float16.
Weights follow the layouts of structures.md; a BTT-MoE's router Wg
[d_in, experts] comes after them, and its backward adds aux_weight times
the gradient of the load-balancing loss (the reference's 0.01 by default).
An optional bias [d_out] is the runtime's last weight (the spec's "bias").

This file is also what `einstruct compile --emit torch` writes, followed by
one subclass with its spec fixed: one implementation for both.
"""
import ctypes
import json
import os

import torch

_P = ctypes.c_void_p
_RUNTIME_PATH = None  # a generated module sets it; the package finds it


def _runtime_path():
    path = os.environ.get("EINSTRUCT_RUNTIME") or _RUNTIME_PATH
    if path:
        return path
    try:
        from ._config import RUNTIME  # the package CMake built or installed
        return RUNTIME
    except ImportError:
        pass
    import ctypes.util  # pip-installed: the library on the linker's path
    found = ctypes.util.find_library("einstruct_runtime")
    if found:
        return found
    raise RuntimeError("einstruct: libeinstruct_runtime.so not found; set "
                       "EINSTRUCT_RUNTIME to its path")


_LIBRARY = None


def _library():
    """The runtime library, loaded once, with every C ABI signature."""
    global _LIBRARY
    if _LIBRARY is not None:
        return _LIBRARY
    lib = ctypes.CDLL(_runtime_path())
    c_int, c_i64, c_char_p = ctypes.c_int, ctypes.c_int64, ctypes.c_char_p
    signatures = {
        "einstruct_layer_create_cpu": [c_char_p, ctypes.POINTER(_P)],
        "einstruct_layer_create_cuda": [c_char_p, c_char_p, c_int,
                                        ctypes.POINTER(_P)],
        "einstruct_layer_forward_stream": [_P, _P, c_i64, _P, _P, _P],
        "einstruct_layer_backward_stream": [_P, _P, _P, c_i64, _P, _P, _P, _P],
        "einstruct_layer_set_routing_stats": [_P, c_int],
        "einstruct_layer_destroy": [_P],
        "einstruct_layer_forward": [_P, _P, c_i64, _P, _P],
        "einstruct_layer_backward": [_P, _P, _P, c_i64, _P, _P, _P],
        "einstruct_layer_set_threads": [_P, c_int],
        "einstruct_layer_set_aux_weight": [_P, ctypes.c_double],
        "einstruct_layer_routing": [_P, _P, _P, _P],
        "einstruct_layer_d_in": [_P],
        "einstruct_layer_d_out": [_P],
        "einstruct_layer_experts": [_P],
        "einstruct_layer_num_weights": [_P],
        "einstruct_layer_weight_shape": [_P, c_int, _P, c_int],
        "einstruct_layer_init_weights": [_P, ctypes.c_uint64, _P],
        "einstruct_analyze": [c_char_p, ctypes.POINTER(_P)],
        "einstruct_search": [c_char_p, ctypes.POINTER(_P)],
        "einstruct_search_model": [c_char_p, ctypes.POINTER(_P)],
        "einstruct_project": [c_char_p, _P, _P, ctypes.POINTER(ctypes.c_double)],
        "einstruct_import": [c_char_p, c_char_p, c_char_p, c_char_p,
                             ctypes.POINTER(_P)],
        "einstruct_free": [_P],
        "einstruct_mixer_create_cpu": [c_char_p, c_i64, c_i64,
                                       ctypes.POINTER(_P)],
        "einstruct_mixer_operand_per_sequence": [_P, c_int],
        "einstruct_mixer_destroy": [_P],
        "einstruct_mixer_num_operands": [_P],
        "einstruct_mixer_operand": [_P, c_int, ctypes.POINTER(c_char_p), _P,
                                    c_int],
        "einstruct_mixer_macs": [_P],
        "einstruct_mixer_forward": [_P, _P, c_i64, _P],
        "einstruct_mixer_backward": [_P, _P, _P, c_i64, _P],
        "einstruct_mixer_set_threads": [_P, c_int],
        "einstruct_mixer_create_cuda": [c_char_p, c_i64, c_i64, c_int,
                                        ctypes.POINTER(_P)],
        "einstruct_mixer_forward_stream": [_P, _P, c_i64, _P, _P],
        "einstruct_mixer_backward_stream": [_P, _P, _P, c_i64, _P, _P],
        "einstruct_mixer_forward_saving": [_P, _P, c_i64, _P, _P,
                                           ctypes.POINTER(_P)],
        "einstruct_mixer_backward_saved": [_P, _P, _P, _P, c_i64, _P, _P],
        "einstruct_mixer_saved_destroy": [_P],
    }
    for name, args in signatures.items():
        getattr(lib, name).argtypes = args
    for name in ("einstruct_layer_d_in", "einstruct_layer_d_out",
                 "einstruct_layer_experts", "einstruct_mixer_macs"):
        getattr(lib, name).restype = c_i64
    lib.einstruct_last_error.restype = c_char_p
    _LIBRARY = lib
    return lib


def _check(status):
    if status != 0:
        raise RuntimeError("einstruct: %s (status %d)" % (
            _library().einstruct_last_error().decode(), status))


def _call_json(function, text):
    """A C ABI call taking JSON text and returning JSON: the parsed result."""
    out = _P()
    _check(getattr(_library(), function)(text.encode(), ctypes.byref(out)))
    try:
        return json.loads(ctypes.string_at(out).decode())
    finally:
        _library().einstruct_free(out)


def runtime_spec(spec, d_in=None, d_out=None):
    """The runtime's spec object: a dict as given (d_in/d_out added when
    given), a θ text "(α|β|γ|δ|ε|φ|ρ)", or a named structure "btt(rank=4)"."""
    if isinstance(spec, dict):
        s = dict(spec)
    elif isinstance(spec, str):
        s = {"theta": spec} if spec.strip().startswith("(") else {"structure": spec}
    else:
        raise TypeError("einstruct: a spec is a dict or a string, not %s"
                        % type(spec).__name__)
    for key, value in (("d_in", d_in), ("d_out", d_out)):
        if value is not None:
            s[key] = int(value)
    return s


_CUDA_DTYPES = {torch.float32: b"f32", torch.bfloat16: b"bf16", torch.float16: b"f16"}


class _Compiled:
    """The layer compiled by the runtime: for the CPU at construction, for a
    CUDA device and dtype on first use there. Copies share it; pickling
    recompiles."""

    def __init__(self, spec):
        self.spec = spec
        self.lib = _library()
        self.handle = _P()  # the CPU layer
        _check(self.lib.einstruct_layer_create_cpu(
            json.dumps(spec).encode(), ctypes.byref(self.handle)))
        self.cuda = {}  # (device index, dtype) -> handle
        self.last = self.handle  # the layer of the last call (routing())
        self.d_in = self.lib.einstruct_layer_d_in(self.handle)
        self.d_out = self.lib.einstruct_layer_d_out(self.handle)
        self.experts = self.lib.einstruct_layer_experts(self.handle)
        self.shapes = []
        for k in range(self.lib.einstruct_layer_num_weights(self.handle)):
            dims = (ctypes.c_int64 * 8)()
            rank = self.lib.einstruct_layer_weight_shape(self.handle, k, dims, 8)
            if rank < 0:
                _check(rank)
            self.shapes.append(tuple(dims[:rank]))

    def for_cuda(self, device, dtype, routing_stats):
        key = (device, dtype)
        if key not in self.cuda:
            handle = _P()
            _check(self.lib.einstruct_layer_create_cuda(
                json.dumps(self.spec).encode(), _CUDA_DTYPES[dtype], device,
                ctypes.byref(handle)))
            self.cuda[key] = handle
        handle = self.cuda[key]
        if self.experts:
            _check(self.lib.einstruct_layer_set_routing_stats(
                handle, int(routing_stats)))
        return handle

    def follow_torch_threads(self):
        """Use as many threads as torch.get_num_threads() (the runtime splits
        a batch into row chunks; y and dx do not depend on it)."""
        _check(self.lib.einstruct_layer_set_threads(
            self.handle, torch.get_num_threads()))

    def __del__(self):
        for handle in [getattr(self, "handle", None),
                       *getattr(self, "cuda", {}).values()]:
            if handle:
                self.lib.einstruct_layer_destroy(handle)

    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):
        return (_Compiled, (self.spec,))


def _pointers(tensors):
    return (_P * len(tensors))(*[t.data_ptr() for t in tensors])


class _Apply(torch.autograd.Function):
    """y = layer(x; weights): float32 contiguous CPU tensors, or contiguous
    16-byte aligned CUDA tensors of one device in the weights' dtype."""

    @staticmethod
    def forward(ctx, compiled, options, x, *weights):
        y = x.new_empty((x.shape[0], compiled.d_out))
        if x.is_cuda:
            handle = compiled.for_cuda(x.device.index, x.dtype,
                                       options["routing_stats"])
            _check(compiled.lib.einstruct_layer_forward_stream(
                handle, x.data_ptr(), x.shape[0], _pointers(weights),
                y.data_ptr(), _stream(x)))
        else:
            handle = compiled.handle
            compiled.follow_torch_threads()
            _check(compiled.lib.einstruct_layer_forward(
                handle, x.data_ptr(), x.shape[0], _pointers(weights),
                y.data_ptr()))
        compiled.last = handle
        ctx.compiled, ctx.handle, ctx.aux_weight = compiled, handle, options["aux_weight"]
        ctx.save_for_backward(x, *weights)
        return y

    @staticmethod
    def backward(ctx, dy):
        x, *weights = ctx.saved_tensors
        dy = _aligned(dy.to(x.dtype).contiguous())
        dx = torch.empty_like(x)
        dws = [torch.empty_like(w) for w in weights]
        compiled, handle = ctx.compiled, ctx.handle
        if compiled.experts:
            _check(compiled.lib.einstruct_layer_set_aux_weight(
                handle, ctx.aux_weight))
        if x.is_cuda:
            _check(compiled.lib.einstruct_layer_backward_stream(
                handle, x.data_ptr(), dy.data_ptr(), x.shape[0],
                _pointers(weights), dx.data_ptr(), _pointers(dws), _stream(x)))
        else:
            compiled.follow_torch_threads()
            _check(compiled.lib.einstruct_layer_backward(
                handle, x.data_ptr(), dy.data_ptr(), x.shape[0],
                _pointers(weights), dx.data_ptr(), _pointers(dws)))
        compiled.last = handle
        return (None, None, dx, *dws)


def _stream(t):
    return torch.cuda.current_stream(t.device).cuda_stream


def _aligned(t):
    """t, or a copy of it whose data starts on 16 bytes (the CUDA kernels
    load 16-byte vectors; views into a larger tensor may not)."""
    return t if t.data_ptr() % 16 == 0 else t.clone()


class Linear(torch.nn.Module):
    """A structured linear layer: x [..., d_in] -> y [..., d_out].

    spec: a named structure ("btt(rank=4)", "monarch(nblocks=4, layout=fly)"),
    a θ text, or a spec dict as in einstruct's JSON files; d_in and d_out
    complete it. Parameters: weights (a ParameterList in the layer's weight
    order, a BTT-MoE router last) and bias (d_out) when bias=True."""

    def __init__(self, spec, d_in=None, d_out=None, bias=False,
                 dtype=torch.float32, aux_weight=0.01):
        super().__init__()
        name = type(self).__name__
        if dtype not in _CUDA_DTYPES:
            raise TypeError("%s: dtype must be torch.float32, torch.bfloat16 "
                            "or torch.float16, not %s" % (name, dtype))
        s = runtime_spec(spec, d_in, d_out)
        s["bias"] = bool(bias)
        self._compiled = _Compiled(s)
        self.d_in, self.d_out = self._compiled.d_in, self._compiled.d_out
        shapes = self._compiled.shapes[:-1] if bias else self._compiled.shapes
        self.weights = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.empty(s, dtype=dtype)) for s in shapes])
        self.bias = (torch.nn.Parameter(torch.empty(self.d_out, dtype=dtype))
                     if bias else None)
        self.aux_weight = float(aux_weight)  # BTT-MoE backward
        # BTT-MoE on CUDA: gather routing() statistics (each call then waits
        # for the stream); the CPU path always gathers them.
        self.routing_stats = False
        self.reset_parameters()

    @property
    def spec(self):
        return self._compiled.spec

    def reset_parameters(self, generator=None):
        """The reference initialisation (structures.md §4): normal(0, std)
        per core, a router at zero; a bias as torch.nn.Linear's."""
        seed = int(torch.randint(0, 2 ** 62, (1,), generator=generator))
        fresh = [torch.empty(s, dtype=torch.float32) for s in self._compiled.shapes]
        _check(self._compiled.lib.einstruct_layer_init_weights(
            self._compiled.handle, seed, _pointers(fresh)))  # zip drops a bias
        with torch.no_grad():
            for w, f in zip(self.weights, fresh):
                w.copy_(f)
            if self.bias is not None:
                bound = 1 / self.d_in ** 0.5
                self.bias.uniform_(-bound, bound, generator=generator)

    def forward(self, x):
        name = type(self).__name__
        if x.dim() < 1 or x.shape[-1] != self.d_in:
            raise ValueError("%s: x must be [..., %d], got %s"
                             % (name, self.d_in, tuple(x.shape)))
        if x.device.type not in ("cpu", "cuda"):
            raise RuntimeError("%s runs on CPU or CUDA tensors; got one on %s"
                               % (name, x.device))
        params = list(self.weights) + ([self.bias] if self.bias is not None else [])
        misplaced = [k for k, w in enumerate(params) if w.device != x.device]
        if misplaced:
            raise RuntimeError("%s: x is on %s but %s is on %s "
                               "(move the module with .to(device))"
                               % (name, x.device,
                                  "weight %d" % misplaced[0]
                                  if misplaced[0] < len(self.weights) else "the bias",
                                  params[misplaced[0]].device))
        lead = x.shape[:-1]
        rows = x.reshape(-1, self.d_in)
        if rows.shape[0] == 0:
            return x.new_zeros(*lead, self.d_out)
        # CPU: float32 arithmetic; CUDA: the weights' dtype.
        dtype = self.weights[0].dtype if x.is_cuda else torch.float32
        options = {"aux_weight": self.aux_weight, "routing_stats": self.routing_stats}
        y = _Apply.apply(self._compiled, options,
                         _aligned(rows.to(dtype).contiguous()),
                         *[_aligned(w.to(dtype).contiguous()) for w in params])
        return y.to(x.dtype).reshape(*lead, self.d_out)

    def routing(self):
        """BTT-MoE: tokens per expert, aux loss and router entropy (nats) of
        the last forward or backward call."""
        name, experts = type(self).__name__, self._compiled.experts
        if not experts:
            raise RuntimeError("%s is not a BTT-MoE layer" % name)
        if self._compiled.last is not self._compiled.handle and not self.routing_stats:
            raise RuntimeError("%s ran on CUDA without routing statistics: set "
                               "routing_stats = True before the call (it then "
                               "waits for the stream)" % name)
        counts = (ctypes.c_int64 * experts)()
        aux, entropy = ctypes.c_double(), ctypes.c_double()
        _check(self._compiled.lib.einstruct_layer_routing(
            self._compiled.last, counts, ctypes.byref(aux), ctypes.byref(entropy)))
        return {"tokens_per_expert": list(counts), "aux_loss": aux.value,
                "entropy": entropy.value}

    def extra_repr(self):
        return "d_in=%d, d_out=%d, bias=%s, spec=%s" % (
            self.d_in, self.d_out, self.bias is not None, json.dumps(self.spec))


class _CompiledMixer:
    """A mixer compiled by the runtime: for the CPU at construction, for a
    CUDA device on first use there. Copies share it; pickling recompiles."""

    def __init__(self, spec, seq_len, d_model=0):
        self.spec, self.seq_len, self.d_model = spec, int(seq_len), int(d_model)
        self.lib = _library()
        self.handle = _P()
        _check(self.lib.einstruct_mixer_create_cpu(
            spec.encode(), self.seq_len, self.d_model,
            ctypes.byref(self.handle)))
        self.operands, self.per_sequence = [], []
        for k in range(self.lib.einstruct_mixer_num_operands(self.handle)):
            name, dims = ctypes.c_char_p(), (ctypes.c_int64 * 8)()
            rank = self.lib.einstruct_mixer_operand(
                self.handle, k, ctypes.byref(name), dims, 8)
            if rank < 0:
                _check(rank)
            each = self.lib.einstruct_mixer_operand_per_sequence(self.handle, k)
            if each < 0:
                _check(each)
            self.operands.append((name.value.decode(), tuple(dims[:rank])))
            self.per_sequence.append(each == 1)
        self.macs = self.lib.einstruct_mixer_macs(self.handle)
        self.cuda = {}  # device index -> handle

    def target(self, t):
        """The mixer for tensor t's device and the stream its calls go on:
        the CPU mixer with torch's threads and no stream, or the device's
        mixer on torch's current stream."""
        if not t.is_cuda:
            _check(self.lib.einstruct_mixer_set_threads(
                self.handle, torch.get_num_threads()))
            return self.handle, None
        device = t.device.index
        if device not in self.cuda:
            handle = _P()
            _check(self.lib.einstruct_mixer_create_cuda(
                self.spec.encode(), self.seq_len, self.d_model, device,
                ctypes.byref(handle)))
            self.cuda[device] = handle
        return self.cuda[device], _stream(t)

    def __del__(self):
        for handle in [getattr(self, "handle", None),
                       *getattr(self, "cuda", {}).values()]:
            if handle:
                self.lib.einstruct_mixer_destroy(handle)

    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):
        return (_CompiledMixer, (self.spec, self.seq_len, self.d_model))


class _Residuals:
    """What einstruct_mixer_forward_saving kept for the backward; freed with
    the autograd graph that holds it."""

    def __init__(self, lib, handle):
        self.lib, self.handle = lib, handle

    def __del__(self):
        if self.handle:
            self.lib.einstruct_mixer_saved_destroy(self.handle)


class _MixerApply(torch.autograd.Function):
    """y = mixer(operands...): float32 contiguous tensors, all on the CPU or
    all on one CUDA device (then on torch's current stream). When a gradient
    is wanted the forward keeps its residuals for the backward (unless
    `recompute`)."""

    @staticmethod
    def forward(ctx, compiled, recompute, *operands):
        batch = operands[0].shape[0]
        x_shape = compiled.operands[0][1]
        y = operands[0].new_empty((batch,) + x_shape)
        handle, stream = compiled.target(operands[0])
        ctx.residuals = None
        if recompute or not any(ctx.needs_input_grad[2:]):
            _check(compiled.lib.einstruct_mixer_forward_stream(
                handle, _pointers(operands), batch, y.data_ptr(), stream))
        else:
            saved = _P()
            _check(compiled.lib.einstruct_mixer_forward_saving(
                handle, _pointers(operands), batch, y.data_ptr(), stream,
                ctypes.byref(saved)))
            ctx.residuals = _Residuals(compiled.lib, saved)
        ctx.compiled = compiled
        ctx.save_for_backward(*operands)
        return y

    @staticmethod
    def backward(ctx, dy):
        operands = ctx.saved_tensors
        dy = dy.to(torch.float32).contiguous()
        grads = [torch.empty_like(t) for t in operands]
        compiled = ctx.compiled
        handle, stream = compiled.target(operands[0])
        if ctx.residuals is None:
            _check(compiled.lib.einstruct_mixer_backward_stream(
                handle, _pointers(operands), dy.data_ptr(),
                operands[0].shape[0], _pointers(grads), stream))
        else:
            _check(compiled.lib.einstruct_mixer_backward_saved(
                handle, ctx.residuals.handle, _pointers(operands),
                dy.data_ptr(), operands[0].shape[0], _pointers(grads), stream))
        return (None, None, *grads)


class Mixer(torch.nn.Module):
    """A sequence mixer (structures.md §7) compiled for sequences of
    seq_len tokens: "ssd(heads, head_dim, state, chunk)" (Mamba-2's chunked
    SSD), "hydra(...)" (two SSD passes, shifted and flipped, plus a skip),
    "m2-conv(causal)" (M2's long convolution through Monarch-factored
    DFTs) or "monarch-seq(blocks)" (fly's Monarch matrix along the
    sequence), the last two on d_model channels. forward(*operands) takes
    tensors in the order and shapes of `operands`, [batch, shape...] where
    `per_sequence` says so, else the shape alone (a parameter shared by the
    batch). As mamba_chunk_scan_combined takes them (dt after its softplus,
    a = dt·A): ssd x [L, H, P], dt and a [L, H], B and C [L, N]; hydra x,
    dt and a [L, 2, H], B and C [L, 2, N], d [L, H]. m2-conv x [L, C] and
    shared k [L, C] (k_rev too when bidirectional), D [C]: M2's fftconv_ref,
    y_i = sum_{j<=i} k_{i-j} x_j (+ sum_{j>i} k_rev_{j-i-1} x_j) + D x_i.
    monarch-seq x [L, C], shared w1 and w2 [blocks, L/blocks, L/blocks]
    (fly's). "hydra-block(state, conv, expand, head_dim, chunk)" and
    "m2-block(causal, order, l_max, w_mod)" are goombalab/hydra's and
    HazyResearch/m2's whole blocks on d_model channels, each compiled as
    one function (on the CPU): x [L, d_model] (the block's u) and, shared,
    by name and shape, blocks.Hydra's or blocks.M2's parameters (with
    proj="monarch(blocks=8)" or another structure, or in_proj=/out_proj=
    one each, the two large projections' weights named as
    einstruct.Linear's, in_proj.weights.0 ...; proj="search(0.25)" picks
    what convert(block, budget=0.25, layers=[the two]) picks). It returns
    y shaped like x, differentiable in every operand.
    Float32 arithmetic on CPU tensors (the JIT) or on CUDA tensors of one
    device (the libraries `einstruct compile --mixer` writes, built by nvcc
    on first use and cached, run on torch's current stream). It has no
    parameters: a block's projections and filters make its operands.
    Training keeps the forward's residuals for the backward (ssd, hydra
    and the blocks, on the CPU and on CUDA, where they live in device
    memory allocated on the forward's stream: the backward then does not
    run the forward's contractions again; Hydra's block at L = 1024,
    d_model 768 keeps 33 MB per sequence until the backward);
    recompute=True keeps only the operands and computes the forward again
    in the backward."""

    def __init__(self, spec, seq_len, d_model=0, recompute=False):
        super().__init__()
        self.recompute = bool(recompute)
        self._compiled = _CompiledMixer(spec, seq_len, d_model)
        self.spec, self.seq_len = spec, int(seq_len)
        self.d_model = int(d_model)
        self.operands = list(self._compiled.operands)
        self.per_sequence = list(self._compiled.per_sequence)
        self.macs = self._compiled.macs  # per sequence

    def forward(self, *operands):
        name = type(self).__name__
        if len(operands) != len(self.operands):
            raise ValueError("%s: %d operands given, %s takes %d (%s)" % (
                name, len(operands), self.spec, len(self.operands),
                ", ".join(n for n, _ in self.operands)))
        batch = operands[0].shape[0] if operands[0].dim() else -1
        device = operands[0].device
        for t, (n, shape), each in zip(operands, self.operands,
                                       self.per_sequence):
            if t.device.type not in ("cpu", "cuda"):
                raise RuntimeError("%s runs on CPU or CUDA tensors; %s is on "
                                   "%s" % (name, n, t.device))
            if t.device != device:
                raise RuntimeError("%s: %s is on %s, %s on %s: one device "
                                   "for all operands" % (
                                       name, n, t.device,
                                       self.operands[0][0], device))
            if each and tuple(t.shape) != (batch,) + shape:
                raise ValueError("%s: %s must be [batch, %s] = %s, got %s" % (
                    name, n, ", ".join(map(str, shape)),
                    (batch,) + shape, tuple(t.shape)))
            if not each and tuple(t.shape) != shape:
                raise ValueError("%s: %s (shared by the batch) must be %s, "
                                 "got %s" % (name, n, shape, tuple(t.shape)))
        if batch == 0:
            return operands[0].new_zeros((0,) + self.operands[0][1])
        y = _MixerApply.apply(self._compiled, self.recompute, *[
            t.to(torch.float32).contiguous() for t in operands])
        return y.to(operands[0].dtype)

    def extra_repr(self):
        return "%s, seq_len=%d%s%s" % (
            self.spec, self.seq_len,
            ", d_model=%d" % self.d_model if self.d_model else "",
            ", recompute=True" if self.recompute else "")


class BTTMoE(Linear):
    """BTT-MoE (structures.md §3): `experts` rank-1 BTT experts, each token
    routed to its top_k; the router [d_in, experts] is the last weight."""

    def __init__(self, d_in, d_out, experts, top_k=2, bias=False, **kwargs):
        super().__init__("btt-moe(experts=%d, top_k=%d)" % (experts, top_k),
                         d_in, d_out, bias=bias, **kwargs)
