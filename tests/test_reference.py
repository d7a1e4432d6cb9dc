"""The reference curve: quadrature for d = 1, monotonicity, interpolation, cache."""

import math
import time

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


# -- bounded memory, single flight, tamper-evident cache files (issue 16) --------------------
def _sr_curve(sigma: float, **kw) -> ReferenceCurve:
    """The curve an estimate with ``sigma_r = [sigma]`` asks for (normalised)."""
    from ess.params import check_reference

    _, L_r, identity, _ = check_reference(1, sigma_r=[sigma])
    return ReferenceCurve(1, "w2sq", "unbiased", L_r, identity, **kw)


def test_a_point_asked_by_two_threads_at_once_is_computed_once(tmp_path, monkeypatch):
    """sigma_r [2] and [3] normalise to one curve: two threads asking its point at
    the same moment share one computation (the second waits for the first)."""
    import threading

    import ess.reference

    monkeypatch.setenv("ESS_CACHE_DIR", str(tmp_path))
    calls = []
    real = ReferenceCurve._compute

    def slow(self, n):
        calls.append(n)
        time.sleep(0.3)              # both threads are asking by now
        return real(self, n)

    monkeypatch.setattr(ReferenceCurve, "_compute", slow)
    before = ess.reference.points_computed()
    curves = [_sr_curve(2.0), _sr_curve(3.0)]
    assert curves[0].path == curves[1].path
    got = [None, None]
    start = threading.Barrier(2)

    def ask(i):
        start.wait()
        got[i] = curves[i].value(40)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [40] and got[0] == got[1]
    assert ess.reference.points_computed() == before + 1
    for c in curves:
        c.save()
    ess.reference._LOADED.clear()
    assert 40 in _sr_curve(2.0).points            # saved once, read back intact


def test_a_point_past_the_kept_rows_is_bounded_and_thread_invariant(tmp_path, monkeypatch):
    """With few rows kept (4096 here, 2^17 in use) a point is reduced to running
    moments: the same bits on one thread or two, and within 2 of its combined
    standard errors of the point computed from every row (HC3), which shares its
    chains (common random numbers)."""
    import ess.reference

    monkeypatch.setenv("ESS_CACHE_DIR", str(tmp_path))
    exact = _sr_curve(1.0, rel_precision=0.001, use_cache=False)._compute(40)
    assert exact[2] > 3 * 4096
    monkeypatch.setattr(ess.reference, "KEEP_ROWS", 4096)
    monkeypatch.setattr(ess.reference, "SLICE_ROWS", 2048)
    one = _sr_curve(1.0, rel_precision=0.001, use_cache=False, n_jobs=1)._compute(40)
    two = _sr_curve(1.0, rel_precision=0.001, use_cache=False, n_jobs=2)._compute(40)
    assert one == two
    assert abs(one[0] - exact[0]) <= 2 * math.hypot(one[1], exact[1])
    assert one[1] == pytest.approx(exact[1], rel=0.2)     # N differs by a round at most
    assert abs(one[0] - reference_d1(40, "w2sq", "unbiased")) <= 4 * one[1]


def test_running_moments_match_cv_mean_on_heteroscedastic_rows():
    """Past the kept rows: the same estimate as cv_mean up to rounding, and its
    standard error within 1% (0.16% measured: noise growing with a control variate,
    2 10^5 rows); in any batching, the same to rounding."""
    from ess.stats import RunningCVMean, cv_mean

    rng = np.random.default_rng(1)
    N = 200_000
    X = rng.gamma(2.0, size=(N, 3))
    X[:, 2] = X[:, 0] ** 2
    y = 1 + X @ [0.5, -0.2, 0.1] + rng.normal(size=N) * (0.5 + X[:, 0])
    mx = np.array([2.0, 2.0, 6.0])
    est, se, dof = cv_mean(y, X, mx)
    rows = np.column_stack([y, X])
    for batch in (7000, 65536):
        acc = RunningCVMean(3, keep_rows=0)
        for s in range(0, N, batch):
            acc.add(rows[s:s + batch])
        e2, se2, dof2 = acc.result(mx)
        assert e2 == pytest.approx(est, rel=1e-12) and dof2 == dof
        assert se2 == pytest.approx(se, rel=0.01)
    kept = RunningCVMean(3, keep_rows=N)
    kept.add(rows[:1000])
    kept.add(rows[1000:])
    assert kept.result(mx) == (est, se, dof)            # below the bound: cv_mean itself


@pytest.mark.parametrize("how", ["f scaled by 1.3", "checksum dropped"])
def test_a_tampered_curve_file_is_recomputed_not_served(tmp_path, monkeypatch, how):
    """An edited cache file (its f scaled by 1.3, which moved an n_e from 117.75 to
    152.97 when files had no checksum) fails its keyed checksum: the point is
    computed again, the same as before, and the file rewritten."""
    import json

    import ess.reference

    monkeypatch.setenv("ESS_CACHE_DIR", str(tmp_path))
    c = _sr_curve(1.0)
    v = c.value(40)
    c.save()
    data = json.loads(c.path.read_text())
    if how == "f scaled by 1.3":
        data["points"]["40"][0] *= 1.3
    else:
        del data["hmac_sha256"]
    c.path.write_text(json.dumps(data))
    ess.reference._LOADED.clear()
    before = ess.reference.points_computed()
    again = _sr_curve(1.0)
    assert 40 not in again.points
    assert again.value(40) == v
    assert ess.reference.points_computed() == before + 1
    again.save()
    ess.reference._LOADED.clear()
    assert _sr_curve(1.0).points[40][:2] == v
