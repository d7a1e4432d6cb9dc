"""Request and response models of ``ess serve`` (published at ``/openapi.json``).

Request models state the package's ranges (:mod:`ess.config`) and defaults
(:mod:`ess.defaults`); a server's own, possibly tighter, limits are checked by
the service after them (:class:`ess.service.state.Service`). Response models are
derived from the result types (:mod:`ess.results`): one field per dataclass field
(plus ``verdict`` for an estimate), so that a field added to a result reaches
the JSON answer and its schema without being restated here.
"""

from __future__ import annotations

import dataclasses
import functools
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, create_model

from ess import config, defaults
from ess.generations import QUANTITIES, STATISTICS
from ess.params import COV_ESTIMATORS, LOOP_ALIASES, LOOPS, METRICS
from ess.request import LIMIT_LOOPS, MAX_REL_PRECISION, MIN_REL_PRECISION
from ess.results import EstimateResult, Interval, SimulateResult, ThresholdResult

#: Every loop name a request may give: the loop kinds and their aliases.
LOOP_NAMES = LOOPS + tuple(LOOP_ALIASES)

#: What each field means: the descriptions shown at ``/docs``, shared by requests
#: and answers. Ranges and defaults are added from :mod:`ess.config` and
#: :mod:`ess.defaults`.
FIELD_DOCS: dict[str, str] = {
    "d": "dimension of the Gaussian",
    "n_r": "real samples per generation",
    "n_s": "synthetic samples per generation",
    "lam": "sampling bias: synthetic samples are drawn from N(mu, lam Sigma) of the previous "
           "generation's model",
    "guidance": "classifier-free guidance w, instead of lam: lam = 1/(1+w)",
    "loop": "loop kind: fresh (new real samples every generation), augmentation (one fixed "
            "real set), fully-synthetic (alias replace), accumulate or accumulate-subsample",
    "metric": "distance to the real distribution P_r: w2sq (squared 2-Wasserstein) or w2",
    "cov_estimator": "covariance divisor: unbiased (n - 1) or mle (n)",
    "memory": "past models feeding the synthetic samples: K, or 'all'",
    "n_ini": "size of the first real set",
    "seed": "seed: the same seed gives the same numbers",
    "rel_precision": "wanted relative 95% half-width on n_e",
    "max_chains": "chain budget of the computation",
    "mu_r": "mean of P_r",
    "sigma_r": "covariance of P_r: its diagonal, or the full matrix",
    "cap": "largest n_s searched",
    "wd": "the limit WD(n_r, n_s, lam): the loop's expected distance to P_r in the long run",
    "wd_se": "standard error of wd",
    "wd_ci": "95% interval of wd: [low, high]",
    "n_e": "effective sample size: the number of real samples whose plain fit is as close to "
           "P_r as the loop's limit (null when the limit is worse than a fit on 2)",
    "n_e_ci": "95% interval of n_e: [low, high]",
    "n_e_over_n_r": "n_e / n_r: above 1, the synthetic samples help",
    "n_e_over_n_r_ci": "95% interval of n_e / n_r: [low, high]",
    "n_e_rel_halfwidth": "relative 95% half-width reached on n_e",
    "chains": "chains run",
    "generations": "generations per chain",
    "rows": "one row per generation, from the first model (generation 1, fit on n_ini real "
            "samples)",
    "generation": "generation t, from 1",
    "burn_in": "generations discarded before the averaged window",
    "precision_reached": "whether rel_precision was reached within max_chains",
    "converged": "false when the two halves of the averaged window differ significantly",
    "drift_z": "difference between the two halves of the averaged window, in standard errors",
    "seconds": "time this answer took, computing or reading",
    "note": "remarks on the answer, in words (empty if none)",
    "max_work": "work budget of one computation (work units) the answer was computed under",
    "budget_note": "what the work budget cut, in words, with the budget that would not "
                   "have cut it (empty if nothing)",
    "cap_lowered_from": "the cap asked for (100 n_r by default) when the work budget lowered "
                        "it to cap (null if it was not lowered)",
    "from_store": "the answer was read from the result store rather than computed",
    "verdict": "what the synthetic samples do to n_e: 'no synthetic data', 'helps', "
               "'hurts', 'no significant effect' or 'n_e below 2'",
    "n_s_star": "admissible threshold: the largest n_s with n_e >= n_r (null when n_e >= n_r "
                "all the way to the cap)",
    "n_s_star_ci": "95% interval of n_s_star: [low, high], high null for 'beyond the cap'",
    "evaluations": "values of n_s evaluated",
    "scan": "every evaluated n_s, with its excess WD(n_s) - f(n_r)",
    "excess": "WD(n_s) - f(n_r): negative means admissible",
    "excess_se": "standard error of the excess",
    "excess_ci": "95% interval of the excess: [low, high]",
}


def _doc(name: str, extra: str = "") -> str:
    return FIELD_DOCS[name] + (f" ({extra})" if extra else "")


# -- requests ------------------------------------------------------------------------------
def _int(name: str, default: Any, lo: int, hi: int, extra: str = "") -> Any:
    return Field(default, strict=True, ge=lo, le=hi, description=_doc(name, extra))


def _float(name: str, default: Any, lo: float, hi: float, extra: str = "") -> Any:
    return Field(default, strict=True, ge=lo, le=hi, allow_inf_nan=False,
                 description=_doc(name, extra))


Finite = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Count = Annotated[int, Field(strict=True, ge=0, le=config.MAX_COUNT)]
RealCount = Annotated[int, Field(strict=True, ge=2, le=config.MAX_COUNT)]
Lam = Annotated[float, Field(strict=True, ge=0.0, le=1.0, allow_inf_nan=False)]
Guidance = Annotated[float, Field(strict=True, ge=0.0, le=1e12, allow_inf_nan=False)]
Memory = Annotated[int, Field(strict=True, ge=1, le=config.MAX_GENERATIONS)] | Literal["all"]
Vector = Annotated[list[Finite], Field(min_length=1, max_length=config.MAX_D)]
Matrix = Annotated[list[Vector], Field(min_length=1, max_length=config.MAX_D)]

#: How a server's limits reach the description of the fields they bound.
_SERVER_LIMIT = "a server may accept less: see its limit {} in the API description"


class ModelIn(BaseModel):
    """Fields of the model shared by every computing request (names and meanings as on
    the ``ess`` command line; see ``docs/contract.md``)."""

    model_config = ConfigDict(extra="forbid")

    d: int | None = _int("d", None, 1, config.MAX_D,
                         f"default: the length of mu_r or sigma_r, else {defaults.D}; "
                         + _SERVER_LIMIT.format("max_d"))
    n_ini: int | None = _int("n_ini", None, 2, config.MAX_COUNT, "default n_r")
    memory: Memory = Field(defaults.MEMORY, description=_doc("memory"))
    metric: Literal[METRICS] = Field(defaults.METRIC, description=_doc("metric"))
    cov_estimator: Literal[COV_ESTIMATORS] = Field(defaults.COV_ESTIMATOR,
                                                   description=_doc("cov_estimator"))
    seed: int = _int("seed", defaults.SEED, 0, 2**63 - 1)
    mu_r: Vector | None = Field(None, description=_doc("mu_r", "default 0"))
    sigma_r: Vector | Matrix | None = Field(None, description=_doc("sigma_r",
                                                                   "default identity"))


class ComputingIn(ModelIn):
    """Fields shared by the requests that estimate limits (``estimate``, ``threshold``,
    tables and heatmaps)."""

    rel_precision: float = _float("rel_precision", defaults.REL_PRECISION, MIN_REL_PRECISION,
                                  MAX_REL_PRECISION)
    max_chains: int = _int("max_chains", defaults.MAX_CHAINS, 1, config.MAX_CHAINS,
                           "a server may accept less, and then lowers the default to its "
                           "limit max_chains")


class EstimateIn(ComputingIn):
    """``POST /v1/estimate``: the limit of one loop and its effective sample size."""

    n_r: int = _int("n_r", defaults.N_R, 2, config.MAX_COUNT)
    n_s: int = _int("n_s", defaults.N_S, 0, config.MAX_COUNT)
    lam: Lam | None = Field(None, description=_doc("lam", f"in [0, 1], default {defaults.LAM:g}"))
    guidance: Guidance | None = Field(None, description=_doc("guidance"))
    loop: Literal[LOOP_NAMES] = Field(
        defaults.LOOP, description=_doc("loop", f"only {' and '.join(LIMIT_LOOPS)} have a "
                                                "limit; the others are refused with a pointer "
                                                "to /v1/simulate"))


class ThresholdIn(ComputingIn):
    """``POST /v1/threshold``: the admissible threshold ``n_s*(n_r, lam)``."""

    n_r: int = _int("n_r", defaults.N_R, 2, config.MAX_COUNT)
    lam: Lam | None = Field(None, description=_doc("lam", f"in [0, 1], default "
                                                          f"{defaults.THRESHOLD_LAM:g}"))
    guidance: Guidance | None = Field(None, description=_doc("guidance"))
    cap: int | None = _int("cap", None, 1, config.MAX_COUNT,
                           f"default {defaults.CAP_PER_N_R} n_r, lowered where too expensive")


class SimulateIn(ModelIn):
    """``POST /v1/simulate``: ``chains`` trajectories of one loop kind, or of each of a
    list of them, summarised per generation with ``n_e(t)``."""

    n_r: int = _int("n_r", defaults.N_R, 2, config.MAX_COUNT)
    n_s: int = _int("n_s", defaults.N_S, 0, config.MAX_COUNT)
    lam: Lam | None = Field(None, description=_doc("lam", f"in [0, 1], default {defaults.LAM:g}"))
    guidance: Guidance | None = Field(None, description=_doc("guidance"))
    loop: Literal[LOOP_NAMES] | Annotated[list[Literal[LOOP_NAMES]], Field(
        min_length=1, max_length=len(LOOP_NAMES))] = Field(
        defaults.LOOP, description=_doc("loop", "or a list of them, without repeats: every "
                                                "loop of the list with the same parameters "
                                                "and seed"))
    chains: int = _int("chains", defaults.CHAINS, 1, config.MAX_CHAINS,
                       "independent trajectories; " + _SERVER_LIMIT.format("max_chains"))
    generations: int = _int("generations", defaults.GENERATIONS, 1, config.MAX_GENERATIONS,
                            "counting the first fit")


def _values(name: str, default: tuple | None = None) -> str:
    shown = f", default [{', '.join(f'{v:g}' for v in default)}]" if default else ""
    return f"{FIELD_DOCS[name]}: the grid's values{shown}"


class TableIn(ComputingIn):
    """``POST /v1/table``: every ``(n_r, n_s, lam)`` of a grid."""

    n_r: list[RealCount] = Field(list(defaults.TABLE_N_R), min_length=1,
                                 max_length=config.MAX_GRID,
                                 description=_values("n_r", defaults.TABLE_N_R))
    n_s: list[Count] = Field(list(defaults.TABLE_N_S), min_length=1, max_length=config.MAX_GRID,
                             description=_values("n_s", defaults.TABLE_N_S))
    lam: list[Lam] | None = Field(None, min_length=1, max_length=config.MAX_GRID,
                                  description=_values("lam", defaults.TABLE_LAM))
    guidance: list[Guidance] | None = Field(None, min_length=1, max_length=config.MAX_GRID,
                                            description=_values("guidance"))


class ThresholdGridIn(ComputingIn):
    """``POST /v1/figures/threshold-heatmap``: the threshold of every ``(n_r, lam)``
    of a grid, drawn as ``ess heatmap`` draws it."""

    n_r: list[RealCount] = Field(list(defaults.HEATMAP_N_R), min_length=1,
                                 max_length=config.MAX_GRID,
                                 description=_values("n_r", defaults.HEATMAP_N_R))
    lam: list[Lam] | None = Field(None, min_length=1, max_length=config.MAX_GRID,
                                  description=_values("lam", defaults.HEATMAP_LAM))
    guidance: list[Guidance] | None = Field(None, min_length=1, max_length=config.MAX_GRID,
                                            description=_values("guidance"))
    cap: int | None = _int("cap", None, 1, config.MAX_COUNT,
                           f"default {defaults.CAP_PER_N_R} n_r, lowered where too expensive")


# -- answers derived from the result types -------------------------------------------------
#: A JSON number: integers stay integers (an interval of ``n_s``), floats stay floats.
Number = Annotated[int | float, WithJsonSchema({"type": "number"})]
#: An :class:`ess.results.Interval`: ``[low, high]``, ``null`` where not finite.
Pair = Annotated[list[Number | None], Field(min_length=2, max_length=2)]


#: The request models, whose fields' ranges :func:`field_ranges` collects.
INPUT_MODELS = (EstimateIn, ThresholdIn, SimulateIn, TableIn, ThresholdGridIn)


def _bounds(prop: dict) -> tuple[float, float, bool] | None:
    """``(minimum, maximum, integer)`` of a JSON-schema property, of its items, or of
    its first bounded ``anyOf`` branch; ``None`` when it has no two-sided range."""
    branches = [prop, *prop.get("anyOf", ())]
    for b in branches + [x.get("items", {}) for x in branches]:
        if "minimum" in b and "maximum" in b:
            return b["minimum"], b["maximum"], b.get("type") == "integer"
    return None


@functools.cache
def field_ranges() -> dict[str, tuple[float, float, bool]]:
    """The allowed range of each bounded request field (or of its list's entries), by
    name, read from :data:`INPUT_MODELS`' JSON schemas, so that a refusal can name
    both ends as the command line does; a name bounded differently in two models is
    left out."""
    ranges: dict[str, tuple[float, float, bool]] = {}
    clash: set[str] = set()
    for model in INPUT_MODELS:
        for name, prop in model.model_json_schema()["properties"].items():
            b = _bounds(prop)
            if b is not None and ranges.setdefault(name, b) != b:
                clash.add(name)
    return {k: v for k, v in ranges.items() if k not in clash}


def json_type(tp: Any) -> Any:
    """The type of a result field in JSON: an :class:`~ess.results.Interval` is a
    :data:`Pair`, a float is a number or ``null`` (``to_dict()`` turns non-finite
    numbers into ``null``); ``int``, ``str`` and ``bool`` stay, unions map member
    by member.

    Raises
    ------
    TypeError
        For a type with no JSON form here (give the field an override).
    """
    if tp is Interval:
        return Pair
    if tp is float:
        return Number | None
    if tp in (int, str, bool, type(None)):
        return tp
    if get_origin(tp) in (Union, types.UnionType):
        return Union[tuple(json_type(a) for a in get_args(tp))]  # noqa: UP007
    raise TypeError(f"no JSON form for {tp!r}: give the field an override")


def response_model(result: type, name: str, overrides: dict[str, Any] | None = None,
                   extra: dict[str, Any] | None = None) -> type[BaseModel]:
    """A response model with one required field per field of the dataclass ``result``,
    in order, typed by :func:`json_type`, described by :data:`FIELD_DOCS`.

    Parameters
    ----------
    result : type
        A result dataclass of :mod:`ess.results`.
    name : str
        The model's name in the OpenAPI schema.
    overrides : dict, optional
        JSON types of fields :func:`json_type` cannot map.
    extra : dict, optional
        Keys ``to_dict()`` adds after the fields (such as ``verdict``), with their
        JSON types.

    Returns
    -------
    type of pydantic.BaseModel
        Documented by ``result``'s docstring.
    """
    overrides = overrides or {}
    hints = get_type_hints(result)
    spec: dict[str, Any] = {}
    for f in dataclasses.fields(result):
        tp = overrides[f.name] if f.name in overrides else json_type(hints[f.name])
        spec[f.name] = (tp, Field(description=FIELD_DOCS.get(f.name)))
    for key, tp in (extra or {}).items():
        spec[key] = (tp, Field(description=FIELD_DOCS.get(key)))
    return create_model(name, __doc__=result.__doc__, **spec)


class ScanRow(BaseModel):
    """One evaluated ``n_s`` of a threshold search (the items of
    ``ThresholdResult.scan``, plain dictionaries with no type of their own)."""

    n_s: int = Field(description=FIELD_DOCS["n_s"])
    excess: Number | None = Field(description=FIELD_DOCS["excess"])
    excess_se: Number | None = Field(description=FIELD_DOCS["excess_se"])
    excess_ci: Pair = Field(description=FIELD_DOCS["excess_ci"])


def _row_fields() -> dict[str, Any]:
    """The fields of one generation's row (:func:`ess.generations.generation_rows`):
    ``<quantity>_<statistic>`` for every quantity and statistic, then ``n_e`` and its
    companions."""
    what = {"mean": "mean over chains of {}", "se": "standard error of {}_mean",
            "ci": "95% interval of {}_mean: [low, high]", "median": "median over chains of {}",
            "q05": "5% quantile over chains of {}", "q95": "95% quantile over chains of {}"}
    spec: dict[str, Any] = {"generation": (int, Field(description=FIELD_DOCS["generation"]))}
    for q in QUANTITIES:
        for stat in STATISTICS:
            tp = Pair if stat == "ci" else Number | None
            spec[f"{q}_{stat}"] = (tp, Field(description=what[stat].format(q)))
    spec.update(
        n_e=(Number | None, Field(description="n_e(t): the n with f(n) = E dist(G^t, P_r) "
                                              "(null when below 2)")),
        n_e_ci=(Pair | None, Field(description=FIELD_DOCS["n_e_ci"] + ", from the Monte-Carlo "
                                   "error of E dist(G^t, P_r) and the curve's")),
        n_e_over_n_r=(Number | None, Field(description=FIELD_DOCS["n_e_over_n_r"])),
        n_e_over_n_r_ci=(Pair | None, Field(description=FIELD_DOCS["n_e_over_n_r_ci"])),
        n_e_note=(str, Field(description="'below 2' when E dist(G^t, P_r) exceeds f(2), "
                                         "else empty")))
    return spec


SimulateRow = create_model("SimulateRow", __doc__="One generation of a simulation: each "
                           "quantity's statistics over chains, then n_e(t).", **_row_fields())

EstimateOut = response_model(EstimateResult, "EstimateOut", extra={"verdict": str})
SimulateOut = response_model(SimulateResult, "SimulateOut",
                             overrides={"rows": list[SimulateRow]})
ThresholdOut = response_model(ThresholdResult, "ThresholdOut",
                              overrides={"scan": list[ScanRow]})


class SimulateLoopsOut(BaseModel):
    """A simulation of a list of loops: one answer per loop, in the order given (as
    ``ess simulate --json`` prints it)."""

    loops: list[SimulateOut] = Field(description="one simulation per loop")


class TableOut(BaseModel):
    """A table: one estimate per cell, ``n_r`` outermost, then ``n_s``, then ``lam``."""

    d: int = Field(description=FIELD_DOCS["d"])
    metric: str = Field(description=FIELD_DOCS["metric"])
    cov_estimator: str = Field(description=FIELD_DOCS["cov_estimator"])
    cells: int = Field(description="cells of the table")
    rows: list[EstimateOut] = Field(description="one estimate per cell")
    from_store: bool = Field(description="every cell came from the store")
    seconds: float = Field(description=FIELD_DOCS["seconds"])


class JobOut(BaseModel):
    """A table computed in the background."""

    id: str
    status: Literal["queued", "running", "done", "failed", "cancelled"]
    done: int = Field(description="cells finished")
    total: int = Field(description="cells in all")
    created: float = Field(description="Unix time")
    started: float | None = Field(description="Unix time (null until it starts)")
    finished: float | None = Field(description="Unix time (null until it ends)")
    result: TableOut | None = Field(description="the table, once done")
    error: str | None = Field(description="why it failed, if it did")


class RefPoint(BaseModel):
    """``f(n)`` and its standard error."""

    n: int
    f: float
    se: float


class ReferenceOut(BaseModel):
    """The cached reference curve ``f(n)`` (the expected distance to ``P_r`` of a fit
    on ``n`` real samples) of one model class."""

    d: int = Field(description=FIELD_DOCS["d"])
    metric: str = Field(description=FIELD_DOCS["metric"])
    cov_estimator: str = Field(description=FIELD_DOCS["cov_estimator"])
    rel_precision: float = Field(description="the curve serves estimates at this precision")
    tier: float = Field(description="precision tier of the curve's points")
    points: list[RefPoint]
    from_store: bool = Field(description="every reported point was already cached")
    seconds: float = Field(description=FIELD_DOCS["seconds"])


class HealthOut(BaseModel):
    """Liveness and load."""

    status: Literal["ok", "stopping"]
    running: int = Field(description="computations running")
    queued: int = Field(description="computations waiting for a worker")
    workers: int = Field(description="this server's limit workers")
    max_queue: int = Field(description="this server's limit max_queue")
    jobs: int = Field(description="table jobs kept")
    uptime_seconds: float
    store: str | None = Field(description="the result store's folder (null for a client "
                                          "without a token)")
    store_bytes: int = Field(description="size of the result store's entries")
    store_entries: int = Field(description="entries in the result store")
    store_max_bytes: int | None = Field(description="this server's bound on the store "
                                                    "(--store-max-mb; null: none)")
    store_writable: bool = Field(description="whether answers can be stored (false: a "
                                             "read-only or full disk; every request computes)")
    rss_mib: float | None = Field(description="this server process's resident memory now, "
                                          "MiB (null where the system does not say)")
    peak_rss_mib: float | None = Field(description="its peak resident memory since it "
                                               "started, MiB")
    curve_points_computed: int = Field(description="reference-curve points this server "
                                                   "computed (each once, however many "
                                                   "requests asked for it at the same time)")
    tokens: bool = Field(description="whether /v1/ requests need an access token")


class VersionOut(BaseModel):
    """Versions of ess and of what computes its numbers."""

    ess: str
    api: str
    python: str | None = Field(None, description="for clients with a token only")
    numpy: str | None = Field(None, description="for clients with a token only")
    numba: str | None = Field(None, description="for clients with a token only")


class ErrorItem(BaseModel):
    """One reason a request was refused: ``loc`` is ``["body" or "query", field, ...]``."""

    loc: list[str | int]
    msg: str = Field(description="names the field, and the limit when over one")
    type: str = Field(description="the check that failed; limit.<name> for a server limit")


class ValidationOut(BaseModel):
    """Body of a ``422``."""

    detail: list[ErrorItem]


class MessageOut(BaseModel):
    """Body of a ``404``, ``429`` or ``503``."""

    detail: str
