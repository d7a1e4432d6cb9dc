"""How far from the limit the chains of a limit estimate start: warm against cold.

``python -m benchmarks.warm_start [--chains-scale X] [--out FILE]`` (from the repository
root) runs, per setting ``(d, n_r, n_s, lam)``, chains of the fresh loop from the warm
start of :func:`ess.plan.warm_start` and from the cold start (the fit on ``n_ini = n_r``
real samples), and reports the relative excess of ``E dist(G^t, P_r)`` over the limit at
generations ``t = 0, 1, 2, 4, 8``: ``(mean_c dist_t(c) - mean_c late(c)) / mean_c late(c)``,
where ``late(c)`` is warm chain ``c``'s own average over generations ``T0 .. T0 + W``, long
after its start is forgotten (``T0`` from :func:`ess.analytic.mixing_rate`). Pairing
each warm chain with its own late average makes the standard error that of ``dist_t``
alone; the cold chains (other seeds) are compared with the same limit, unpaired.

The constant :data:`ess.plan.WARM_EXCESS` that sizes the warm start's burn-in comes from
this measurement (the numbers are quoted beside it).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from ess.analytic import mixing_rate
from ess.chains import STREAM_LIMIT, chunk_rngs
from ess.kernels.layout import REC_DIST, REC_FIELDS
from ess.kernels.loops import LOOP_FRESH, _chain, _workspace_d1
from ess.kernels.warm import WARM_FIELDS
from ess.plan import warm_start
from ess.request import estimate_request

#: ``(d, n_r, n_s, lam, chains)``: the settings measured and their chains (before
#: ``--chains-scale``). ``d = 1`` needs many chains: one generation's distance varies
#: by about 75% of its mean there, against 1% at ``d = 100``.
SETTINGS = (
    (1, 100, 0, 1.0, 40_000), (1, 100, 50, 0.5, 40_000), (1, 100, 200, 0.9, 40_000),
    (1, 100, 900, 0.8, 40_000), (1, 100, 10_000, 1.0, 40_000), (1, 2, 200, 1.0, 40_000),
    (1, 1000, 100, 0.7, 40_000),
    (2, 50, 100, 0.9, 20_000),
    (10, 100, 0, 1.0, 4000), (10, 100, 200, 0.9, 4000), (10, 100, 900, 0.8, 4000),
    (10, 100, 10_000, 0.5, 4000), (10, 20, 200, 1.0, 4000), (10, 5, 50, 0.7, 4000),
    (100, 100, 900, 0.8, 200), (100, 100, 7500, 0.85, 200), (100, 100, 100, 0.7, 200),
    (100, 1000, 10_000, 1.0, 100), (100, 50, 500, 0.9, 200),
)
#: Generations whose excess is reported.
REPORTED = (0, 1, 2, 4, 8)


def _run(p, warm: np.ndarray, seed: int, n_gen: int, rec_from: int, every: int) -> np.ndarray:
    """Distances of one chain at generations ``rec_from, rec_from + every, ... < n_gen``."""
    ns = np.array([p.n_s], dtype=np.int64)
    n_rec = len(range(rec_from, n_gen, every))
    traj = np.empty((1, n_rec, REC_FIELDS))
    real, syn, mix = chunk_rngs(seed, STREAM_LIMIT, 0, False)
    _chain(real, syn, mix, LOOP_FRESH, p.n_ini, p.n_r, ns, p.lam, 1,
           p.cov_estimator == "mle", 0, np.zeros(p.d), p.L_r, p.sr_identity, n_gen, rec_from,
           every, traj, _workspace_d1(ns, 1), warm)
    return traj[0, :, REC_DIST]


def measure(d: int, n_r: int, n_s: int, lam: float, chains: int) -> dict:
    """Relative excess at :data:`REPORTED` generations, warm and cold, with standard errors.

    The limit is the mean of the warm chains' late averages; each warm chain's early
    distances are paired with its own late average, the cold chains' (other seeds) are not.
    """
    p = estimate_request(d=d, n_r=n_r, n_s=n_s, lam=lam).params
    rho = mixing_rate(n_r, n_s, 1, lam)
    # late window: a warm excess of 5% decayed to 1e-4 of the limit, then 40 records
    t0 = max(20, math.ceil(math.log(2e-3) / math.log(rho))) if rho > 0 else 20
    every = max(1, t0 // 40)
    window = 40 * every
    warm = np.array(warm_start(p, (n_s,))).reshape(-1, WARM_FIELDS)
    cold = np.empty((0, WARM_FIELDS))
    first = max(REPORTED) + 1
    cols = list(REPORTED)
    out = {"d": d, "n_r": n_r, "n_s": n_s, "lam": lam, "chains": chains, "rho": rho,
           "late_from": t0, "late_window": window}
    early = np.empty((chains, first))
    late = np.empty(chains)
    early_cold = np.empty((chains, first))
    for c in range(chains):
        early[c] = _run(p, warm, 7_000_000 + c, first, 0, 1)
        late[c] = _run(p, warm, 7_000_000 + c, t0 + window, t0, every).mean()
        early_cold[c] = _run(p, cold, 9_000_000 + c, first, 0, 1)
    limit = late.mean()
    diff = early[:, cols] - late[:, None]
    out["limit"] = limit
    out["limit_se"] = late.std(ddof=1) / math.sqrt(chains)
    out["warm"] = {"excess": (diff.mean(axis=0) / limit).tolist(),
                   "excess_se": (diff.std(axis=0, ddof=1) / math.sqrt(chains) / limit).tolist()}
    var = early_cold[:, cols].var(axis=0, ddof=1) + late.var(ddof=1)
    out["cold"] = {"excess": ((early_cold[:, cols].mean(axis=0) - limit) / limit).tolist(),
                   "excess_se": (np.sqrt(var / chains) / limit).tolist()}
    return out


def main(argv: list[str] | None = None) -> int:
    """Measure every setting of :data:`SETTINGS`; print a table, write JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chains-scale", type=float, default=1.0,
                    help="multiply every setting's chains (e.g. 0.05 for a quick look)")
    ap.add_argument("--d", type=int, default=None, help="only the settings of this d")
    ap.add_argument("--out", default=None, help="JSON file for the numbers")
    args = ap.parse_args(argv)
    rows = []
    print(f"{'d':>4} {'n_r':>5} {'n_s':>6} {'lam':>5} {'rho':>6} "
          + " ".join(f"{'warm t=' + str(t):>17}" for t in REPORTED) + f" {'cold t=0':>17}")
    for d, n_r, n_s, lam, chains in SETTINGS:
        if args.d is not None and d != args.d:
            continue
        t = time.perf_counter()
        r = measure(d, n_r, n_s, lam, max(50, int(chains * args.chains_scale)))
        r["seconds"] = time.perf_counter() - t
        rows.append(r)
        w, c = r["warm"], r["cold"]
        cells = [f"{100 * e:+8.3f}±{100 * s:6.3f}%" for e, s in zip(w["excess"], w["excess_se"])]
        cells.append(f"{100 * c['excess'][0]:+8.2f}±{100 * c['excess_se'][0]:6.2f}%")
        print(f"{d:>4} {n_r:>5} {n_s:>6} {lam:>5g} {r['rho']:6.3f} " + " ".join(cells),
              flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


# --------------------------------------------------------------------------------------
# The start's excess alone, without chains: the warm law's E dist against a fine limit
# --------------------------------------------------------------------------------------

def warm_law_distance(p, draws: int, seed: int = 0) -> tuple[float, float]:
    """``E dist`` of the warm start's law (``w2sq``, ``Sigma_r = I``) and its standard error.

    ``E|mu|^2`` and ``E tr Sigma`` are matched exactly, so only ``E tr Sigma^{1/2}`` is
    computed: in closed form for ``d = 1`` (the mean of a chi distribution), by Monte
    Carlo over ``draws`` Wishart matrices (SciPy, eigenvalues by LAPACK) otherwise.
    """
    from scipy import special, stats

    (mu_sd, g, nu), = warm_start(p, (p.n_s,))
    d = p.d
    k = nu if nu >= d + 1 else max(1, math.floor(nu + 0.5))
    lin = d * mu_sd**2 + g * k * d + d        # E|mu|^2 + E tr Sigma + tr Sigma_r
    if d == 1:
        chi = math.sqrt(2.0) * math.exp(special.gammaln((k + 1) / 2) - special.gammaln(k / 2))
        return lin - 2.0 * math.sqrt(g) * chi, 0.0
    from ess.stats import cv_mean

    rng = np.random.default_rng(seed)
    vals, cvs = [], []
    for lo in range(0, draws, 500):
        n = min(500, draws - lo)
        if k >= d:
            W = stats.wishart(df=k, scale=np.eye(d)).rvs(size=n, random_state=rng)
            W = W.reshape(n, d, d)
        else:
            G = rng.standard_normal((n, d, int(k)))
            W = G @ G.transpose(0, 2, 1)
        ev = np.clip(np.linalg.eigvalsh(W), 0.0, None)
        vals.append(np.sqrt(ev).sum(axis=1))
        cvs.append(np.column_stack([ev.sum(axis=1), (ev * ev).sum(axis=1)]))
    # tr W and tr W^2 as control variates: E tr W = k d, E tr W^2 = k (k + d + 1) d
    t, se, _ = cv_mean(np.concatenate(vals), np.concatenate(cvs),
                       np.array([k * d, k * (k + d + 1) * d]))
    return lin - 2.0 * math.sqrt(g) * t, 2.0 * math.sqrt(g) * se


def cold_limit(p, chains: int, seed: int = 1) -> tuple[float, float]:
    """The limit by cold-started chains with a burn-in for a start ``n / n_ini`` times
    the limit away to fall to 1e-5 of it, and a window of the same length; the
    control-variate mean (:func:`ess.stats.cv_mean`) and its standard error."""
    from dataclasses import replace as _replace

    from ess.chains import LimitPlan, chunk_size, limit_chunks
    from ess.plan import burn_in_for, record_every
    from ess.solve import _known_means, _limit_stats

    cold = _replace(p, n_ini=p.n_r)
    burn = burn_in_for(cold, 4e-5)
    every = record_every(p.d)
    window = max(32, -(-burn // (2 * every)) * 2 * every)
    plan = LimitPlan(cold, (p.n_s,), burn, window, seed, every)
    data = limit_chunks(plan, 0, max(1, chains // chunk_size(p.d)), 2)
    wd, se, _ = _limit_stats(data, 0, _known_means(p, p.n_s))
    return wd, se


def start_excess(settings, draws: int, chains: int) -> list[dict]:
    """The warm law's relative excess over a cold-started limit, per setting."""
    rows = []
    for d, n_r, n_s, lam in settings:
        p = estimate_request(d=d, n_r=n_r, n_s=n_s, lam=lam).params
        (_, _, nu), = warm_start(p, (n_s,))
        e0, e0_se = warm_law_distance(p, draws)
        wd, wd_se = cold_limit(p, chains)
        rows.append({"d": d, "n_r": n_r, "n_s": n_s, "lam": lam, "nu": nu,
                     "warm_dist": e0, "limit": wd, "excess": e0 / wd - 1.0,
                     "excess_se": math.hypot(e0_se, e0 / wd * wd_se) / wd})
        r = rows[-1]
        print(f"{d:>4} {n_r:>5} {n_s:>6} {lam:>5g} nu={nu:9.2f} excess "
              f"{100 * r['excess']:+8.3f} ± {100 * r['excess_se']:.3f}%", flush=True)
    return rows
