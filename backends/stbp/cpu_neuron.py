"""The neuron arithmetic every node of the CPU engine compiles in: each kind's step and reverse step, the surrogates.

The arithmetic is the PyTorch engine's (``torch_forward`` / ``torch_backward`` of
:mod:`backends.stbp.multistep`), operation for operation, in the tensors' own dtype
(float32 or float64), with every constant rounded to that dtype the way PyTorch
rounds a Python scalar (:func:`constants`): the forward's spikes and membranes are
bit-identical to it, and so are the gradients except for the sigmoid surrogate,
whose ``exp`` is Cephes' (below) in float32 and the C library's in float64, and
SLEEF's in PyTorch (a rounding apart).  The helpers work on ``n`` neurons of one
step, a plain loop over contiguous memory that LLVM vectorises; the kernels
inline them.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .cpu_cache import helper

# the kernels' neuron kind codes (a kind's surrogate is tied to it: soft -- triangle,
# subtractive -- arctangent, hard -- sigmoid, stbp -- rectangle)
SOFT, SUBTRACTIVE, HARD, STBP = 0, 1, 2, 3
KIND_CODES = {"soft": SOFT, "subtractive": SUBTRACTIVE, "hard": HARD, "stbp": STBP}

# exp in float32 for the sigmoid surrogate, as a loop LLVM vectorises (the C
# library's expf is a call per element): Cephes' expf -- z = k ln2 + r with
# |r| <= ln2/2 (ln2 split in two for an exact k ln2), e^r by a degree-7
# polynomial, 2^k built in the exponent bits.  At most 1 ulp from exp in
# [-87.33, 88]; z is clamped to that range (the sigmoid is then 0 or 1 to
# float32 precision either way).  PyTorch's sigmoid uses SLEEF's expf (1 ulp).
_F = np.float32
LOG2E, HALF = _F(1.44269504088896341), _F(0.5)
LN2_HI, LN2_LO = _F(0.693359375), _F(-2.12194440e-4)
EXP_LO, EXP_HI = _F(-87.33), _F(88.0)
EXP_P0, EXP_P1, EXP_P2 = _F(1.9875691500e-4), _F(1.3981999507e-3), _F(8.3334519073e-3)
EXP_P3, EXP_P4, EXP_P5 = _F(4.1665795894e-2), _F(1.6666665459e-1), _F(5.0000001201e-1)


@helper
def _step(kind, xt, state, spk, mt, keep_m, q):
    """One forward step of ``n = len(state)`` neurons: ``state`` and ``spk`` (the
    spikes, in and out) updated in place, the membrane written to ``mt``."""
    n = state.shape[0]
    p0, p1, c, one, zero = q[0], q[1], q[2], q[3], q[4]
    if kind == SOFT:  # soft: v = a (v - v_th s) + (1 - a) x; s = H((v - v_th) / v_th)
        for j in range(n):
            v = p0 * (state[j] - p1 * spk[j]) + c * xt[j]
            state[j] = v
            spk[j] = one if (v - p1) / p1 > zero else zero
    elif kind == SUBTRACTIVE:  # subtractive: u = beta u + x - v_th H(u_prev - v_th)
        for j in range(n):
            u = state[j]
            u = p0 * u + xt[j] - p1 * (one if u > p1 else zero)
            state[j] = u
            spk[j] = one if u - p1 > zero else zero
    elif kind == HARD:  # hard: h = v + (x - v) / tau; s = H(h - v_th); v = h (1 - s)
        for j in range(n):
            v = state[j]
            h = v + (xt[j] - v) / p0
            f = one if h - p1 > zero else zero
            if keep_m:
                mt[j] = h
            state[j] = h * (one - f)
            spk[j] = f
    else:  # stbp: u = tau u (1 - s) + x; s = H(u - v_th)
        for j in range(n):
            u = p0 * state[j] * (one - spk[j]) + xt[j]
            state[j] = u
            spk[j] = one if u - p1 > zero else zero
    if keep_m and kind != HARD:  # the membrane is the state (hard: written above)
        for j in range(n):
            mt[j] = state[j]


@helper
def _surrogate(kind, mt, hs, two_k, two_k_f, q, fast_exp):
    """h(m) of ``n = len(hs)`` membranes into ``hs`` (multistep.surrogate)."""
    n = hs.shape[0]
    p1, p2, p3, c0, c1, one, zero = q[1], q[2], q[3], q[4], q[5], q[6], q[7]
    if kind == SOFT:  # triangle: alpha max(0, width - |(m - v_th) / v_th|) / v_th
        for j in range(n):
            w = p3 - abs((mt[j] - p1) / p1)
            hs[j] = p2 * (w if w > zero else zero) / p1
    elif kind == SUBTRACTIVE:  # arctangent: (alpha / 2) / (1 + (pi alpha (m - v_th) / 2)^2)
        for j in range(n):
            w = c0 * (mt[j] - p1) * c1  # c1 = 1/2: exactly the division by 2, without a divide
            hs[j] = (one / (one + w * w)) * p3
    elif kind == HARD:  # sigmoid: alpha sig (1 - sig), sig = sigmoid(alpha (m - v_th))
        if fast_exp:  # float32: exp(z) = 2^k e^r, vectorised (see above)
            for j in range(n):
                z = min(max(-(p2 * (mt[j] - p1)), EXP_LO), EXP_HI)
                k = np.floor(z * LOG2E + HALF)
                r = z - k * LN2_HI - k * LN2_LO
                e = EXP_P0
                e = e * r + EXP_P1
                e = e * r + EXP_P2
                e = e * r + EXP_P3
                e = e * r + EXP_P4
                e = e * r + EXP_P5
                hs[j] = e * (r * r) + r + one
                two_k[j] = (np.int32(k) + np.int32(127)) << np.int32(23)  # the bits of 2^k
            for j in range(n):
                sig = one / (one + hs[j] * two_k_f[j])
                hs[j] = p2 * sig * (one - sig)
        else:
            for j in range(n):
                sig = one / (one + np.exp(-(p2 * (mt[j] - p1))))
                hs[j] = p2 * sig * (one - sig)
    else:  # rectangle: 1/(2a) on |m - v_th - center| < a
        for j in range(n):
            hs[j] = (one if abs(mt[j] - p1 - p3) < p2 else zero) / c0


@helper
def _back_step(kind, mt, gst, gmt, has_gm, hs, carry, gxt, total, static, q):
    """One reverse step (``torch_backward``'s arithmetic): ``carry`` updated in
    place; the input gradient written to ``gxt``, or added to ``total``."""
    n = carry.shape[0]
    p0, p1, c0, c1, one, zero = q[0], q[1], q[4], q[5], q[6], q[7]
    if kind == SOFT:
        for j in range(n):
            cj = carry[j]
            g = (gst[j] - cj * p0 * p1) * hs[j] + cj * p0
            if has_gm:
                g = g + gmt[j]
            carry[j] = g
            if static:
                total[j] = total[j] + c1 * g
            else:
                gxt[j] = c1 * g
    elif kind == SUBTRACTIVE:
        for j in range(n):
            g = gst[j] * hs[j] + carry[j] * p0
            if has_gm:
                g = g + gmt[j]
            carry[j] = g
            if static:
                total[j] = total[j] + g
            else:
                gxt[j] = g
    elif kind == HARD:
        for j in range(n):
            cj = carry[j]
            mj = mt[j]
            f = one if mj - p1 > zero else zero
            g = cj * (one - f) + (gst[j] - cj * mj) * hs[j]
            if has_gm:
                g = g + gmt[j]
            carry[j] = g * c0
            if static:
                total[j] = total[j] + g / p0
            else:
                gxt[j] = g / p0
    else:
        for j in range(n):
            cj = carry[j]
            mj = mt[j]
            f = one if mj - p1 > zero else zero
            g = (gst[j] - cj * p0 * mj) * hs[j] + cj * p0 * (one - f)
            if has_gm:
                g = g + gmt[j]
            carry[j] = g
            if static:
                total[j] = total[j] + g
            else:
                gxt[j] = g


@helper
def _fired(kind, mt, f, p1, one, zero):
    """The spikes ``f`` of membranes ``mt`` (the forward's test, recomputed from the membrane)."""
    if kind == SOFT:
        for j in range(f.shape[0]):
            f[j] = one if (mt[j] - p1) / p1 > zero else zero
    else:
        for j in range(f.shape[0]):
            f[j] = one if mt[j] - p1 > zero else zero


def constants(kind: str, p, dtype: np.dtype, backward: bool) -> np.ndarray:
    """The kernels' constants in ``dtype``, each rounded once from the Python float
    PyTorch would use as a scalar operand (``1 - a`` is computed in double, then rounded).
    One array per argument set, shared by every call: the kernels only read it."""
    return _constants(kind, tuple(float(v) for v in p), np.dtype(dtype), backward)


@functools.lru_cache(maxsize=256)
def _constants(kind: str, p: tuple[float, ...], dtype: np.dtype, backward: bool) -> np.ndarray:
    q = list(p) + [0.0] * (4 - len(p))
    if not backward:
        extra = 1.0 - q[0] if kind == "soft" else 0.0
        return np.array([q[0], q[1], extra, 1.0, 0.0], dtype=dtype)
    c0 = c1 = 0.0
    if kind == "soft":
        c1 = 1.0 - q[0]
    elif kind == "subtractive":  # (pi alpha (m - v_th)) / 2 as a product by 1/2; (alpha / 2) in q[3]
        c0, c1 = math.pi * q[2], 0.5
        q[3] = q[2] / 2.0
    elif kind == "hard":
        c0 = 1.0 - 1.0 / q[0]
    else:  # stbp: the rectangle's height 1 / (2a)
        c0 = 2.0 * q[2]
    return np.array(q[:4] + [c0, c1, 1.0, 0.0], dtype=dtype)
