"""The benchmark report: ``bench.md`` and its figures, from the numbers of one run.

:func:`benchmarks.suite.run` calls :func:`write`; ``python -m benchmarks.report
benchmarks/results/bench.json`` redraws the report and figures from saved numbers
without measuring again.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

from benchmarks.check_baselines import TOLERANCE_SE
from ess.report import _save, _use_agg

#: Display names and colours (seaborn "colorblind") of the implementations.
LABELS = {
    "persample": "(a) per-sample loop, 1 core",
    "vectorised": "(b) vectorised NumPy, 1 core",
    "vectorised-blas": "(b) vectorised NumPy, default BLAS threads",
    "ess": "ess, 1 thread",
    "ess-all": "ess, every core",
}
COLOURS = {"persample": 3, "vectorised": 0, "vectorised-blas": 9, "ess": 4, "ess-all": 2}


# --------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------

def _rates(results: dict) -> dict[tuple, float]:
    """Measured generation-steps per second keyed by ``(impl, d, n_s, lam, n_r, jobs)``."""
    return {(r["impl"], r["d"], r["n_s"], r["lam"], r["n_r"], r["jobs"]): r["rate"]
            for r in results["rates"]}


def _rate(results: dict, impl: str, d: int, n_s: int = 200, lam: float = 0.9,
          n_r: int = 100, jobs: int = 1) -> float:
    """Generation-steps per second of one measured case."""
    return _rates(results)[(impl, d, n_s, lam, n_r, jobs)]


def _g(v: float | None, digits: int = 3) -> str:
    """A number with ``digits`` significant digits, plain where short, else 1.2e+05."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if v == 0:
        return "0"
    if 1e-3 <= abs(v) < 1e5:
        return f"{v:.{digits}g}" if abs(v) >= 10 ** (digits - 1) else f"{v:#.{digits}g}"
    return f"{v:.{digits - 1}e}"


def _x(ratio: float) -> str:
    """A ratio as ``1,234x``, ``12x``, ``1.4x`` or ``0.52x``."""
    if not math.isfinite(ratio):
        return "–"
    if ratio >= 100:
        return f"{ratio:,.0f}x"
    return f"{ratio:.2g}x" if ratio < 10 else f"{ratio:.0f}x"


def _vs(ratio: float, better: str = "faster", worse: str = "slower") -> str:
    """`ess`'s advantage ``ratio`` (> 1: better) as ``12x faster`` or ``3.1x slower``."""
    if not math.isfinite(ratio) or ratio <= 0:
        return "–"
    return f"{_x(ratio)} {better}" if ratio >= 1 else f"{_x(1 / ratio)} {worse}"


def _seconds(s: float) -> str:
    """Seconds, or minutes / hours / days when long."""
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if s >= 2 * size:
            return f"{s / size:.3g} {unit}"
    return f"{_g(s)} s"


def _setting(row: dict) -> str:
    """``(d, n_r, n_s, lam)`` of a row, as text."""
    return f"({row['d']}, {row['n_r']}, {row['n_s']}, {row['lam']:g})"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(r) + " |" for r in rows]


# --------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------

#: The paper's workloads (:mod:`benchmarks.paper`) in the headline, and their labels.
_PAPER = (
    ("fig11", lambda w: f"Fig. 11 grid, {len(w['cells'])} estimates at d = {w['d']}, "
                        f"{100 * w['rel_precision']:g}%"),
    ("fig12", lambda w: f"Fig. 12, {len(w['cells'])} thresholds at d = {w['d']}, "
                        f"{100 * w['rel_precision']:g}%, default caps"),
)


def _paper(results: dict) -> list[str]:
    """The paper's workloads, per cell: `ess`'s plan and time, the baseline's steps."""
    if "paper" not in results:
        return []
    out = ["## The paper's workloads", "",
           "`python -m benchmarks.paper` (`benchmarks/paper.py`): the Fig. 11 grid with "
           "`ess.table` and the Fig. 12 thresholds with `ess.threshold`, reference curve "
           "cached, result store off. The vectorised baseline is priced, not run: cold "
           "start (`n_ini = n_r`) and its burn-in, last-generation average, the chains the "
           "cell's precision needs from the spread of one generation's distance (measured "
           "on `ess`'s kernel), at its measured throughput "
           f"({_g(results['paper']['fig11']['vectorised_rate'])} generation-steps/s). "
           "Its threshold search is a bisection for the excess's sign change over "
           "`[1, cap]` to adjacent integers, on `n_s` or on `log n_s` (the cheaper in "
           "total), each evaluation with the fewest chains that decide the side (or reach "
           "the precision `ess` asks where the side cannot be decided), with no evaluation "
           "at the cap and none for the ends of an interval.", ""]
    f11 = results["paper"]["fig11"]
    rows = [[str(c["n_r"]), str(c["n_s"]), f"{c['lam']:g}", f"{c['n_e_over_n_r']:.3g}",
             f"{100 * c['n_e_rel_halfwidth']:.2f}%", f"{c['chains']} x {c['generations']}",
             str(c["burn_in"]), _seconds(c["seconds"]), f"{c['baseline_steps']:,}"]
            for c in f11["cells"]]
    out += _table(["n_r", "n_s", "lam", "n_e/n_r", "± on n_e", "chains x generations",
                   "burn-in", "ess", "baseline steps"], rows)
    f12 = results["paper"]["fig12"]
    rows = [[str(c["n_r"]), f"{c['lam']:g}", str(c["n_s_star"]),
             f"[{c['n_s_star_ci'][0]}, {c['n_s_star_ci'][1]}]", str(c["cap"]),
             str(c["evaluations"]), _seconds(c["seconds"]), f"{c['baseline_steps']:,}"]
            for c in f12["cells"]]
    out += ["", *_table(["n_r", "lam", "n_s*", "95% CI", "cap", "evaluations", "ess",
                         "baseline steps"], rows)]
    return out


def headline(results: dict) -> list[str]:
    """The headline table: each figure for `ess` and both baselines, and `ess`'s advantage.

    The advantage is how many times faster (or smaller) `ess` is: baseline time over
    `ess`'s time, `ess`'s throughput over the baseline's, baseline memory over `ess`'s.
    """
    cores = results["machine"]["cores"]
    rows = []
    for d in (1, 10, 50):
        e = _rate(results, "ess", d, jobs=cores)
        a, b = _rate(results, "persample", d), _rate(results, "vectorised", d)
        rows.append([f"throughput, d = {d} (generation-steps/s; ess on {cores} threads)",
                     _g(e), _g(a), _g(b), _vs(e / a), _vs(e / b)])
    for t in results["time_to_ne"]:
        rows.append([f"time to a 1% n_e at {_setting(t)} (baselines extrapolated)",
                     _seconds(t["ess_seconds"]), _seconds(t["persample_seconds"]),
                     _seconds(t["vectorised_seconds"]),
                     _vs(t["persample_seconds"] / t["ess_seconds"]),
                     _vs(t["vectorised_seconds"] / t["ess_seconds"])])
    for name, what in _PAPER:
        w = results.get("paper", {}).get(name)
        if w:
            rows.append([f"{what(w)} (baseline extrapolated)", _seconds(w["ess_seconds"]),
                         "-", _seconds(w["vectorised_seconds"]), "-",
                         _vs(w["vectorised_seconds"] / w["ess_seconds"])])
    ld = results.get("large_d", {"rows": []})
    for r in ld["rows"]:
        st = ld["setting"]
        base = r.get("vectorised_seconds")
        rows.append([f"estimate at {_setting(r | st)}, {100 * st['rel_precision']:g}% "
                     f"(ess: reference curve included, peak "
                     f"{_g(r['peak_rss_bytes'] / 2**20)} MiB; baseline priced)",
                     _seconds(r["seconds"]), "–", "–" if base is None else _seconds(base),
                     "–", "–" if base is None else _vs(base / r["seconds"])])
    su = results["startup"]
    for name, g in su.get("floors", {}).get("gaps", {}).items():
        rows.append([f"{name}, new process, beside `python -c 'import "
                     f"{g['beside'].split()[-1]}'` (target +{g['target']:g} s)",
                     f"{_seconds(su['floors']['seconds'][name])} ({g['gap']:+.2f} s)",
                     "–", "–", "–", "–"])
    for s, t in zip(su["rows"], results["time_to_ne"], strict=True):
        a, b = _new_process(su, t)
        rows.append([f"new process to a 1% n_e at {_setting(s)}, caches filled",
                     _seconds(s["cached_seconds"]), _seconds(a), _seconds(b),
                     _vs(a / s["cached_seconds"]), _vs(b / s["cached_seconds"])])
    last = su["rows"][-1]
    t = results["time_to_ne"][-1]
    if last["first_seconds"] is not None:
        a, b = _new_process(su, t)
        rows.append([f"first-ever call at {_setting(last)} (compiling, reference curve)",
                     _seconds(last["first_seconds"]), _seconds(a), _seconds(b),
                     _vs(a / last["first_seconds"]), _vs(b / last["first_seconds"])])
    rows.append([f"peak memory at {_setting(last)} (MiB, whole process)",
                 _g(last["cached_rss_mib"]), _g(t["persample_rss_mib"]),
                 _g(t["vectorised_rss_mib"]),
                 _vs(t["persample_rss_mib"] / last["cached_rss_mib"], "less", "more"),
                 _vs(t["vectorised_rss_mib"] / last["cached_rss_mib"], "less", "more")])
    return _table(["figure", "ess", "(a) per-sample", "(b) vectorised", "ess vs (a)",
                   "ess vs (b)"], rows)


def _new_process(startup: dict, t: dict) -> tuple[float, float]:
    """A baseline as a new process: Python/NumPy/SciPy start-up plus its compute time."""
    imp = startup["baseline_import_seconds"]
    return imp + t["persample_seconds"], imp + t["vectorised_seconds"]


def _agreement(results: dict) -> list[str]:
    """Section 1: the baselines against ``ess.estimate``."""
    rows = results["agreement"]
    ok = all(r["passed"] for r in rows)
    tol = TOLERANCE_SE
    worst = max((abs(r["z"]) for r in rows), default=math.nan)
    lines = [
        "## 1. The baselines reproduce `ess`'s numbers",
        "",
        f"**{'PASS' if ok else 'FAIL'}**: {sum(r['passed'] for r in rows)} of {len(rows)} "
        f"comparisons within {tol:g} combined standard errors (largest |z| = {worst:.2f}). "
        "Each baseline's mean over chains of the distance averaged over generations "
        f"{rows[0]['burn_in'] + 1}..{rows[0]['burn_in'] + rows[0]['window']} (after a burn-in "
        f"of {rows[0]['burn_in']}) against `ess.estimate(..., rel_precision=0.005).wd`; "
        "`z` = difference / sqrt(se^2 + se_ess^2) (`benchmarks/check_baselines.py`).",
        "",
    ]
    body = [[_setting(r), r["impl"], str(r["chains"]), f"{r['mean']:.5f} ± {r['se']:.5f}",
             f"{r['ess_wd']:.5f} ± {r['ess_se']:.5f}", f"{r['z']:+.2f}",
             "pass" if r["passed"] else "**FAIL**"] for r in rows]
    return lines + _table(["(d, n_r, n_s, lam)", "baseline", "chains", "baseline mean ± se",
                           "ess WD ± se", "z", ""], body)


def _throughput(results: dict, fig: str) -> list[str]:
    """Section 2: kernel throughput, with ratios."""
    cores = results["machine"]["cores"]
    rows = []
    for d in sorted({r["d"] for r in results["rates"] if r["impl"] == "vectorised-blas"}):
        a, b = _rate(results, "persample", d), _rate(results, "vectorised", d)
        bb = _rate(results, "vectorised-blas", d)
        e1, ea = _rate(results, "ess", d), _rate(results, "ess", d, jobs=cores)
        rows.append([str(d), _g(a), _g(b), _g(bb), _g(e1), _g(ea), _x(e1 / a), _x(ea / a),
                     _x(e1 / b), _x(ea / b), _x(ea / bb)])
    return [
        "## 2. Kernel throughput",
        "",
        "Generation-steps per second (one generation of one chain of the fresh loop) at "
        "n_r = 100, n_s = 200, lam = 0.9; ratios are `ess` over the baseline, measured in the "
        f"same run. 'ess, {cores} threads' uses every core (`os.cpu_count()`).",
        "",
        *_table(["d", "(a) per-sample, 1 core", "(b) vectorised, 1 core",
                 "(b) vectorised, BLAS threads", "ess, 1 thread", f"ess, {cores} threads",
                 "ess 1 thread / (a)", f"ess {cores} threads / (a)", "ess 1 thread / (b)",
                 f"ess {cores} threads / (b)", f"ess {cores} threads / (b) BLAS threads"],
                rows),
        "",
        f"![throughput]({fig})",
    ]


def _span(values: list[int]) -> str:
    """``"37-62"`` for a range of values, or the one value."""
    lo, hi = min(values), max(values)
    return str(lo) if lo == hi else f"{lo}-{hi}"


def _time_to_ne(results: dict, fig: str) -> list[str]:
    """Section 3: time to an ``n_e`` within 1%, measured and extrapolated."""
    rows = []
    for t in results["time_to_ne"]:
        rows.append([
            _setting(t), f"{t['n_e']:.4g} ± {100 * t['n_e_rel_halfwidth']:.2f}%",
            f"{_span(t.get('chains_by_seed', [t['chains']]))} x {t['generations']}",
            _seconds(t["ess_seconds"]),
            _seconds(t["ess_seconds_1thread"]), str(t["burn_in"]),
            f"{_g(t['pilot_sd'])} ({t['pilot_chains']})", _g(t["wd_halfwidth_target"]),
            f"{t['baseline_chains']:,}", _seconds(t["persample_seconds"]),
            _seconds(t["vectorised_seconds"]),
            f"{_x(t['persample_seconds'] / t['ess_seconds'])} / "
            f"{_x(t['persample_seconds'] / t['ess_seconds_1thread'])}",
            f"{_x(t['vectorised_seconds'] / t['ess_seconds'])} / "
            f"{_x(t['vectorised_seconds'] / t['ess_seconds_1thread'])}"])
    cores = results["machine"]["cores"]
    return [
        "## 3. Time to an n_e with a 1% relative 95% half-width",
        "",
        *_table(["(d, n_r, n_s, lam)", "ess n_e ± 95% (seed 0)",
                 "ess chains x generations (over the seeds)",
                 f"ess, {cores} threads", "ess, 1 thread", "burn-in",
                 "last-generation sd (pilot chains)", "WD half-width wanted",
                 "baseline chains N", "(a) per-sample*", "(b) vectorised*",
                 f"(a) time / ess time, ess on {cores} / 1 threads", "(b) time / ess time"],
                rows),
        "",
        "\\* **Extrapolated**, not run: a baseline needs the fewest `N` chains of `burn_in + 1` "
        "generations with `t(0.975, N - 1) sd / sqrt(N) <= h` (about `(1.96 sd / h)^2`), "
        "averaging the last generation's distance over chains. `sd` is that "
        "distance's standard deviation, measured on a pilot of the vectorised baseline (the "
        "number of pilot chains in brackets; both baselines have the same distribution, "
        "section 1); `h = 0.01 |d log f / d log n| WD` is the half-width on WD that gives 1% "
        "on n_e through the reference curve's local slope at n_e. Time = `N (burn_in + 1)` "
        "generation-steps / the baseline's throughput measured at that setting on one core. "
        "The baselines get the reference curve for free (and exact); `ess`'s time is "
        f"measured: the mean over {results['plan'].get('seeds', 1)} seeds (whose chains "
        "are in the third column: the chains an estimate needs vary with the seed, while the "
        "baselines' `N` is an expected value) of each seed's fastest of "
        f"{results['plan']['repeats']} calls of `ess.estimate` in one process (the rule of "
        "the throughputs: the same work each time, which other load can only slow down), "
        "compiled code "
        "and reference curve cached after a warm-up call with another seed. It also pays "
        "for the curve's own error in its 1%. Its precision can be better than 1% when its "
        "first round of chains (at least 12, `ess.solve.PILOT_CHAINS`) already suffices.",
        "",
        f"![time to a 1% n_e]({fig})",
    ]


def _startup(results: dict) -> list[str]:
    """Section 4: new-process wall time and peak memory."""
    su = results["startup"]
    rows = []
    for s, t in zip(su["rows"], results["time_to_ne"], strict=True):
        a, b = _new_process(su, t)
        first = "skipped (--quick)" if s["first_seconds"] is None else _seconds(s["first_seconds"])
        first_mem = "–" if s["first_rss_mib"] is None else _g(s["first_rss_mib"])
        rows.append([_setting(s), first, f"{_seconds(s['cached_seconds'])} "
                     f"({s['cached_runs']} runs)", _seconds(s["estimate_seconds"]),
                     _seconds(a), _seconds(b), first_mem, _g(s["cached_rss_mib"]),
                     _g(t["persample_rss_mib"]), _g(t["vectorised_rss_mib"])])
    return [
        "## 4. New-process start-up and peak memory",
        "",
        *_table(["(d, n_r, n_s, lam)", "ess: first-ever call, empty caches",
                 "ess: new process, caches filled (median)", "of which the estimate",
                 "(a) new process*", "(b) new process*", "ess first call MiB",
                 "ess cached MiB", "(a) MiB", "(b) MiB"], rows),
        "",
        "`ess` is `python -m ess estimate --d .. --n-r .. --n-s .. --lam .. --json` as a new "
        "process. The first-ever call runs with a fresh, empty `ESS_CACHE_DIR` (and "
        "`NUMBA_CACHE_DIR` unset, so Numba's cache lives inside it): Numba compiles the "
        "kernels and the reference curve is computed. The cached calls reuse those caches; "
        "'of which the estimate' is the `seconds` that the JSON answer reports. \\* A "
        "baseline as a new process: Python, NumPy and SciPy start-up (`python -c 'import "
        f"benchmarks.baselines'`, {_seconds(su['baseline_import_seconds'])}, median of 3) "
        "plus its extrapolated compute time of section 3. Peak memory is the child's "
        "`ru_maxrss` (`os.wait4`): for `ess` the whole estimate (compiler included on the "
        "first call); for the baselines a process running the pilot of section 3 (one chain "
        "of (a); a batch of the pilot's chains of (b), whose memory grows with the batch).",
    ]


def _large_d(results: dict) -> list[str]:
    """Section 5: one estimate per large ``d``, its plan, time and peak memory."""
    if "large_d" not in results:
        return []
    ld = results["large_d"]
    st = ld["setting"]
    rows = []
    for r in ld["rows"]:
        base = r.get("vectorised_seconds")
        rows.append([
            str(r["d"]), _seconds(r["seconds"]), f"{r['chains']} x {r['generations']}",
            str(r["burn_in"]), f"{r['n_e_over_n_r']:.4g}",
            f"{100 * r['n_e_rel_halfwidth']:.2f}%", "yes" if r["precision_reached"] else "no",
            _g(r["peak_rss_bytes"] / 2**20),
            "–" if base is None else f"{r['baseline_chains']} x {r['baseline_burn_in'] + 1}",
            "–" if base is None else _seconds(r["vectorised_step_seconds"]),
            "–" if base is None else _seconds(base),
            "–" if base is None else _vs(base / r["seconds"])])
    return [
        "## 5. Large d",
        "",
        *_table(["d", "ess (reference curve included)", "chains x generations", "burn-in",
                 "n_e/n_r", "± on n_e", "precision reached", "peak MiB",
                 "(b) chains x generations", "(b) s per step", "(b) vectorised (priced)",
                 "ess vs (b)"], rows),
        "",
        f"`python -m benchmarks.large_d` (`benchmarks/large_d.py`): `ess.estimate(d, "
        f"n_r={st['n_r']}, n_s={st['n_s']}, lam={st['lam']:g}, rel_precision="
        f"{st['rel_precision']:g})`, result store off, each `d` in a new process whose "
        "kernels were compiled beforehand; its reference curve is computed in the timed "
        "call (at these `d` it is part of what a user first waits for). Peak memory is "
        "the process's `ru_maxrss`. Targets: `d = 1024` under 60 s, `d = 2048` under "
        "5 minutes.",
        "",
        "The vectorised baseline (b) is priced, not run (a batch of its chains would hold "
        "GBs per `d x d` array): cold start (`n_ini = n_r`) and the burn-in a cold start "
        "needs, the last generation of each chain kept, the chains that the half-width on "
        "`WD` needs (`rel * |d log f / d log n| * WD`) from the spread of one generation's "
        "distance measured on `ess`'s kernel (a few warm-started chains), at its time per "
        "generation-step measured at each `d` on one chain of its own code with BLAS on "
        "one thread (the distance's `eigvalsh` paid once per chain, measured with the "
        "first two generations). The reference curve is given to it for free; `ess`'s time "
        "includes computing it.",
    ]


def _floors(results: dict) -> list[str]:
    """New-process answers beside ``python -c "import numpy"`` / ``"import numba"``."""
    fl = results.get("startup", {}).get("floors")
    if not fl:
        return []
    sec, cpu = fl["seconds"], fl.get("cpu_seconds", {})
    rows = [[name, _seconds(sec[name]), g["beside"], _seconds(sec[g["beside"]]),
             f"{g['gap']:+.3f} s", f"+{g['target']:g} s",
             "met" if g["gap"] <= g["target"] else f"missed by {g['gap'] - g['target']:.3f} s",
             f"{_seconds(cpu[name])} ({g['cpu_gap']:+.3f} s)" if cpu else "–"]
            for name, g in fl["gaps"].items()]
    return [
        "### Start-up beside the floors",
        "",
        *_table(["new process", "time", "beside", "its time", "gap", "target", "",
                 "CPU time (gap)"], rows),
        "",
        "`python -m benchmarks.startup` (`benchmarks/startup.py`): the fastest of "
        f"{fl['runs']} new processes of each command, interleaved. A store hit is "
        "`python -m ess estimate --n-r 100 --n-s 200 --lam 0.9 --json` answered from the "
        "result store (it imports neither Numba nor a kernel); the computed `d = 1` "
        "estimate is the same with `--no-store` (compiled kernels and reference curve "
        "cached, as after a first call). CPU time is the child's user + system time (the "
        "fewest over the runs): on a loaded machine the steadier figure.",
    ]


def _growth(xs: list[float], ys: list[float]) -> str:
    """Exponent of ``y`` against ``x`` between the two largest sizes (1: linear, 0: flat)."""
    pts = sorted((x, y) for x, y in zip(xs, ys) if y is not None)
    if len(pts) < 2:
        return "–"
    (x0, y0), (x1, y1) = pts[-2:]
    return f"{math.log(y1 / y0) / math.log(x1 / x0):.2f}"


def _scaling(results: dict, figs: dict[str, str]) -> list[str]:
    """Section 6: time per generation-step against ``n_s``, ``d`` and threads."""
    plan = results["plan"]
    rates = _rates(results)
    impls = ("persample", "vectorised", "ess")
    lines = ["## 6. Scaling", "",
             "Microseconds per generation-step (lower is better); `ess` on 1 thread, the "
             "baselines on one core; n_r = 100, lam = 0.9. 'growth' is the exponent of time "
             "against the size between its two largest values (1 = linear, 0 = flat).", "",
             "### Against n_s (sufficient statistics make `ess` and (b) flat)", ""]
    rows = []
    for d in plan["n_s_dims"]:
        for impl in impls:
            us = [1e6 / rates[(impl, d, n, 0.9, 100, 1)] for n in plan["n_s_grid"]]
            rows.append([str(d), LABELS[impl], *(_g(u) for u in us),
                         _growth(plan["n_s_grid"], us)])
    lines += _table(["d", "implementation", *(f"n_s = {n:,}" for n in plan["n_s_grid"]),
                     "growth"], rows)
    lines += ["", f"![time against n_s]({figs['n_s']})", "", "### Against d (n_s = 200)", ""]
    rows = []
    for impl in impls:
        us = [1e6 / rates[k] if (k := (impl, d, 200, 0.9, 100, 1)) in rates else None
              for d in plan["d_grid"]]
        rows.append([LABELS[impl], *(_g(u) for u in us), _growth(plan["d_grid"], us)])
    lines += _table(["implementation", *(f"d = {d}" for d in plan["d_grid"]), "growth"],
                    rows)
    lines += ["", f"![time against d]({figs['d']})", "",
              "### Against threads (`ess`, n_s = 200)", ""]
    jobs = sorted({r["jobs"] for r in results["rates"] if r["impl"] == "ess"})
    rows = []
    for d in plan["core_dims"]:
        base = rates[("ess", d, 200, 0.9, 100, 1)]
        rows.append([str(d), *(f"{_g(rates[('ess', d, 200, 0.9, 100, j)])} "
                               f"({rates[('ess', d, 200, 0.9, 100, j)] / base:.2f}x)"
                               for j in jobs)])
    lines += ["Generation-steps per second and, in brackets, the speed-up over 1 thread.", ""]
    lines += _table(["d", *(f"{j} thread{'s' if j > 1 else ''}" for j in jobs)], rows)
    lines += ["", f"![speed-up against threads]({figs['cores']})"]
    return lines


def _load(results: dict) -> str:
    """Load averages (1, 5, 15 minutes) at the start and at the end of the run."""
    m = results["machine"]
    if m["load_average"] is None:
        return "not available"
    out = "at the start " + ", ".join(f"{v:.2f}" for v in m["load_average"])
    if m.get("load_average_end"):
        out += "; at the end " + ", ".join(f"{v:.2f}" for v in m["load_average_end"])
    return out


def _method(results: dict) -> list[str]:
    """How everything is measured."""
    cores = results["machine"]["cores"]
    windows = results["plan"].get("windows", 1)
    return [
        "## How it is measured",
        "",
        "* **Baselines** (`benchmarks/baselines.py`, an independent implementation): (a) the "
        "paper-style loop, one chain after another: draw every sample, `np.mean`/`np.cov`, "
        "`scipy.linalg.sqrtm` for W2; (b) the fastest vectorised NumPy we could write: "
        "sufficient statistics (sample mean and Bartlett-Wishart scatter), batched over chains "
        "(1000 chains up to d = 10, else 200) with `matmul` and batched LAPACK.",
        "* **One core for the baselines.** They run in child processes started with "
        "`OPENBLAS_NUM_THREADS=OMP_NUM_THREADS=MKL_NUM_THREADS=1`, so NumPy's BLAS uses one "
        "thread; column '(b) vectorised, BLAS threads' runs in the main process with NumPy's "
        "default threads. `ess` runs in the main process on 1 thread or on every core "
        f"({cores}); its kernels do not call BLAS.",
        "* **Throughput** (`benchmarks/throughput.py`): a warm-up call (Numba compiles "
        "there), a pilot run that sizes the timed runs, then the fastest of "
        f"{windows} timed runs of about {results['plan']['seconds']:g} s each "
        f"({results['plan']['scaling_seconds']:g} s for scaling points; other "
        "load on the machine can only slow a run down). (a) runs chains of 20 generations; "
        "(b) one batch for as many generations as fit; `ess` runs its limit kernel "
        "(`ess.chains.limit_chunks`, chunks of chains of 64 generations) on a thread pool.",
        "* **Same run, same machine**: every ratio compares numbers measured minutes apart in "
        "one run; other load on the machine moves all of them (load averages over 1, 5 and 15 "
        f"minutes {_load(results)}).",
        "* **Regenerate**: `make bench` (or `ess bench` from a source checkout) writes this "
        "file, `bench.json` (every number) and the figures; `ess bench --quick` "
        "(`make bench-quick`) is a shorter run writing `bench-quick.*`; "
        "`python -m benchmarks.report benchmarks/results/bench.json` redraws them from the "
        "saved numbers.",
    ]


def markdown(results: dict, figs: dict[str, str]) -> str:
    """The whole report as Markdown; ``figs`` maps figure keys to their file names."""
    m = results["machine"]
    quick = (" This is the **quick** run: shorter timing windows and fewer sizes, no "
             "first-ever call and no d = 100 setting; its numbers are rougher."
             if results["quick"] else "")
    lines = [
        "# `ess` against two NumPy baselines",
        "",
        f"`{results['command']}` on {results['date']}, {results['seconds']:.0f} s. Machine: "
        f"{m['machine']}, {m['cores']} cores, {m['system']}; Python {m['python']}, NumPy "
        f"{m['numpy']}, SciPy {m['scipy']}, Numba {m['numba']}; ess {m['ess']} at "
        f"{m['revision']}.{quick}",
        "",
        "(a) is the paper-style per-sample loop and (b) the fastest vectorised NumPy we could "
        "write (`benchmarks/baselines.py`), both on one core. The model is the fresh data loop "
        "with `P_r = N(0, I_d)`, metric `w2sq`, unbiased covariance, settings written "
        "`(d, n_r, n_s, lam)`.",
        "",
        "## Headline",
        "",
        *headline(results),
        "",
        "'faster' compares times (baseline time / `ess` time) or throughputs (`ess` / "
        "baseline), measured in this run; the baselines' times to an n_e are extrapolated "
        "(section 3); their new-process times add Python, NumPy and SciPy start-up to them "
        "(section 4).",
        "",
        *_agreement(results),
        "",
        *_throughput(results, figs["throughput"]),
        "",
        *_time_to_ne(results, figs["time_to_ne"]),
        "",
        *_paper(results),
        "",
        *_startup(results),
        "",
        *_floors(results),
        "",
        *_large_d(results),
        "",
        *_scaling(results, figs),
        "",
        *_method(results),
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------

def _colour(sns, key: str):
    """The colour of an implementation (seaborn "colorblind" palette)."""
    return sns.color_palette("colorblind")[COLOURS[key]]


def _bars(ax, sns, groups: list[str], series: list[tuple[str, list[float], str]],
          hatched: Callable[[str], bool] = lambda key: False) -> None:
    """Grouped bars on a log axis; ``series`` is ``(key, values, label)`` per bar colour."""
    width = 0.8 / len(series)
    for i, (key, values, label) in enumerate(series):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, values, width * 0.95, label=label, color=_colour(sns, key),
               hatch="//" if hatched(key) else None, edgecolor="white", linewidth=0.5)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_yscale("log")
    ax.grid(axis="y", which="major", alpha=0.4)


def _plot_throughput(ax, sns, results: dict) -> None:
    """Grouped bars of generation-steps per second, by ``d``."""
    cores = results["machine"]["cores"]
    ds = sorted({r["d"] for r in results["rates"] if r["impl"] == "vectorised-blas"})
    series = [(k, [_rate(results, impl, d, jobs=j) for d in ds], label)
              for k, impl, j, label in (
                  ("persample", "persample", 1, LABELS["persample"]),
                  ("vectorised", "vectorised", 1, LABELS["vectorised"]),
                  ("ess", "ess", 1, LABELS["ess"]),
                  ("ess-all", "ess", cores, f"ess, {cores} threads (every core)"))]
    _bars(ax, sns, [f"d = {d}" for d in ds], series)
    ax.set_ylabel("generation-steps per second (log scale)")
    ax.set_title("Kernel throughput (higher is better)\nn_r = 100, n_s = 200, λ = 0.9")
    ax.legend(fontsize=8, loc="upper right", ncol=2)
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo, hi * 30)   # room for the legend above the bars


def _plot_time_to_ne(ax, sns, results: dict) -> None:
    """Grouped bars of the time to a 1% ``n_e``, by setting."""
    cores = results["machine"]["cores"]
    rows = results["time_to_ne"]
    series = [("persample", [t["persample_seconds"] for t in rows],
               "(a) per-sample loop, 1 core (extrapolated)"),
              ("vectorised", [t["vectorised_seconds"] for t in rows],
               "(b) vectorised NumPy, 1 core (extrapolated)"),
              ("ess", [t["ess_seconds_1thread"] for t in rows], "ess, 1 thread (measured)"),
              ("ess-all", [t["ess_seconds"] for t in rows],
               f"ess, {cores} threads (measured)")]
    _bars(ax, sns, [f"d={t['d']}, n_r={t['n_r']},\nn_s={t['n_s']}, λ={t['lam']:g}"
                    for t in rows], series, hatched=lambda k: k in ("persample", "vectorised"))
    for g, t in enumerate(rows):
        ax.annotate(f"ess, {cores} threads:\n"
                    f"{_vs(t['vectorised_seconds'] / t['ess_seconds'])} than (b)\n"
                    f"{_vs(t['persample_seconds'] / t['ess_seconds'])} than (a)",
                    (g + 0.2, max(t["ess_seconds"], t["ess_seconds_1thread"])),
                    xytext=(0, 4), textcoords="offset points", ha="center", va="bottom",
                    fontsize=7, bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none",
                                      "alpha": 0.85})
    ax.set_ylabel("wall time, seconds (log scale)")
    ax.set_title("Time to n_e within ±1% (95%), lower is better\n"
                 "baselines extrapolated from measured throughput and pilot variance")
    ax.legend(fontsize=8, loc="upper left")
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo, hi * 30)   # room for the legend above the bars


def _plot_n_s(ax, sns, results: dict, d: int) -> None:
    """Time per generation-step against ``n_s`` at dimension ``d`` (log-log)."""
    rates = _rates(results)
    grid = results["plan"]["n_s_grid"]
    for impl in ("persample", "vectorised", "ess"):
        us = [1e6 / rates[(impl, d, n, 0.9, 100, 1)] for n in grid]
        ax.plot(grid, us, marker="o", color=_colour(sns, impl), label=LABELS[impl])
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("synthetic samples per generation n_s (log scale)")
    ax.set_ylabel("µs per generation-step (log scale)")
    ax.set_title(f"Time against n_s at d = {d} (lower is better)\nn_r = 100, λ = 0.9")
    ax.grid(which="major", alpha=0.4)
    ax.legend(fontsize=8)


def _plot_d(ax, sns, results: dict) -> None:
    """Time per generation-step against ``d`` (log-log)."""
    rates = _rates(results)
    for impl in ("persample", "vectorised", "ess"):
        pts = [(d, 1e6 / rates[(impl, d, 200, 0.9, 100, 1)]) for d in results["plan"]["d_grid"]
               if (impl, d, 200, 0.9, 100, 1) in rates]
        ax.plot(*zip(*pts), marker="o", color=_colour(sns, impl), label=LABELS[impl])
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(results["plan"]["d_grid"], [str(d) for d in results["plan"]["d_grid"]])
    ax.minorticks_off()
    ax.set_xlabel("dimension d (log scale)")
    ax.set_ylabel("µs per generation-step (log scale)")
    ax.set_title("Time against d (lower is better)\nn_r = 100, n_s = 200, λ = 0.9")
    ax.grid(which="major", alpha=0.4)
    ax.legend(fontsize=8)


def _plot_cores(ax, sns, results: dict) -> None:
    """`ess`'s speed-up over one thread against the number of threads."""
    rates = _rates(results)
    jobs = sorted({r["jobs"] for r in results["rates"] if r["impl"] == "ess"})
    ax.plot(jobs, jobs, color="grey", linestyle="--", label="ideal (linear)")
    palette = sns.color_palette("crest", len(results["plan"]["core_dims"]))
    for i, d in enumerate(results["plan"]["core_dims"]):
        base = rates[("ess", d, 200, 0.9, 100, 1)]
        ax.plot(jobs, [rates[("ess", d, 200, 0.9, 100, j)] / base for j in jobs], marker="o",
                color=palette[i],
                label=f"ess, d = {d}")
    ax.set_xticks(jobs)
    ax.set_xlabel("threads (n_jobs)")
    ax.set_ylabel("speed-up over 1 thread")
    ax.set_title(f"ess throughput against threads ({results['machine']['cores']} cores)\n"
                 "n_r = 100, n_s = 200, λ = 0.9")
    ax.grid(alpha=0.4)
    ax.legend(fontsize=8)


def figures(results: dict, out_dir: Path) -> dict[str, str]:
    """Draw every figure into ``out_dir``; returns figure keys to file names."""
    plt, sns = _use_agg()
    suffix = "-quick" if results["quick"] else ""
    names = {k: f"{k}{suffix}.png"
             for k in ("throughput", "time_to_ne", "scaling_n_s", "scaling_d", "scaling_cores",
                       "overview")}
    dims = results["plan"]["n_s_dims"]

    for key, size, draw in (("throughput", (8, 5), _plot_throughput),
                            ("time_to_ne", (8, 5.5), _plot_time_to_ne),
                            ("scaling_d", (7, 4.5), _plot_d),
                            ("scaling_cores", (6, 4.5), _plot_cores)):
        fig, ax = plt.subplots(figsize=size)
        draw(ax, sns, results)
        _save(fig, out_dir / names[key], dpi=120)
    fig, axes = plt.subplots(1, len(dims), figsize=(6.5 * len(dims), 4.5), squeeze=False)
    for ax, d in zip(axes[0], dims):
        _plot_n_s(ax, sns, results, d)
    _save(fig, out_dir / names["scaling_n_s"], dpi=120)
    fig, axes = plt.subplots(2, 2, figsize=(14, 10.5))
    _plot_time_to_ne(axes[0, 0], sns, results)
    _plot_throughput(axes[0, 1], sns, results)
    _plot_n_s(axes[1, 0], sns, results, dims[0])
    _plot_d(axes[1, 1], sns, results)
    fig.suptitle(f"ess against two NumPy baselines ({results['machine']['cores']} cores, "
                 f"{results['date'][:10]}; `{results['command']}`)", fontsize=12)
    _save(fig, out_dir / names["overview"], dpi=100)
    return {"throughput": names["throughput"], "time_to_ne": names["time_to_ne"],
            "n_s": names["scaling_n_s"], "d": names["scaling_d"],
            "cores": names["scaling_cores"], "overview": names["overview"]}


def write(results: dict, out_dir: str | Path) -> Path:
    """Write the figures and ``bench.md`` (``bench-quick.md`` for a quick run).

    Parameters
    ----------
    results : dict
        The numbers of one run of :func:`benchmarks.suite.run` (as in ``bench.json``).
    out_dir : str or Path
        Output folder.

    Returns
    -------
    Path
        The Markdown report.
    """
    out = Path(out_dir)
    figs = figures(results, out)
    path = out / f"bench{'-quick' if results['quick'] else ''}.md"
    path.write_text(markdown(results, figs), encoding="utf-8")
    return path


if __name__ == "__main__":
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "results/bench.json"
    print(f"wrote {write(json.loads(src.read_text(encoding='utf-8')), src.parent)}")
