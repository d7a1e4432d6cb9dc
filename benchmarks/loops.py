"""``ess.simulate`` of every loop against the per-sample NumPy form of the same loop.

The baseline runs each loop as public model-collapse code does (for example the
Gaussian-fitting experiments of Kazdan et al. 2024): one chain at a time, every sample
drawn with ``Generator.multivariate_normal``, the accumulate pool kept as a list of
arrays and concatenated every generation, subsamples by ``Generator.choice(...,
replace=False)``, fits by ``np.mean`` / ``np.cov`` and the distance by
``scipy.linalg.sqrtm``. `ess` runs ``ess.simulate`` (per-generation rows, ``n_e(t)``
and the diagnostics included) of the same loop: on sufficient statistics, except
``accumulate-subsample``, which is sample level in `ess` too (see
:mod:`ess.kernels.accumulate`).

Setting (issue 14): ``d`` in {2, 10}, ``n_r = n_ini = n_s = 100``, ``lam = 1``,
50 generations, 1000 chains. The baseline is timed on ``baseline_chains`` chains in a
child process with BLAS pinned to one thread and its time scaled to 1000 chains (its
chains are independent and cost the same); `ess` is timed on 1 thread (the fair
comparison) and on every core, after a warm-up call that compiles the kernels and fills
the reference curve (its time is reported apart). Timings are the fastest of ``repeats``,
in wall-clock time and, for the one-thread comparison, in CPU time too (``process_time``
of the timing process: on a machine shared with other work, wall-clock times of short runs
swing with the load, CPU times much less).

``python -m benchmarks.loops`` (from the repository root) writes
``benchmarks/results/loops.json`` and ``loops.md``; ``--tiny`` runs a few chains only
(to check that the code runs: its ratios mean little) and writes ``loops-tiny.*``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
LOOPS = ("fully-synthetic", "augmentation", "fresh", "accumulate", "accumulate-subsample")
DIMS = (2, 10)
N_R = N_S = 100
LAM = 1.0
GENERATIONS = 50
#: Environment variables that pin BLAS to one thread in the baseline's process.
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@dataclass(frozen=True)
class Plan:
    """Sizes of one run."""

    chains: int            # ess's chains (the comparison is at 1000)
    baseline_chains: int   # chains the baseline runs (scaled to ``chains``)
    repeats: int           # timings per figure; the fastest is kept


FULL = Plan(chains=1000, baseline_chains=40, repeats=3)
TINY = Plan(chains=100, baseline_chains=2, repeats=1)


# --------------------------------------------------------------------------------------
# The baseline: one chain at a time, sample by sample
# --------------------------------------------------------------------------------------
def _w2sq(mu: np.ndarray, Sigma: np.ndarray) -> float:
    """Squared 2-Wasserstein distance of ``N(mu, Sigma)`` to ``N(0, I)``, by ``sqrtm``."""
    from scipy.linalg import sqrtm

    root = np.real(sqrtm(Sigma))
    return float(mu @ mu + np.trace(Sigma) + Sigma.shape[0] - 2.0 * np.trace(root))


def persample_chain(rng: np.random.Generator, loop: str, d: int, n_r: int, n_s: int,
                    lam: float, generations: int) -> np.ndarray:
    """Distances of one chain of ``loop`` to ``N(0, I_d)`` over ``generations``, sample by
    sample (``n_ini = n_r``, unbiased covariance, ``memory = 1``).

    Returns
    -------
    ndarray, shape (generations,)
    """
    zero, eye = np.zeros(d), np.eye(d)
    real = rng.multivariate_normal(zero, eye, size=n_r)
    mu, Sigma = real.mean(axis=0), np.cov(real, rowvar=False)
    pool = [real]
    out = np.empty(generations)
    for t in range(generations):
        if t > 0:
            syn = rng.multivariate_normal(mu, lam * Sigma, size=n_s)
            if loop == "fully-synthetic":
                data = syn
            elif loop == "augmentation":
                data = np.concatenate([real, syn])
            elif loop == "fresh":
                data = np.concatenate([rng.multivariate_normal(zero, eye, size=n_r), syn])
            else:
                pool.append(syn)
                data = np.concatenate(pool)
                if loop == "accumulate-subsample":
                    m = min(n_r + n_s, data.shape[0])
                    data = data[rng.choice(data.shape[0], size=m, replace=False)]
            mu, Sigma = data.mean(axis=0), np.cov(data, rowvar=False)
        out[t] = _w2sq(mu, Sigma)
    return out


def fastest(run, repeats: int) -> tuple[float, float]:
    """Fastest wall-clock and fastest CPU time (s, ``process_time``) of ``run(r)`` over
    ``r = 0 .. repeats - 1``."""
    wall = cpu = float("inf")
    for r in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        run(r)
        wall = min(wall, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
    return wall, cpu


def time_baseline(loop: str, d: int, chains: int, repeats: int) -> tuple[float, float]:
    """Fastest of ``repeats`` wall-clock and CPU times (s) of ``chains`` baseline chains, in
    this process, after a short chain that pays the first calls' costs (SciPy's lazy
    imports)."""
    persample_chain(np.random.default_rng(1000), loop, d, N_R, N_S, LAM, 2)   # first calls

    def run(r: int) -> None:
        rng = np.random.default_rng(r)
        for _ in range(chains):
            persample_chain(rng, loop, d, N_R, N_S, LAM, GENERATIONS)

    return fastest(run, repeats)


def baseline_in_child(loop: str, d: int, chains: int, repeats: int) -> tuple[float, float]:
    """:func:`time_baseline` in a new process with BLAS pinned to one thread."""
    env = dict(os.environ, **ONE_THREAD, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "benchmarks.loops", "--child", loop, str(d), str(chains),
           str(repeats)]
    out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    wall, cpu = out.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


# --------------------------------------------------------------------------------------
# ess
# --------------------------------------------------------------------------------------
def time_ess(loop: str, d: int, chains: int, repeats: int,
             n_jobs: int) -> tuple[float, float, float]:
    """Fastest of ``repeats`` wall-clock times (s) of ``ess.simulate`` of ``chains`` chains
    and of its kernels alone (:func:`ess.chains.trajectories`, without the rows and
    ``n_e(t)``), and the fastest CPU time of ``ess.simulate``."""
    import ess
    from ess.chains import trajectories
    from ess.request import simulate_request

    kw = dict(d=d, n_r=N_R, n_s=N_S, lam=LAM, loop=loop, chains=chains,
              generations=GENERATIONS, n_jobs=n_jobs)
    req = simulate_request(**kw)
    best, cpu = fastest(lambda r: ess.simulate(seed=r, **kw), repeats)
    kernels, _ = fastest(lambda r: trajectories(req.params, chains, GENERATIONS, r, n_jobs),
                         repeats)
    return best, kernels, cpu


def warm_up(loop: str, d: int) -> float:
    """Time (s) of a first small ``ess.simulate``: compiling the kernels (or loading them
    from the cache) and computing the reference-curve points it needs."""
    import ess

    t0 = time.perf_counter()
    ess.simulate(d=d, n_r=N_R, n_s=N_S, lam=LAM, loop=loop, chains=8,
                 generations=GENERATIONS, seed=1000, n_jobs=1)
    return time.perf_counter() - t0


def run(plan: Plan, out_dir: Path = RESULTS, name: str = "loops") -> dict:
    """Measure every loop at every ``d``; write ``<name>.json`` and ``<name>.md``."""
    from ess import config

    cores = config.default_jobs()
    rows = []
    for d in DIMS:
        for loop in LOOPS:
            warm = warm_up(loop, d)
            one, kernels, one_cpu = time_ess(loop, d, plan.chains, plan.repeats, 1)
            every, _, _ = time_ess(loop, d, plan.chains, plan.repeats, cores)
            base, base_cpu = baseline_in_child(loop, d, plan.baseline_chains, plan.repeats)
            scale = plan.chains / plan.baseline_chains
            base_scaled, base_cpu = base * scale, base_cpu * scale
            rows.append({"d": d, "loop": loop, "chains": plan.chains,
                         "baseline_chains": plan.baseline_chains,
                         "baseline_s": base_scaled, "ess_1_thread_s": one,
                         "ess_kernels_1_thread_s": kernels, "ess_all_cores_s": every,
                         "cores": cores, "speedup_1_thread": base_scaled / one,
                         "speedup_all_cores": base_scaled / every,
                         "baseline_cpu_s": base_cpu, "ess_1_thread_cpu_s": one_cpu,
                         "speedup_1_thread_cpu": base_cpu / one_cpu, "warm_up_s": warm})
            print(f"d = {d:>2} {loop:<21} baseline {base_scaled:8.2f} s  ess 1 thread "
                  f"{one:7.3f} s (kernels {kernels:.3f} s), {cores} threads {every:7.3f} s: "
                  f"{base_scaled / one:7.1f}x / {base_scaled / every:7.1f}x; CPU time "
                  f"{base_cpu:.2f} s / {one_cpu:.3f} s: {base_cpu / one_cpu:.1f}x", flush=True)
    result = {"setting": {"dims": DIMS, "n_r": N_R, "n_s": N_S, "n_ini": N_R, "lam": LAM,
                          "generations": GENERATIONS, **plan.__dict__},
              "rows": rows}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    (out_dir / f"{name}.md").write_text(markdown(result))
    return result


def markdown(result: dict) -> str:
    """The table of ``loops.md``."""
    s = result["setting"]
    lines = [
        "# ess.simulate against the per-sample NumPy loop",
        "",
        f"`n_r = n_ini = n_s = {s['n_r']}`, `lam = {s['lam']:g}`, {s['generations']} "
        f"generations, {s['chains']} chains (the baseline ran {s['baseline_chains']} chains, "
        "scaled; BLAS on one thread). `ess` runs `ess.simulate` (rows, `n_e(t)`, "
        "diagnostics); \"kernels\" is the trajectories alone. Fastest of "
        f"{s['repeats']} runs; timings on a shared machine are noisy (the CPU-time "
        "columns, one thread, much less).",
        "",
        "| d | loop | baseline (s) | ess, 1 thread (s) | kernels, 1 thread (s) | "
        "ess, all cores (s) | speed-up, 1 thread | speed-up, all cores | "
        "CPU s, baseline / ess 1 thread | speed-up, 1 thread, CPU time |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(f"| {r['d']} | {r['loop']} | {r['baseline_s']:.3g} | "
                     f"{r['ess_1_thread_s']:.3g} | {r['ess_kernels_1_thread_s']:.3g} | "
                     f"{r['ess_all_cores_s']:.3g} | {r['speedup_1_thread']:.0f}x | "
                     f"{r['speedup_all_cores']:.0f}x | {r['baseline_cpu_s']:.3g} / "
                     f"{r['ess_1_thread_cpu_s']:.3g} | {r['speedup_1_thread_cpu']:.0f}x |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.loops", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="a few chains: checks the code runs")
    ap.add_argument("--out", default=str(RESULTS), help="output folder")
    ap.add_argument("--child", nargs=4, metavar=("LOOP", "D", "CHAINS", "REPEATS"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        loop, d, chains, repeats = args.child
        print(*time_baseline(loop, int(d), int(chains), int(repeats)))
        return 0
    run(TINY if args.tiny else FULL, Path(args.out), "loops-tiny" if args.tiny else "loops")
    return 0


if __name__ == "__main__":
    sys.exit(main())
