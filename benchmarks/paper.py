"""The paper's own workloads, timed, beside the vectorised baseline's extrapolated time.

- **Fig. 11 grid**: ``n_e / n_r`` over ``lam`` in {0.7, 0.85, 1}, ``n_r`` in {100, 178, 316,
  562, 1000} and ``n_s`` in {100, 316, 1000, 3162, 10000} at ``d = 100``, ``rel_precision =
  0.02``: one ``ess.table`` call, the reference curve cached (a warm-up computes every
  point the grid inverts at, untimed), the result store off.
- **Fig. 12 thresholds**: ``n_s*`` for ``lam`` in {0.1, ..., 0.9} and ``n_r`` in {100, 250,
  1000} at ``d = 100``, 2%, default caps (``100 n_r``): one ``ess.threshold`` per cell,
  the reference curve cached, the store off.

The vectorised baseline (:mod:`benchmarks.baselines`) is not run on these grids (hours);
its time is extrapolated as :func:`benchmarks.suite.time_to_ne` does for single estimates:
it starts cold (``n_ini = n_r``), runs the burn-in that a cold start needs at the asked
precision (:func:`ess.plan.burn_in_for` without a warm start, the rule `ess` itself used
before its warm starts), keeps each chain's last generation, and needs
:func:`benchmarks.suite.chains_needed` chains for the half-width on ``WD`` that the cell's
``n_e`` precision asks (``rel * |d log f / d log n| * WD``); time = generation-steps / its
measured throughput at ``d`` (BLAS on one thread; a generation's cost does not depend on
``n_r``, ``n_s`` or ``lam`` with sufficient statistics). The spread of one generation's
distance at stationarity, which sets those chains, is measured on `ess`'s kernel
(:data:`SD_CHAINS` warm-started chains per cell; the same law as the baseline's, as
section 1 of the suite checks).

A threshold search by the baseline (:func:`baseline_search`) is priced as what a competent
user with vectorised NumPy would run: a bisection for the sign change of the excess
``WD(n_s) - f(n_r)`` (``f(n_r)`` given for free) over ``[1, cap]`` down to adjacent
integers (the resolution `ess` reports), each evaluation with the fewest chains whose 95%
interval excludes zero (``max(|excess|, target)`` as the half-width: decide the side, or
reach the precision `ess` asks of its own evaluations where the side cannot be decided),
no common random numbers. Two bisections are priced, one on ``n_s`` and one on ``log n_s``
(midpoints ``sqrt(lo hi)``, which spends fewer evaluations at large ``n_s``, whose cold
burn-in is long), and the cheaper total is the baseline's. The pricing is generous to the
baseline: it knows the excess at each point (from `ess`'s scan of the same cell,
interpolated in ``log n_s``) so it never runs more chains than the side needs, it pays
no evaluation at the cap, and none for the ends of a 95% interval, which `ess` pays for.
The earlier pricing (the same ``n_s`` evaluations `ess` made, each to the target
precision) is kept as ``vectorised_seconds_same_evaluations``: with it, fewer `ess`
evaluations also made the baseline cheaper, so a better search could not show.

``python -m benchmarks.paper [--quick]`` runs both (``--quick``: ``d = 10`` and a few
cells, to check the code) and prints one line each; :func:`run` is what
:func:`benchmarks.suite.run` calls.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import numpy as np

import ess

#: Warm-started chains per cell for the spread of one generation's distance.
SD_CHAINS = 16
#: Seed of the timed calls, and of the spread measurements.
SEED = 0
SD_SEED = 99


@dataclass(frozen=True)
class Workloads:
    """The grids of one run: :data:`FULL` (the paper's) or :data:`QUICK`."""

    d: int
    rel_precision: float
    fig11_lam: tuple[float, ...]
    fig11_n_r: tuple[int, ...]
    fig11_n_s: tuple[int, ...]
    fig12_lam: tuple[float, ...]
    fig12_n_r: tuple[int, ...]


FULL = Workloads(d=100, rel_precision=0.02, fig11_lam=(0.7, 0.85, 1.0),
                 fig11_n_r=(100, 178, 316, 562, 1000), fig11_n_s=(100, 316, 1000, 3162, 10_000),
                 fig12_lam=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
                 fig12_n_r=(100, 250, 1000))
QUICK = Workloads(d=10, rel_precision=0.02, fig11_lam=(0.85, 1.0), fig11_n_r=(100, 316),
                  fig11_n_s=(100, 3162), fig12_lam=(0.5,), fig12_n_r=(100,))


@functools.cache
def single_generation_sd(d: int, n_r: int, n_s: int, lam: float, rel: float,
                         chains: int = SD_CHAINS, n_jobs: int = 1) -> float:
    """Standard deviation of one generation's distance at stationarity (``w2sq``,
    ``P_r = N(0, I_d)``), from ``chains`` warm-started chains of `ess`'s kernel (on
    ``n_jobs`` threads; the chains do not depend on it)."""
    from ess.chains import chunk_size, limit_chunks
    from ess.kernels.layout import Q_DIST
    from ess.plan import limit_plan, pilot_plan
    from ess.request import estimate_request

    p = estimate_request(d=d, n_r=n_r, n_s=n_s, lam=lam).params
    plan = replace(pilot_plan(limit_plan(p, (n_s,), rel, SD_SEED)), window=2, every=1)
    data = limit_chunks(plan, 0, max(1, math.ceil(chains / chunk_size(d))), n_jobs)
    return float(data[:, 0, Q_DIST, 0].std(ddof=1))


def cold_burn_in(d: int, n_r: int, n_s: int, lam: float, rel: float) -> int:
    """The burn-in of a cold start (``n_ini = n_r``) at ``rel``: the baseline's."""
    from ess.plan import burn_in_for
    from ess.request import estimate_request

    return burn_in_for(estimate_request(d=d, n_r=n_r, n_s=n_s, lam=lam).params, rel)


def _slope(d: int, n: float, rel: float) -> float:
    """``d log f / d log n`` of the reference curve at ``n`` (from the cached curve)."""
    from ess.reference import GRID

    k = int(np.clip(np.searchsorted(GRID, n), 1, len(GRID) - 1))
    n0, n1 = int(GRID[k - 1]), int(GRID[k])
    f = ess.reference_curve([n0, n1], d=d, rel_precision=rel).f
    return math.log(f[1] / f[0]) / math.log(n1 / n0)


def _baseline_steps(d: int, n_r: int, n_s: int, lam: float, rel: float, target: float,
                    sd_chains: int = SD_CHAINS) -> tuple[int, int, float]:
    """Chains and generation-steps the baseline needs for a half-width ``target`` on
    ``WD(n_s)``, and the spread it was sized with."""
    from benchmarks.suite import chains_needed

    sd = single_generation_sd(d, n_r, n_s, lam, rel, sd_chains)
    chains = chains_needed(sd, target)
    return chains, chains * (cold_burn_in(d, n_r, n_s, lam, rel) + 1), sd


def fig11(w: Workloads, rate: float, log: Callable[[str], None] = print) -> dict:
    """The Fig. 11 grid: `ess`'s time and the baseline's extrapolated one, per cell."""
    kw = {"d": w.d, "n_r": list(w.fig11_n_r), "n_s": list(w.fig11_n_s),
          "lam": list(w.fig11_lam), "rel_precision": w.rel_precision, "store": False}
    log(f"  Fig. 11: {len(w.fig11_n_r) * len(w.fig11_n_s) * len(w.fig11_lam)} cells at "
        f"d = {w.d} (warm-up computes the reference curve)")
    ess.table(**kw, seed=SEED + 1)                    # the reference curve, cached
    t0 = time.perf_counter()
    res = ess.table(**kw, seed=SEED)
    seconds = time.perf_counter() - t0
    cells, base_seconds = [], 0.0
    for r in res:
        if r.n_e is None:
            continue
        target = w.rel_precision * abs(_slope(w.d, r.n_e, w.rel_precision)) * r.wd
        chains, steps, sd = _baseline_steps(w.d, r.n_r, r.n_s, r.lam, w.rel_precision, target)
        base_seconds += steps / rate
        cells.append({"n_r": r.n_r, "n_s": r.n_s, "lam": r.lam, "n_e_over_n_r": r.n_e_over_n_r,
                      "n_e_rel_halfwidth": r.n_e_rel_halfwidth, "chains": r.chains,
                      "generations": r.generations, "burn_in": r.burn_in,
                      "seconds": r.seconds, "baseline_chains": chains,
                      "baseline_steps": steps, "single_generation_sd": sd})
    return {"d": w.d, "rel_precision": w.rel_precision, "cells": cells,
            "ess_seconds": seconds, "vectorised_seconds": base_seconds,
            "vectorised_rate": rate, "all_cells": len(res),
            "precision_reached": sum(r.precision_reached for r in res)}


def excess_curve(scan: tuple[dict, ...] | list[dict]) -> Callable[[int], float]:
    """The excess ``WD(n_s) - f(n_r)`` at any ``n_s >= 1`` from `ess`'s evaluations of it
    (a threshold result's ``scan``): linear in ``log n_s`` between them, the nearest
    evaluation's value beyond them."""
    pts = sorted((s["n_s"], s["excess"]) for s in scan if s["n_s"] >= 1)
    x = np.log([n for n, _ in pts])
    y = np.array([e for _, e in pts])
    return lambda n: float(np.interp(math.log(n), x, y))


def baseline_search(cap: int, excess: Callable[[int], float], geometric: bool) -> list[int]:
    """The ``n_s`` a bisection for the excess's sign change evaluates, in order: over
    ``[0, cap]`` (``n_s = 0`` admissible, ``cap`` inadmissible, neither evaluated) to
    adjacent integers, at midpoints ``(lo + hi) // 2`` or, with ``geometric``,
    ``round(sqrt(lo hi))`` (from ``lo = 1``, evaluated first)."""
    lo, hi, seen = 0, cap, []
    while hi - lo > 1:
        if geometric:
            mid = 1 if lo == 0 else min(max(round(math.sqrt(lo * hi)), lo + 1), hi - 1)
        else:
            mid = (lo + hi) // 2
        seen.append(mid)
        if excess(mid) > 0.0:
            hi = mid
        else:
            lo = mid
    return seen


def _search_steps(w: Workloads, n_r: int, lam: float, points: list[int],
                  excess: Callable[[int], float], target: float) -> int:
    """Generation-steps of the baseline's evaluations at ``points``: each the fewest
    chains whose 95% half-width is ``max(|excess|, target)`` (:func:`_baseline_steps`)."""
    return sum(_baseline_steps(w.d, n_r, n, lam, w.rel_precision,
                               max(abs(excess(n)), target), SD_CHAINS // 2)[1]
               for n in points)


def fig12(w: Workloads, rate: float, log: Callable[[str], None] = print) -> dict:
    """The Fig. 12 thresholds: `ess`'s time and the baseline's extrapolated one."""
    cells = list(itertools.product(w.fig12_n_r, w.fig12_lam))
    log(f"  Fig. 12: {len(cells)} thresholds at d = {w.d} (warm-up computes the curve)")
    for n_r in w.fig12_n_r:                      # the reference curve around each n_r
        ess.reference_curve([max(2, n_r // 2), n_r, 2 * n_r], d=w.d,
                            rel_precision=w.rel_precision)
    rows, seconds, same_seconds = [], 0.0, 0.0
    search_seconds = {"linear": 0.0, "geometric": 0.0}
    for n_r, lam in cells:
        t0 = time.perf_counter()
        r = ess.threshold(d=w.d, n_r=n_r, lam=lam, rel_precision=w.rel_precision, seed=SEED,
                          store=False)
        seconds += time.perf_counter() - t0
        f = ess.reference_curve([n_r], d=w.d, rel_precision=w.rel_precision).f[0]
        target = w.rel_precision * abs(_slope(w.d, n_r, w.rel_precision)) * f
        # the earlier pricing: ess's own evaluations, each to the target precision
        same = sum(_baseline_steps(w.d, n_r, s["n_s"], lam, w.rel_precision, target,
                                   SD_CHAINS // 2)[1] for s in r.scan)
        same_seconds += same / rate
        excess = excess_curve(r.scan)
        searches = {}
        for kind in search_seconds:
            points = baseline_search(r.cap, excess, geometric=kind == "geometric")
            steps = _search_steps(w, n_r, lam, points, excess, target)
            search_seconds[kind] += steps / rate
            searches[kind] = {"evaluations": len(points), "steps": steps}
        rows.append({"n_r": n_r, "lam": lam, "n_s_star": r.n_s_star,
                     "n_s_star_ci": list(r.n_s_star_ci), "cap": r.cap,
                     "cap_lowered_from": r.cap_lowered_from, "evaluations": r.evaluations,
                     "seconds": r.seconds,
                     "baseline_steps": min(v["steps"] for v in searches.values()),
                     "baseline_search": searches, "baseline_steps_same_evaluations": same})
    best = min(search_seconds, key=search_seconds.get)
    return {"d": w.d, "rel_precision": w.rel_precision, "cells": rows, "ess_seconds": seconds,
            "vectorised_seconds": search_seconds[best], "vectorised_search": best,
            "vectorised_seconds_by_search": search_seconds,
            "vectorised_seconds_same_evaluations": same_seconds, "vectorised_rate": rate}


def run(quick: bool, rate: float, log: Callable[[str], None] = print) -> dict:
    """Both workloads; ``rate`` is the vectorised baseline's measured generation-steps per
    second at the workloads' ``d`` (BLAS on one thread)."""
    w = QUICK if quick else FULL
    return {"workloads": asdict(w), "fig11": fig11(w, rate, log), "fig12": fig12(w, rate, log)}


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.paper [--quick]``: measure the baseline's throughput at the
    workloads' ``d`` in a pinned child, run both workloads, print a summary."""
    from benchmarks.suite import Case, measure

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="d = 10 and a few cells")
    ap.add_argument("--out", default=None, help="JSON file for every number")
    args = ap.parse_args(argv)
    w = QUICK if args.quick else FULL
    case = Case("vectorised", w.d, 900, 0.8, 100)
    rate = measure({case: 0.5 if args.quick else 2.0})[case]
    out = run(args.quick, rate)
    for name in ("fig11", "fig12"):
        r = out[name]
        print(f"{name}: ess {r['ess_seconds']:.2f} s, vectorised baseline (extrapolated) "
              f"{r['vectorised_seconds']:.1f} s: "
              f"{r['vectorised_seconds'] / r['ess_seconds']:.1f}x")
    r = out["fig12"]
    by = ", ".join(f"{k} {v:.1f} s" for k, v in r["vectorised_seconds_by_search"].items())
    print(f"fig12 baseline searches: {by}; the earlier pricing (ess's own evaluations, "
          f"each to the target) {r['vectorised_seconds_same_evaluations']:.1f} s: "
          f"{r['vectorised_seconds_same_evaluations'] / r['ess_seconds']:.1f}x")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
