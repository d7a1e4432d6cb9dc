"""The benchmark suite: `ess` side by side with two NumPy baselines, in one run.

``ess bench [--quick] [--out DIR]``, ``make bench`` and ``python -m benchmarks.suite
[--quick] [--out DIR]`` (from the repository root) call :func:`run`, which measures, in
this order:

1. **Agreement.** :func:`benchmarks.check_baselines.check`: both baselines of
   :mod:`benchmarks.baselines` reproduce ``ess.estimate``'s limits within Monte-Carlo error.
2. **Throughput.** Generation-steps per second (one generation of one chain) at
   ``n_r = 100, n_s = 200, lam = 0.9`` for ``d`` in 1, 2, 10, 50: the per-sample loop and
   the vectorised NumPy baseline on one core, the vectorised baseline with NumPy's default
   BLAS threads, and the `ess` kernel on 1 thread and on every core.
3. **Time to a 1% n_e** at ``(d, n_r, n_s, lam)`` = (1, 100, 200, 0.9), (10, 100, 200, 0.9)
   and the paper's (100, 100, 900, 0.8): `ess` is timed (``ess.estimate`` in this process,
   compiled code and reference curve cached); the baselines' times are extrapolated from
   the chains they need with the usual last-generation average (from a measured pilot
   variance) and their measured throughput.
4. **The paper's workloads** (:mod:`benchmarks.paper`): its Fig. 11 grid (75 estimates at
   ``d = 100``, 2%) and Fig. 12 thresholds (27 searches at ``d = 100``, 2%, default caps),
   timed, beside the vectorised baseline's extrapolated time.
5. **Large d** (:mod:`benchmarks.large_d`): one estimate at ``d`` = 512, 1024 and 2048,
   ``(n_r, n_s, lam) = (1000, 1000, 0.9)``, 2%, each in a new process, with its peak
   memory, beside the vectorised baseline's time for the same work, priced from its time
   per generation-step measured at each ``d`` on one chain (``--quick``: ``d = 128``
   only).
6. **Start-up and memory.** ``python -m ess estimate ... --json`` as a new process with
   the caches filled, the first-ever call with empty caches (compiling), and the peak
   resident memory of each process, beside processes running the baselines; and
   (:mod:`benchmarks.startup`) a store hit and a computed ``d = 1`` estimate beside
   ``python -c "import numpy"`` and ``python -c "import numba"``, interleaved.
7. **Scaling.** Time per generation-step against ``n_s``, against ``d``, and `ess`'s
   speed-up against the number of threads.

The baselines run in child processes with BLAS pinned to one thread (the environment
variables ``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS`` set to 1
before NumPy loads); `ess` runs in this process. :func:`run` writes ``bench.json`` (every
number) and, through :mod:`benchmarks.report`, ``bench.md`` and the figures
(``--quick``: ``bench-quick.*``; shorter timing windows, fewer sizes, no first-ever call
and no ``d = 100`` setting).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

import ess
from benchmarks import check_baselines, large_d, paper
from benchmarks import startup as floors
from benchmarks.paper import cold_burn_in
from benchmarks.throughput import WINDOWS, generation_steps_per_second
from ess import config

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
#: The settings ``(d, n_r, n_s, lam)`` of the time-to-n_e and start-up figures.
SETTINGS: tuple[tuple[int, int, int, float], ...] = (
    (1, 100, 200, 0.9), (10, 100, 200, 0.9), (100, 100, 900, 0.8))
#: Dimensions of the throughput table.
TABLE_DIMS = (1, 2, 10, 50)
#: Relative 95% half-width wanted on ``n_e``.
REL = 0.01
#: Seed of the warm-up ``ess.estimate`` call (the timed calls use seeds 0, 1, ...).
WARMUP_SEED = 1000
#: Environment variables that pin BLAS to one thread in a child process.
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
#: Implementations timed in a child process with BLAS pinned to one thread.
PINNED = ("persample", "vectorised")


@dataclass(frozen=True)
class Plan:
    """Sizes and timing windows of one run (:data:`FULL` or :data:`QUICK`)."""

    quick: bool
    #: Timing window (s) of a throughput figure, and of a scaling point.
    seconds: float
    scaling_seconds: float
    #: Settings of the time-to-n_e and start-up figures.
    settings: tuple[tuple[int, int, int, float], ...]
    #: Timed repeats of ``ess.estimate`` per setting and seed (the fastest is kept, as
    #: for the baselines' throughputs: the same work each time, which other load on the
    #: machine can only slow down).
    repeats: int
    #: Seeds timed per setting (the mean of their times is reported): the chains an
    #: estimate needs vary from seed to seed, and the baselines' chains are expected values.
    seeds: int
    #: Rough duration (s) of a baseline's pilot run.
    pilot_seconds: float
    #: Time the first-ever call, with empty caches (Numba compiles).
    first_call: bool
    #: Fewest and most new-process calls per setting (more while under 15 s in all).
    cold_runs: tuple[int, int]
    #: ``n_s`` values, and the dimensions, of the ``n_s`` scaling.
    n_s_grid: tuple[int, ...]
    n_s_dims: tuple[int, ...]
    #: Dimensions of the ``d`` scaling; the per-sample loop only up to ``persample_d_max``.
    d_grid: tuple[int, ...]
    persample_d_max: int
    #: Dimensions of the thread scaling.
    core_dims: tuple[int, ...]
    #: The paper's workloads (:mod:`benchmarks.paper`): its grids, or a few cells at d = 10.
    paper: paper.Workloads = paper.FULL
    #: Dimensions of the large-``d`` estimates (:mod:`benchmarks.large_d`).
    large_d: tuple[int, ...] = (512, 1024, 2048)
    #: New processes per command of the start-up floors (:mod:`benchmarks.startup`).
    floor_runs: int = 10

    @property
    def suffix(self) -> str:
        """Suffix of the output file names: ``""`` or ``"-quick"``."""
        return "-quick" if self.quick else ""


FULL = Plan(quick=False, seconds=1.0, scaling_seconds=0.5, settings=SETTINGS, repeats=5,
            seeds=5, pilot_seconds=6.0, first_call=True, cold_runs=(3, 5),
            n_s_grid=(10, 100, 1000, 10_000, 100_000), n_s_dims=(1, 10),
            d_grid=(1, 2, 5, 10, 20, 50, 100), persample_d_max=100, core_dims=(1, 10, 50))
QUICK = Plan(quick=True, seconds=0.2, scaling_seconds=0.1, settings=SETTINGS[:2], repeats=3,
             seeds=2, pilot_seconds=0.5, first_call=False, cold_runs=(3, 3),
             n_s_grid=(10, 1000, 100_000), n_s_dims=(1,), d_grid=TABLE_DIMS,
             persample_d_max=50, core_dims=(10,), paper=paper.QUICK,
             large_d=(config.LAPACK_MIN_D,), floor_runs=2)


@dataclass(frozen=True)
class Case:
    """One throughput measurement.

    ``impl`` is ``"persample"`` or ``"vectorised"`` (a child process, BLAS pinned to one
    thread), ``"vectorised-blas"`` (the vectorised baseline in this process, NumPy's
    default BLAS threads) or ``"ess"`` (the kernel on ``jobs`` threads, in this process).
    """

    impl: str
    d: int
    n_s: int = 200
    lam: float = 0.9
    n_r: int = 100
    jobs: int = 1


@dataclass(frozen=True)
class Child:
    """What a child process took: wall time, peak resident memory and its stdout."""

    seconds: float
    max_rss_mib: float
    stdout: str


# --------------------------------------------------------------------------------------
# Child processes
# --------------------------------------------------------------------------------------

#: A small stdlib-only wrapper process that runs a command and writes its wall time and
#: peak memory (``RUSAGE_CHILDREN``). On Linux a child's ``ru_maxrss`` starts from the
#: resident size of the process that forked it, so measuring from this (large) process
#: would report at least our own size; the wrapper is a few MiB.
_WRAPPER = """\
import resource, subprocess, sys, time
t0 = time.perf_counter()
rc = subprocess.call(sys.argv[2:])
seconds = time.perf_counter() - t0
with open(sys.argv[1], "w") as f:
    f.write(f"{seconds!r} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}")
sys.exit(rc)
"""


def _child(argv: list[str], env: dict[str, str] | None = None) -> Child:
    """Run ``argv`` from the repository root through :data:`_WRAPPER`.

    Returns its wall time (measured by the wrapper, so without the wrapper's own
    start-up), peak resident memory and standard output; raises ``RuntimeError`` with
    the end of its standard error when it fails.
    """
    with tempfile.TemporaryDirectory(prefix="ess-bench-") as tmp:
        stats, err_path = Path(tmp) / "stats", Path(tmp) / "stderr"
        with open(err_path, "wb") as err:
            proc = subprocess.run([sys.executable, "-I", "-S", "-c", _WRAPPER, str(stats),
                                   *argv], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                  stderr=err, check=False)
        if proc.returncode != 0:
            tail = err_path.read_text(errors="replace").strip().splitlines()[-3:]
            raise RuntimeError(f"{' '.join(argv[1:5])} ... exited with status "
                               f"{proc.returncode}: {' | '.join(tail)}")
        seconds, maxrss = stats.read_text().split()
    kib = int(maxrss) / (1024 if sys.platform == "darwin" else 1)   # bytes on macOS
    return Child(float(seconds), kib / 1024, proc.stdout.decode())


def _pinned_env() -> dict[str, str]:
    """This process's environment with BLAS pinned to one thread."""
    return dict(os.environ, **ONE_THREAD)


def _worker(spec: dict) -> tuple[dict, Child]:
    """Run :func:`benchmarks.worker.work` on ``spec`` in a child, BLAS on one thread."""
    c = _child([sys.executable, "-m", "benchmarks.worker", json.dumps(spec)], _pinned_env())
    return json.loads(c.stdout), c


# --------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------

def job_counts() -> list[int]:
    """Thread counts of the scaling: 1, powers of two below the core count, every core."""
    cores = config.default_jobs()
    return sorted({1, cores} | {2**k for k in range(1, 12) if 2**k < cores})


def planned_cases(plan: Plan) -> dict[Case, float]:
    """Every throughput measurement of a run, with its timing window in seconds."""
    cores = config.default_jobs()
    out: dict[Case, float] = {}

    def want(cases: list[Case], seconds: float) -> None:
        for c in cases:
            out.setdefault(c, seconds)

    for d in TABLE_DIMS:
        want([Case("persample", d), Case("vectorised", d), Case("vectorised-blas", d),
              Case("ess", d), Case("ess", d, jobs=cores)], plan.seconds)
    for d, n_r, n_s, lam in plan.settings:
        want([Case(impl, d, n_s, lam, n_r) for impl in PINNED], plan.seconds)
    want([Case(impl, d, n_s) for d in plan.n_s_dims for n_s in plan.n_s_grid
          for impl in ("persample", "vectorised", "ess")], plan.scaling_seconds)
    want([Case(impl, d) for d in plan.d_grid for impl in ("vectorised", "ess")]
         + [Case("persample", d) for d in plan.d_grid if d <= plan.persample_d_max],
         plan.scaling_seconds)
    want([Case("ess", d, jobs=j) for d in plan.core_dims for j in job_counts()],
         plan.scaling_seconds)
    want([paper_case(plan)], plan.seconds)
    return out


def paper_case(plan: Plan) -> Case:
    """The baseline throughput that prices the paper's workloads (at their ``d``)."""
    return Case("vectorised", plan.paper.d, 900, 0.8, 100)


def measure(cases: dict[Case, float], log: Callable[[str], None] = print) -> dict[Case, float]:
    """Generation-steps per second of every case: baselines first, in one pinned child.

    Parameters
    ----------
    cases : dict
        :class:`Case` to its timing window in seconds.
    log : callable
        Progress messages.

    Returns
    -------
    dict
        :class:`Case` to generation-steps per second.
    """
    rates: dict[Case, float] = {}
    pinned = [c for c in cases if c.impl in PINNED]
    if pinned:
        log(f"  {len(pinned)} baseline measurements in a child process (BLAS on 1 thread)")
        spec = {"kind": "throughput", "cases": [asdict(c) | {"seconds": cases[c]}
                                                for c in pinned]}
        rates.update(zip(pinned, _worker(spec)[0]["rates"], strict=True))
    rest = [c for c in cases if c.impl not in PINNED]
    log(f"  {len(rest)} measurements in this process (ess, vectorised with BLAS threads)")
    for c in rest:
        impl = "vectorised" if c.impl == "vectorised-blas" else c.impl
        rates[c] = generation_steps_per_second(impl, c.d, c.n_r, c.n_s, c.lam, cases[c],
                                               n_jobs=c.jobs)
    return rates


def _fastest_time(call: Callable[[], ess.EstimateResult],
                  repeats: int) -> tuple[ess.EstimateResult, float]:
    """The last result of ``repeats`` identical calls and the fastest wall time."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = call()
        times.append(time.perf_counter() - t0)
    return res, min(times)


def _log_slope(d: int, n_e: float) -> float:
    """``d log f / d log n`` of the reference curve between the grid points around ``n_e``.

    The grid points bracketing ``n_e`` are those the inversion of ``n_e`` computed, so
    they come from the cache.
    """
    from ess.reference import GRID

    k = int(np.clip(np.searchsorted(GRID, n_e), 1, len(GRID) - 1))
    n0, n1 = GRID[k - 1], GRID[k]
    f = ess.reference_curve([n0, n1], d=d, rel_precision=REL).f
    return math.log(f[1] / f[0]) / math.log(n1 / n0)


def chains_needed(sd: float, halfwidth: float) -> int:
    """Fewest chains ``N >= 2`` with ``t_{0.975, N-1} sd / sqrt(N) <= halfwidth``.

    The usual Student-t 95% interval of a mean of ``N`` independent values of standard
    deviation ``sd`` (about ``(1.96 sd / halfwidth)^2`` when that is large).
    """
    from scipy.stats import t as student_t

    n = max(2, math.ceil((config.Z95 * sd / halfwidth) ** 2))
    while student_t.ppf(0.975, n - 1) * sd / math.sqrt(n) > halfwidth:
        n += 1
    return n


def time_to_ne(plan: Plan, rates: dict[Case, float],
               log: Callable[[str], None] = print) -> list[dict]:
    """Time to an ``n_e`` with a relative 95% half-width of :data:`REL`, per setting.

    `ess`: the wall time of ``ess.estimate`` in this process, on every core and on one
    thread, the mean over seeds ``0 .. plan.seeds - 1`` of each seed's fastest of
    ``plan.repeats`` calls (the rule of the baselines' throughputs), after a warm-up call
    with another seed (compiled code and the reference curve cached).
    Baselines: the half-width wanted on ``WD`` is ``REL * |d log f / d log n| * WD`` (the
    reference curve's local slope at ``n_e``, the curve itself given for free); a pilot of
    the vectorised baseline gives the standard deviation ``sd`` of the distance at
    generation ``burn_in + 1`` (the burn-in a cold start needs, :func:`ess.plan.burn_in_for`:
    the baselines start from a fit on ``n_ini = n_r`` samples, where `ess` starts warm), so
    :func:`chains_needed` chains of ``burn_in + 1`` generation-steps are needed;
    time = steps / measured throughput.

    Returns
    -------
    list of dict
        One row per setting; its keys are documented in the report.
    """
    rows = []
    for d, n_r, n_s, lam in plan.settings:
        kw = {"d": d, "n_r": n_r, "n_s": n_s, "lam": lam, "rel_precision": REL,
              "store": False}
        log(f"  time to a 1% n_e at d={d} n_r={n_r} n_s={n_s} lam={lam}")
        ess.estimate(**kw, seed=WARMUP_SEED)
        by_seed = []   # (result, time on every core, time on one thread) per seed
        for seed in range(plan.seeds):
            r, t_a = _fastest_time(lambda kw=kw, s=seed: ess.estimate(**kw, seed=s),
                                   plan.repeats)
            _, t_o = _fastest_time(lambda kw=kw, s=seed: ess.estimate(**kw, seed=s, n_jobs=1),
                                   plan.repeats)
            if r.from_store:
                raise RuntimeError("a timed estimate came from the result store")
            by_seed.append((r, t_a, t_o))
        res = by_seed[0][0]
        t_all = statistics.mean(t for _, t, _ in by_seed)
        t_one = statistics.mean(t for _, _, t in by_seed)
        if res.n_e is None:
            raise RuntimeError(f"n_e < 2 at {kw}: no time to an n_e to report")
        slope = _log_slope(d, res.n_e)
        target = REL * abs(slope) * res.wd
        # the baseline starts cold (n_ini = n_r): the burn-in a cold start needs, not the
        # warm-started one `ess` ran
        base_burn = cold_burn_in(d, n_r, n_s, lam, REL)
        steps_per_chain = base_burn + 1
        vec = Case("vectorised", d, n_s, lam, n_r)
        ps = Case("persample", d, n_s, lam, n_r)
        chains = int(np.clip(round(plan.pilot_seconds * rates[vec] / steps_per_chain),
                             64, 2000))
        base = {"d": d, "n_r": n_r, "n_s": n_s, "lam": lam, "burn_in": base_burn}
        pilot, vec_child = _worker(base | {"kind": "pilot", "impl": "vectorised",
                                           "chains": chains})
        _, ps_child = _worker(base | {"kind": "pilot", "impl": "persample", "chains": 1})
        need = chains_needed(pilot["sd"], target)
        steps = need * steps_per_chain
        rows.append({
            "d": d, "n_r": n_r, "n_s": n_s, "lam": lam, "n_e": res.n_e,
            "n_e_rel_halfwidth": res.n_e_rel_halfwidth, "wd": res.wd,
            "wd_halfwidth": (res.wd_ci[1] - res.wd_ci[0]) / 2, "chains": res.chains,
            "generations": res.generations, "burn_in": res.burn_in,
            "baseline_burn_in": base_burn,
            "ess_seconds": t_all, "ess_seconds_1thread": t_one, "log_slope": slope,
            "ess_seconds_by_seed": [t for _, t, _ in by_seed],
            "chains_by_seed": [r.chains for r, _, _ in by_seed],
            "wd_halfwidth_target": target, "pilot_chains": pilot["chains"],
            "pilot_mean": pilot["mean"], "pilot_sd": pilot["sd"],
            "pilot_seconds": pilot["seconds"], "baseline_chains": need,
            "baseline_steps": steps, "persample_rate": rates[ps], "vectorised_rate": rates[vec],
            "persample_seconds": steps / rates[ps], "vectorised_seconds": steps / rates[vec],
            "persample_rss_mib": ps_child.max_rss_mib,
            "vectorised_rss_mib": vec_child.max_rss_mib,
        })
    return rows


def startup(plan: Plan, ttne: list[dict], log: Callable[[str], None] = print) -> dict:
    """Wall time and peak memory of ``python -m ess estimate ... --json`` as a new process.

    Per setting: with ``plan.first_call``, the first-ever call in a fresh, empty
    ``ESS_CACHE_DIR`` (``NUMBA_CACHE_DIR`` unset, so Numba's cache is inside it too: Numba
    compiles and the reference curve is computed), then ``plan.cold_runs`` calls (3 to 5
    in the full run, as many as fit in about 15 s) with those caches filled. Without it,
    the calls use this process's caches, which the time-to-n_e warm-up filled (after one
    untimed call). A baseline started as a new process pays Python, NumPy and SciPy
    start-up (``import benchmarks.baselines``, median of 3) before its compute time. Both
    run with bytecode caching on (``PYTHONDONTWRITEBYTECODE`` removed), as installed
    packages have it.

    Returns
    -------
    dict
        ``baseline_import_seconds`` and ``rows`` (one per setting of ``ttne``).
    """
    base_env = _pinned_env()
    base_env.pop("PYTHONDONTWRITEBYTECODE", None)   # as for ess below
    _child([sys.executable, "-c", "import benchmarks.baselines"], base_env)   # writes .pyc
    imports = [_child([sys.executable, "-c", "import benchmarks.baselines"], base_env)
               for _ in range(3)]
    rows = []
    for t in ttne:
        log(f"  new-process ess estimate at d={t['d']} n_r={t['n_r']} n_s={t['n_s']} "
            f"lam={t['lam']}")
        argv = [sys.executable, "-m", "ess", "estimate", "--d", str(t["d"]), "--n-r",
                str(t["n_r"]), "--n-s", str(t["n_s"]), "--lam", str(t["lam"]), "--json",
                "--no-store"]
        env, tmp, first = dict(os.environ), None, None
        # bytecode caching on, as an installed package has it (benchmarks/startup.py)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        if plan.first_call:
            tmp = tempfile.mkdtemp(prefix="ess-bench-cache-")
            env["ESS_CACHE_DIR"] = tmp
            env.pop("NUMBA_CACHE_DIR", None)
            first = _child(argv, env)
        else:
            _child(argv, env)   # untimed: writes the .pyc files the timed calls read
        try:
            runs: list[Child] = []
            fewest, most = plan.cold_runs
            while len(runs) < most and (len(runs) < fewest
                                        or sum(r.seconds for r in runs) < 15):
                runs.append(_child(argv, env))
        finally:
            if tmp:
                shutil.rmtree(tmp, ignore_errors=True)
        answer = json.loads(runs[-1].stdout)
        if answer["from_store"]:
            raise RuntimeError("a timed new-process estimate came from the result store")
        rows.append({
            "d": t["d"], "n_r": t["n_r"], "n_s": t["n_s"], "lam": t["lam"],
            "cached_seconds": statistics.median(r.seconds for r in runs),
            "cached_runs": len(runs), "cached_rss_mib": max(r.max_rss_mib for r in runs),
            "estimate_seconds": answer["seconds"],
            "first_seconds": first.seconds if first else None,
            "first_rss_mib": first.max_rss_mib if first else None,
        })
    return {"baseline_import_seconds": statistics.median(c.seconds for c in imports),
            "baseline_import_rss_mib": max(c.max_rss_mib for c in imports), "rows": rows}


def _machine() -> dict:
    """Machine, software versions and the source revision."""
    import numba
    import scipy

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except OSError:
            return ""

    rev = git("rev-parse", "--short", "HEAD")
    if rev and git("status", "--porcelain", "--untracked-files=no"):
        rev += " (with uncommitted changes)"
    return {"machine": platform.machine(), "processor": platform.processor(),
            "system": f"{platform.system()} {platform.release()}",
            "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "scipy": scipy.__version__, "numba": numba.__version__,
            "ess": ess.__version__, "revision": rev or "unknown",
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None}


def run(quick: bool = False, out_dir: str | Path | None = None,
        log: Callable[[str], None] = print) -> Path:
    """Run the whole suite and write its report, raw numbers and figures.

    Parameters
    ----------
    quick : bool
        The short run (under a minute on two cores with warm caches): shorter timing
        windows, fewer sizes, no ``d = 100`` setting and no first-ever (compiling) call;
        files are named ``bench-quick.*`` and ``*-quick.png``.
    out_dir : str or Path, optional
        Output folder (default ``benchmarks/results``).
    log : callable
        Progress messages (default :func:`print`).

    Returns
    -------
    Path
        The Markdown report.
    """
    from benchmarks import report

    # Every timed call must compute: the result store would answer repeats from disk.
    # Set in the environment so that the new processes timed below inherit it.
    os.environ["ESS_STORE"] = "off"
    plan = QUICK if quick else FULL
    out = Path(out_dir) if out_dir is not None else RESULTS
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    started = datetime.datetime.now().astimezone()
    results: dict = {"quick": quick, "date": started.isoformat(timespec="seconds"),
                     "command": "ess bench" + (" --quick" if quick else ""),
                     "machine": _machine(), "plan": asdict(plan) | {"windows": WINDOWS},
                     "rel_precision": REL}

    def step(name: str) -> None:
        log(f"[{time.perf_counter() - t0:6.1f} s] {name}")

    step("1/7 agreement of the baselines with ess")
    results["agreement"] = check_baselines.check(quick=quick)
    step("2/7 throughput and scaling measurements")
    rates = measure(planned_cases(plan), log)
    results["rates"] = [asdict(c) | {"rate": r} for c, r in rates.items()]
    step("3/7 time to a 1% n_e")
    results["time_to_ne"] = time_to_ne(plan, rates, log)
    step("4/7 the paper's workloads: Fig. 11 grid and Fig. 12 thresholds")
    results["paper"] = paper.run(quick, rates[paper_case(plan)], log)
    step(f"5/7 large d: d = {', '.join(map(str, plan.large_d))} (new processes)")
    results["large_d"] = {"setting": large_d.SETTING,
                          "rows": large_d.run(list(plan.large_d), log)}
    step("6/7 start-up and peak memory (new processes)")
    results["startup"] = startup(plan, results["time_to_ne"], log)
    results["startup"]["floors"] = floors.run(plan.floor_runs, log)
    step("7/7 report and figures")
    results["seconds"] = time.perf_counter() - t0
    results["machine"]["load_average_end"] = _machine()["load_average"]
    (out / f"bench{plan.suffix}.json").write_text(json.dumps(results, indent=1) + "\n",
                                                  encoding="utf-8")
    path = report.write(results, out)
    log(f"wrote {path} and its figures in {results['seconds']:.0f} s")
    return path


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.suite [--quick] [--out DIR]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the short run (under a minute)")
    parser.add_argument("--out", default=None, help="output folder (default benchmarks/results)")
    args = parser.parse_args(argv)
    run(quick=args.quick, out_dir=args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
