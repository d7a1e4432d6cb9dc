"""The command line: outputs, files, and one clear line for every bad input."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ess
from ess import defaults
from ess.cli import build_parser, estimate_text, main, simulate_text, threshold_text
from ess.params import ParameterError
from ess.report import ESTIMATE_MD_COLUMNS
from ess.results import EstimateResult, Interval, ThresholdResult

ESTIMATE_KEYS = {"d", "n_r", "n_s", "lam", "loop", "metric", "wd", "wd_ci", "n_e", "n_e_ci",
                 "n_e_over_n_r", "chains", "generations", "burn_in", "precision_reached",
                 "seconds"}
THRESHOLD_KEYS = {"d", "n_r", "lam", "n_s_star", "n_s_star_ci", "cap", "seconds"}


def test_estimate_json_keys(capsys):
    assert main(["estimate", "--n-r", "100", "--n-s", "200", "--lam", "0.9", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert ESTIMATE_KEYS <= set(out)
    assert out["d"] == 1 and out["metric"] == "w2sq" and out["cov_estimator"] == "unbiased"
    py = ess.estimate(n_r=100, n_s=200, lam=0.9).to_dict()
    assert out["n_e"] == py["n_e"]


def test_guidance_sets_lam(capsys):
    assert main(["estimate", "--n-s", "50", "--guidance", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["lam"] == 0.5


def test_threshold_json_keys(capsys):
    assert main(["threshold", "--n-r", "50", "--lam", "0.7", "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert THRESHOLD_KEYS <= set(out)
    assert isinstance(out["n_s_star"], int)


def test_threshold_none_is_null(capsys):
    assert main(["threshold", "--n-r", "20", "--lam", "1", "--cap", "200", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_s_star"] is None and out["cap"] == 200


def test_human_output_states_d_metric_estimator(capsys):
    assert main(["estimate", "--n-s", "50"]) == 0
    text = capsys.readouterr().out
    assert "d = 1" in text and "w2sq" in text and "unbiased" in text


def _table(tmp_path, name: str) -> Path:
    out = tmp_path / name
    assert main(["table", "--n-r", "20,40", "--n-s", "0,20", "--lam", "1,0.8",
                 "--rel-precision", "0.05", "--out", str(out), "--quiet"]) == 0
    return out


def test_table_csv_has_every_column(tmp_path):
    df = pd.read_csv(_table(tmp_path, "t.csv"))
    assert list(df.columns) == list(EstimateResult.COLUMNS) and len(df) == 8


def test_table_json_has_every_column(tmp_path):
    rows = json.loads(_table(tmp_path, "t.json").read_text())
    assert len(rows) == 8 and {r["lam"] for r in rows} == {1.0, 0.8}
    assert all(list(r) == list(EstimateResult.COLUMNS) for r in rows)


def test_table_md_shows_the_readers_columns(tmp_path):
    lines = _table(tmp_path, "t.md").read_text().splitlines()
    header = next(ln for ln in lines if ln.startswith("| n_r"))
    assert [c.strip() for c in header.strip("|").split("|")] == list(ESTIMATE_MD_COLUMNS)
    rows = [ln for ln in lines if ln.startswith("| ") and ln != header]
    assert len(rows) == 8
    assert lines[0].startswith("# ") and "d = 1" in lines[0] and "w2sq" in lines[0]
    zero = [ln for ln in rows if ln.split("|")[2].strip() == "0"]
    assert len(zero) == 4 and all("no synthetic data" in ln for ln in zero)


def test_heatmaps_write_figure_and_numbers(tmp_path):
    png = tmp_path / "th.png"
    assert main(["heatmap", "--n-r", "20,40", "--lam", "0.6,0.9", "--rel-precision", "0.05",
                 "--out", str(png), "--quiet"]) == 0
    assert png.stat().st_size > 10_000
    df = pd.read_csv(tmp_path / "th.csv")
    assert list(df.columns) == list(ThresholdResult.COLUMNS) and len(df) == 4
    lines = tmp_path / "lines.png"
    assert main(["heatmap", "--kind", "threshold-lines", "--n-r", "20,40", "--lam", "0.6,0.9",
                 "--rel-precision", "0.05", "--out", str(lines), "--quiet"]) == 0
    assert lines.stat().st_size > 10_000
    assert pd.read_csv(tmp_path / "lines.csv").equals(df)   # the same cells
    png2 = tmp_path / "ne.png"
    assert main(["heatmap", "--kind", "ne", "--n-r", "20,40", "--n-s", "10,40,160",
                 "--lam", "0.8,1", "--rel-precision", "0.05", "--out", str(png2),
                 "--quiet"]) == 0
    assert png2.stat().st_size > 10_000
    ne = pd.read_csv(tmp_path / "ne.csv")
    assert len(ne) == 12 and set(ne["lam"]) == {0.8, 1.0}


def test_heatmap_ne_defaults_to_the_papers_three_lams(monkeypatch, tmp_path):
    import ess.api

    seen = {}

    def fake_table(**kw):
        seen.update(kw)
        raise KeyboardInterrupt   # stop before computing

    monkeypatch.setattr(ess.api, "table", fake_table)
    assert main(["heatmap", "--kind", "ne", "--out", str(tmp_path / "ne.png")]) == 130
    assert [float(v) for v in seen["lam"]] == list(defaults.NE_HEATMAP_LAM)
    assert [int(v) for v in seen["n_s"]] == list(defaults.NE_HEATMAP_N_S)
    assert [int(v) for v in seen["n_r"]] == list(defaults.NE_HEATMAP_N_R)


@pytest.mark.parametrize("loop", ["fresh", "augmentation", "fully-synthetic"])
def test_simulate_writes_csv_and_plot(tmp_path, loop):
    out = tmp_path / "sim.csv"
    assert main(["simulate", "--loop", loop, "--n-s", "20", "--n-r", "20", "--chains", "30",
                 "--generations", "15", "--out", str(out), "--plot", "--quiet"]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 16 and "dist_q05" in lines[0] and "tr_sigma_over_d_mean" in lines[0]
    assert (tmp_path / "sim.png").stat().st_size > 10_000


def test_sigma_r_from_file(tmp_path, capsys):
    f = tmp_path / "s.npy"
    sigma = np.array([[2.0, 0.3], [0.3, 1.0]])
    np.save(f, sigma)
    assert main(["estimate", "--sigma-r", str(f), "--n-s", "20", "--json",
                 "--rel-precision", "0.05"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["d"] == 2   # from the file's matrix, no --d given
    py = ess.estimate(sigma_r=sigma, n_s=20, rel_precision=0.05, store=False)
    identity = ess.estimate(d=2, n_s=20, rel_precision=0.05, store=False)
    assert out["wd"] == py.wd != identity.wd


def test_sigma_r_length_gives_d(capsys):
    assert main(["estimate", "--sigma-r", "1,4,0.5", "--n-s", "20", "--rel-precision", "0.05",
                 "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["d"] == 3


def test_sigma_r_length_against_d_gets_the_apis_message(capsys):
    with pytest.raises(ParameterError) as api:
        ess.estimate(d=2, sigma_r=[1, 4, 0.5])
    assert main(["estimate", "--sigma-r", "1,4,0.5", "--d", "2"]) == 2
    assert capsys.readouterr().err == f"ess: error: {api.value}\n"


BAD = [
    (["estimate", "--n-r", "1"], "n_r"),
    (["estimate", "--n-r", "1.5"], "n_r"),
    (["estimate", "--n-r", "abc"], "n_r"),
    (["estimate", "--n-s", "-1"], "n_s"),
    (["estimate", "--n-s", "2.5"], "n_s"),
    (["estimate", "--lam", "1.5"], "lam"),
    (["estimate", "--lam", "-0.1"], "lam"),
    (["estimate", "--lam", "nan"], "lam"),
    (["estimate", "--guidance", "-1"], "guidance"),
    (["estimate", "--d", "0"], "d"),
    (["estimate", "--d", "100000"], "d"),
    (["estimate", "--n-ini", "1"], "n_ini"),
    (["estimate", "--loop", "bogus"], "loop"),
    (["estimate", "--loop", "fully-synthetic", "--n-s", "5"], "loop"),
    (["estimate", "--loop", "augmentation", "--n-ini", "7"], "n_ini"),
    (["estimate", "--memory", "0"], "memory"),
    (["estimate", "--metric", "kl"], "metric"),
    (["estimate", "--cov-estimator", "robust"], "cov_estimator"),
    (["estimate", "--seed", "-3"], "seed"),
    (["estimate", "--jobs", "0"], "n_jobs"),
    (["estimate", "--rel-precision", "0"], "rel_precision"),
    (["estimate", "--max-chains", "100000000"], "max_chains"),
    (["estimate", "--d", "2", "--sigma-r", "1,-1"], "sigma_r"),
    (["estimate", "--d", "2", "--sigma-r", "1,2,3"], "sigma_r"),
    (["estimate", "--d", "2", "--mu-r", "1"], "mu_r"),
    (["threshold", "--cap", "0"], "cap"),
    (["threshold", "--lam", "0.5,0.6"], "lam"),
    (["table", "--out", "x.txt"], "out"),
    (["table", "--n-s", "1,,2"], "n_s"),
    (["heatmap", "--kind", "pie"], "kind"),
    (["heatmap", "--out", "x.csv"], "out"),
    (["simulate", "--chains", "0"], "chains"),
    (["simulate", "--generations", "-5"], "generations"),
    (["simulate", "--loop", "fully-synthetic", "--n-s", "1"], "n_s"),
    (["estimate", "--n-s", "10000000"], "n_s"),
    (["threshold", "--cap", "10000000", "--memory", "2"], "cap"),   # cold start: mixes too slowly
    (["estimate", "--memory", "all", "--n-s", "100000", "--n-r", "2", "--d", "50"], "memory"),
    (["estimate", "--max-chains", "5"], "max_chains"),
    (["estimate", "--n-s", ""], "n_s"),
    (["estimate", "--sigma-r", "1e200"], "sigma_r"),
    (["estimate", "--d", "2", "--sigma-r", "inf,1"], "sigma_r"),
    (["simulate", "--out", "/proc/nope/x.csv"], "out"),
    (["simulate", "--d", "200", "--chains", "1", "--generations", "100000", "--memory", "all"],
     "memory"),
    (["simulate", "--d", "100", "--chains", "100000", "--generations", "1000"], "chains"),
    (["heatmap", "--kind", "ne", "--cap", "5"], "cap"),
    (["heatmap", "--kind", "threshold-lines", "--n-s", "5"], "n_s"),
    (["heatmap", "--kind", "ne", "--lam", "0.5,0.5"], "lam"),
    (["table", "--lam", "1,1"], "lam"),
    (["estimate", "--bogus"], "--bogus"),
]


@pytest.mark.parametrize("argv,name", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_one_line_exit_2(argv, name, capsys):
    rc = main(argv + ["--quiet"] if argv[-1] != "--bogus" else argv)
    err = capsys.readouterr().err
    assert rc == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert name in lines[0] and "Traceback" not in err


PY_BAD = [
    dict(n_r=1), dict(n_r=2.5), dict(n_s=-1), dict(lam=1.01), dict(lam=float("nan")),
    dict(d=0), dict(n_ini=0), dict(loop="x"), dict(memory=0), dict(metric="x"),
    dict(cov_estimator="x"), dict(seed=-1), dict(rel_precision=0.0), dict(max_chains=0),
    dict(d=2, sigma_r=[[1, 2], [2, 1]]), dict(d=2, sigma_r=[[1, 0], [0.5, 1]]),
    dict(n_jobs=0), dict(n_r=True),
]


@pytest.mark.parametrize("kw", PY_BAD, ids=[str(k) for k in PY_BAD])
def test_python_api_raises_value_error(kw):
    with pytest.raises(ValueError):
        ess.estimate(**kw)


def test_no_progress_bar_when_not_a_terminal(capsys):
    from ess.progress import Progress

    bar = Progress("x", enabled=True)   # stderr is captured: not a terminal
    bar.add_total(3)
    bar.update(3)
    bar.close()
    assert capsys.readouterr().err == ""


def test_help_and_version_exit_cleanly(capsys):
    assert main(["--version"]) == 0
    assert "ess" in capsys.readouterr().out
    assert main(["estimate", "--help"]) == 0
    assert "--rel-precision" in capsys.readouterr().out


COMPUTING = ("estimate", "threshold", "table", "heatmap", "simulate")


def _subparser(name: str):
    ap = build_parser()
    sub = next(a for a in ap._actions if a.dest == "command")
    return sub.choices[name]


@pytest.mark.parametrize("command", COMPUTING)
def test_help_shows_every_flags_default(command):
    sp = _subparser(command)
    valued = [a for a in sp._actions if a.option_strings and a.nargs != 0
              and a.dest not in ("help", "guidance", "store", "scheduler", "plot")]
    missing = [a.option_strings[0] for a in valued if "default" not in (a.help or "")]
    assert not missing, f"no default in the help of {missing}"


def _seq(values):
    return ",".join(f"{v:g}" for v in values)


@pytest.mark.parametrize("command,expected", [
    ("estimate", [f"(default {defaults.N_R})", f"(default {defaults.N_S})",
                  f"(default {defaults.LAM:g})", f"(default {defaults.LOOP})",
                  f"(default {defaults.MEMORY})", f"(default {defaults.REL_PRECISION:g})",
                  f"(default {defaults.MAX_CHAINS},"]),
    ("threshold", [f"(default {defaults.THRESHOLD_LAM:g})",
                   f"(default {defaults.CAP_PER_N_R} n_r"]),
    ("table", [f"(default {_seq(defaults.TABLE_N_R)})", f"(default {_seq(defaults.TABLE_N_S)})",
               f"(default {_seq(defaults.TABLE_LAM)})"]),
    ("heatmap", [_seq(defaults.HEATMAP_N_R), _seq(defaults.HEATMAP_LAM),
                 _seq(defaults.NE_HEATMAP_N_R), _seq(defaults.NE_HEATMAP_N_S),
                 _seq(defaults.NE_HEATMAP_LAM), "threshold-lines", "(default threshold)"]),
    ("simulate", [f"(default {defaults.CHAINS})", f"(default {defaults.GENERATIONS})",
                  f"(default {defaults.N_S})", "fully-synthetic"]),
])
def test_help_defaults_come_from_ess_defaults(command, expected, capsys):
    assert main([command, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())   # unwrapped
    missing = [e for e in expected if e not in text]
    assert not missing, missing


# --- what estimate, threshold and simulate print ----------------------------------
@pytest.fixture(scope="module")
def small():
    """A cheap estimate to derive printed cases from."""
    return ess.estimate(n_r=100, n_s=200, lam=0.9, rel_precision=0.05, store=False)


def test_estimate_at_n_s_0_prints_exact_no_synthetic_data(capsys):
    assert main(["estimate", "--n-s", "0"]) == 0
    out = capsys.readouterr().out
    assert "n_e           100 = n_r exactly" in out
    assert "n_e / n_r     1 exactly   (no synthetic data)" in out
    assert "±" not in out and "chains x" not in out and "significant" not in out


def test_estimate_prints_tiny_ratios_with_their_digits(small):
    n_r, n_s, ratio = 100_000, 10_000_000, 3.4e-5
    r = dataclasses.replace(small, n_r=n_r, n_s=n_s, n_e=ratio * n_r,
                            n_e_ci=Interval(0.999 * ratio * n_r, 1.001 * ratio * n_r),
                            n_e_over_n_r=ratio,
                            n_e_over_n_r_ci=Interval(0.999 * ratio, 1.001 * ratio),
                            wd=7.5e-6, wd_ci=Interval(7.49e-6, 7.51e-6))
    text = estimate_text(r)
    line = next(ln for ln in text.splitlines() if ln.lstrip().startswith("n_e / n_r"))
    assert "3.4000e-5 95% CI [3.3966e-5, 3.4034e-5]" in " ".join(line.split())
    assert "0.0000" not in text
    wd = next(ln for ln in text.splitlines() if ln.lstrip().startswith("limit WD"))
    assert wd.split()[2].startswith("7.50") and wd.split()[2].endswith("e-6")


def test_null_n_e_prints_no_precision_on_n_e(small):
    r = dataclasses.replace(small, n_e=None, n_e_ci=None, n_e_over_n_r=None,
                            n_e_over_n_r_ci=None, note="n_e < 2: the limit is farther")
    text = estimate_text(r)
    assert "n_e known" not in text and "±0.00%" not in text
    assert "n_e           below 2" in text and "WD known to ±" in text
    assert "note: n_e < 2: the limit is farther" in text


def test_estimate_prints_a_budget_note(small):
    r = dataclasses.replace(small, precision_reached=False,
                            note="precision not reached within max_chains = 64")
    text = estimate_text(r)
    assert "PRECISION NOT REACHED" in text
    assert text.endswith("note: precision not reached within max_chains = 64")


def test_threshold_prints_a_lowered_cap():
    t = ess.threshold(n_r=20, lam=0.7, rel_precision=0.05, store=False)
    note = "the cap was lowered from 2000 (100 n_r) to 500, the largest n_s within the budget"
    text = threshold_text(dataclasses.replace(t, note=note))
    assert text.endswith(f"note: {note}")


def test_simulate_prints_no_subnormal_digits():
    s = ess.simulate(n_s=5, chains=10, generations=2)
    rows = [dict(row) for row in s.rows]
    rows[-1]["tr_sigma_over_d_mean"] = 5e-324   # an underflowed mean: 1 bit of precision
    text = simulate_text(dataclasses.replace(s, rows=tuple(rows)))
    assert "e-324" not in text and "< 2.2e-308" in text and "underflow" in text


def test_simulate_json_into_a_closed_pipe_ends_quietly(tmp_path):
    root = Path(ess.__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(root))
    err = tmp_path / "err.txt"
    cmd = (f"'{sys.executable}' -m ess simulate --json --chains 10 --generations 3000 "
           f"--quiet --out '{tmp_path / 's.csv'}' 2>'{err}' | head -c 1")
    out = subprocess.run(["sh", "-c", cmd], capture_output=True, env=env, timeout=300)
    assert out.stdout == b"{"
    assert err.read_text() == ""   # no BrokenPipeError, no "Exception ignored"


# --- output paths ------------------------------------------------------------------
def test_figure_path_error_names_the_path_given(capsys):
    assert main(["heatmap", "--out", "/proc/h.png", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ess: error: out must be a writable file path; cannot write "
                          "'/proc/h.png'") and "h.csv" not in err
    assert len(err.splitlines()) == 1


def test_a_file_in_the_way_is_called_a_file(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("afile").write_text("x")
    assert main(["table", "--out", "afile/t.csv", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err == ("ess: error: out must be a writable file path; cannot write 'afile/t.csv': "
                   "'afile' is a file, not a folder\n")


def test_a_refused_command_leaves_no_folder(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    new = tmp_path / "new" / "deeper"
    assert main(["simulate", "--out", str(new / "s.csv"), "--plot",
                 str(tmp_path / "afile" / "x.png")]) == 2
    assert "plot must be" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
