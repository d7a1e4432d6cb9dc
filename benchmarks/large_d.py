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
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

#: The workload's setting.
SETTING = {"n_r": 1000, "n_s": 1000, "lam": 0.9, "rel_precision": 0.02}
#: The child: one estimate, then its numbers, time and peak memory as JSON.
CHILD = """
import json, resource, sys, time
import ess
ess.config.MAX_WORK = 1e15
t0 = time.perf_counter()
r = ess.estimate(d={d}, store=False, **{setting!r})
seconds = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
print(json.dumps({{"d": {d}, "seconds": seconds, "peak_rss_bytes": rss, "n_e": r.n_e,
                  "n_e_over_n_r": r.n_e_over_n_r, "n_e_rel_halfwidth": r.n_e_rel_halfwidth,
                  "chains": r.chains, "generations": r.generations, "burn_in": r.burn_in,
                  "precision_reached": r.precision_reached, "note": r.note}}))
"""
#: Compiles the kernels (and leaves the timed runs' reference curves uncomputed).
WARM = ("import ess; ess.config.MAX_WORK = 1e15; ess.estimate(d=ess.config.LAPACK_MIN_D, "
        "n_r=40, n_s=40, rel_precision=0.2, store=False)")


def run(ds: list[int], log=print) -> list[dict]:
    """Time one estimate per ``d``, each in a new process; returns one row per ``d``."""
    import ess

    env = dict(os.environ, ESS_STORE="off",
               NUMBA_CACHE_DIR=str(ess.config.kernel_cache_root()))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env["ESS_CACHE_DIR"] = tmp    # reference curves computed in the timed run
        subprocess.run([sys.executable, "-c", WARM], env=env, check=True)
        for d in ds:
            out = subprocess.run([sys.executable, "-c", CHILD.format(d=d, setting=SETTING)],
                                 env=env, capture_output=True, text=True, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(row)
            log(f"d = {d}: {row['seconds']:.1f} s, peak memory "
                f"{row['peak_rss_bytes'] / 2**20:.0f} MiB, {row['chains']} chains x "
                f"{row['generations']} generations, n_e/n_r = {row['n_e_over_n_r']:.4f} "
                f"+- {100 * row['n_e_rel_halfwidth']:.2f}%")
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
