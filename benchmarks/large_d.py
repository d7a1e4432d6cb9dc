"""Workload: one estimate at large ``d``, FID's feature space (issue 13, item 4).

``python -m benchmarks.large_d [--d 512,1024,2048] [--out FILE]`` runs, for each ``d``,
``ess.estimate(d, n_r=1000, n_s=1000, lam=0.9, rel_precision=0.02)`` in a new process
(result store off, kernels compiled beforehand, reference curve computed as part of
the run: at these ``d`` it is part of what a user waits for the first time) and
records its wall time, the peak resident memory of the process
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``), the chains and generations used and
whether the precision was reached. ``--d 128`` is a tiny run.

The work budget of one computation (:data:`ess.config.MAX_WORK`) is raised in the
child for this measurement: the default refuses these estimates (budgets are
user-controllable elsewhere; this workload measures the kernels).

**The vectorised baseline, priced.** :func:`benchmarks.baselines.vectorised_chain_averages`
batches its chains (200 above ``d = 10`` in the throughput figures), so one ``d x d`` array
of the batch holds 6.7 GB at ``d = 2048``: it is not run on this work. Its time for the same
answer is priced as :func:`benchmarks.suite.time_to_ne` and :mod:`benchmarks.paper` price
it, with its time per generation measured at each ``d``:

- What it must deliver: the half-width on ``WD`` that the asked precision on ``n_e``
  needs, ``rel * |d log f / d log n| * WD`` (the reference curve's local slope at ``n_e``,
  from the grid points the estimate's inversion computed; the curve is given to the
  baseline for free, while `ess`'s time above includes computing it).
- How: the usual last-generation average. Each chain starts cold from a fit on ``n_ini =
  n_r`` real samples (the baseline knows no stationary moments to start from), runs the
  burn-in a cold start needs at that precision (:func:`ess.plan.burn_in_for` without a
  warm start: the rule `ess` itself used before its warm starts) and keeps the distance of
  its last generation; :func:`benchmarks.suite.chains_needed` chains give the half-width
  from the spread ``sd`` of one generation's distance at stationarity. ``sd`` is measured
  on `ess`'s kernel (:func:`benchmarks.paper.single_generation_sd`, :data:`SD_CHAINS`
  warm-started chains, in the timed child after its estimate; the same law as the
  baseline's, which section 1 of the suite checks at small ``d``).
- At what cost: one chain of the baseline's own code (a batch of 1, which holds a few
  ``d x d`` arrays), in a child process with BLAS held to one thread as for every
  baseline figure (``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` = 1
  set before NumPy loads), timed with a burn-in of 1 (generations 1 and 2 and the
  distance: ``first``) and with :data:`BASELINE_GENERATIONS` more generations (draw, fit
  and the square root of ``lam Sigma``: ``step`` each), fastest of
  :data:`BASELINE_REPEATS` (:func:`benchmarks.worker.chain_seconds`). Time = chains x
  (``first`` + (burn-in - 1) x ``step``): the generation-steps (``burn-in + 1`` a chain)
  at the measured seconds per step, with the distance (an ``eigvalsh``) paid once per
  chain, as the baseline pays it (charging it at every generation, as a throughput
  measured with a window does, would overprice a last-generation average), and the
  second generation, whose ``Sigma`` (fitted on ``n_ini = n_r`` samples) is singular
  where ``n_r <= d`` and takes the baseline's ``eigh`` fallback, priced as it runs.
  Where ``n_r + n_s <= d`` (``d = 2048`` here) every ``Sigma`` is singular; the
  baseline's Cholesky attempt, which then always fails (0.24 s of a 2.3 s generation at
  ``d = 2048``), is skipped in the timing and ``eigh`` called directly.

That is what a competent user with vectorised NumPy would run: sufficient statistics and
LAPACK, no sample-level work, no burn-in beyond what the precision needs, no chain more
than the half-width needs (the chains are an expected count from a measured spread, with no
pilot paid for), BLAS on one core per chain (independent chains would run one per core;
`ess`'s time above uses every core, the baseline's is the time on one core). It could run
its chains on both cores, about half the time where it needs two chains or more: that is
not priced (divide the ratio by the cores for it, or to compare core-seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The workload's setting.
SETTING = {"n_r": 1000, "n_s": 1000, "lam": 0.9, "rel_precision": 0.02}
#: Warm-started chains of `ess`'s kernel that measure the spread of one generation's
#: distance for the baseline's pricing (few: a chain is a whole ``d x d`` loop here).
SD_CHAINS = 4
#: Generations after the first in the timed chain of the baseline, and timed repeats.
BASELINE_GENERATIONS = 2
BASELINE_REPEATS = 2
#: The child: one estimate, then its numbers, time and peak memory as JSON; after the
#: timed part, what prices the baseline (the reference curve's slope at ``n_e``, from the
#: points the estimate computed, and the spread of one generation's distance).
CHILD = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
import ess
ess.config.MAX_WORK = 1e15
t0 = time.perf_counter()
r = ess.estimate(d={d}, store=False, **{setting!r})
seconds = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
from benchmarks.paper import _slope, cold_burn_in, single_generation_sd
t1 = time.perf_counter()
burn = cold_burn_in({d}, r.n_r, r.n_s, r.lam, r.rel_precision)   # under the raised budget
slope = _slope({d}, r.n_e, r.rel_precision) if r.n_e is not None else None
sd = single_generation_sd({d}, r.n_r, r.n_s, r.lam, r.rel_precision, {sd_chains},
                          n_jobs=ess.config.default_jobs())
print(json.dumps({{"d": {d}, "seconds": seconds, "peak_rss_bytes": rss, "n_e": r.n_e,
                  "n_e_over_n_r": r.n_e_over_n_r, "n_e_rel_halfwidth": r.n_e_rel_halfwidth,
                  "wd": r.wd, "chains": r.chains, "generations": r.generations,
                  "burn_in": r.burn_in, "precision_reached": r.precision_reached,
                  "note": r.note, "log_slope": slope, "single_generation_sd": sd,
                  "sd_chains": {sd_chains}, "baseline_burn_in": burn,
                  "pricing_seconds": time.perf_counter() - t1}}))
"""
#: Compiles the kernels (and leaves the timed runs' reference curves uncomputed).
WARM = ("import ess; ess.config.MAX_WORK = 1e15; ess.estimate(d=ess.config.LAPACK_MIN_D, "
        "n_r=40, n_s=40, rel_precision=0.2, store=False)")


def price_baseline(row: dict, log=print) -> dict:
    """The vectorised baseline's priced time for the estimate of ``row`` (see the module
    docstring): its burn-in, chains, generation-steps, measured seconds per step and
    total, and `ess`'s advantage; the step is timed in a child with BLAS on one thread."""
    from benchmarks.suite import _worker, chains_needed

    d, rel = row["d"], SETTING["rel_precision"]
    n_r, n_s, lam = SETTING["n_r"], SETTING["n_s"], SETTING["lam"]
    if row.get("log_slope") is None:
        return {}
    target = rel * abs(row["log_slope"]) * row["wd"]
    burn = row["baseline_burn_in"]    # the child's cold_burn_in (raised work budget)
    chains = chains_needed(row["single_generation_sd"], target)
    timing, child = _worker({"kind": "generations", "d": d, "n_r": n_r, "n_s": n_s,
                             "lam": lam, "generations": BASELINE_GENERATIONS,
                             "repeats": BASELINE_REPEATS})
    seconds = chains * (timing["first_seconds"] + (burn - 1) * timing["step_seconds"])
    out = {"wd_halfwidth_target": target, "baseline_burn_in": burn,
           "baseline_chains": chains, "baseline_steps": chains * (burn + 1),
           "vectorised_first_seconds": timing["first_seconds"],
           "vectorised_step_seconds": timing["step_seconds"],
           "vectorised_eigh_root": timing["eigh_root"],
           "vectorised_timing_rss_mib": child.max_rss_mib,
           "vectorised_seconds": seconds, "vectorised_over_ess": seconds / row["seconds"]}
    log(f"  vectorised baseline (priced): {chains} chains x ({burn} + 1) generations, "
        f"{timing['step_seconds']:.3g} s a step ({timing['first_seconds']:.3g} s for the "
        f"first two and the distance) -> {seconds:.3g} s, {out['vectorised_over_ess']:.2f}x "
        "ess's time")
    return out


def run(ds: list[int], log=print) -> list[dict]:
    """Time one estimate per ``d``, each in a new process, and price the vectorised
    baseline's time for it; returns one row per ``d``."""
    import ess

    env = dict(os.environ, ESS_STORE="off",
               NUMBA_CACHE_DIR=str(ess.config.kernel_cache_root()))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env["ESS_CACHE_DIR"] = tmp    # reference curves computed in the timed run
        subprocess.run([sys.executable, "-c", WARM], env=env, check=True)
        for d in ds:
            code = CHILD.format(d=d, setting=SETTING, root=str(ROOT), sd_chains=SD_CHAINS)
            out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                 text=True, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            log(f"d = {d}: {row['seconds']:.1f} s, peak memory "
                f"{row['peak_rss_bytes'] / 2**20:.0f} MiB, {row['chains']} chains x "
                f"{row['generations']} generations, n_e/n_r = {row['n_e_over_n_r']:.4f} "
                f"+- {100 * row['n_e_rel_halfwidth']:.2f}%")
            row.update(price_baseline(row, log))
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d", default="512,1024,2048", help="dimensions (comma-separated)")
    ap.add_argument("--out", default=None, help="JSON file for the rows")
    args = ap.parse_args(argv)
    rows = run([int(v) for v in args.d.split(",")])
    if args.out:
        Path(args.out).write_text(json.dumps({"setting": SETTING, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
