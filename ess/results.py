"""Result objects: one frozen dataclass per answer, with ``to_dict()`` for JSON and
``to_frame()`` for pandas.

Intervals are :class:`Interval` pairs ``(low, high)``. Tables and threshold grids
come back as :class:`TableResult` and :class:`ThresholdGridResult`: sequences of
the cells' results whose ``to_frame()`` has the columns of the CSV files that
``ess table`` and ``ess heatmap`` write (intervals as ``<name>_ci_low`` and
``<name>_ci_high``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from typing import ClassVar, Generic, NamedTuple, TypeVar


class Interval(NamedTuple):
    """A 95% confidence interval; ``high`` is ``None`` where it is unbounded
    (a threshold beyond the cap)."""

    low: float
    high: float | None


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    return v


def _tuples(v):
    """Lists back to tuples (JSON has only lists); ``*_ci`` pairs to :class:`Interval`."""
    if isinstance(v, list):
        return tuple(_tuples(x) for x in v)
    if isinstance(v, dict):
        return {k: (Interval(*x) if k.endswith("_ci") and isinstance(x, list) else _tuples(x))
                for k, x in v.items()}
    return v


def _num(v) -> str:
    """A number for a ``repr``: four significant digits whatever its size."""
    if v is None:
        return "None"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


class _Result:
    """Conversions shared by the result classes."""

    #: Columns of the result's row in a CSV table and in :meth:`to_frame`.
    COLUMNS: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict:
        """JSON-ready dictionary with the keys of the contract (``docs/contract.md``)
        and diagnostics; non-finite numbers become ``None``."""
        return _clean(asdict(self))

    def raw(self) -> dict:
        """Every field as JSON data, non-finite numbers kept (for the result store)."""
        return asdict(self)

    def to_row(self) -> dict:
        """The flat row of a table: :attr:`COLUMNS`, each interval as two columns."""
        d = self.to_dict()
        for f in fields(self):
            if f.name.endswith("_ci"):
                d[f"{f.name}_low"], d[f"{f.name}_high"] = d[f.name] or (None, None)
        return {k: d.get(k) for k in self.COLUMNS}

    def to_frame(self):
        """A one-row :class:`pandas.DataFrame` with the columns of :meth:`to_row`."""
        import pandas as pd

        return pd.DataFrame([self.to_row()], columns=list(self.COLUMNS))

    @classmethod
    def from_raw(cls, data: dict, **changes):
        """Rebuild a result from :meth:`raw` output (as read back from JSON)."""
        kw = {}
        for f in fields(cls):
            if f.name in data:
                v = data[f.name]
                if f.name.endswith("_ci") and isinstance(v, list):
                    kw[f.name] = Interval(*v)
                else:
                    kw[f.name] = _tuples(v)
        kw.update(changes)
        return cls(**kw)


@dataclass(frozen=True, repr=False)
class EstimateResult(_Result):
    """The limit ``WD(n_r, n_s, lam)`` and the effective sample size ``n_e``.

    ``wd_ci``, ``n_e_ci`` and ``n_e_over_n_r_ci`` are 95% intervals ``(low,
    high)``; ``n_e`` is ``None`` when the limit is worse than a fit on two
    real samples (``note`` says so). ``precision_reached`` tells whether the
    relative 95% half-width on ``n_e`` met ``rel_precision`` within
    ``max_chains``; ``converged`` is false when the first and second halves of
    the kept window differ significantly (``drift_z`` standard errors).
    ``budget_note`` is not empty when the work budget ``max_work`` stopped the
    chains before ``rel_precision``: it gives the budget that would have sufficed.
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
    wd_ci: Interval
    n_e: float | None
    n_e_ci: Interval | None
    n_e_over_n_r: float | None
    n_e_over_n_r_ci: Interval | None
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
    #: The work budget of the computation (``None`` in answers stored before it existed).
    max_work: float | None = None
    #: What the work budget cut, with the budget that would have sufficed ("" if nothing).
    budget_note: str = ""

    COLUMNS: ClassVar[tuple[str, ...]] = (
        "d", "metric", "cov_estimator", "loop", "memory", "n_r", "n_s", "lam",
        "wd", "wd_ci_low", "wd_ci_high", "n_e", "n_e_ci_low", "n_e_ci_high",
        "n_e_over_n_r", "n_e_over_n_r_ci_low", "n_e_over_n_r_ci_high", "verdict",
        "precision_reached", "converged", "chains", "generations", "burn_in", "seed",
        "rel_precision", "note")

    @property
    def verdict(self) -> str:
        """What the synthetic data do to ``n_e``, in words: ``"no synthetic data"``
        (``n_s = 0``), ``"helps"`` or ``"hurts"`` (the 95% interval of ``n_e / n_r``
        above or below 1), ``"no significant effect"``, or ``"n_e below 2"``."""
        if self.n_s == 0:
            return "no synthetic data"
        if self.n_e_over_n_r_ci is None:
            return "n_e below 2"
        lo, hi = self.n_e_over_n_r_ci
        return "helps" if lo > 1.0 else "hurts" if hi < 1.0 else "no significant effect"

    def to_dict(self) -> dict:
        """JSON-ready dictionary (see :meth:`_Result.to_dict`), with the verdict."""
        return {**super().to_dict(), "verdict": self.verdict}

    def __repr__(self) -> str:
        ne = "n_e < 2" if self.n_e is None else (
            f"n_e={_num(self.n_e)} [{_num(self.n_e_ci[0])}, {_num(self.n_e_ci[1])}], "
            f"n_e/n_r={_num(self.n_e_over_n_r)}")
        return (f"EstimateResult({self.loop}, d={self.d}, n_r={self.n_r}, n_s={self.n_s}, "
                f"lam={_num(self.lam)}: wd={_num(self.wd)}, {ne}, {self.verdict})")


@dataclass(frozen=True, repr=False)
class ThresholdResult(_Result):
    """The admissible threshold ``n_s*(n_r, lam)``.

    ``n_s_star`` is the largest integer ``n_s`` with ``n_e >= n_r``, ``None``
    when ``n_e >= n_r`` all the way to ``cap`` (no threshold up to the cap), and
    ``0`` when no positive amount is admissible. ``n_s_star_ci`` is a 95%
    interval: from the largest ``n_s`` decisively admissible to the largest
    ``n_s`` not decisively inadmissible (``None`` for "beyond the cap").
    ``scan`` lists every evaluated ``n_s`` with the excess ``WD(n_s) - f(n_r)``
    (negative means admissible) and its standard error. ``from_store`` and
    ``seconds`` are those of :class:`EstimateResult`. ``cap_lowered_from`` is the
    default cap ``100 n_r`` when the work budget ``max_work`` lowered it to ``cap``
    (``None`` otherwise), and ``budget_note`` says so with the budget the full cap needs.
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
    n_s_star_ci: Interval
    cap: int
    evaluations: int
    precision_reached: bool
    seconds: float
    scan: tuple[dict, ...] = ()
    note: str = ""
    from_store: bool = False
    cap_lowered_from: int | None = None
    max_work: float | None = None
    budget_note: str = ""

    COLUMNS: ClassVar[tuple[str, ...]] = (
        "d", "metric", "cov_estimator", "memory", "n_r", "lam", "n_s_star",
        "n_s_star_ci_low", "n_s_star_ci_high", "cap", "evaluations", "precision_reached",
        "seed", "rel_precision", "note")

    def __repr__(self) -> str:
        lo, hi = self.n_s_star_ci
        star = (f"none up to the cap {self.cap}" if self.n_s_star is None
                else f"n_s*={self.n_s_star} [{lo}, {'beyond the cap' if hi is None else hi}]")
        return f"ThresholdResult(d={self.d}, n_r={self.n_r}, lam={_num(self.lam)}: {star})"


@dataclass(frozen=True, repr=False)
class SimulateResult(_Result):
    """Per-generation summaries of ``chains`` trajectories of one loop.

    ``rows`` has one dictionary per generation ``t`` (``"generation"``, from 1): for
    each quantity of :data:`ess.generations.QUANTITIES` (``dist``, ``mean_dev`` =
    ``|mu - mu_r|``, ``tr_sigma_over_d``, ``log_det_sigma``, ``frob_dev`` =
    ``||Sigma - Sigma_r||_F``, ``min_eig``) its mean over chains with the standard
    error (``_se``) and 95% interval (``_ci``, an :class:`Interval`) of that mean, and
    the median and 5% / 95% quantiles of the chains; then the effective sample size
    ``n_e`` with ``f(n_e) = E dist(G^t, P_r)`` (``None`` when below 2), ``n_e_ci``,
    ``n_e_over_n_r``, ``n_e_over_n_r_ci`` and ``n_e_note`` (``"below 2"`` or ``""``).
    An interval end is ``None`` where it is unbounded or below 2.
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
    rows: tuple[dict, ...] = ()

    def to_frame(self):
        """The per-generation rows as a :class:`pandas.DataFrame` (the columns of
        the CSV that ``ess simulate`` writes): each interval as two columns
        ``<name>_ci_low`` and ``<name>_ci_high``."""
        import pandas as pd

        return pd.DataFrame(_flat_rows(self.rows))

    def __repr__(self) -> str:
        return (f"SimulateResult({self.loop}, d={self.d}, n_r={self.n_r}, n_s={self.n_s}, "
                f"lam={_num(self.lam)}: {self.chains} chains x {self.generations} "
                "generations)")


def _flat_rows(rows) -> list[dict]:
    """Rows with each interval ``<name>_ci`` as ``<name>_ci_low`` and ``<name>_ci_high``."""
    out = []
    for row in rows:
        r = {}
        for key, v in row.items():
            if key.endswith("_ci"):
                r[f"{key}_low"], r[f"{key}_high"] = (None, None) if v is None else tuple(v)
            else:
                r[key] = v
        out.append(r)
    return out


R = TypeVar("R", bound=_Result)


@dataclass(frozen=True, repr=False)
class _Grid(Sequence[R], Generic[R]):
    """The results of every cell of a grid, in the grid's order."""

    results: tuple[R, ...]

    def __getitem__(self, i):
        return self.results[i]

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Iterator[R]:
        return iter(self.results)

    def to_dicts(self) -> list[dict]:
        """Every cell's :meth:`~_Result.to_dict`."""
        return [r.to_dict() for r in self.results]

    def to_rows(self) -> list[dict]:
        """Every cell's flat table row (:meth:`~_Result.to_row`)."""
        return [r.to_row() for r in self.results]

    def to_frame(self):
        """A :class:`pandas.DataFrame`, one row per cell, with the CSV's columns."""
        import pandas as pd

        cols = list(self.results[0].COLUMNS) if self.results else []
        return pd.DataFrame(self.to_rows(), columns=cols)

    def __repr__(self) -> str:
        head = ""
        if self.results:
            r = self.results[0]
            head = f", d={r.d}, metric={r.metric}, {r.cov_estimator}"
        return f"{type(self).__name__}({len(self)} cells{head})"


class TableResult(_Grid[EstimateResult]):
    """:func:`ess.table`'s answer: an :class:`EstimateResult` per ``(n_r, n_s, lam)``."""


class ThresholdGridResult(_Grid[ThresholdResult]):
    """:func:`ess.threshold_grid`'s answer: a :class:`ThresholdResult` per ``(n_r, lam)``."""


class SimulateGridResult(_Grid[SimulateResult]):
    """:func:`ess.simulate`'s answer for a list of loops: a :class:`SimulateResult` per
    loop, in the order given (the same seed, so the loops that draw no real data after
    the first set start every chain from the same real set)."""

    def to_rows(self) -> list[dict]:
        """Every loop's flat rows (:meth:`SimulateResult.to_frame`'s columns) after a
        ``loop`` column."""
        return [{"loop": r.loop, **row} for r in self.results for row in _flat_rows(r.rows)]

    def to_frame(self):
        """A :class:`pandas.DataFrame`: one row per loop and generation, the columns of
        :meth:`SimulateResult.to_frame` after a ``loop`` column."""
        import pandas as pd

        return pd.DataFrame(self.to_rows())

    def __repr__(self) -> str:
        r = self.results[0] if self.results else None
        what = "" if r is None else (f": {', '.join(x.loop for x in self.results)}; d={r.d}, "
                                     f"n_r={r.n_r}, n_s={r.n_s}, lam={_num(r.lam)}")
        return f"SimulateGridResult({len(self)} loops{what})"


@dataclass(frozen=True, repr=False)
class ReferenceCurveResult:
    """The reference curve ``f(n) = E dist(G(n), P_r)`` at the requested ``n``.

    Attributes
    ----------
    n : tuple of int
        Sample sizes.
    f, f_se : tuple of float
        ``f(n)`` and its standard error (0 where it is exact), in the user's units.
    d, metric, cov_estimator : as requested.
    """

    d: int
    metric: str
    cov_estimator: str
    n: tuple[int, ...]
    f: tuple[float, ...]
    f_se: tuple[float, ...]

    def to_dict(self) -> dict:
        """JSON-ready dictionary."""
        return _clean(asdict(self))

    def to_frame(self):
        """Columns ``n``, ``f`` and ``f_se``."""
        import pandas as pd

        return pd.DataFrame({"n": self.n, "f": self.f, "f_se": self.f_se})

    def __repr__(self) -> str:
        return (f"ReferenceCurveResult(d={self.d}, metric={self.metric}, "
                f"{self.cov_estimator}, {len(self.n)} points)")
