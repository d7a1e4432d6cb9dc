"""Check that both baselines reproduce `ess`'s limits within Monte-Carlo error.

For each case ``(d, n_r, n_s, lam)`` the mean over chains of the window averages of
:func:`benchmarks.baselines.vectorised_chain_averages` (2000 chains) and of
:func:`benchmarks.baselines.persample_chain_average` (200 chains), with ``burn_in = 40``
and ``window = 80``, is compared with ``ess.estimate(..., rel_precision=0.005).wd``:
a case passes when ``|mean - wd| <= 4 sqrt(se^2 + wd_se^2)``.

Run ``python -m benchmarks.check_baselines [--quick]`` from the repository root; the exit
status is 1 when any comparison fails.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

import ess
from benchmarks.baselines import persample_chain_average, vectorised_chain_averages

#: ``(d, n_r, n_s, lam)``: two small cases and one setting of the benchmark suite.
CASES: tuple[tuple[int, int, int, float], ...] = (
    (1, 20, 40, 0.9), (3, 10, 20, 0.8), (10, 100, 200, 0.9))
BURN_IN = 40
WINDOW = 80
CHAINS = {"vectorised": 2000, "persample": 200}
QUICK_CHAINS = {"vectorised": 500, "persample": 100}
TOLERANCE_SE = 4.0
SEED = 2024


def _chain_averages(impl: str, rng: np.random.Generator, n_chains: int, d: int, n_r: int,
                    n_s: int, lam: float) -> np.ndarray:
    """Per-chain window averages of one baseline (``n_ini = n_r``)."""
    if impl == "vectorised":
        return vectorised_chain_averages(rng, n_chains, d, n_r, n_s, lam, n_r, BURN_IN, WINDOW)
    return np.array([persample_chain_average(rng, d, n_r, n_s, lam, n_r, BURN_IN, WINDOW)
                     for _ in range(n_chains)])


def check(quick: bool = False) -> list[dict]:
    """Compare both baselines with ``ess.estimate`` on every case of :data:`CASES`.

    Parameters
    ----------
    quick : bool
        Use fewer chains (500 vectorised, 100 per-sample) for a faster, looser check.

    Returns
    -------
    list of dict
        One row per case and baseline, with keys ``d, n_r, n_s, lam, impl, chains,
        burn_in, window, mean, se, ess_wd, ess_se, z, passed, seconds`` (``z`` is the
        difference in units of the combined standard error; ``seconds`` is the
        baseline's run time).
    """
    chains = QUICK_CHAINS if quick else CHAINS
    rows = []
    for case_index, (d, n_r, n_s, lam) in enumerate(CASES):
        r = ess.estimate(d=d, n_r=n_r, n_s=n_s, lam=lam, rel_precision=0.005, store=False)
        for impl_index, impl in enumerate(("vectorised", "persample")):
            rng = np.random.default_rng([SEED, case_index, impl_index])
            n_chains = chains[impl]
            t0 = time.perf_counter()
            y = _chain_averages(impl, rng, n_chains, d, n_r, n_s, lam)
            seconds = time.perf_counter() - t0
            mean = float(y.mean())
            se = float(y.std(ddof=1) / math.sqrt(n_chains))
            combined = math.hypot(se, r.wd_se)
            z = (mean - r.wd) / combined
            rows.append({"d": d, "n_r": n_r, "n_s": n_s, "lam": lam, "impl": impl,
                         "chains": n_chains, "burn_in": BURN_IN, "window": WINDOW,
                         "mean": mean, "se": se, "ess_wd": float(r.wd),
                         "ess_se": float(r.wd_se), "z": float(z),
                         "passed": bool(abs(z) <= TOLERANCE_SE), "seconds": seconds})
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run :func:`check`, print one line per comparison; 0 when all pass, else 1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer chains")
    args = parser.parse_args(argv)
    rows = check(quick=args.quick)
    for row in rows:
        print(f"{'PASS' if row['passed'] else 'FAIL'} d={row['d']} n_r={row['n_r']} "
              f"n_s={row['n_s']} lam={row['lam']} {row['impl']:>10} "
              f"({row['chains']} chains, {row['seconds']:.1f} s): "
              f"{row['mean']:.5f} ± {row['se']:.5f} vs ess {row['ess_wd']:.5f} ± "
              f"{row['ess_se']:.5f}  z = {row['z']:+.2f}")
    return 0 if all(row["passed"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
