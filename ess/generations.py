"""Per-generation statistics of trajectories and the effective sample size over generations.

``simulate`` (:func:`ess.simulate`) summarises ``R`` independent chains at every
generation ``t``: for each quantity its mean over chains with the standard error
and the 95% interval of that mean (Student t with ``R - 1`` degrees of freedom),
and the median and 5% and 95% quantiles of the chains. The expected distance
``E dist(G^t, P_r)`` is turned into ``n_e(t)``, the ``n`` with ``f(n) = E
dist(G^t, P_r)``, by the reference curve and the inversion that ``estimate`` uses
(:meth:`ess.reference.ReferenceCurve.invert`; contract section 3).
"""

from __future__ import annotations

import math

import numpy as np

from ess.chains import (
    TRAJ_DIST,
    TRAJ_FROB_DEV,
    TRAJ_LOG_DET,
    TRAJ_MEAN_DEV,
    TRAJ_MIN_EIG,
    TRAJ_TR_SIGMA,
)
from ess.params import LoopParams
from ess.reference import ReferenceCurve
from ess.results import Interval
from ess.stats import t975

#: The quantities summarised per generation: the column prefix and what it is.
#: ``dist`` is ``dist(G^t, P_r)`` in the request's metric, ``mean_dev`` is
#: ``|mu_t - mu_r|``, ``tr_sigma_over_d`` is ``tr Sigma_t / d``, ``log_det_sigma`` is
#: ``log det Sigma_t`` (``-inf`` for a singular ``Sigma_t``), ``frob_dev`` is
#: ``||Sigma_t - Sigma_r||_F`` and ``min_eig`` the smallest eigenvalue of ``Sigma_t``.
QUANTITIES = ("dist", "mean_dev", "tr_sigma_over_d", "log_det_sigma", "frob_dev", "min_eig")
#: The statistics of each quantity, as column suffixes: the mean over chains, its
#: standard error and 95% interval, and the median and 5% / 95% quantiles of the chains.
STATISTICS = ("mean", "se", "ci", "median", "q05", "q95")
#: What ``n_e_note`` says when ``E dist(G^t, P_r)`` exceeds ``f(2)``.
BELOW_TWO = "below 2"


def quantities(p: LoopParams, traj: np.ndarray) -> dict[str, np.ndarray]:
    """The per-chain values of :data:`QUANTITIES`, each of shape ``(chains, generations)``,
    from the array of :func:`ess.chains.trajectories`."""
    return {"dist": traj[:, :, TRAJ_DIST],
            "mean_dev": np.sqrt(traj[:, :, TRAJ_MEAN_DEV]),
            "tr_sigma_over_d": traj[:, :, TRAJ_TR_SIGMA] / p.d,
            "log_det_sigma": traj[:, :, TRAJ_LOG_DET],
            "frob_dev": traj[:, :, TRAJ_FROB_DEV],
            "min_eig": traj[:, :, TRAJ_MIN_EIG]}


def summary(x: np.ndarray) -> dict[str, np.ndarray]:
    """:data:`STATISTICS` over chains (axis 0) of ``x``, per generation.

    A mean that is not finite (``log det`` of a singular covariance) has no standard
    error or interval (``nan``); with one chain neither exists either.
    """
    R = x.shape[0]
    with np.errstate(invalid="ignore"):
        mean = x.mean(axis=0)
        se = (x.std(axis=0, ddof=1) / math.sqrt(R) if R > 1
              else np.full(x.shape[1], np.nan))
        se = np.where(np.isfinite(mean), se, np.nan)
        hw = t975(R - 1) * se if R > 1 else se
        lo, hi = mean - hw, mean + hw
        q = np.quantile(x, [0.05, 0.5, 0.95], axis=0)
    # Interpolating between two infinite values (log det of singular covariances) gives
    # nan: those quantiles are taken at the nearest order statistic instead.
    bad = np.isnan(q) & ~np.isnan(x).any(axis=0)
    if bad.any():
        q[bad] = np.quantile(x, [0.05, 0.5, 0.95], axis=0, method="nearest")[bad]
    q05, med, q95 = q
    return {"mean": mean, "se": se, "ci_low": lo, "ci_high": hi, "median": med, "q05": q05,
            "q95": q95}


def _invert(curve: ReferenceCurve, y: float, n_guess: float):
    """``curve.invert(y)``, or ``None`` when ``y`` is below the curve's whole grid
    (``n`` beyond ``2^40``)."""
    try:
        return curve.invert(y, n_guess=n_guess)
    except ValueError:
        return None


def invert_interval(curve: ReferenceCurve, y: float, y_lo: float, y_hi: float,
                    n_guess: float) -> tuple[float | None, Interval | None, str]:
    """``n_e`` with ``f(n_e) = y`` and its 95% interval, in the kernels' units.

    The interval is the preimage of ``[y_lo, y_hi]`` under the decreasing curve
    (``n`` from ``f(n) = y_hi`` to ``f(n) = y_lo``), widened in log scale by the
    curve's own 95% error added in quadrature, as ``estimate`` combines them.
    ``y_lo <= 0`` leaves the interval unbounded above (``high = None``); ``y_hi`` above
    ``f(2)`` leaves it open below 2 (``low = None``).

    Returns
    -------
    (float or None, Interval or None, str)
        ``n_e`` (``None`` when ``y > f(2)``), its interval (``None`` when all of it
        is below 2) and a note (:data:`BELOW_TWO`, or ``""``).
    """
    if not (math.isfinite(y) and y > 0):
        return None, None, "E dist is not a positive number"
    inv = _invert(curve, y, n_guess)
    if inv is None:
        return None, None, "beyond the reference curve's grid (n > 2^40)"
    bounded = math.isfinite(y_lo) and y_lo > 0
    if inv.n is None:
        below = _invert(curve, y_lo, 2.0) if bounded else None
        if below is None or below.n is None:
            return None, None, BELOW_TWO
        return None, Interval(None, below.n * math.exp(below.curve_rel_hw)), BELOW_TWO
    n_e, h = inv.n, inv.curve_rel_hw
    hi_inv = _invert(curve, y_hi, n_e) if math.isfinite(y_hi) else None
    low = None
    if hi_inv is not None and hi_inv.n is not None:
        low = n_e * math.exp(-math.hypot(math.log(n_e / hi_inv.n), h))
    lo_inv = _invert(curve, y_lo, n_e) if bounded else None
    high = None
    if lo_inv is not None:
        high = n_e * math.exp(math.hypot(math.log(lo_inv.n / n_e), h))
    return n_e, Interval(low, high), ""


def generation_rows(p: LoopParams, traj: np.ndarray, curve: ReferenceCurve) -> list[dict]:
    """One row per generation: every quantity's :data:`STATISTICS`, then ``n_e``.

    Columns ``<quantity>_<statistic>`` (``<quantity>_ci`` an :class:`Interval`), then
    ``n_e`` and ``n_e_ci`` (``None`` or ``None`` ends where below 2 or unbounded, see
    :func:`invert_interval`), ``n_e_over_n_r`` and ``n_e_over_n_r_ci``, and
    ``n_e_note``: ``"below 2"`` when ``E dist(G^t, P_r)`` exceeds ``f(2)``, the
    distance of a fit on two real samples.
    """
    stats = {name: summary(x) for name, x in quantities(p, traj).items()}
    k = p.dist_factor
    rows = []
    guess = float(p.n_ini)
    for t in range(traj.shape[1]):
        row: dict = {"generation": t + 1}
        for name in QUANTITIES:
            s = stats[name]
            row[f"{name}_mean"] = float(s["mean"][t])
            row[f"{name}_se"] = float(s["se"][t])
            row[f"{name}_ci"] = Interval(float(s["ci_low"][t]), float(s["ci_high"][t]))
            for stat in ("median", "q05", "q95"):
                row[f"{name}_{stat}"] = float(s[stat][t])
        d = stats["dist"]
        n_e, ci, note = invert_interval(curve, d["mean"][t] / k, d["ci_low"][t] / k,
                                        d["ci_high"][t] / k, guess)
        if n_e is not None:
            guess = n_e
        row["n_e"] = n_e
        row["n_e_ci"] = ci
        row["n_e_over_n_r"] = None if n_e is None else n_e / p.n_r
        row["n_e_over_n_r_ci"] = None if ci is None else Interval(
            *(None if v is None else v / p.n_r for v in ci))
        row["n_e_note"] = note
        rows.append(row)
    curve.save()
    return rows
