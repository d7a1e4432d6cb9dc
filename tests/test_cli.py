"""The command line: outputs, files, and one clear line for every bad input."""

import json

import numpy as np
import pytest

import ess
from ess.cli import main

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


@pytest.mark.parametrize("ext", [".csv", ".json", ".md"])
def test_table_formats(tmp_path, ext, capsys):
    out = tmp_path / f"t{ext}"
    assert main(["table", "--n-r", "20,40", "--n-s", "0,20", "--lam", "1,0.8",
                 "--rel-precision", "0.05", "--out", str(out), "--quiet"]) == 0
    text = out.read_text()
    assert "n_e_over_n_r" in text and "n_e_ci_low" in text
    if ext == ".json":
        rows = json.loads(text)
        assert len(rows) == 8 and {r["lam"] for r in rows} == {1.0, 0.8}


def test_heatmaps_write_figure_and_numbers(tmp_path):
    png = tmp_path / "th.png"
    assert main(["heatmap", "--n-r", "20,40", "--lam", "0.6,0.9", "--rel-precision", "0.05",
                 "--out", str(png), "--quiet"]) == 0
    assert png.stat().st_size > 10_000 and (tmp_path / "th.csv").exists()
    png2 = tmp_path / "ne.png"
    assert main(["heatmap", "--kind", "ne", "--n-r", "20,40", "--n-s", "10,40,160",
                 "--lam", "0.8", "--rel-precision", "0.05", "--out", str(png2), "--quiet"]) == 0
    assert png2.stat().st_size > 10_000 and "n_e_over_n_r" in (tmp_path / "ne.csv").read_text()


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
    np.save(f, np.array([[2.0, 0.3], [0.3, 1.0]]))
    assert main(["estimate", "--d", "2", "--sigma-r", str(f), "--n-s", "20", "--json",
                 "--rel-precision", "0.05"]) == 0
    assert json.loads(capsys.readouterr().out)["d"] == 2


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
    (["threshold", "--cap", "10000000"], "cap"),
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
