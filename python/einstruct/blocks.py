"""Whole sequence-mixing blocks around einstruct's compiled mixers.

Hydra is goombalab/hydra's block (hydra/modules/hydra.py, the reference's
non-fused path) with its quasiseparable mixer run by einstruct.Mixer: the
input projection to z, x, B, C and dt, the depthwise convolution and SiLU,
dt's softplus, the two SSD passes with their shift and flip, the
data-dependent skip x ⊙ (fc_D(x) + D), the gated RMS norm and the output
projection. The projections are torch.nn.Linear layers, so that
einstruct.convert() replaces them by the structures a model-level search
picks: structured along the features as well as the sequence. After
convert(block, budget=r, layers=["in_proj", "out_proj"]) (M2's in_linear
and out_linear), the whole block compiled as one function,
Mixer("hydra-block(..., proj=search(r))"), makes the same choice and takes
the converted block's parameters by name.

M2 is HazyResearch/m2's sequence mixer (bert/src/mm/
monarch_mixer_sequence_mixer.py with hyena_utils.py's HyenaFilter): the
input projection to x1, x2 and v, a short depthwise causal convolution, the
gate v ⊙ x1, the long convolution with Hyena's implicit filter (k_rev too
when bidirectional) and the bias D run by einstruct.Mixer("m2-conv") through
Monarch-factored DFTs, the gate ⊙ x2 and the output projection.
"""
import math

import torch
import torch.nn.functional as F

from .nn import Mixer


class Hydra(torch.nn.Module):
    """u [batch, L, d_model] -> [batch, L, d_model]; the reference's
    defaults (d_state 64, d_conv 7, expand 2, headdim 64, one group) except
    chunk_size: 64, the fastest on the CPU (bench/README.md). One mixer is
    compiled per sequence length met."""

    def __init__(self, d_model, d_state=64, d_conv=7, expand=2, headdim=64,
                 chunk_size=64, dt_min=0.001, dt_max=0.1, dt_init_floor=1e-4,
                 bias=False, conv_bias=True):
        super().__init__()
        self.d_model, self.d_state, self.d_conv = d_model, d_state, d_conv
        self.d_inner = expand * d_model
        if self.d_inner % headdim:
            raise ValueError("Hydra: expand·d_model = %d is not a multiple of "
                             "headdim = %d" % (self.d_inner, headdim))
        self.headdim, self.nheads = headdim, self.d_inner // headdim
        self.chunk_size = chunk_size
        # [z, x, B, C, dt]: B and C for both passes, dt for both.
        d_in_proj = 2 * self.d_inner + 4 * d_state + 2 * self.nheads
        self.in_proj = torch.nn.Linear(d_model, d_in_proj, bias=bias)
        conv_dim = self.d_inner + 4 * d_state
        self.conv1d = torch.nn.Conv1d(conv_dim, conv_dim, d_conv,
                                      groups=conv_dim, padding=d_conv // 2,
                                      bias=conv_bias)
        dt = torch.exp(torch.rand(self.nheads) * (math.log(dt_max) -
                                                  math.log(dt_min))
                       + math.log(dt_min)).clamp(min=dt_init_floor)
        self.dt_bias = torch.nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
        self.A_log = torch.nn.Parameter(torch.zeros(self.nheads))
        self.D = torch.nn.Parameter(torch.ones(self.nheads))
        self.fc_D = torch.nn.Linear(self.d_inner, self.nheads, bias=False)
        self.norm_weight = torch.nn.Parameter(torch.ones(self.d_inner))
        self.out_proj = torch.nn.Linear(self.d_inner, d_model, bias=bias)
        self._mixers = {}

    def mixer(self, seq_len):
        """The compiled quasiseparable mixer for sequences of seq_len."""
        if seq_len not in self._mixers:
            self._mixers[seq_len] = Mixer(
                "hydra(heads=%d, head_dim=%d, state=%d, chunk=%d)" % (
                    self.nheads, self.headdim, self.d_state,
                    min(self.chunk_size, seq_len)), seq_len)
        return self._mixers[seq_len]

    def forward(self, u):
        if u.dim() != 3 or u.shape[-1] != self.d_model:
            raise ValueError("Hydra: u must be [batch, L, %d], got %s"
                             % (self.d_model, tuple(u.shape)))
        batch, L, _ = u.shape
        H, P, N = self.nheads, self.headdim, self.d_state
        z, xBC, dt = torch.split(self.in_proj(u), [
            self.d_inner, self.d_inner + 4 * N, 2 * H], dim=-1)
        dt = F.softplus(dt + self.dt_bias.repeat(2))       # [b, L, 2H]
        xBC = F.silu(self.conv1d(xBC.transpose(1, 2)).transpose(1, 2))
        x, B_f, C_f, B_b, C_b = torch.split(
            xBC, [self.d_inner, N, N, N, N], dim=-1)
        A = -torch.exp(self.A_log.float())
        dt2 = dt.reshape(batch, L, 2, H)
        d = self.fc_D(x) + self.D      # [b, L, H]; fc_D may be structured
        y = self.mixer(L)(x.reshape(batch, L, H, P), dt2, dt2 * A,
                          torch.stack([B_f, B_b], 2),
                          torch.stack([C_f, C_b], 2), d)
        y = y.reshape(batch, L, self.d_inner)
        # RMSNormGated(norm_before_gate=True): rmsnorm(y)·weight·silu(z).
        y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + 1e-5)
        return self.out_proj(y * self.norm_weight * F.silu(z))

    def extra_repr(self):
        return "d_model=%d, d_state=%d, d_conv=%d, d_inner=%d, heads=%d, " \
               "headdim=%d, chunk_size=%d" % (
                   self.d_model, self.d_state, self.d_conv, self.d_inner,
                   self.nheads, self.headdim, self.chunk_size)


class HyenaFilter(torch.nn.Module):
    """Hyena's implicit long filter as M2 builds it (hyena_utils.py): an MLP
    of width `order` with sine activations (learned frequencies) over a
    positional embedding [t, cos, -sin] of the position, times an
    exponential decay per channel; filter(L) -> k [L, d_model]."""

    def __init__(self, d_model, seq_len, order=16, emb_dim=3, w=10, w_mod=1,
                 fast_decay_pct=0.3, slow_decay_pct=1.5, target=1e-2):
        super().__init__()
        bands = (emb_dim - 1) // 2
        t = torch.linspace(0, 1, seq_len)[None, :, None]
        w_pos = 2 * math.pi * torch.linspace(0, seq_len - 1, seq_len)[
            None, :, None] / seq_len
        f = torch.linspace(1e-4, bands - 1, bands)[None, None]
        z = torch.exp(-1j * f * w_pos)
        self.z = torch.nn.Parameter(torch.cat([t, z.real, z.imag], -1))
        self.register_buffer("t", t)
        self.w_mod = w_mod
        self.freq = torch.nn.Parameter(w * torch.ones(1, order))
        self.layers = torch.nn.ModuleList(
            [torch.nn.Linear(emb_dim, order), torch.nn.Linear(order, order),
             torch.nn.Linear(order, order),
             torch.nn.Linear(order, d_model, bias=False)])
        deltas = torch.linspace(math.log(target) / slow_decay_pct,
                                math.log(target) / fast_decay_pct, d_model)
        self.register_buffer("deltas", deltas[None, None])

    def filter(self, L):
        h = self.z[:, :L]
        for layer in self.layers[:-1]:
            h = torch.sin(self.w_mod * self.freq * layer(h))
        h = self.layers[-1](h)
        return (h * torch.exp(-self.t[:, :L] * self.deltas.abs()))[0]


class M2(torch.nn.Module):
    """u [batch, L, d_model] -> [batch, L, d_model] for L up to l_max; the
    reference's defaults (filter order 16, short convolution of 3). One
    mixer is compiled per sequence length met. M2 structures in_linear and
    out_linear: einstruct.convert(block, budget, layers=["in_linear",
    "out_linear"]) leaves the filters' small MLPs dense."""

    def __init__(self, d_model, l_max=128, bidirectional=False,
                 hyena_filter_order=16, hyena_w=10, hyena_w_mod=1):
        super().__init__()
        self.d_model, self.l_max = d_model, l_max
        self.bidirectional = bidirectional
        self.filter_fn = HyenaFilter(d_model, l_max, hyena_filter_order,
                                     w=hyena_w, w_mod=hyena_w_mod)
        if bidirectional:
            self.filter_rev = HyenaFilter(d_model, l_max, hyena_filter_order,
                                          w=hyena_w, w_mod=hyena_w_mod)
            # The reference's filter_rev shares the positional embedding
            # and the sine frequencies with the forward filter.
            self.filter_rev.z = self.filter_fn.z
            self.filter_rev.freq = self.filter_fn.freq
        self.bias = torch.nn.Parameter(torch.randn(d_model))
        self.in_linear = torch.nn.Linear(d_model, 3 * d_model)
        self.out_linear = torch.nn.Linear(d_model, d_model)
        self.short_filter = torch.nn.Conv1d(3 * d_model, 3 * d_model, 3,
                                            groups=3 * d_model, padding=2)
        self._mixers = {}

    def mixer(self, seq_len):
        """The compiled long convolution for sequences of seq_len."""
        if seq_len not in self._mixers:
            self._mixers[seq_len] = Mixer(
                "m2-conv(causal=%s)" % ("false" if self.bidirectional
                                        else "true"),
                seq_len, d_model=self.d_model)
        return self._mixers[seq_len]

    def forward(self, u):
        if u.dim() != 3 or u.shape[-1] != self.d_model or \
                u.shape[1] > self.l_max:
            raise ValueError("M2: u must be [batch, L <= %d, %d], got %s"
                             % (self.l_max, self.d_model, tuple(u.shape)))
        L = u.shape[1]
        uc = self.short_filter(self.in_linear(u).transpose(1, 2))[..., :L]
        x1, x2, v = uc.transpose(1, 2).split(self.d_model, dim=-1)
        k = self.filter_fn.filter(L)
        ops = [(v * x1).contiguous(), k]
        if self.bidirectional:
            ops.append(self.filter_rev.filter(L))
        y = self.mixer(L)(*ops, self.bias)
        return self.out_linear(y * x2)

    def extra_repr(self):
        return "d_model=%d, l_max=%d, bidirectional=%s" % (
            self.d_model, self.l_max, self.bidirectional)
