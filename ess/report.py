"""Tables and figures: CSV/JSON/Markdown writers and seaborn heatmaps.

Plotting libraries are imported inside the functions so ``import ess`` stays light.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path

from ess.params import ParameterError
from ess.results import EstimateResult, SimulateResult, ThresholdResult

TABLE_FORMATS = (".csv", ".json", ".md")

ESTIMATE_COLUMNS = ["d", "metric", "cov_estimator", "loop", "memory", "n_r", "n_s", "lam",
                    "wd", "wd_ci_low", "wd_ci_high", "n_e", "n_e_ci_low", "n_e_ci_high",
                    "n_e_over_n_r", "n_e_over_n_r_ci_low", "n_e_over_n_r_ci_high",
                    "precision_reached", "converged", "chains", "generations", "burn_in", "seed",
                    "rel_precision", "note"]
THRESHOLD_COLUMNS = ["d", "metric", "cov_estimator", "memory", "n_r", "lam", "n_s_star",
                     "n_s_star_ci_low", "n_s_star_ci_high", "cap", "evaluations",
                     "precision_reached", "seed", "rel_precision", "note"]


def check_table_path(path: str | Path, name: str = "out") -> Path:
    """A table file's format comes from its extension: .csv, .json or .md."""
    p = Path(path)
    if p.suffix.lower() not in TABLE_FORMATS:
        raise ParameterError(name, f"{name} must end in .csv, .json or .md, got {str(path)!r}")
    return p


def estimate_rows(results: Sequence[EstimateResult]) -> list[dict]:
    """Flat rows (one per cell) of an ESS table."""
    rows = []
    for r in results:
        d = r.to_dict()
        for key in ("wd", "n_e", "n_e_over_n_r"):
            d[f"{key}_ci_low"], d[f"{key}_ci_high"] = d[f"{key}_ci"] or (None, None)
        rows.append({k: d.get(k) for k in ESTIMATE_COLUMNS})
    return rows


def threshold_rows(results: Sequence[ThresholdResult]) -> list[dict]:
    """Flat rows (one per cell) of a threshold grid."""
    rows = []
    for r in results:
        d = r.to_dict()
        d["n_s_star_ci_low"], d["n_s_star_ci_high"] = d["n_s_star_ci"]
        rows.append({k: d.get(k) for k in THRESHOLD_COLUMNS})
    return rows


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def write_rows(rows: list[dict], path: str | Path, title: str = "") -> Path:
    """Write rows as CSV, JSON or a Markdown table, by the file's extension."""
    p = check_table_path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    cols = list(rows[0].keys()) if rows else []
    suffix = p.suffix.lower()
    if suffix == ".csv":
        with open(p, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=cols)
            w.writeheader()
            for r in rows:
                w.writerow({k: _fmt(v) for k, v in r.items()})
    elif suffix == ".json":
        p.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    else:
        lines = [f"# {title}", ""] if title else []
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("|" + "---|" * len(cols))
        for r in rows:
            lines.append("| " + " | ".join(_fmt(r[c]) for c in cols) + " |")
        p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def _subtitle(d: int, metric: str, cov: str, rel: float, seed: int) -> str:
    return (f"d = {d}, metric {metric}, {cov} covariance, fresh data loop, "
            f"95% CI half-width {100 * rel:g}% on n_e, seed {seed}")


def _finish(fig, ax, title: str, r0, path: str | Path) -> Path:
    """Title (with the subtitle every figure carries), layout, save, close."""
    ax.set_title(title + "\n" + _subtitle(r0.d, r0.metric, r0.cov_estimator, r0.rel_precision,
                                          r0.seed), fontsize=9)
    return _save(fig, path, dpi=130)


def _save(fig, path: str | Path, dpi: int) -> Path:
    """Lay out, write (creating the folder) and close a figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out


def _use_agg():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="white", context="notebook")
    return plt, sns


def _is_geometric(values: Sequence[float]) -> bool:
    v = sorted(values)
    if len(v) < 3 or v[0] <= 0:
        return False
    r = [v[i + 1] / v[i] for i in range(len(v) - 1)]
    return max(r) / min(r) < 1.3 and r[0] > 1.4


def threshold_heatmap(results: Sequence[ThresholdResult], path: str | Path) -> Path:
    """Heatmap of ``n_s*`` over ``(n_r, lam)``; cells annotated; colour on a log scale.

    "No threshold up to the cap" cells are hatched and marked ``> cap``.
    """
    import numpy as np
    from matplotlib.colors import LogNorm

    plt, sns = _use_agg()
    n_rs = sorted({r.n_r for r in results})
    lams = sorted({r.lam for r in results})
    Z = np.full((len(n_rs), len(lams)), np.nan)
    ann = np.empty(Z.shape, dtype=object)
    for r in results:
        i, j = n_rs.index(r.n_r), lams.index(r.lam)
        if r.n_s_star is None:
            ann[i, j] = f"> {r.cap}"
        else:
            Z[i, j] = r.n_s_star
            lo, hi = r.n_s_star_ci
            ann[i, j] = f"{r.n_s_star}\n[{lo}, {'>cap' if hi is None else hi}]"
    fig, ax = plt.subplots(figsize=(max(7.0, 1.25 * len(lams) + 3),
                                    max(3.8, 0.8 * len(n_rs) + 2.6)))
    pos = Z[np.isfinite(Z) & (Z > 0)]
    ax.set_facecolor("#eeeeee")
    if pos.size:
        norm = LogNorm(vmin=max(pos.min(), 1), vmax=max(pos.max(), 2))
        sns.heatmap(np.where(Z > 0, Z, np.nan), ax=ax, annot=ann, fmt="", cmap="viridis",
                    norm=norm, xticklabels=[f"{x:g}" for x in lams],
                    yticklabels=[str(n) for n in n_rs],
                    cbar_kws={"label": "admissible threshold n_s* (log scale)"},
                    annot_kws={"fontsize": 8}, linewidths=0.5, linecolor="white")
    else:   # nothing to colour: every cell is "none up to the cap" or 0
        sns.heatmap(np.zeros(Z.shape), ax=ax, cmap=["#eeeeee"], cbar=False,
                    xticklabels=[f"{x:g}" for x in lams], yticklabels=[str(n) for n in n_rs],
                    linewidths=0.5, linecolor="white")
    for i in range(Z.shape[0]):   # seaborn does not annotate masked cells: do it here
        for j in range(Z.shape[1]):
            if np.isnan(Z[i, j]):
                ax.add_patch(plt.Rectangle((j, i), 1, 1, fill=False, hatch="//",
                                           edgecolor="#999999", lw=0))
                ax.text(j + 0.5, i + 0.5, ann[i, j], ha="center", va="center", fontsize=8)
            elif Z[i, j] == 0:
                ax.add_patch(plt.Rectangle((j, i), 1, 1, color="#cc4444", alpha=0.35))
                ax.text(j + 0.5, i + 0.5, ann[i, j], ha="center", va="center", fontsize=8)
    legend = []
    if np.isnan(Z).any():
        legend.append("hatched: n_e >= n_r for every n_s up to the cap (no threshold)")
    if (Z == 0).any():
        legend.append("red: no positive n_s is admissible")
    if legend:
        fig.text(0.01, 0.01, "; ".join(legend), fontsize=7, color="#555555")
    ax.invert_yaxis()
    ax.set_xlabel("sampling bias λ (1 = unbiased)")
    ax.set_ylabel("real samples per generation n_r")
    return _finish(fig, ax, "Largest synthetic amount n_s keeping n_e ≥ n_r  "
                   "(95% CI in brackets)", results[0], path)


def ne_heatmap(results: Sequence[EstimateResult], path: str | Path) -> Path:
    """Heatmap of ``n_e / n_r`` over ``(n_r, n_s)`` for one ``lam`` (the paper's Fig. 11).

    Colours on a log scale centred on 1 (blue: synthetic data helps, red: it
    hurts), cells annotated with the ratio and its 95% half-width, the
    ``n_e = n_r`` contour drawn.
    """
    import numpy as np
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.lines import Line2D

    plt, sns = _use_agg()
    n_rs = sorted({r.n_r for r in results})
    n_ss = sorted({r.n_s for r in results})
    Z = np.full((len(n_rs), len(n_ss)), np.nan)
    ann = np.full(Z.shape, "n_e<2", dtype=object)
    for r in results:
        if r.n_e_over_n_r is not None:
            i, j = n_rs.index(r.n_r), n_ss.index(r.n_s)
            Z[i, j] = r.n_e_over_n_r
            lo, hi = r.n_e_over_n_r_ci
            ann[i, j] = f"{r.n_e_over_n_r:.2f}\n±{(hi - lo) / 2:.2f}"
    missing = ~np.isfinite(Z)
    logz = np.log2(Z)
    lo = min(float(np.nanmin(logz)), -0.05) if np.isfinite(logz).any() else -1.0
    hi = max(float(np.nanmax(logz)), 0.05) if np.isfinite(logz).any() else 1.0
    fig, ax = plt.subplots(figsize=(max(7.0, 1.0 * len(n_ss) + 3.2),
                                    max(3.8, 0.7 * len(n_rs) + 2.6)))
    ax.set_facecolor("#dddddd")
    sns.heatmap(logz, ax=ax, annot=ann, fmt="", cmap="RdBu",
                norm=TwoSlopeNorm(vcenter=0.0, vmin=lo, vmax=hi),
                xticklabels=[str(n) for n in n_ss], yticklabels=[str(n) for n in n_rs],
                cbar_kws={"label": "n_e / n_r (> 1: synthetic data helps)"},
                annot_kws={"fontsize": 8}, linewidths=0.5, linecolor="white")
    for i, j in zip(*np.nonzero(missing)):
        ax.text(j + 0.5, i + 0.5, "n_e<2", ha="center", va="center", fontsize=8)
    cbar = ax.collections[0].colorbar
    ratios = [1 / 64, 1 / 16, 1 / 4, 0.5, 1.0, 1.1, 1.25, 1.5, 2.0, 4.0, 8.0]
    ticks = [math.log2(t) for t in ratios if lo <= math.log2(t) <= hi]
    cbar.set_ticks(ticks)
    cbar.set_ticklabels([f"{2.0**t:.3g}" for t in ticks])
    if Z.shape[0] >= 2 and Z.shape[1] >= 2 and np.nanmin(Z) < 1 < np.nanmax(Z):
        X, Y = np.meshgrid(np.arange(len(n_ss)) + 0.5, np.arange(len(n_rs)) + 0.5)
        ax.contour(X, Y, logz, levels=[0.0], colors="black", linewidths=2)
        ax.legend(handles=[Line2D([], [], color="black", lw=2, label="n_e = n_r")],
                  loc="upper left", bbox_to_anchor=(0, -0.18), fontsize=8, frameon=False)
    ax.invert_yaxis()
    geo = " (geometric grid)" if _is_geometric(n_ss) else ""
    ax.set_xlabel(f"synthetic samples per generation n_s{geo}")
    ax.set_ylabel("real samples per generation n_r")
    return _finish(fig, ax, f"Effective sample size ratio n_e / n_r at λ = {results[0].lam:g}",
                   results[0], path)


def simulate_plot(res: SimulateResult, path: str | Path) -> Path:
    """Three panels over generations: ``dist``, ``|mu - mu_r|``, ``tr Sigma / d``.

    Each shows the mean over chains and the 5-95% band.
    """
    import pandas as pd

    plt, sns = _use_agg()
    df = pd.DataFrame(res.rows)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.0))
    few = len(df) < 3
    panels = (("dist", f"{res.metric}(G^t, P_r)"), ("mean_dev", "|μ_t − μ_r|"),
              ("tr_sigma_over_d", "tr Σ_t / d"))
    for ax, (key, label) in zip(axes, panels):
        sns.lineplot(data=df, x="generation", y=f"{key}_mean", ax=ax, label="mean",
                     marker="o" if few else None)
        sns.lineplot(data=df, x="generation", y=f"{key}_median", ax=ax, label="median",
                     linestyle="--", marker="o" if few else None)
        ax.fill_between(df["generation"], df[f"{key}_q05"], df[f"{key}_q95"], alpha=0.25,
                        label="5–95% of chains")
        ax.set_ylabel(label)
        ax.set_xlabel("generation t")
        if key == "dist" and (df[f"{key}_q95"] > 0).all():
            ax.set_yscale("log")
        ax.legend(fontsize=8)
    real = "" if res.loop == "fully-synthetic" else f"n_r = {res.n_r}, "
    fig.suptitle(f"{res.loop} loop: d = {res.d}, {real}n_s = {res.n_s}, "
                 f"λ = {res.lam:g}, n_ini = {res.n_ini}, memory = {res.memory}, "
                 f"{res.cov_estimator} covariance, {res.chains} chains, seed {res.seed}",
                 fontsize=10)
    return _save(fig, path, dpi=120)
