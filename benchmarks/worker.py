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
        ``{"mean", "sd", "chains", "seconds"}`` of the pilot's last-generation distances;
        or, for ``{"kind": "generations", ...}``, what :func:`chain_seconds` returns.
    """
    if spec["kind"] == "generations":
        return chain_seconds(spec["d"], spec["n_r"], spec["n_s"], spec["lam"],
                             spec["generations"], spec["repeats"])
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


def _eigh_root(Sigma: np.ndarray) -> np.ndarray:
    """The baseline's fallback square root (batched ``eigh``, clipped), used directly."""
    w, V = np.linalg.eigh(Sigma)
    return V * np.sqrt(np.clip(w, 0.0, None))[:, None, :]


def chain_seconds(d: int, n_r: int, n_s: int, lam: float, generations: int,
                  repeats: int) -> dict:
    """Wall time of one chain (a batch of 1) of the vectorised baseline, as it runs for a
    last-generation average: ``vectorised_chain_averages(rng, 1, ..., n_ini = n_r,
    burn_in = k, window = 1)``, which fits generation 1 on ``n_ini`` real samples, runs
    ``k`` more generations (draw, fit, the square root of ``lam Sigma``) and takes the
    distance (``eigvalsh``) of the last one only.

    ``k = 1`` (generation 1, one step and the distance: ``first_seconds``) and ``k = 1 +
    generations`` are timed ``repeats`` times each, interleaved, and the fastest of each
    kept (other load can only slow a run down); their difference over ``generations`` is
    the time of one generation-step from the third generation on (``step_seconds``; the
    second's ``Sigma``, fitted on ``n_ini`` samples, may be singular where later ones are
    not, and its ``eigh`` fallback stays in ``first_seconds``). Where ``n_r + n_s <= d``
    every ``Sigma`` is singular: the baseline's Cholesky attempt, which always fails there,
    is skipped and its ``eigh`` fallback called directly, as a user who knows the rank
    would.

    Returns
    -------
    dict
        ``first_seconds``, ``chain_seconds`` (``k = 1 + generations``),
        ``step_seconds``, ``generations``, ``repeats`` and ``eigh_root`` (whether the
        Cholesky attempt was skipped).
    """
    import benchmarks.baselines as baselines

    rng = np.random.default_rng(PILOT_SEED)
    best = {1: math.inf, 1 + generations: math.inf}
    singular = n_r + n_s <= d
    root = baselines._root
    if singular:
        baselines._root = _eigh_root
    try:
        for _ in range(repeats):
            for k in best:
                t0 = time.perf_counter()
                vectorised_chain_averages(rng, 1, d, n_r, n_s, lam, n_r, k, 1)
                best[k] = min(best[k], time.perf_counter() - t0)
    finally:
        baselines._root = root
    return {"first_seconds": best[1], "chain_seconds": best[1 + generations],
            "step_seconds": max(0.0, (best[1 + generations] - best[1]) / generations),
            "generations": generations, "repeats": repeats, "eigh_root": singular}


if __name__ == "__main__":
    print(json.dumps(work(json.loads(sys.argv[1]))))
