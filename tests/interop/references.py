"""The public code's forward passes, transcribed in NumPy from their sources
(written by us, not copied), float64:
- fly's MonarchLinear / BlockdiagLinear: HazyResearch/fly,
  src/models/layers/{monarch_linear,blockdiag_linear,structured_linear}.py and
  blockdiag_butterfly_multiply.py (blockdiag_butterfly_multiply_reference,
  version 3: block-diagonal matrices and the two rearranges); M2 vendors the
  same files under bert/src/mm.
- einsum-search's CoLALayer(OptBlockTT), BTTMoELayer and CoLALayer(EinOpVec2):
  AndPotap/einsum-search, mm/btt_mvm.py (BlockTeTr.forward), ops/operators.py
  (OptBlockTT._rmatmat's normalisation, EinOpVec2), nn/cola_nn.py
  (CoLALayer.forward's padding, BTTMoELayer.forward, build_einsum),
  learning/fns.py (construct_vec, gen_cores, get_core_bmm_dims).
"""
import numpy as np


# ---- fly (and M2): transcribed reference forwards ---------------------------
def block_diag(w):  # torch.block_diag(*torch.unbind(w, 0))
    nb, o, i = w.shape
    m = np.zeros((nb * o, nb * i))
    for k in range(nb):
        m[k * o:(k + 1) * o, k * i:(k + 1) * i] = w[k]
    return m


def fly_pad(x, n):  # StructuredLinear.preprocess
    return np.pad(x, ((0, 0), (0, n - x.shape[1])))


def fly_monarch(x, w1, w2, bias, d_out):
    nb, q, p = w1.shape
    l, s, r = w2.shape
    bsz = x.shape[0]
    x = fly_pad(x.astype(np.float64), nb * p)
    out1 = x @ block_diag(w1).T
    out1 = out1.reshape(bsz, r, l).transpose(0, 2, 1).reshape(bsz, l * r)
    out2 = out1 @ block_diag(w2).T
    out2 = out2.reshape(bsz, l, s).transpose(0, 2, 1).reshape(bsz, s * l)
    out2 = out2[:, :d_out]  # StructuredLinear.postprocess
    return out2 + bias if bias is not None else out2


def fly_blockdiag(x, w, bias, d_out):  # BlockdiagLinear, shuffle=False
    nb, o, i = w.shape
    y = fly_pad(x.astype(np.float64), nb * i) @ block_diag(w).T
    return y[:, :d_out] + (bias if bias is not None else 0)


# ---- einsum-search: transcribed reference forwards --------------------------
def rms(w):
    return np.sqrt(np.mean(w.astype(np.float64) ** 2) + 1e-8)


def max_rms(d_in, d_out):
    return np.sqrt(min(d_in, d_out) * d_out / (d_out * d_in * d_in))


def btt_forward(x, A, B, gate=None):  # BlockTeTr.forward
    g, a, fr = A.shape
    f, gr, e = B.shape
    r = gr // g
    bsz = x.shape[0]
    X = x.astype(np.float64).reshape(bsz, g, a).transpose(1, 0, 2)
    Z = (X @ A).reshape(g, bsz, f, r)
    if gate is not None:
        Z = Z * gate[None, :, None, :]
    Z = Z.transpose(2, 1, 0, 3).reshape(f, bsz, g * r)
    Y = Z @ B
    return Y.transpose(1, 0, 2).reshape(bsz, f * e)


def opt_btt_cores(A, B, gammas, experts=1):  # OptBlockTT._rmatmat, normalize
    g, a, fr = A.shape
    f, gr, e = B.shape
    if gammas is None:
        return A, B
    W0 = gammas[0] * A / max(1, rms(A) / max_rms(a, fr / experts))
    W1 = gammas[1] * B / max(1, rms(B) / max_rms(gr / experts, e))
    return W0, W1


def btt_moe(x, A, B, gammas, router, bias, k):  # BTTMoELayer.forward
    experts = router.shape[0]
    logits = x.astype(np.float64) @ router.T
    order = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(logits, order, axis=1)
    w = np.exp(top - top.max(axis=1, keepdims=True))
    w = w / w.sum(axis=1, keepdims=True) + 1e-6
    gate = np.zeros_like(logits)
    np.put_along_axis(gate, order, w, axis=1)
    W0, W1 = opt_btt_cores(A, B, gammas, experts)
    y = btt_forward(x, W0, W1, gate)
    return y + bias if bias is not None else y


def einsum_search_generic(x, A, B, theta, d_in, d_out, bias, normalize=False):
    """CoLALayer(EinOpVec2) of build_einsum: sizes round(d^θ) per class
    (construct_vec, Python's round), cores A (φ, δ, ρ, γ, α) and
    B (φ, ε, ρ, γ, β) squeezed, EinOpVec2._rmatmat's two einsums (with
    get_normalized_cores and do_bmm0_init's fan-ins when normalize), x cut
    or zero-padded to the cores' input, the bias added, y cut or padded."""
    a, b, g, d, e, f, r = theta
    dims = [d_in, d_in, d_in, d_out, d_out, d_out, min(d_in, d_out)]
    α, β, γ, δ, ε, φ, ρ = [round(n ** t) for n, t in zip(dims, theta)]
    A = A.astype(np.float64).reshape(φ, δ, ρ, γ, α)
    B = B.astype(np.float64).reshape(φ, ε, ρ, γ, β)
    if normalize:
        def norm(M, din, dout):
            return M / max(1, np.sqrt(np.mean(M ** 2) + 1e-6) / max_rms(din, dout))
        A, B = norm(A, α, δ * φ * ρ), norm(B, β * γ * ρ, ε)
    n_in = γ * β * α
    xp = np.zeros((x.shape[0], n_in))
    m = min(n_in, d_in)
    xp[:, :m] = x[:, :m]
    Z = np.einsum("zgba,fdrga->zfdrgb", xp.reshape(-1, γ, β, α), A)
    y = np.einsum("zfdrgb,fergb->zfed", Z, B).reshape(x.shape[0], -1)
    y = y + bias
    out = np.zeros((x.shape[0], d_out))
    k = min(y.shape[1], d_out)
    out[:, :k] = y[:, :k]
    return out
