"""Random variates inside the kernels: xoshiro256++, ziggurat normals, chi-square.

Calling a NumPy ``Generator`` from Numba costs an indirect call per variate; the
chains draw a few normals and chi-squares per generation, so those calls were
most of a ``d = 1`` generation. Here the generator state is a ``uint64[4]``
array that the kernels update inline:

- :func:`_next_u64` is xoshiro256++ (Blackman and Vigna, 2021), seeded from a
  ``numpy.random.SeedSequence`` (:func:`ess.chains.chunk_rngs`);
- :func:`_normal` is the 256-layer ziggurat of Marsaglia and Tsang (2000) in the
  form NumPy's ``Generator.standard_normal`` uses (52-bit mantissa, exact tail);
- :func:`_chi2` is ``z^2`` for one degree of freedom and otherwise twice a
  Marsaglia-Tsang gamma variate (exact rejection sampling).

The tests check the generator against a plain-Python xoshiro256++ and the
variates' distributions against SciPy.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ess.config import JIT

#: Right edge of the ziggurat's base layer and the area of each of its 256 layers.
ZIG_R = 3.6541528853610088
ZIG_V = 0.00492867323399


def _ziggurat_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Layer tables ``(k, w, f)`` of the 256-layer normal ziggurat (Marsaglia and Tsang).

    ``w[i]`` scales a 52-bit integer to the layer's width, ``k[i]`` is the
    integer below which a point of layer ``i`` lies under the density for sure,
    ``f[i]`` is the (unnormalised) density at the layer's edge.
    """
    m = 2.0**52
    k = np.zeros(256, dtype=np.int64)
    w = np.zeros(256)
    f = np.zeros(256)
    dn = tn = ZIG_R
    q = ZIG_V / math.exp(-0.5 * dn * dn)
    k[0] = int(dn / q * m)
    k[1] = 0
    w[0] = q / m
    w[255] = dn / m
    f[0] = 1.0
    f[255] = math.exp(-0.5 * dn * dn)
    for i in range(254, 0, -1):
        dn = math.sqrt(-2.0 * math.log(ZIG_V / dn + math.exp(-0.5 * dn * dn)))
        k[i + 1] = int(dn / tn * m)
        tn = dn
        f[i] = math.exp(-0.5 * dn * dn)
        w[i] = dn / m
    return k, w, f


_ZK, _ZW, _ZF = _ziggurat_tables()
_ZIG_INV_R = 1.0 / ZIG_R
_MASK52 = np.uint64(0x000FFFFFFFFFFFFF)
_MASK8 = np.uint64(0xFF)
_ONE = np.uint64(1)
_S1 = np.uint64(1)
_S8 = np.uint64(8)
_S11 = np.uint64(11)
_S17 = np.uint64(17)
_S23 = np.uint64(23)
_S41 = np.uint64(41)
_S45 = np.uint64(45)
_TWO_M53 = 1.0 / 9007199254740992.0


def fix_state(st: np.ndarray) -> np.ndarray:
    """A ``uint64[4]`` xoshiro256++ state, made valid (never all zero)."""
    if not st.any():
        st[0] = 1
    return st


def seed_state(ss: np.random.SeedSequence) -> np.ndarray:
    """A xoshiro256++ state from a ``SeedSequence``'s first four words."""
    return fix_state(ss.generate_state(4, dtype=np.uint64))


@njit(inline="always", **JIT)
def _next_u64(st):
    """Next 64-bit output of xoshiro256++; advances the state ``st`` in place."""
    s0 = st[0]
    s1 = st[1]
    s2 = st[2]
    s3 = st[3]
    a = s0 + s3
    result = ((a << _S23) | (a >> _S41)) + s0
    t = s1 << _S17
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = (s3 << _S45) | (s3 >> np.uint64(19))
    st[0] = s0
    st[1] = s1
    st[2] = s2
    st[3] = s3
    return result


@njit(inline="always", **JIT)
def _uniform(st):
    """A double uniform on ``[0, 1)`` with 53 random bits."""
    return float(_next_u64(st) >> _S11) * _TWO_M53


@njit(**JIT)
def _normal_rare(st, idx, rabs, x):
    """The rare steps of :func:`_normal` (about 1% of draws): the wedge test of
    layer ``idx`` for the candidate ``x``, or a draw from the tail beyond
    ``ZIG_R`` by Marsaglia's exponential method. Returns ``nan`` when the
    candidate is rejected (the caller draws again)."""
    if idx == 0:
        while True:
            xx = -_ZIG_INV_R * np.log1p(-_uniform(st))
            yy = -np.log1p(-_uniform(st))
            if yy + yy > xx * xx:
                if (rabs >> 8) & 1:
                    return -(ZIG_R + xx)
                return ZIG_R + xx
    if (_ZF[idx - 1] - _ZF[idx]) * _uniform(st) + _ZF[idx] < np.exp(-0.5 * x * x):
        return x
    return np.nan


@njit(inline="always", **JIT)
def _normal(st):
    """A standard normal variate by the 256-layer ziggurat: about 99% of draws
    take one 64-bit output, a table look-up and one multiplication (inlined into
    the caller); the rest go to :func:`_normal_rare`."""
    while True:
        r = _next_u64(st)
        idx = np.int64(r & _MASK8)
        r = r >> _S8
        rabs = np.int64((r >> _S1) & _MASK52)
        x = float(rabs) * _ZW[idx]
        if r & _ONE:
            x = -x
        if rabs < _ZK[idx]:
            return x
        x = _normal_rare(st, idx, rabs, x)
        if not np.isnan(x):
            return x


@njit(**JIT)
def _chi2_consts(df):
    """Constants of :func:`_chi2` for ``df`` degrees of freedom: ``(a - 1/3,
    1/sqrt(9 (a - 1/3)))`` with the gamma shape ``a = df / 2`` (unused for ``df = 1``)."""
    if df < 2:
        return 0.0, 0.0
    dd = 0.5 * df - 1.0 / 3.0
    return dd, 1.0 / np.sqrt(9.0 * dd)


@njit(inline="always", **JIT)
def _chi2(st, df, dd, c):
    """A chi-square variate with ``df >= 1`` degrees of freedom.

    ``z^2`` for ``df = 1``; otherwise ``2 Gamma(df / 2)`` by the exact rejection
    method of Marsaglia and Tsang (2000, ACM TOMS 26, 363), with the constants
    ``dd, c`` of :func:`_chi2_consts` computed once per ``df`` by the caller.
    The squeeze accepts about 98% of proposals without a logarithm.
    """
    while True:
        x = _normal(st)   # one call site: each is inlined in full, which costs compile time
        if df == 1:
            return x * x
        v = 1.0 + c * x
        if v <= 0.0:
            continue
        v = v * v * v
        u = _uniform(st)
        x2 = x * x
        if u < 1.0 - 0.0331 * x2 * x2:
            return 2.0 * dd * v
        if np.log(u) < 0.5 * x2 + dd * (1.0 - v + np.log(v)):
            return 2.0 * dd * v


@njit(**JIT)
def _normal_call(st):
    """:func:`_normal` as an ordinary (not inlined) function, for the ``d >= 2``
    kernels, where variates are a small part of the work and inlining them at
    every call site would only lengthen compilation."""
    return _normal(st)


@njit(**JIT)
def _chi2_call(st, df, dd, c):
    """:func:`_chi2` as an ordinary (not inlined) function (see :func:`_normal_call`)."""
    return _chi2(st, df, dd, c)
