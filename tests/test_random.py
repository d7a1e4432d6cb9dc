"""The kernels' own random variates against independent references.

xoshiro256++ against a plain-Python implementation of its published recurrence;
normal and chi-square variates against SciPy's distributions (Kolmogorov-Smirnov)
and their exact moments, within stated numbers of standard errors, fixed seeds.
"""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit
from scipy import stats

from ess.kernels.random import (
    ZIG_R,
    _chi2,
    _chi2_consts,
    _next_u64,
    _normal,
    _uniform,
    seed_state,
)

MASK = (1 << 64) - 1


def _xoshiro_reference(state: list[int], n: int) -> list[int]:
    """xoshiro256++ (Blackman and Vigna) on Python integers."""
    s = list(state)
    out = []

    def rotl(x: int, k: int) -> int:
        return ((x << k) | (x >> (64 - k))) & MASK

    for _ in range(n):
        out.append((rotl((s[0] + s[3]) & MASK, 23) + s[0]) & MASK)
        t = (s[1] << 17) & MASK
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
    return out


@njit
def _draw_u64(st, n):
    out = np.empty(n, dtype=np.uint64)
    for i in range(n):
        out[i] = _next_u64(st)
    return out


@njit
def _draw(st, n, kind, df):
    out = np.empty(n)
    dd, c = _chi2_consts(df)
    for i in range(n):
        if kind == 0:
            out[i] = _normal(st)
        elif kind == 1:
            out[i] = _uniform(st)
        else:
            out[i] = _chi2(st, df, dd, c)
    return out


def test_xoshiro_matches_the_reference_recurrence():
    st = seed_state(np.random.SeedSequence(2024))
    expected = _xoshiro_reference([int(x) for x in st], 1000)
    assert [int(x) for x in _draw_u64(st.copy(), 1000)] == expected


@pytest.mark.slow
def test_uniform_is_uniform():
    u = _draw(seed_state(np.random.SeedSequence(1)), 1_000_000, 1, 0)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    assert abs(u.mean() - 0.5) < 5 * np.sqrt(1 / 12 / u.size)


@pytest.mark.slow
def test_ziggurat_normals():
    """Distribution, moments to the fourth, and the tail beyond the base layer
    (a separate code path) at its exact frequency, within 5 standard errors."""
    n = 2_000_000
    z = _draw(seed_state(np.random.SeedSequence(7)), n, 0, 0)
    assert stats.kstest(z, "norm").pvalue > 1e-3
    for k, exact, var in ((1, 0.0, 1.0), (2, 1.0, 2.0), (3, 0.0, 15.0), (4, 3.0, 96.0)):
        assert abs(np.mean(z**k) - exact) < 5 * np.sqrt(var / n), k
    p_tail = 2 * stats.norm.sf(ZIG_R)
    count = np.sum(np.abs(z) > ZIG_R)
    assert abs(count - n * p_tail) < 5 * np.sqrt(n * p_tail)
    assert np.sum(z > ZIG_R) > 0 and np.sum(z < -ZIG_R) > 0
    # The wedges: the same check on a band inside the layers.
    band = (np.abs(z) > 1.0) & (np.abs(z) < 1.5)
    p_band = 2 * (stats.norm.cdf(1.5) - stats.norm.cdf(1.0))
    assert abs(band.sum() - n * p_band) < 5 * np.sqrt(n * p_band)


@pytest.mark.parametrize("df", [1, 2, 3, 10, 99, 10_000])
def test_chi_square(df):
    n = 400_000
    x = _draw(seed_state(np.random.SeedSequence(df)), n, 2, df)
    assert x.min() >= 0.0
    assert stats.kstest(x, stats.chi2(df).cdf).pvalue > 1e-3
    assert abs(x.mean() - df) < 5 * np.sqrt(2 * df / n)
    # Var of the sample variance ~ (mu_4 - sigma^4) / n, mu_4 = 12 df^2 + 48 df.
    var_se = np.sqrt((8.0 * df**2 + 48.0 * df) / n)
    assert abs(x.var() - 2 * df) < 5 * var_se
