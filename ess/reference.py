"""The reference curve ``f(n) = E dist(G(n), P_r)`` and its inversion (SPEC section 3).

``G(n)`` is the Gaussian fit (same covariance estimator) on ``n`` real samples.
The curve lives on a geometric integer grid (four points per doubling from
``n = 2``), is computed lazily where an inversion needs it, and is cached on
disk keyed by everything it depends on: package version, ``d``, metric,
estimator, ``Sigma_r`` and the precision tier.

Each grid point is a Monte Carlo mean with the exactly known
``E|m - mu_r|^2 = tr Sigma_r / n``, ``E tr Sigma_hat = ((n-1)/q) tr Sigma_r`` and
``E tr Sigma_hat^2`` (Wishart second moments) as control variates; every point
uses the same seeds (common random numbers), so the curve is smooth in ``n``.

Memory and concurrency: a point's fits are produced a slice at a time and folded
into running moments (:class:`ess.stats.RunningCVMean`), so computing one holds
at most :data:`POINT_BYTES` (24 MiB) of per-fit values whatever its precision,
plus the kernels' ``O(d^2)`` working arrays per thread. A point asked by several
threads at once (the service's workers, API calls; ``Sigma_r`` normalised, so
``sigma_r = [2]`` and ``[3]`` ask the same curve) is computed once
(:func:`ess.store.single_flight` on the cache file and ``n``). Cache files carry a
keyed checksum (:func:`ess.store.load_curve`): an edited file is recomputed, never
served.
"""

from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ess import __version__, config
from ess.analytic import reference_linear_moments, reference_tr_sigma_sq
from ess.chains import (
    STREAM_REFERENCE,
    adaptive_rounds,
    blas_single_thread,
    chunk_rngs,
    run_parallel,
)
from ess.kernels.layout import Q_DIST, Q_MEAN_DEV, QUANTITIES
from ess.params import matrix_digest
from ess.pchip import pchip
from ess.progress import NULL_PROGRESS, Progress
from ess.stats import CV_MEAN_COPIES, RunningCVMean, t975
from ess.store import key_hash, load_curve, save_curve, single_flight

#: Relative 95% half-width on ``n_e`` that the curve alone contributes, at the
#: coarsest tier; finer tiers halve it.
BASE_TIER = 0.003
#: Largest grid value.
MAX_N = 2**40


def _grid() -> list[int]:
    pts = sorted({int(round(2 * 2 ** (k / 4))) for k in range(0, 4 * 40)})
    return [n for n in pts if n <= MAX_N]


GRID = _grid()


def tier_for(rel_precision: float) -> float:
    """Curve precision tier serving a wanted ``rel_precision`` on ``n_e``.

    The largest ``BASE_TIER * 2^-j`` not above a third of ``rel_precision``, so
    the curve is always finer than the limits it serves; quantised so that a
    cached point is computed the same way whatever precision asked for it.
    """
    j = max(0, math.ceil(math.log2(BASE_TIER / (rel_precision / 3.0)) - 1e-12))
    return BASE_TIER * 2.0**-j


def _ref_chunk_size(d: int) -> int:
    if d >= config.LAPACK_MIN_D:   # a fit costs milliseconds to seconds: one per chunk
        return 1
    return 1024 if d == 1 else max(4, 4096 // (d * d))


#: Fits in the first round of a curve point from ``d =`` :data:`ess.config.LAPACK_MIN_D`
#: on: enough for the three control variates' slopes (:func:`ess.stats.cv_mean`
#: needs ``p + 8``), and few, since one fit there costs up to two seconds and the
#: distance, a sum over ``d`` eigenvalues, concentrates.
LARGE_D_PILOT = 12


@dataclass(frozen=True)
class Inversion:
    """Result of inverting the reference curve at one value."""

    n: float | None
    slope: float
    curve_rel_hw: float
    below_two: bool = False


#: Per-fit rows kept for the exact control-variate mean of a curve point
#: (:func:`ess.stats.cv_mean`, HC3); past them a point is reduced to running
#: moments (:class:`ess.stats.RunningCVMean`).
KEEP_ROWS = 2**17
#: Fits computed between two reductions of a curve point: a slice of chunks.
SLICE_ROWS = 2**16
#: Bound on the per-fit values a curve point holds while it is computed, in
#: bytes, whatever its precision: the kept rows (``QUANTITIES`` floats each), their
#: concatenation and :func:`ess.stats.cv_mean`'s working copies of them
#: (:data:`ess.stats.CV_MEAN_COPIES`), 24 MiB. A slice in flight holds at most four
#: copies of ``SLICE_ROWS`` rows (its chunks, their concatenation, a centred copy and
#: the kept copy), within the same bound. Before this bound a ``d = 1`` point at
#: ``rel_precision = 1e-4`` kept all its 2^24 fits and peaked near 3 GB.
POINT_BYTES = (2 + CV_MEAN_COPIES) * KEEP_ROWS * QUANTITIES * 8

#: Points of the curves this process has read, written or computed, by cache file:
#: a curve point depends only on its key, so reading the file once per process is
#: enough, and a point computed by one thread serves every other (under ``_GUARD``).
_LOADED: dict[Path, dict[int, tuple[float, float, int]]] = {}
_GUARD = threading.Lock()
#: Curve points this process has computed (not read), for ``/v1/health``.
_COMPUTED = [0]


def points_computed() -> int:
    """Reference-curve points computed by this process so far (single flight makes
    it one per point, however many threads asked for it at once)."""
    with _GUARD:
        return _COMPUTED[0]


@functools.lru_cache(maxsize=16)
def _identity(d: int, metric: str, cov_estimator: str, L_bytes: bytes, tier: float,
              root: str) -> tuple[dict, Path, float, float]:
    """Cache key, cache file, ``tr Sigma_r`` and ``tr Sigma_r^2`` of a curve; kept per
    arguments, since an estimate builds its curve object every time (the key's
    ``Sigma_r`` list and hash cost more than a small estimate's statistics)."""
    L_r = np.frombuffer(L_bytes).reshape(d, d)
    key = {
        "version": __version__,
        "code": config.source_hash("config.py", "chains.py", "stats.py", "reference.py",
                                   "analytic.py", "kernels/*.py"),
        "d": d, "metric": metric, "cov_estimator": cov_estimator,
        "L_r": matrix_digest(L_r), "tier": tier, "seed": config.REFERENCE_SEED,
        "grid": "2*2^(k/4)",
    }
    path = Path(root) / "reference" / f"{key_hash(key)}.json"
    return key, path, float(np.sum(L_r**2)), float(np.sum((L_r @ L_r.T) ** 2))


class ReferenceCurve:
    """Lazily computed, disk-cached reference curve for one model class.

    Parameters
    ----------
    d : int
        Dimension.
    metric : str
        ``"w2sq"`` or ``"w2"``.
    cov_estimator : str
        ``"unbiased"`` or ``"mle"``.
    L_r : ndarray
        Cholesky factor of ``Sigma_r``.
    sr_identity : bool
        ``Sigma_r`` is the identity.
    rel_precision : float
        Precision wanted on ``n_e`` by the caller; sets the tier.
    n_jobs : int
        Threads.
    use_cache : bool
        Read and write the on-disk cache.
    """

    def __init__(self, d: int, metric: str, cov_estimator: str, L_r: np.ndarray,
                 sr_identity: bool, rel_precision: float = 0.01, n_jobs: int = 1,
                 use_cache: bool = True, progress: Progress = NULL_PROGRESS) -> None:
        self.d = d
        self.metric = metric
        self.cov_estimator = cov_estimator
        self.L_r = np.ascontiguousarray(L_r, dtype=float)
        self.sr_identity = sr_identity
        self.tier = tier_for(rel_precision)
        self.n_jobs = n_jobs
        self.use_cache = use_cache
        self.progress = progress
        key, self.path, self.tr_sigma_r, self.tr_sigma_r_sq = _identity(
            d, metric, cov_estimator, self.L_r.tobytes(), self.tier, str(config.cache_dir()))
        self.key = dict(key)    # the cached one stays as it is
        self.points: dict[int, tuple[float, float, int]] = {}
        if use_cache:
            with _GUARD:
                known = _LOADED.get(self.path)
                if known is not None:
                    self.points = dict(known)
            if known is None:
                data = load_curve(self.path, self.key)
                if data:
                    self.points = {int(k): tuple(v) for k, v in data["points"].items()}
                with _GUARD:
                    _LOADED.setdefault(self.path, {}).update(self.points)
        self._dirty = False

    # -- one point -------------------------------------------------------------------
    @property
    def _min_slope(self) -> float:
        return 1.0 if self.metric == "w2sq" else 0.5

    def _compute(self, n: int) -> tuple[float, float, int]:
        from ess.kernels.distance import METRIC_W2, METRIC_W2SQ
        from ess.kernels.loops import _reference_chunk

        cs = _ref_chunk_size(self.d)
        mle = self.cov_estimator == "mle"
        code = METRIC_W2SQ if self.metric == "w2sq" else METRIC_W2
        mu0 = np.zeros(self.d)
        known = np.array([*reference_linear_moments(n, self.cov_estimator, self.tr_sigma_r),
                          reference_tr_sigma_sq(n, self.cov_estimator, self.tr_sigma_r,
                                                self.tr_sigma_r_sq)])

        def one(i: int) -> np.ndarray:
            rng, _, _ = chunk_rngs(config.REFERENCE_SEED, STREAM_REFERENCE, i)
            return _reference_chunk(rng, cs, n, mle, code, mu0, self.L_r, self.sr_identity)

        acc = RunningCVMean(QUANTITIES - Q_MEAN_DEV, KEEP_ROWS)
        per_slice = max(1, SLICE_ROWS // cs)

        def grow(a: int, b: int) -> None:
            # a slice of chunks at a time, folded in chunk order: memory independent
            # of the number of fits, results independent of the number of threads
            for lo in range(a, b, per_slice):
                with blas_single_thread(self.d):
                    parts = run_parallel(one, range(lo, min(b, lo + per_slice)), self.n_jobs,
                                         self.progress)
                acc.add(np.concatenate(parts)[:, Q_DIST:QUANTITIES])
                del parts

        target = self.tier * self._min_slope   # relative 95% half-width on f(n)

        def excess() -> float:
            # the distances' mean, with the fits' moments as control variates
            est, se, dof = acc.result(known)
            return (t975(dof) * se / abs(est)) / target if est != 0 else math.inf

        pilot = LARGE_D_PILOT if self.d >= config.LAPACK_MIN_D else max(4, math.ceil(64 / cs))
        budget = max(pilot * cs, min(2**24, int(config.MAX_REFERENCE_WORK
                                                 / config.group_cost(self.d))))
        adaptive_rounds(grow, cs, pilot, budget, excess)
        est, se, _ = acc.result(known)
        return est, se, acc.n

    def value(self, n: int) -> tuple[float, float]:
        """``f(n)`` and its standard error, computing and caching it if needed."""
        if n not in self.points and not self.use_cache:
            self.points[n] = self._compute(n)
            with _GUARD:
                _COMPUTED[0] += 1
        elif n not in self.points:
            with single_flight((self.path, n), self.progress.check):
                with _GUARD:
                    done = _LOADED.get(self.path, {}).get(n)
                if done is None:
                    done = self._compute(n)
                    with _GUARD:
                        _LOADED.setdefault(self.path, {})[n] = done
                        _COMPUTED[0] += 1
                self.points[n] = done
                self._dirty = True      # saved by whichever asker gets to save first
        f, se, _ = self.points[n]
        return f, se

    def save(self) -> None:
        """Write new points to the on-disk cache (merging with what is there)."""
        if not (self.use_cache and self._dirty):
            return
        with single_flight((self.path, -1), self.progress.check):   # -1: the file
            # one writer at a time in this process
            data = load_curve(self.path, self.key) or {"key": self.key, "points": {}}
            data["key"] = self.key
            for n, v in self.points.items():
                data["points"][str(n)] = list(v)
            save_curve(self.path, data)
            with _GUARD:
                _LOADED.setdefault(self.path, {}).update(
                    {int(k): tuple(v) for k, v in data["points"].items()})
        self._dirty = False

    # -- inversion -------------------------------------------------------------------
    def invert(self, y: float, n_guess: float = 100.0) -> Inversion:
        """Real ``n`` with ``f(n) = y``: PCHIP of ``log n`` against ``log f(n)``.

        Walks the grid from ``n_guess`` by doublings until ``y`` is bracketed,
        fills in the grid points of the bracket and one neighbour on each side,
        and interpolates. Returns ``n = None`` with ``below_two`` when ``y``
        exceeds ``f(2)``.
        """
        if not (y > 0 and math.isfinite(y)):
            raise ValueError(f"cannot invert the reference curve at {y!r}")
        g = GRID
        k = int(np.clip(np.searchsorted(g, n_guess), 0, len(g) - 1))
        if self.value(g[k])[0] > y:
            while self.value(g[k])[0] > y:
                if k == len(g) - 1:
                    raise ValueError("the limit is below the reference curve at n = 2^40")
                lo_k, k = k, min(k + 4, len(g) - 1)
            hi_k = k
        else:
            while self.value(g[k])[0] <= y:
                if k == 0:
                    return Inversion(None, math.nan, math.nan, below_two=True)
                hi_k, k = k, max(k - 4, 0)
            lo_k = k
        # lo_k: f > y ; hi_k: f <= y. Narrow to adjacent grid points.
        while hi_k - lo_k > 1:
            mid = (lo_k + hi_k) // 2
            if self.value(g[mid])[0] > y:
                lo_k = mid
            else:
                hi_k = mid
        ks = [k for k in (lo_k - 1, lo_k, hi_k, hi_k + 1) if 0 <= k < len(g)]
        ns = np.array([g[k] for k in ks], dtype=float)
        vals = np.array([self.value(g[k]) for k in ks])
        self.save()
        f, se = vals[:, 0], vals[:, 1]
        lf, ln = np.log(f), np.log(ns)
        if np.all(np.diff(lf) < 0):
            x, yy = lf[::-1], ln[::-1]
        else:   # not monotone in the outer points: use the bracketing pair only
            j = ks.index(lo_k)
            x, yy = lf[j:j + 2][::-1], ln[j:j + 2][::-1]
        logn, dlogn = pchip(x, yy, math.log(y))
        slope = 1.0 / dlogn if dlogn != 0 else -math.inf
        rel_se = float(np.interp(logn, ln, se / f))
        curve_rel_hw = config.Z95 * rel_se / abs(slope)
        return Inversion(math.exp(logn), slope, curve_rel_hw)

    def log_slope(self, n: int) -> float:
        """``d log f / d log n`` at grid-adjacent ``n`` by a centred difference."""
        g = GRID
        k = int(np.clip(np.searchsorted(g, n), 1, len(g) - 2))
        f0, f1 = self.value(g[k - 1])[0], self.value(g[k + 1])[0]
        self.save()
        return (math.log(f1) - math.log(f0)) / (math.log(g[k + 1]) - math.log(g[k - 1]))
