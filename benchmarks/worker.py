"""The work of a baseline child process: ``python -m benchmarks.worker JSON``.

:mod:`benchmarks.suite` runs the baselines in child processes with BLAS pinned to one
thread, and reads their peak memory; this module imports NumPy, SciPy and the baselines
only (not `ess`), so that memory is the baselines' own.
"""

from __future__ import annotations

import json
import math
import sys
import time

import numpy as np

from benchmarks.baselines import persample_chain_average, vectorised_chain_averages
from benchmarks.throughput import generation_steps_per_second

#: Seed of the baselines' pilot runs.
PILOT_SEED = 7


def work(spec: dict) -> dict:
    """Throughput measurements, or a pilot run of a baseline.

    Parameters
    ----------
    spec : dict
        ``{"kind": "throughput", "cases": [...]}``, each case a dict with ``impl``
        (``"persample"`` or ``"vectorised"``), ``d, n_r, n_s, lam`` and its timing window
        ``seconds``; or ``{"kind": "pilot", "impl", "d", "n_r", "n_s", "lam", "burn_in",
        "chains"}``: that many chains of ``burn_in + 1`` generations of one baseline
        (``n_ini = n_r``), keeping the distance of the last generation.

    Returns
    -------
    dict
        ``{"rates": [...]}``, generation-steps per second in the order of the cases; or
        ``{"mean", "sd", "chains", "seconds"}`` of the pilot's last-generation distances.
    """
    if spec["kind"] == "throughput":
        return {"rates": [generation_steps_per_second(c["impl"], c["d"], c["n_r"], c["n_s"],
                                                      c["lam"], c["seconds"])
                          for c in spec["cases"]]}
    rng = np.random.default_rng(PILOT_SEED)
    args = (spec["d"], spec["n_r"], spec["n_s"], spec["lam"], spec["n_r"], spec["burn_in"], 1)
    t0 = time.perf_counter()
    if spec["impl"] == "vectorised":
        y = vectorised_chain_averages(rng, spec["chains"], *args)
    else:
        y = np.array([persample_chain_average(rng, *args) for _ in range(spec["chains"])])
    seconds = time.perf_counter() - t0
    sd = float(y.std(ddof=1)) if y.size > 1 else math.nan
    return {"mean": float(y.mean()), "sd": sd, "chains": int(y.size), "seconds": seconds}


if __name__ == "__main__":
    print(json.dumps(work(json.loads(sys.argv[1]))))
