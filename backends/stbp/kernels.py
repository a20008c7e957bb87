"""Triton kernels of the fused multi-step neurons (see :mod:`backends.stbp.multistep`).

One launch covers all T steps of a layer: each program owns a block of
neurons, keeps their state in registers and walks time, forward or in
reverse.  The forward writes the spikes and the one membrane tensor the
backward needs; the backward reads the membrane and the incoming gradients
and writes the input gradient (summed over time in place for a static
input).  State and arithmetic are float32.

Element ``i`` of step ``t`` lives at ``t * M + i`` of every tensor, where
``M`` is the number of neurons of one step: the tensors must be dense and
time-major, in any order of the other dimensions (channels-last included),
and share one layout -- :func:`_like` makes sure of it.  Pointers, not
offsets, advance through time, so no offset overflows 32 bits.

Importing this module imports Triton.  With ``TRITON_INTERPRET=1`` set
before the import, Triton's interpreter runs these kernels on CPU tensors,
which is how the tests check them on a machine without a GPU.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

KIND_CODES = {"soft": 0, "subtractive": 1, "hard": 2, "stbp": 3}


@triton.jit
def _spike(m, KIND: tl.constexpr, v_th):
    if KIND == 0:
        z = (m - v_th) / v_th
    else:
        z = m - v_th
    return tl.where(z > 0.0, 1.0, 0.0)


@triton.jit
def _surrogate(m, KIND: tl.constexpr, v_th, q2, q3):
    """d spike / d membrane (the formulas of multistep.surrogate)."""
    if KIND == 0:  # triangle on (m - v_th) / v_th
        h = q2 * tl.maximum(q3 - tl.abs((m - v_th) / v_th), 0.0) / v_th
    elif KIND == 1:  # arctangent
        w = 3.141592653589793 * q2 * (m - v_th) / 2.0
        h = (q2 / 2.0) / (1.0 + w * w)
    elif KIND == 2:  # sigmoid
        sig = 1.0 / (1.0 + tl.exp(-q2 * (m - v_th)))
        h = q2 * sig * (1.0 - sig)
    else:  # rectangle of half-width q2 centred at v_th + q3
        h = tl.where(tl.abs(m - v_th - q3) < q2, 1.0 / (2.0 * q2), 0.0)
    return h


@triton.jit
def _neuron_forward(x_ptr, s_ptr, m_ptr, T, M, x_step, p0, p1,
                    KIND: tl.constexpr, STORE_M: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < M
    x_ptrs = x_ptr + offs
    s_ptrs = s_ptr + offs
    m_ptrs = m_ptr + offs
    state = tl.zeros([BLOCK], dtype=tl.float32)
    s = tl.zeros([BLOCK], dtype=tl.float32)
    for _ in range(T):
        x = tl.load(x_ptrs, mask=mask, other=0.0).to(tl.float32)
        if KIND == 0:  # soft reset: v = a (v - v_th s) + (1 - a) x
            state = p0 * (state - p1 * s) + (1.0 - p0) * x
            m = state
        elif KIND == 1:  # subtractive reset from the previous membrane
            state = p0 * state + x - p1 * tl.where(state > p1, 1.0, 0.0)
            m = state
        elif KIND == 2:  # charge with decaying input; hard reset below
            m = state + (x - state) / p0
        else:  # STBP: multiplicative reset by the previous spike
            state = p0 * state * (1.0 - s) + x
            m = state
        s = _spike(m, KIND, p1)
        if KIND == 2:
            state = m * (1.0 - s)
        tl.store(s_ptrs, s.to(s_ptr.dtype.element_ty), mask=mask)
        if STORE_M:
            tl.store(m_ptrs, m, mask=mask)
        x_ptrs += x_step
        s_ptrs += M
        m_ptrs += M


@triton.jit
def _neuron_backward(m_ptr, gs_ptr, gm_ptr, gx_ptr, T, M, last, p0, p1, p2, p3,
                     KIND: tl.constexpr, HAS_GM: tl.constexpr, STATIC: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < M
    m_ptrs = m_ptr + last + offs
    gs_ptrs = gs_ptr + last + offs
    gm_ptrs = gm_ptr + last + offs
    gx_ptrs = gx_ptr + last + offs  # not read for a static input: its sum is stored once
    carry = tl.zeros([BLOCK], dtype=tl.float32)  # gradient reaching this step's state from the next
    total = tl.zeros([BLOCK], dtype=tl.float32)
    for _ in range(T):
        m = tl.load(m_ptrs, mask=mask, other=0.0)
        gs = tl.load(gs_ptrs, mask=mask, other=0.0).to(tl.float32)
        h = _surrogate(m, KIND, p1, p2, p3)
        if HAS_GM:
            g_m = tl.load(gm_ptrs, mask=mask, other=0.0).to(tl.float32)
        else:
            g_m = tl.zeros([BLOCK], dtype=tl.float32)
        if KIND == 0:
            g_state = (gs - carry * p0 * p1) * h + carry * p0 + g_m
            g_in = (1.0 - p0) * g_state
            carry = g_state
        elif KIND == 1:
            g_state = gs * h + carry * p0 + g_m
            g_in = g_state
            carry = g_state
        elif KIND == 2:
            s = _spike(m, KIND, p1)
            g_h = carry * (1.0 - s) + (gs - carry * m) * h + g_m
            g_in = g_h / p0
            carry = g_h * (1.0 - 1.0 / p0)
        else:
            s = _spike(m, KIND, p1)
            g_state = (gs - carry * p0 * m) * h + carry * p0 * (1.0 - s) + g_m
            g_in = g_state
            carry = g_state
        if STATIC:
            total += g_in
        else:
            tl.store(gx_ptrs, g_in, mask=mask)
        m_ptrs -= M
        gs_ptrs -= M
        gm_ptrs -= M
        gx_ptrs -= M
    if STATIC:
        tl.store(gx_ptr + offs, total, mask=mask)


@triton.jit
def _filter(x_ptr, y_ptr, T, M, start, step, decay, BLOCK: tl.constexpr):
    """y[t] = decay * y[t -/+ 1] + x[t], walking from offset ``start`` by ``step``
    (forward: the synapse; backward, reversed: its gradient)."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < M
    x_ptrs = x_ptr + start + offs
    y_ptrs = y_ptr + start + offs
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for _ in range(T):
        acc = decay * acc + tl.load(x_ptrs, mask=mask, other=0.0).to(tl.float32)
        tl.store(y_ptrs, acc.to(y_ptr.dtype.element_ty), mask=mask)
        x_ptrs += step
        y_ptrs += step


# ------------------------------------------------------------------ layouts
from .layout import dense as _dense  # noqa: F401
from .layout import like as _like
from .layout import over_time as _over_time
from .layout import static as _static
from .layout import time_major as _time_major


def _grid(M: int):
    block = 1024 if M >= 1 << 18 else 512 if M >= 1 << 15 else 128
    return block, (triton.cdiv(M, block),)


# ------------------------------------------------------------------ entry points
def neuron_forward(kind: str, x: torch.Tensor, p: tuple[float, ...], steps: int | None, keep_membrane: bool):
    """Spikes ``[T, ...]`` in ``x``'s dtype and, with ``keep_membrane``, float32 membranes."""
    if steps is None:
        x = _time_major(x)
        T, M, x_step = x.shape[0], x[0].numel(), x[0].numel()
        s = torch.empty_strided(x.shape, x.stride(), dtype=x.dtype, device=x.device)
    else:
        x = _static(x)
        T, M, x_step = steps, x.numel(), 0
        s = _over_time(x, T, x.dtype)
    m = torch.empty_strided(s.shape, s.stride(), dtype=torch.float32, device=x.device) if keep_membrane else s
    block, grid = _grid(M)
    _neuron_forward[grid](x, s, m, T, M, x_step, float(p[0]), float(p[1]),
                          KIND=KIND_CODES[kind], STORE_M=keep_membrane, BLOCK=block)
    return s, (m if keep_membrane else None)


def neuron_backward(kind: str, m: torch.Tensor, p: tuple[float, ...], grad_s: torch.Tensor,
                    grad_m: torch.Tensor | None, static: bool) -> torch.Tensor:
    """d loss / d input: ``[T, ...]``, or ``[...]`` summed over time for a static input."""
    T, M = m.shape[0], m[0].numel()
    grad_s = _like(m, grad_s)
    has_gm = grad_m is not None
    grad_m = _like(m, grad_m) if has_gm else m
    if static:
        gx = torch.empty_strided(m.shape[1:], m.stride()[1:], dtype=torch.float32, device=m.device)
    else:
        gx = torch.empty_strided(m.shape, m.stride(), dtype=torch.float32, device=m.device)
    q = tuple(float(v) for v in p) + (0.0,) * (4 - len(p))
    block, grid = _grid(M)
    _neuron_backward[grid](m, grad_s, grad_m, gx, T, M, (T - 1) * M, q[0], q[1], q[2], q[3],
                           KIND=KIND_CODES[kind], HAS_GM=has_gm, STATIC=static, BLOCK=block)
    return gx


def _run_filter(x: torch.Tensor, decay: float, reverse: bool) -> torch.Tensor:
    x = _time_major(x)
    T, M = x.shape[0], x[0].numel()
    y = torch.empty_strided(x.shape, x.stride(), dtype=x.dtype, device=x.device)
    block, grid = _grid(M)
    start, step = ((T - 1) * M, -M) if reverse else (0, M)
    _filter[grid](x, y, T, M, start, step, float(decay), BLOCK=block)
    return y


def synapse_forward(x: torch.Tensor, decay: float) -> torch.Tensor:
    return _run_filter(x, decay, reverse=False)


def synapse_backward(grad: torch.Tensor, decay: float) -> torch.Tensor:
    return _run_filter(grad, decay, reverse=True)
