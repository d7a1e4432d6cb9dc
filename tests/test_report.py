"""Tables, numbers as text and figures (ess.report)."""

import dataclasses
import json

import matplotlib
import numpy as np
import pandas as pd
import pytest

import ess
from ess import report
from ess.results import EstimateResult, Interval, ThresholdResult

FAST = dict(rel_precision=0.05, store=False)


@pytest.fixture(scope="module")
def table():
    return ess.table(n_r=[20, 40], n_s=[0, 10, 160], lam=[0.7, 1.0], **FAST)


@pytest.fixture(scope="module")
def grid():
    return ess.threshold_grid(n_r=[20, 40], lam=[0.6, 1.0], cap=400, **FAST)


@pytest.fixture(scope="module")
def sim():
    return ess.simulate(loop="fully-synthetic", n_s=5, chains=20, generations=10)


# --- numbers as text -------------------------------------------------------------
@pytest.mark.parametrize("value,text", [
    (3.4e-5, "3.4e-5"), (1.0, "1"), (1.003, "1.003"), (199004.3, "199004"), (0.0, "0"),
    (100, "100"), (2.745e-16, "2.745e-16"), (0.5004, "0.5004"), (12345678.9, "1.235e7"),
    (5e-324, "< 2.2e-308"), (None, "n/a"),
])
def test_num_keeps_significant_digits_at_any_size(value, text):
    assert report.num(value) == text


@pytest.mark.parametrize("v,lo,hi,text", [
    (3.4e-5, 3.393e-5, 3.407e-5, ("3.4000e-5", "[3.3930e-5, 3.4070e-5]")),
    (1.0030, 1.0001, 1.0060, ("1.0030", "[1.0001, 1.0060]")),
    (199004.3, 198990.0, 199019.0, ("199004", "[198990, 199019]")),
    (0.9, 0.5, 1.3, ("0.90", "[0.50, 1.30]")),
])
def test_with_ci_prints_the_digits_the_interval_resolves(v, lo, hi, text):
    assert report.with_ci(v, lo, hi) == text


@pytest.mark.parametrize("values,ratio", [
    ((100, 250, 500), None), ((25, 50, 100, 200), 2.0), ((100, 200, 400, 800), 2.0),
    ((10, 40, 160), 4.0), ((1, 2), None), ((0.5, 0.6, 0.7), None),
])
def test_geometric_ratio_only_for_one_common_ratio(values, ratio):
    assert report.geometric_ratio(values) == ratio


def _cell(r: EstimateResult, ratio: float, half: float) -> EstimateResult:
    return dataclasses.replace(r, n_s=100, n_e_over_n_r=ratio,
                               n_e_over_n_r_ci=Interval(ratio - half, ratio + half))


@pytest.mark.parametrize("ratio,half,label", [
    (1.0234, 0.003, "1.02"),           # d = 100: the interval is finer than the digits
    (1.0234, 0.01, "1.02\n±0.01"),
    (0.5621, 0.0007, "0.562\n±0.0007"),
    (1.2, 0.001, "1.20"),              # trailing zero kept: three significant digits
    (3.4e-5, 1e-8, "3.4e-5"),
])
def test_heatmap_cells_show_the_interval_only_when_it_shows(table, ratio, half, label):
    assert report._ratio_label(_cell(table[1], ratio, half)) == label


def test_heatmap_cell_at_n_s_0_is_exact(table):
    zero = next(r for r in table if r.n_s == 0)
    assert report._ratio_label(zero) == "1\nexact"


# --- tables -------------------------------------------------------------------------
def test_csv_and_json_keep_every_column_md_the_readers(table, tmp_path):
    csv = pd.read_csv(report.write_table(table, tmp_path / "t.csv"))
    assert list(csv.columns) == list(EstimateResult.COLUMNS) and len(csv) == len(table)
    rows = json.loads(report.write_table(table, tmp_path / "t.json").read_text())
    assert rows == table.to_rows()
    md = report.write_table(table, tmp_path / "t.md", title="T").read_text().splitlines()
    assert md[0] == "# T"
    header = [c.strip() for c in md[2].strip("|").split("|")]
    assert header == list(report.ESTIMATE_MD_COLUMNS)
    assert len([ln for ln in md if ln.startswith("| ")]) == len(table) + 1


def test_md_flags_cells_whose_precision_was_not_reached(table, tmp_path):
    cells = list(table)
    i = 2   # n_r = 20, n_s = 10, lam = 0.7
    cells[i] = dataclasses.replace(cells[i], precision_reached=False,
                                   note="precision not reached within max_chains = 64")
    text = report.write_table(cells, tmp_path / "t.md").read_text()
    rows = text.splitlines()[2:2 + len(cells)]   # after the header and its rule
    assert rows[i].rstrip(" |").endswith("| precision not reached")
    assert sum("precision not reached |" in r for r in rows) == 1
    assert "- n_r = 20, n_s = 10, lam = 0.7: precision not reached within" in text


def test_threshold_csv_keeps_whole_numbers(grid, tmp_path):
    text = report.write_table(grid, tmp_path / "g.csv").read_text()
    df = pd.read_csv(tmp_path / "g.csv", dtype=str, keep_default_na=False)
    assert list(df.columns) == list(ThresholdResult.COLUMNS)
    stars = [s for s in df["n_s_star"] if s]
    assert stars and all(s.isdigit() for s in stars), text
    assert (df["n_s_star"] == "").any()   # lam = 1: none up to the cap, an empty cell


def test_threshold_md_columns(grid, tmp_path):
    md = report.write_table(grid, tmp_path / "g.md").read_text().splitlines()
    assert [c.strip() for c in md[0].strip("|").split("|")] == list(
        report.THRESHOLD_MD_COLUMNS)
    assert any("none up to 400" in ln for ln in md)


def test_simulate_tables(sim, tmp_path):
    csv = pd.read_csv(report.write_table(sim, tmp_path / "s.csv"))
    assert list(csv.columns) == list(sim.to_frame().columns) and len(csv) == 10
    md = report.write_table(sim, tmp_path / "s.md").read_text().splitlines()
    assert md[0].startswith("| generation | w2sq mean") and len(md) == 12


# --- figures --------------------------------------------------------------------------
def _draw_all(table, grid, sim, folder):
    return [report.ne_heatmap(table, folder / "ne.png"),
            report.threshold_heatmap(grid, folder / "th.png"),
            report.threshold_lines(grid, folder / "lines.png"),
            report.simulate_plot(sim, folder / "sim.png")]


def test_figures_keep_the_backend_and_the_rcparams(table, grid, sim, tmp_path):
    before = matplotlib.get_backend()
    try:
        matplotlib.use("svg")   # as a notebook would have its own
        params = dict(matplotlib.rcParams)
        _draw_all(table, grid, sim, tmp_path)
        assert matplotlib.get_backend() == "svg"
        assert dict(matplotlib.rcParams) == params
    finally:
        matplotlib.use(before)


def test_figures_are_written_and_not_empty(table, grid, sim, tmp_path):
    figs = _draw_all(table, grid, sim, tmp_path)
    assert all(isinstance(f, matplotlib.figure.Figure) for f in figs)
    for name in ("ne.png", "th.png", "lines.png", "sim.png"):
        assert (tmp_path / name).stat().st_size > 10_000, name


@pytest.mark.parametrize("name", ["ne.png", "th.png", "lines.png", "sim.png"])
def test_figures_have_no_blank_margin(table, grid, sim, tmp_path, name):
    from matplotlib.image import imread

    _draw_all(table, grid, sim, tmp_path)
    img = imread(tmp_path / name)[..., :3]
    ink = (img < 0.95).any(axis=2)
    rows, cols = np.nonzero(ink.any(axis=1))[0], np.nonzero(ink.any(axis=0))[0]
    h, w = ink.shape
    assert rows[0] < 0.04 * h and rows[-1] > 0.96 * h
    assert cols[0] < 0.04 * w and cols[-1] > 0.96 * w


def test_ne_heatmap_draws_one_panel_per_lam(table):
    fig = report.ne_heatmap(table)
    panels = [ax for ax in fig.axes if ax.get_title().startswith("λ = ")]
    assert [ax.get_title() for ax in panels] == ["λ = 0.7", "λ = 1"]
    assert len(fig.axes) == 3   # and one colour bar


def test_ne_boundary_runs_along_cell_edges_under_the_numbers(table):
    from matplotlib.collections import LineCollection

    fig = report.ne_heatmap(table)
    lines = [c for ax in fig.axes for c in ax.collections
             if isinstance(c, LineCollection) and c.get_segments()]
    assert lines, "lam = 0.7 crosses n_e = n_r: a boundary is drawn"
    for c in lines:
        vertices = np.concatenate(c.get_segments())
        assert np.array_equal(vertices, np.round(vertices))   # cell corners only
        texts = [t for t in c.axes.texts]
        assert texts and all(t.get_zorder() > c.get_zorder() for t in texts)


def test_ne_axis_says_geometric_only_when_it_is(table):
    fig = report.ne_heatmap(table)
    xlabel = fig.axes[0].get_xlabel()
    assert "geometric" not in xlabel   # n_s = 0, 10, 160
    grid = [dataclasses.replace(table[1], n_s=n) for n in (100, 250, 500)]
    assert "geometric" not in report.ne_heatmap(grid).axes[0].get_xlabel()
    grid = [dataclasses.replace(table[1], n_s=n) for n in (100, 200, 400)]
    assert "geometric grid, ×2" in report.ne_heatmap(grid).axes[0].get_xlabel()


def test_threshold_lines_one_line_per_n_r(grid):
    fig = report.threshold_lines(grid)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert [lb for lb in labels if lb.startswith("n_r")] == ["n_r = 20", "n_r = 40"]
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "95% CI" in legend and any("no threshold up to the cap" in t for t in legend)


def test_the_simulate_plot_spans_every_generation_and_draws_the_median(sim):
    """The n_e panel spans every generation even where n_e(t) fell below 2 (not drawn),
    and the covariance panel draws, dashed, the median of tr Sigma_t / d over chains
    beside its mean (at lam = 1 the replace loop's mean stays near 1 while a typical
    chain collapses)."""
    import numpy as np

    fig = report.simulate_plot(sim)
    ax_ne, ax_tr = fig.axes[:2]
    last = sim.rows[-1]["generation"]
    assert ax_ne.get_xlim()[1] >= last and ax_tr.get_xlim()[1] >= last
    dashed = [ln for ln in ax_tr.get_lines() if ln.get_linestyle() == "--" and len(ln.get_xdata())]
    assert len(dashed) == 1
    want = [row["tr_sigma_over_d_median"] for row in sim.rows]
    np.testing.assert_array_equal(dashed[0].get_ydata(), want)
