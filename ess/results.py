"""Result objects: one dataclass per answer, each with ``to_dict()`` for JSON."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    return v


def _tuples(v):
    """Lists back to the tuples of a result's intervals (JSON has only lists)."""
    if isinstance(v, list):
        return tuple(_tuples(x) for x in v)
    if isinstance(v, dict):
        return {k: _tuples(x) for k, x in v.items()}
    return v


class _Result:
    """Conversions shared by the result classes."""

    def to_dict(self) -> dict:
        """JSON-ready dictionary with the keys of SPEC section 5 (and diagnostics);
        non-finite numbers become ``None``."""
        return _clean(asdict(self))

    def raw(self) -> dict:
        """Every field as JSON data, non-finite numbers kept (for the result store)."""
        return asdict(self)

    @classmethod
    def from_raw(cls, data: dict, **changes):
        """Rebuild a result from :meth:`raw` output (as read back from JSON)."""
        kw = {}
        for f in fields(cls):
            if f.name in data:
                v = data[f.name]
                # lists of records stay lists; intervals inside them become tuples
                kw[f.name] = [_tuples(x) for x in v] if f.name in ("scan", "rows") else _tuples(v)
        kw.update(changes)
        return cls(**kw)


@dataclass
class EstimateResult(_Result):
    """The limit ``WD(n_r, n_s, lam)`` and the effective sample size ``n_e``.

    ``wd_ci``, ``n_e_ci`` and ``n_e_over_n_r_ci`` are 95% intervals ``(low,
    high)``; ``n_e`` is ``None`` when the limit is worse than a fit on two
    real samples (``note`` says so). ``precision_reached`` tells whether the
    relative 95% half-width on ``n_e`` met ``rel_precision`` within
    ``max_chains``; ``converged`` is false when the first and second halves of
    the kept window differ significantly (``drift_z`` standard errors).
    ``from_store`` tells that the answer was read from the result store
    (:mod:`ess.store`) rather than computed; ``seconds`` is the time this
    answer took, computing or reading.
    """

    d: int
    n_r: int
    n_s: int
    lam: float
    loop: str
    metric: str
    cov_estimator: str
    memory: int | str
    n_ini: int
    seed: int
    rel_precision: float
    wd: float
    wd_se: float
    wd_ci: tuple[float, float]
    n_e: float | None
    n_e_ci: tuple[float, float] | None
    n_e_over_n_r: float | None
    n_e_over_n_r_ci: tuple[float, float] | None
    n_e_rel_halfwidth: float
    chains: int
    generations: int
    burn_in: int
    precision_reached: bool
    converged: bool
    drift_z: float
    seconds: float
    note: str = ""
    from_store: bool = False


@dataclass
class ThresholdResult(_Result):
    """The admissible threshold ``n_s*(n_r, lam)``.

    ``n_s_star`` is the largest integer ``n_s`` with ``n_e >= n_r``, ``None``
    when ``n_e >= n_r`` all the way to ``cap`` (no threshold up to the cap), and
    ``0`` when no positive amount is admissible. ``n_s_star_ci`` is a 95%
    interval: from the largest ``n_s`` decisively admissible to the largest
    ``n_s`` not decisively inadmissible (``None`` for "beyond the cap").
    ``scan`` lists every evaluated ``n_s`` with the excess ``WD(n_s) - f(n_r)``
    (negative means admissible) and its standard error. ``from_store`` and
    ``seconds`` are those of :class:`EstimateResult`.
    """

    d: int
    n_r: int
    lam: float
    metric: str
    cov_estimator: str
    memory: int | str
    seed: int
    rel_precision: float
    n_s_star: int | None
    n_s_star_ci: tuple[int, int | None]
    cap: int
    evaluations: int
    precision_reached: bool
    seconds: float
    scan: list[dict] = field(default_factory=list)
    note: str = ""
    from_store: bool = False


@dataclass
class SimulateResult(_Result):
    """Per-generation summaries of ``chains`` trajectories of one loop.

    ``rows`` has one dictionary per generation with the mean, median, 5% and
    95% quantiles of ``dist``, ``|mu - mu_r|`` and ``tr Sigma / d``.
    """

    d: int
    n_r: int
    n_s: int
    lam: float
    loop: str
    metric: str
    cov_estimator: str
    memory: int | str
    n_ini: int
    seed: int
    chains: int
    generations: int
    seconds: float
    rows: list[dict] = field(default_factory=list)
