"""The reference curve: quadrature for d = 1, monotonicity, interpolation, cache."""

import math

import numpy as np
import pytest
from scipy.interpolate import PchipInterpolator

import ess
from ess.analytic import reference_d1
from ess.pchip import pchip
from ess.reference import GRID, ReferenceCurve, tier_for

NS = [2, 3, 5, 10, 30, 100, 1000]


@pytest.mark.parametrize("metric", ["w2sq", "w2"])
@pytest.mark.parametrize("cov", ["unbiased", "mle"])
def test_d1_reference_matches_quadrature(metric, cov):
    """Monte Carlo f(n) within 4 of its standard errors of the exact value (closed
    form for w2sq, quadrature for w2); the standard errors are small (< 0.2%)."""
    vals = ess.reference_curve(NS, d=1, metric=metric, cov_estimator=cov)
    for n, f, se in zip(NS, vals.f, vals.f_se):
        exact = reference_d1(n, metric, cov)
        assert abs(f - exact) <= 4 * se, (n, f, exact, se)
        assert se / f < 0.002


def test_metrics_and_estimators_have_their_own_curves():
    a = ess.reference_curve([10], d=2, metric="w2sq").f[0]
    b = ess.reference_curve([10], d=2, metric="w2").f[0]
    c = ess.reference_curve([10], d=2, metric="w2sq", cov_estimator="mle").f[0]
    assert abs(a - b) > 0.1 and abs(a - c) > 1e-3


def test_curve_decreasing_on_grid_and_sigma_r_matters():
    ns = GRID[:30]
    f = np.array(ess.reference_curve(ns, d=3).f)
    assert np.all(np.diff(f) < 0)
    g = ess.reference_curve([20], d=3, sigma_r=[1.0, 4.0, 0.25]).f[0]
    assert abs(g - ess.reference_curve([20], d=3).f[0]) > 0.01


def test_pchip_matches_scipy():
    rng = np.random.default_rng(0)
    x = np.sort(rng.uniform(0, 10, 8))
    y = np.cumsum(rng.uniform(0.1, 1, 8))
    ref = PchipInterpolator(x, y)
    for t in np.linspace(x[0], x[-1], 37):
        v, dv = pchip(x, y, t)
        assert v == pytest.approx(float(ref(t)), rel=1e-12, abs=1e-12)
        assert dv == pytest.approx(float(ref(t, 1)), rel=1e-9, abs=1e-12)


def test_inversion_recovers_n_and_slope():
    curve = ReferenceCurve(1, "w2sq", "unbiased", np.eye(1), True)
    for n in (7.5, 64.0, 333.3):
        y = reference_d1(int(n), "w2sq", "unbiased")   # an integer point: exact n
        inv = curve.invert(y, n_guess=3.0)
        assert inv.n == pytest.approx(int(n), rel=0.01)
        assert -1.2 < inv.slope < -0.8
    assert curve.invert(10.0).below_two


def test_cache_on_disk_is_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("ESS_CACHE_DIR", str(tmp_path))
    c1 = ReferenceCurve(2, "w2sq", "unbiased", np.eye(2), True)
    v = c1.value(40)
    c1.save()
    import ess.reference
    ess.reference._LOADED.clear()           # read back from disk, not from this process
    c2 = ReferenceCurve(2, "w2sq", "unbiased", np.eye(2), True)
    assert 40 in c2.points and c2.value(40) == v
    c2.path.unlink()                        # later instances reuse what this process read
    assert ReferenceCurve(2, "w2sq", "unbiased", np.eye(2), True).value(40) == v
    c3 = ReferenceCurve(2, "w2sq", "mle", np.eye(2), True)
    assert 40 not in c3.points


def test_t_quantiles_are_scipys():
    from scipy import stats

    from ess.stats import t975
    for dof in (1, 2, 5, 29, 30, 31, 45, 100, 1000, 10**6):
        assert t975(dof) == pytest.approx(stats.t.ppf(0.975, dof), rel=1e-12)
    assert t975(0) == math.inf and t975(-3) == math.inf


def test_tiers_are_finer_than_the_precision_served():
    for rel in (0.5, 0.05, 0.01, 0.009, 0.001, 0.0001):
        assert tier_for(rel) <= rel / 3 * (1 + 1e-12)


@pytest.mark.parametrize("cov", ["unbiased", "mle"])
def test_reference_control_variate_means(cov):
    """The fits' ``|m - mu_r|^2``, ``tr Sigma_hat`` and ``tr Sigma_hat^2`` average to
    their exact means (the reference curve's control variates) within 4 s.e., for a
    non-identity ``Sigma_r``."""
    from ess.analytic import reference_linear_moments, reference_tr_sigma_sq
    from ess.chains import chunk_rngs
    from ess.kernels.distance import METRIC_W2SQ
    from ess.kernels.loops import _reference_chunk

    d, n = 3, 6
    A = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.3], [0.0, 0.3, 0.5]])
    L = np.linalg.cholesky(A)
    rng, _, _ = chunk_rngs(4, 2, 0)
    out = _reference_chunk(rng, 40000, n, cov == "mle", METRIC_W2SQ, np.zeros(d), L, False)
    tr, tr2 = float(np.trace(A)), float(np.sum(A * A))
    want = [*reference_linear_moments(n, cov, tr), reference_tr_sigma_sq(n, cov, tr, tr2)]
    for k, w in enumerate(want, start=1):
        se = out[:, k].std(ddof=1) / np.sqrt(out.shape[0])
        assert abs(out[:, k].mean() - w) <= 4 * se, (k, out[:, k].mean(), w, se)
