"""Tables and figures: CSV/JSON/Markdown files, numbers as text, seaborn figures.

Figures are drawn on :class:`matplotlib.figure.Figure` objects, never through
:mod:`matplotlib.pyplot`: drawing one changes neither the user's backend
(a notebook keeps its own) nor pyplot's list of open figures, nor any rcParams
(seaborn's style is applied in a ``with`` block). Each figure function returns
its ``Figure`` (a notebook displays it) and writes it when given a path.

Plotting libraries are imported inside the functions so ``import ess`` stays light.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

from ess.params import ParameterError
from ess.results import (
    EstimateResult,
    SimulateGridResult,
    SimulateResult,
    TableResult,
    ThresholdGridResult,
    ThresholdResult,
)

TABLE_FORMATS = (".csv", ".json", ".md")
FIGURE_FORMATS = (".png", ".pdf", ".svg")


def check_table_path(path: str | Path, name: str = "out") -> Path:
    """A table file's format comes from its extension: .csv, .json or .md."""
    p = Path(path)
    if p.suffix.lower() not in TABLE_FORMATS:
        raise ParameterError(name, f"{name} must end in .csv, .json or .md, got {str(path)!r}")
    return p


def check_figure_path(path: str | Path, name: str = "out") -> Path:
    """A figure file's format comes from its extension: .png, .pdf or .svg."""
    p = Path(path)
    if p.suffix.lower() not in FIGURE_FORMATS:
        raise ParameterError(name, f"{name} must end in .png, .pdf or .svg, got {str(path)!r}")
    return p


# ---------------------------------------------------------------------------------
# Numbers as text: significant digits whatever the size.

#: Values in this range print in fixed notation, others in scientific notation.
_FIXED = (1e-3, 1e7)


def _sci(v: float, sig: int) -> str:
    """``v`` in scientific notation with ``sig`` significant digits, short exponent
    (``3.40e-5``, not ``3.40e-05``)."""
    return re.sub(r"e([+-])0*(\d)", lambda m: "e" + ("-" if m[1] == "-" else "") + m[2],
                  f"{v:.{max(sig, 1) - 1}e}")


def num(v, digits: int = 4) -> str:
    """A number for people: ``digits`` significant digits whatever its size.

    Integers print whole; ``None`` prints ``"n/a"``; a subnormal float (below
    2.2e-308, where a float has lost its precision: an underflow) prints as
    ``"< 2.2e-308"`` rather than as digits such as ``4.941e-324`` that mean nothing.
    """
    if v is None:
        return "n/a"
    if isinstance(v, (bool, int)):
        return str(v)
    v = float(v)
    if not math.isfinite(v):
        return str(v)
    if v == 0.0:
        return "0"
    if abs(v) < sys.float_info.min:
        return ("> -" if v < 0 else "< ") + f"{sys.float_info.min:.2g}"
    if _FIXED[0] <= abs(v) < _FIXED[1]:
        decimals = max(0, digits - 1 - math.floor(math.log10(abs(v))))
        s = f"{v:.{decimals}f}"
        return s.rstrip("0").rstrip(".") if "." in s else s
    mantissa, exponent = _sci(v, digits).split("e")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{exponent}"


def with_ci(v: float, low: float, high: float | None, min_digits: int = 3) -> tuple[str, str]:
    """``v`` and its interval ``"[low, high]"`` as text, with as many digits as the
    interval resolves: its half-width shows with two significant digits, ``v``
    with at least ``min_digits`` (so ``3.400e-5 [3.393e-5, 3.407e-5]`` at any size,
    and never ``0.0000 [0.0000, 0.0000]``). ``high = None`` prints ``"beyond the cap"``.
    """
    if high is None:
        return num(v, 4), f"[{num(low, 4)}, beyond the cap]"
    h = (high - low) / 2
    if not (h > 0 and math.isfinite(h)) or v == 0:
        return num(v, 4), f"[{num(low, 4)}, {num(high, 4)}]"
    top = math.floor(math.log10(max(abs(v), abs(low), abs(high))))
    sig = min(max(top - math.floor(math.log10(h)) + 2, min_digits), 15)
    if _FIXED[0] <= abs(v) < _FIXED[1]:
        decimals = max(0, sig - 1 - top)

        def f(x):
            return f"{x:.{decimals}f}"
    else:
        def f(x):
            return _sci(x, sig - top + math.floor(math.log10(abs(x)))) if x else "0"
    return f(v), f"[{f(low)}, {f(high)}]"


def percent(fraction: float) -> str:
    """A relative precision as a percentage with two significant digits (``0.0071%``)."""
    return num(100 * fraction, 2) + "%"


#: :attr:`EstimateResult.verdict` in a sentence.
VERDICT_TEXT = {"helps": "synthetic data helps", "hurts": "synthetic data hurts",
                "no significant effect": "no significant effect of synthetic data",
                "no synthetic data": "no synthetic data", "n_e below 2": "n_e below 2"}


def estimate_flags(r: EstimateResult) -> str:
    """Short warnings of one estimate: precision not reached, drift."""
    flags = []
    if not r.precision_reached:
        flags.append("precision not reached")
    if not r.converged:
        flags.append("drift detected")
    return ", ".join(flags)


# ---------------------------------------------------------------------------------
# Tables

#: Markdown columns of an ESS table (every column stays in CSV and JSON).
ESTIMATE_MD_COLUMNS = ("n_r", "n_s", "lam", "n_e", "n_e / n_r", "95% CI of n_e / n_r",
                       "verdict", "flags")
#: Markdown columns of a threshold grid.
THRESHOLD_MD_COLUMNS = ("n_r", "lam", "n_s*", "95% CI of n_s*", "cap", "flags")
#: The columns of a simulation shown in Markdown: the distance's mean, its 95% interval
#: and the 5-95% band of the chains, ``n_e(t)`` with its interval, ``n_e(t) / n_r``, and
#: the means of ``|mu - mu_r|``, ``tr Sigma / d`` and the smallest eigenvalue of ``Sigma``
#: (every column stays in CSV and JSON; a list of loops adds a ``loop`` column first).
SIMULATE_MD_COLUMNS = ("generation", "dist_mean", "dist_ci", "dist_q05", "dist_q95", "n_e",
                       "n_e_ci", "n_e_over_n_r", "mean_dev_mean", "tr_sigma_over_d_mean",
                       "min_eig_mean")


def _interval(ci) -> str:
    """An interval of a simulate row as text: ``[low, high]``, ``below 2`` for a missing
    lower end of ``n_e``, ``unbounded`` for a missing upper end."""
    if ci is None:
        return ""
    lo, hi = ci
    return (f"[{'below 2' if lo is None else num(lo)}, "
            f"{'unbounded' if hi is None else num(hi)}]")


def _simulate_md_rows(r: SimulateResult, loop_column: bool) -> list[list[str]]:
    out = []
    for row in r.rows:
        cells = [r.loop] if loop_column else []
        for c in SIMULATE_MD_COLUMNS:
            v = row[c]
            if c == "n_e" and v is None:
                cells.append(row["n_e_note"])
            elif c.endswith("_ci"):
                cells.append(_interval(v))
            else:
                cells.append(num(v))
        out.append(cells)
    return out


def cell_notes(results) -> list[str]:
    """The notes of a grid's cells, each after its cell (``n_r = 100, n_s = 400,
    lam = 0.9: ...``), in the grid's order. The ``n_s = 0`` cells' note (``n_e =
    n_r`` exactly) is left out: their rows say it."""
    out = []
    for r in results:
        if not r.note or getattr(r, "n_s", None) == 0:
            continue
        n_s = f", n_s = {r.n_s}" if isinstance(r, EstimateResult) else ""
        out.append(f"n_r = {r.n_r}{n_s}, lam = {r.lam:g}: {r.note}")
    return out


def _estimate_md_row(r: EstimateResult) -> list[str]:
    if r.n_e is None:
        ne = ratio = ci = ""
    elif r.n_s == 0:
        ne, ratio, ci = num(r.n_e), "1 (exact)", ""
    else:
        ne = with_ci(r.n_e, *r.n_e_ci)[0]
        ratio, ci = with_ci(r.n_e_over_n_r, *r.n_e_over_n_r_ci)
    return [str(r.n_r), str(r.n_s), f"{r.lam:g}", ne, ratio, ci, r.verdict, estimate_flags(r)]


def _threshold_md_row(r: ThresholdResult) -> list[str]:
    lo, hi = r.n_s_star_ci
    if r.n_s_star is None:
        star, ci = f"none up to {r.cap}", f"[{lo}, beyond the cap]"
    else:
        star, ci = str(r.n_s_star), f"[{lo}, {'beyond the cap' if hi is None else hi}]"
    return [str(r.n_r), f"{r.lam:g}", star, ci, str(r.cap),
            "" if r.precision_reached else "precision not reached"]


def _markdown(header: Sequence[str], rows: list[list[str]], title: str, notes: list[str]) -> str:
    """A GitHub Markdown table. Written by hand: pandas' ``to_markdown`` needs the
    ``tabulate`` package, a dependency for the dozen lines below."""
    def cell(s: str) -> str:
        return str(s).replace("|", "\\|").replace("\n", " ")

    lines = [f"# {title}", ""] if title else []
    lines.append("| " + " | ".join(cell(h) for h in header) + " |")
    lines.append("|" + "---|" * len(header))
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def _whole_numbers(df, records: list[dict]):
    """Columns whose values are integers or missing as pandas' nullable ``Int64``
    (``24``, not the ``24.0`` that a missing value turns an integer column into)."""
    for col in df.columns:
        values = [r.get(col) for r in records]
        if any(v is not None for v in values) and all(
                v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in values):
            df[col] = df[col].astype("Int64")
    return df


def _frame_and_md(result) -> tuple:
    """The records and DataFrame (every column), and the Markdown header, rows and
    notes of a result."""
    if isinstance(result, (SimulateResult, SimulateGridResult)):
        many = isinstance(result, SimulateGridResult)
        runs = list(result) if many else [result]
        m = runs[0].metric
        header = (["loop"] if many else []) + [
            "generation", f"{m} mean", f"95% CI of the mean {m}", f"{m} 5% of chains",
            f"{m} 95% of chains", "n_e", "95% CI of n_e", "n_e / n_r", "mean of abs(mu - mu_r)",
            "mean of tr Sigma / d", "mean smallest eigenvalue of Sigma"]
        rows = [cells for r in runs for cells in _simulate_md_rows(r, many)]
        records = ([{"loop": r.loop, **row} for r in runs for row in r.to_dict()["rows"]]
                   if many else result.to_dict()["rows"])
        return records, result.to_frame(), header, rows, []
    results = list(result)
    if not results:
        raise ValueError("nothing to write: the result has no cells")
    if isinstance(results[0], EstimateResult):
        grid = result if isinstance(result, TableResult) else TableResult(tuple(results))
        rows = [_estimate_md_row(r) for r in results]
        header = ESTIMATE_MD_COLUMNS
    else:
        grid = (result if isinstance(result, ThresholdGridResult)
                else ThresholdGridResult(tuple(results)))
        rows = [_threshold_md_row(r) for r in results]
        header = THRESHOLD_MD_COLUMNS
    notes = cell_notes(results)
    records = grid.to_rows()
    return records, _whole_numbers(grid.to_frame(), records), header, rows, notes


def write_table(result, path: str | Path, title: str = "") -> Path:
    """Write a table, threshold grid or simulation by the file's extension.

    ``.csv`` and ``.json`` keep every column of ``result.to_frame()`` (intervals
    as ``_low``/``_high`` columns); ``.md`` shows the columns a reader wants
    (:data:`ESTIMATE_MD_COLUMNS`, :data:`THRESHOLD_MD_COLUMNS`,
    :data:`SIMULATE_MD_COLUMNS`) under ``title``, with the cells' notes below.

    Parameters
    ----------
    result : TableResult, ThresholdGridResult, SimulateResult, SimulateGridResult or sequence
        of results
        What to write.
    path : path
        The file; its extension chooses the format.
    title : str
        Heading of the Markdown file.

    Returns
    -------
    Path
    """
    p = check_table_path(path)
    records, df, header, rows, notes = _frame_and_md(result)
    p.parent.mkdir(parents=True, exist_ok=True)
    suffix = p.suffix.lower()
    if suffix == ".csv":
        df.to_csv(p, index=False)
    elif suffix == ".json":
        p.write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")
    else:
        p.write_text(_markdown(header, rows, title, notes), encoding="utf-8")
    return p


# ---------------------------------------------------------------------------------
# Figures


@contextmanager
def _style():
    """seaborn's white style for the figures drawn inside, restored afterwards."""
    import seaborn as sns

    with sns.axes_style("white"), sns.plotting_context("notebook"):
        yield sns


def _subtitle(r0, what: str = "") -> str:
    loop = {"fresh": "fresh data loop", "augmentation": "augmentation loop"}.get(
        getattr(r0, "loop", "fresh"), "")
    return (f"d = {r0.d}, metric {r0.metric}, {r0.cov_estimator} covariance, memory "
            f"{r0.memory}, {loop}, {what}95% CI half-width {100 * r0.rel_precision:g}% "
            f"on n_e, seed {r0.seed}")


def _save(fig, path: str | Path | None, dpi: int = 130):
    """Write ``fig`` (creating the folder) without blank margins; returns the path
    (``None`` when not given)."""
    if path is None:
        return None
    if fig.get_layout_engine() is None:   # ess's figures are constrained; others not
        fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi, bbox_inches="tight", pad_inches=0.08)
    return out


class _Figures:
    """``subplots`` like pyplot's, on a fresh :class:`~matplotlib.figure.Figure`."""

    @staticmethod
    def subplots(nrows: int = 1, ncols: int = 1, **kw):
        from matplotlib.figure import Figure

        fig_kw = {k: kw.pop(k) for k in ("figsize", "dpi", "layout") if k in kw}
        fig = Figure(**fig_kw)
        return fig, fig.subplots(nrows, ncols, **kw)


def _use_agg():
    """For ``benchmarks/report.py``: a pyplot-free ``subplots`` and seaborn with its
    white theme. Sets the theme process-wide, which a script may do; ess's own
    figures use :func:`_style` instead. Switches no backend (the name is historical)."""
    import seaborn as sns

    sns.set_theme(style="white", context="notebook")
    return _Figures, sns


def geometric_ratio(values: Sequence[float]) -> float | None:
    """The common ratio when ``values`` (sorted) grow by one factor (within 2%) from
    cell to cell, such as 25, 50, 100, 200; else ``None`` (100, 250, 500 is not)."""
    v = sorted(values)
    if len(v) < 3 or v[0] <= 0:
        return None
    r = [v[i + 1] / v[i] for i in range(len(v) - 1)]
    return r[0] if max(r) / min(r) < 1.02 and r[0] > 1.05 else None


def _axis_note(values: Sequence[float]) -> str:
    ratio = geometric_ratio(values)
    return "" if ratio is None else f" (geometric grid, ×{ratio:.3g} per cell)"


def threshold_heatmap(results: Sequence[ThresholdResult], path: str | Path | None = None):
    """Heatmap of ``n_s*`` over ``(n_r, lam)``; cells annotated; colour on a log scale.

    "No threshold up to the cap" cells are hatched and marked ``> cap``; cells
    where no positive ``n_s`` is admissible are red.

    Parameters
    ----------
    results : ThresholdGridResult or sequence of ThresholdResult
        One result per ``(n_r, lam)``.
    path : path, optional
        Where to write the figure (.png, .pdf or .svg).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import numpy as np
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    results = list(results)
    n_rs = sorted({r.n_r for r in results})
    lams = sorted({r.lam for r in results})
    Z = np.full((len(n_rs), len(lams)), np.nan)
    ann = np.full(Z.shape, "", dtype=object)
    for r in results:
        i, j = n_rs.index(r.n_r), lams.index(r.lam)
        if r.n_s_star is None:
            ann[i, j] = f"> {r.cap}\n(cap)"
        else:
            Z[i, j] = r.n_s_star
            lo, hi = r.n_s_star_ci
            ann[i, j] = f"{r.n_s_star}\n[{lo}, {'>cap' if hi is None else hi}]"
    with _style() as sns:
        fig = Figure(figsize=(max(6.0, 1.1 * len(lams) + 2.6), max(3.2, 0.7 * len(n_rs) + 1.6)),
                     layout="constrained")
        ax = fig.subplots()
        pos = Z[np.isfinite(Z) & (Z > 0)]
        ticks = dict(xticklabels=[f"{x:g}" for x in lams], yticklabels=[str(n) for n in n_rs])
        ax.set_facecolor("#eeeeee")
        if pos.size:
            norm = LogNorm(vmin=max(pos.min(), 1), vmax=max(pos.max(), 2))
            sns.heatmap(np.where(Z > 0, Z, np.nan), ax=ax, annot=ann, fmt="", cmap="viridis",
                        norm=norm, cbar_kws={"label": "n_s* (log scale)", "pad": 0.02},
                        annot_kws={"fontsize": 8}, linewidths=0.5, linecolor="white", **ticks)
            _plain_log_ticks(ax.collections[0].colorbar, norm.vmin, norm.vmax)
        else:   # nothing to colour: every cell is "none up to the cap" or 0
            sns.heatmap(np.zeros(Z.shape), ax=ax, cmap=["#eeeeee"], cbar=False,
                        linewidths=0.5, linecolor="white", **ticks)
        for i in range(Z.shape[0]):   # seaborn does not annotate masked cells: do it here
            for j in range(Z.shape[1]):
                if np.isnan(Z[i, j]):
                    ax.add_patch(Rectangle((j, i), 1, 1, fill=False, hatch="//",
                                           edgecolor="#bbbbbb", lw=0))
                elif Z[i, j] == 0:
                    ax.add_patch(Rectangle((j, i), 1, 1, color="#cc4444", alpha=0.35))
                else:
                    continue
                ax.text(j + 0.5, i + 0.5, ann[i, j], ha="center", va="center", fontsize=8,
                        bbox={"facecolor": "#eeeeee", "edgecolor": "none", "pad": 1.0})
        legend = ["brackets: 95% CI"]
        if np.isnan(Z).any():
            legend.append("hatched: n_e ≥ n_r for every n_s up to the cap (no threshold)")
        if (Z == 0).any():
            legend.append("red: no positive n_s is admissible")
        ax.invert_yaxis()
        ax.tick_params(labelsize=9)
        ax.tick_params(axis="y", labelrotation=0)
        ax.set_xlabel("sampling bias λ (1 = unbiased)\n" + "; ".join(legend), fontsize=9)
        ax.set_ylabel("n_r, real samples per generation" + _axis_note(n_rs).replace(" (", "\n("),
                      fontsize=9)
        ax.set_title("Admissible threshold n_s*: the most synthetic samples per generation "
                     "keeping n_e ≥ n_r\n" + _subtitle(results[0]), fontsize=9)
        _save(fig, path)
    return fig


def _plain_log_ticks(cbar, vmin: float, vmax: float) -> None:
    """A log colour bar's ticks at 1, 2, 5 x 10^k, written as plain numbers."""
    from matplotlib.ticker import NullFormatter, NullLocator

    ticks = [m * 10.0**k for k in range(-1, 9) for m in (1, 2, 5)]
    ticks = [t for t in ticks if vmin <= t <= vmax] or [vmin, vmax]
    if len(ticks) > 7:
        ticks = [t for t in ticks if round(t / 10 ** math.floor(math.log10(t))) != 2]
    cbar.ax.yaxis.set_minor_locator(NullLocator())
    cbar.ax.yaxis.set_minor_formatter(NullFormatter())
    cbar.set_ticks(ticks)
    cbar.set_ticklabels([num(t, 3) for t in ticks])
    cbar.ax.tick_params(labelsize=8)
    cbar.ax.yaxis.label.set_fontsize(9)


def _ratio_label(r: EstimateResult) -> str:
    """A heatmap cell: ``n_e / n_r`` with three significant digits, and ``±`` its
    95% half-width (one significant digit) only where that half-width shows at
    the digits printed."""
    if r.n_e_over_n_r is None:
        return "n_e < 2"
    v = r.n_e_over_n_r
    if r.n_s == 0:
        return "1\nexact"
    lo, hi = r.n_e_over_n_r_ci
    h = (hi - lo) / 2
    text = f"{v:#.3g}".rstrip(".") if 1e-3 <= v < 1e3 else num(v, 3)   # 1.20, not 1.2
    unit = 10.0 ** (math.floor(math.log10(abs(v))) - 2)   # the last digit printed
    if h >= unit / 2:
        text += f"\n±{h:.1g}"
    return text


def _boundary(ax, above) -> bool:
    """Draw the cell edges between cells with ``above`` true and false (the
    ``n_e = n_r`` boundary), under the numbers; True if any was drawn."""
    rows, cols = above.shape
    segs = []
    for i in range(rows):
        for j in range(cols):
            if j + 1 < cols and above[i, j] != above[i, j + 1]:
                segs.append([(j + 1, i), (j + 1, i + 1)])
            if i + 1 < rows and above[i, j] != above[i + 1, j]:
                segs.append([(j, i + 1), (j + 1, i + 1)])
    if segs:
        from matplotlib.collections import LineCollection

        ax.add_collection(LineCollection(segs, colors="black", linewidths=2.2, zorder=2.5,
                                         capstyle="round"))
    return bool(segs)


def _ratio_ticks(norm, vmin: float, vmax: float) -> list[float]:
    """Colour-bar ticks (in log2 of the ratio) at round ratios, 1 always, none
    closer than 7% of the bar's length to another."""
    marks = [1 / 64, 1 / 32, 1 / 16, 1 / 8, 1 / 4, 0.5, 0.8, 1.0, 1.1, 1.25, 1.5, 2.0, 4.0,
             8.0, 16.0, 64.0]
    ticks = [0.0]
    for m in sorted(marks, key=lambda m: abs(math.log2(m))):
        t = math.log2(m)
        if vmin <= t <= vmax and all(abs(float(norm(t)) - float(norm(u))) >= 0.07
                                     for u in ticks):
            ticks.append(t)
    return sorted(ticks)


def ne_heatmap(results: Sequence[EstimateResult], path: str | Path | None = None):
    """Heatmaps of ``n_e / n_r`` over ``(n_r, n_s)``, one panel per ``lam`` (the
    paper's Fig. 11).

    Colours on a log scale centred on 1 (blue: synthetic data helps, red: it
    hurts), one scale for every panel. Each cell shows the ratio with three
    significant digits and its 95% half-width where it shows at those digits;
    italic grey numbers mark cells whose interval contains 1 (no significant
    effect). The ``n_e = n_r`` boundary follows the cell edges, so it never
    covers a number.

    Parameters
    ----------
    results : TableResult or sequence of EstimateResult
        One result per ``(n_r, n_s, lam)``.
    path : path, optional
        Where to write the figure (.png, .pdf or .svg).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import numpy as np
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    results = list(results)
    n_rs = sorted({r.n_r for r in results})
    n_ss = sorted({r.n_s for r in results})
    lams = sorted({r.lam for r in results})
    ratios = [r.n_e_over_n_r for r in results if r.n_e_over_n_r is not None]
    logs = [math.log2(v) for v in ratios if v > 0]
    vmin = min(min(logs, default=-1.0), -0.05)
    vmax = max(max(logs, default=1.0), 0.05)
    norm = TwoSlopeNorm(vcenter=0.0, vmin=vmin, vmax=vmax)
    cell_w, cell_h = 0.62, 0.5
    width = len(lams) * (cell_w * len(n_ss) + 0.9) + 1.4
    height = cell_h * len(n_rs) + 2.0
    drew_boundary = not_significant = False
    with _style() as sns:
        fig = Figure(figsize=(width, height), layout="constrained")
        axes = fig.subplots(1, len(lams), sharey=True, squeeze=False)[0]
        for k, (ax, lam) in enumerate(zip(axes, lams)):
            Z = np.full((len(n_rs), len(n_ss)), np.nan)
            ann = np.full(Z.shape, "n_e < 2", dtype=object)
            plain = np.ones(Z.shape, dtype=bool)
            for r in results:
                if r.lam != lam:
                    continue
                i, j = n_rs.index(r.n_r), n_ss.index(r.n_s)
                ann[i, j] = _ratio_label(r)
                if r.n_e_over_n_r is not None:
                    Z[i, j] = r.n_e_over_n_r
                    plain[i, j] = r.verdict not in ("no significant effect",)
            ax.set_facecolor("#dddddd")
            with np.errstate(divide="ignore", invalid="ignore"):
                logz = np.log2(Z)
            sns.heatmap(logz, ax=ax, cmap="RdBu", norm=norm, cbar=False,
                        xticklabels=[str(n) for n in n_ss],
                        yticklabels=[str(n) for n in n_rs],
                        linewidths=0.5, linecolor="white")
            if k:   # the axes share y: hiding the labels, not the ticks, keeps panel 0's
                ax.tick_params(axis="y", labelleft=False)
            for i in range(Z.shape[0]):
                for j in range(Z.shape[1]):
                    strong = np.isfinite(logz[i, j]) and abs(norm(logz[i, j]) - 0.5) > 0.33
                    ax.text(j + 0.5, i + 0.5, ann[i, j], ha="center", va="center",
                            fontsize=7.5, zorder=3, linespacing=0.95,
                            color=("white" if strong else "black") if plain[i, j] else "#555555",
                            fontstyle="normal" if plain[i, j] else "italic")
            not_significant |= not plain.all()
            above = np.where(np.isfinite(Z), Z >= 1.0, False)
            drew_boundary |= _boundary(ax, above)
            ax.invert_yaxis()
            ax.set_title(f"λ = {lam:g}", fontsize=10)
            ax.set_xlabel("n_s" + _axis_note(n_ss), fontsize=9)
            ax.tick_params(axis="x", labelrotation=0, labelsize=8)
            ax.tick_params(axis="y", labelrotation=0, labelsize=8)
        axes[0].set_ylabel("n_r" + _axis_note(n_rs), fontsize=9)
        cbar = fig.colorbar(axes[-1].collections[0], ax=list(axes), shrink=0.9, pad=0.02,
                            fraction=0.03 if len(lams) > 1 else 0.05)
        cbar.set_label("n_e / n_r (log scale)", fontsize=9)
        cbar.set_ticks(_ratio_ticks(norm, vmin, vmax))
        cbar.set_ticklabels([num(2.0**t, 3) for t in cbar.get_ticks()])
        cbar.ax.tick_params(labelsize=8)
        handles = [Line2D([], [], color="black", lw=2.2, label="n_e = n_r boundary")] \
            if drew_boundary else []
        key = ("cells: n_e / n_r ± its 95% half-width (where it shows at these digits); "
               "blue > 1: synthetic data helps, red < 1: it hurts")
        if not_significant:
            key += "; italic grey: the 95% CI contains 1 (no significant effect)"
        fig.legend(handles=handles, loc="outside lower left", frameon=False, fontsize=8,
                   title=key, title_fontsize=8, alignment="left")
        fig.suptitle("Effective sample size ratio n_e / n_r\n" + _subtitle(results[0]),
                     fontsize=9.5)
        _save(fig, path)
    return fig


def threshold_lines(results: Sequence[ThresholdResult], path: str | Path | None = None):
    """``n_s*`` against ``lam``, one line per ``n_r``, with 95% interval bars (the
    paper's Fig. 12).

    A point with no threshold up to the cap is drawn at the cap as an upward
    triangle; an interval reaching beyond the cap ends in an arrow. The ``n_s*``
    axis is logarithmic above 1 and linear between 0 and 1, so that ``n_s* = 0``
    (no positive amount admissible) shows.

    Parameters
    ----------
    results : ThresholdGridResult or sequence of ThresholdResult
        One result per ``(n_r, lam)``.
    path : path, optional
        Where to write the figure (.png, .pdf or .svg).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter

    results = list(results)
    n_rs = sorted({r.n_r for r in results})
    lams = sorted({r.lam for r in results})
    span = (max(lams) - min(lams)) or 1.0
    tick = 0.006 * span
    zero = any(r.n_s_star == 0 or r.n_s_star_ci[0] == 0 for r in results)
    with _style() as sns:
        colours = sns.color_palette("viridis", len(n_rs) + 1)[: len(n_rs)]
        fig = Figure(figsize=(7.2, 4.6), layout="constrained")
        ax = fig.subplots()
        capped = False
        for k, (n_r, colour) in enumerate(zip(n_rs, colours)):
            cells = sorted((r for r in results if r.n_r == n_r), key=lambda r: r.lam)
            dx = (k - (len(n_rs) - 1) / 2) * 0.012 * span   # dodge the interval bars
            found = [(r.lam + dx, r.n_s_star) for r in cells if r.n_s_star is not None]
            if found:
                ax.plot(*zip(*found), color=colour, lw=1.6, marker="o", ms=4.5, zorder=3,
                        label=f"n_r = {n_r}")
            for r in cells:
                x = r.lam + dx
                lo, hi = r.n_s_star_ci
                top = r.cap if hi is None else hi
                ax.plot([x, x], [lo, top], color=colour, lw=1.1, alpha=0.85, zorder=2)
                for y in (lo, top):
                    ax.plot([x - tick, x + tick], [y, y], color=colour, lw=1.1, alpha=0.85)
                if r.n_s_star is None:   # n_s* beyond the cap: a triangle at the cap
                    capped = True
                    ax.plot([x], [r.cap], marker="^", ms=8, color=colour, zorder=4,
                            markeredgecolor="black", markeredgewidth=0.6,
                            label=None if found else f"n_r = {n_r}")
                    before = [p for p in found if p[0] < x]
                    if before:
                        ax.plot([before[-1][0], x], [before[-1][1], r.cap], color=colour,
                                lw=1.2, ls=":", zorder=2)
        if zero:
            ax.set_yscale("symlog", linthresh=1.0, linscale=0.4)
            ax.set_ylim(bottom=-0.15)
        else:
            ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_xticks(lams)
        ax.set_xticklabels([f"{x:g}" for x in lams])
        ax.tick_params(labelsize=9)
        ax.grid(alpha=0.35, which="major")
        ax.set_xlabel("sampling bias λ (1 = unbiased)", fontsize=10)
        ax.set_ylabel("admissible threshold n_s* (log scale" + ("; 0 at the bottom)" if zero
                                                                 else ")"), fontsize=10)
        handles, labels = ax.get_legend_handles_labels()
        handles.append(Line2D([], [], color="grey", lw=1.1, marker="_", ms=8))
        labels.append("95% CI")
        if capped:
            handles.append(Line2D([], [], ls="none", marker="^", ms=8, color="grey",
                                  markeredgecolor="black", markeredgewidth=0.6))
            labels.append("no threshold up to the cap (drawn at the cap)")
        ax.legend(handles, labels, fontsize=8, frameon=False, loc="upper left")
        ax.set_title("Admissible threshold n_s* against λ, per n_r\n"
                     + _subtitle(results[0]), fontsize=9)
        _save(fig, path)
    return fig


def simulate_plot(res: SimulateResult | SimulateGridResult, path: str | Path | None = None):
    """Two panels over generations, one line per loop: ``n_e(t) / n_r`` and ``tr Sigma_t / d``.

    The left panel draws ``n_e(t) / n_r`` on a log axis with its 95% band (the
    interval that the Monte Carlo error of ``E dist(G^t, P_r)`` gives), a line at 1
    (as good as the ``n_r`` real samples) and one at ``2 / n_r``, below which ``n_e``
    is "below 2" and not drawn. The right panel draws the mean of ``tr Sigma_t / d``
    with the 95% band of that mean, and dashed its median over chains (on a log axis
    when they span decades, as after a collapse): at ``lam = 1`` the replace loop's
    mean is a martingale that stays near its start while the median, a typical
    chain, collapses. Both panels span every generation.

    Parameters
    ----------
    res : SimulateResult or SimulateGridResult
        What :func:`ess.simulate` returned, for one loop or a list of loops.
    path : path, optional
        Where to write the figure (.png, .pdf or .svg).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import numpy as np
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    runs = list(res) if isinstance(res, SimulateGridResult) else [res]
    r0 = runs[0]

    def column(r, key, end=None):
        vals = [row[key] if end is None else (None if row[key] is None else row[key][end])
                for row in r.rows]
        return np.array([np.nan if v is None else v for v in vals], dtype=float)

    with _style() as sns:
        colours = sns.color_palette("tab10", max(len(runs), 3))
        fig = Figure(figsize=(12.5, 4.4), layout="constrained")
        ax_ne, ax_tr = fig.subplots(1, 2, sharex=True)
        floor = 2.0 / r0.n_r
        top = 0.0
        tr_values = []
        for r, colour in zip(runs, colours):
            t = column(r, "generation")
            few = len(t) < 3
            ratio = column(r, "n_e_over_n_r")
            lo = column(r, "n_e_over_n_r_ci", 0)
            hi = column(r, "n_e_over_n_r_ci", 1)
            lo = np.where(np.isnan(lo) & ~np.isnan(hi), floor, lo)   # low end below 2
            ax_ne.plot(t, ratio, color=colour, lw=1.6, label=r.loop, marker="o" if few else None)
            ax_ne.fill_between(t, lo, hi, color=colour, alpha=0.2, lw=0)
            finite = np.concatenate([ratio[np.isfinite(ratio)], hi[np.isfinite(hi)]])
            top = max(top, float(finite.max()) if finite.size else 0.0)
            tr = column(r, "tr_sigma_over_d_mean")
            tr_lo = column(r, "tr_sigma_over_d_ci", 0)
            tr_hi = column(r, "tr_sigma_over_d_ci", 1)
            ax_tr.plot(t, tr, color=colour, lw=1.6, label=r.loop, marker="o" if few else None)
            ax_tr.fill_between(t, tr_lo, tr_hi, color=colour, alpha=0.2, lw=0)
            tr_median = column(r, "tr_sigma_over_d_median")
            ax_tr.plot(t, tr_median, color=colour, lw=1.1, ls="--")
            tr_values.append(np.concatenate([tr, tr_lo, tr_hi, tr_median]))
        ax_ne.set_yscale("log")
        ax_ne.axhline(1.0, color="black", lw=0.8, ls="--", label="n_e = n_r")
        ax_ne.axhline(floor, color="#888888", lw=0.8, ls=":",
                      label="n_e = 2 (below: not drawn)")
        ax_ne.set_ylim(floor / 1.5, max(top, 1.0) * 1.5)
        ax_ne.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax_ne.set_ylabel("n_e(t) / n_r  (log scale; 95% band)")
        ax_ne.set_title("effective sample size over generations", fontsize=10)
        values = np.concatenate(tr_values)
        positive = values[np.isfinite(values) & (values > 0)]
        if positive.size and np.log10(positive.max()) - np.log10(positive.min()) > 1.5:
            ax_tr.set_yscale("log", nonpositive="mask")
            ax_tr.set_ylim(max(positive.min() / 2, np.finfo(float).tiny), positive.max() * 2)
        ax_tr.set_ylabel("tr Σ_t / d  (mean over chains, 95% band)")
        ax_tr.set_title("covariance scale", fontsize=10)
        ax_tr.plot([], [], color="#555555", lw=1.1, ls="--", label="dashed: median over chains")
        ax_ne.set_xlim(0, max(float(np.nanmax(column(r, "generation"))) for r in runs) + 1)
        for ax in (ax_ne, ax_tr):
            ax.set_xlabel("generation t")
            ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True, steps=[1, 2, 5, 10]))
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8, frameon=False)
        fig.suptitle(f"d = {r0.d}, n_r = {r0.n_r}, n_s = {r0.n_s}, λ = {r0.lam:g}, "
                     f"n_ini = {r0.n_ini}, memory = {r0.memory}, {r0.metric}, "
                     f"{r0.cov_estimator} covariance, {r0.chains} chains, seed {r0.seed}",
                     fontsize=10)
        _save(fig, path, dpi=120)
    return fig
