"""Whole sequence-mixing blocks around einstruct's compiled mixers.

Hydra is goombalab/hydra's block (hydra/modules/hydra.py, the reference's
non-fused path) with its quasiseparable mixer run by einstruct.Mixer: the
input projection to z, x, B, C and dt, the depthwise convolution and SiLU,
dt's softplus, the two SSD passes with their shift and flip, the
data-dependent skip x ⊙ (fc_D(x) + D), the gated RMS norm and the output
projection. The projections are torch.nn.Linear layers, so that
einstruct.convert() replaces them by the structures a model-level search
picks: structured along the features as well as the sequence.
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
