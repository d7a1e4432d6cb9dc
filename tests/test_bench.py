"""`ess bench`: the command's wiring only (the suite's timings are never unit tests)."""

import math
from pathlib import Path

import pytest

from ess import cli
from ess.cli import main


def test_bench_help(capsys):
    assert main(["bench", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--quick" in out and "--out" in out


def test_bench_needs_a_source_checkout(monkeypatch, capsys):
    monkeypatch.setattr(cli, "_source_root", lambda: None)
    assert main(["bench", "--quick"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "source checkout" in err and "Traceback" not in err


def test_bench_finds_the_suite_in_this_checkout():
    root = cli._source_root()
    assert root is not None and (root / "benchmarks" / "suite.py").is_file()


def test_bench_calls_the_suite(monkeypatch, tmp_path):
    suite = pytest.importorskip("benchmarks.suite")
    calls = []
    monkeypatch.setattr(suite, "run", lambda **kw: calls.append(kw))
    assert main(["bench", "--quick", "--out", str(tmp_path / "b")]) == 0
    assert calls == [{"quick": True, "out_dir": Path(tmp_path / "b")}]


def test_bench_unwritable_out_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["bench", "--out", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ess: error: out") and err.count("\n") == 1


def test_the_paper_workloads_are_the_papers_grids():
    paper = pytest.importorskip("benchmarks.paper")
    w = paper.FULL
    assert (w.d, w.rel_precision) == (100, 0.02)
    assert w.fig11_lam == (0.7, 0.85, 1.0) and w.fig11_n_r == (100, 178, 316, 562, 1000)
    assert w.fig11_n_s == (100, 316, 1000, 3162, 10_000)
    assert w.fig12_lam == tuple(k / 10 for k in range(1, 10)) and w.fig12_n_r == (100, 250, 1000)


def test_the_paper_workloads_price_the_baseline_from_a_cold_start():
    """The baseline starts cold: its burn-in is the cold start's (here the issue's 390
    generations at (100, 100, 7500, 0.85) and 1%), longer than the one `ess` runs."""
    paper = pytest.importorskip("benchmarks.paper")
    from ess.plan import limit_plan
    from ess.request import estimate_request

    assert paper.cold_burn_in(100, 100, 7500, 0.85, 0.01) == 390
    p = estimate_request(d=100, n_r=100, n_s=7500, lam=0.85).params
    assert limit_plan(p, (7500,), 0.01, 0).burn_in < 390
    sd = paper.single_generation_sd(10, 100, 200, 0.9, 0.02)
    assert 0.0 < sd < 1.0


def test_the_report_shows_the_paper_workloads():
    report = pytest.importorskip("benchmarks.report")
    cell11 = {"n_r": 100, "n_s": 100, "lam": 0.7, "n_e_over_n_r": 1.2, "n_e_rel_halfwidth": 0.01,
              "chains": 4, "generations": 8, "burn_in": 2, "seconds": 0.01,
              "baseline_steps": 1000}
    cell12 = {"n_r": 100, "lam": 0.5, "n_s_star": 57, "n_s_star_ci": [55, 58], "cap": 10000,
              "evaluations": 16, "seconds": 0.1, "baseline_steps": 2000}
    res = {"paper": {"fig11": {"d": 100, "rel_precision": 0.02, "cells": [cell11],
                               "ess_seconds": 1.0, "vectorised_seconds": 20.0,
                               "vectorised_rate": 1000.0},
                     "fig12": {"d": 100, "rel_precision": 0.02, "cells": [cell12],
                               "ess_seconds": 2.0, "vectorised_seconds": 30.0,
                               "vectorised_rate": 1000.0}}}
    text = "\n".join(report._paper(res))
    assert "## The paper's workloads" in text and "| 100 | 0.5 | 57 | [55, 58] |" in text


def test_the_baseline_threshold_search_is_a_bisection_to_adjacent_integers():
    """The baseline's threshold search (its pricing): a bisection over [0, cap] on n_s, or
    on log n_s, that ends at the same adjacent pair as the excess's sign change, with
    the evaluations a bisection needs (about log2(cap) on n_s); the excess between
    `ess`'s evaluations is interpolated in log n_s and held beyond them."""
    paper = pytest.importorskip("benchmarks.paper")
    scan = [{"n_s": n, "excess": math.log(n / 648.5)} for n in (1, 4, 16, 64, 256, 1024)]
    excess = paper.excess_curve(scan)
    assert excess(648) < 0.0 < excess(649)
    assert excess(5000) == pytest.approx(math.log(1024 / 648.5))
    for geometric in (False, True):
        seen = paper.baseline_search(10_000, excess, geometric)
        assert len(set(seen)) == len(seen)
        assert {648, 649} <= set(seen)
        assert len(seen) <= math.ceil(math.log2(10_000)) + (2 if geometric else 0)
    assert paper.baseline_search(10_000, excess, False)[:2] == [5000, 2500]
    assert paper.baseline_search(10_000, excess, True)[:2] == [1, 100]


def test_the_suite_runs_large_d_and_the_start_up_floors():
    """`ess bench` measures d = 512, 1024, 2048 (`--quick`: the smallest LAPACK d) and the
    start-up floors in the same run, and the report shows both."""
    suite = pytest.importorskip("benchmarks.suite")
    report = pytest.importorskip("benchmarks.report")
    from ess import config

    assert suite.FULL.large_d == (512, 1024, 2048) and suite.FULL.floor_runs >= 5
    assert suite.QUICK.large_d == (config.LAPACK_MIN_D,) and suite.QUICK.floor_runs >= 2
    row = {"d": 2048, "seconds": 150.0, "peak_rss_bytes": 745 * 2**20, "n_e_over_n_r": 1.85,
           "n_e_rel_halfwidth": 0.0012, "chains": 4, "generations": 10, "burn_in": 4,
           "precision_reached": True}
    seconds = {"import numpy": 0.1, "import numba": 0.4, "store hit": 0.25,
               "computed d = 1": 0.65}
    gaps = {"store hit": {"beside": "import numpy", "gap": 0.15, "cpu_gap": 0.1,
                          "target": 0.1},
            "computed d = 1": {"beside": "import numba", "gap": 0.25, "cpu_gap": 0.2,
                               "target": 0.3}}
    res = {"large_d": {"setting": {"n_r": 1000, "n_s": 1000, "lam": 0.9,
                                   "rel_precision": 0.02}, "rows": [row]},
           "startup": {"floors": {"runs": 10, "seconds": seconds, "cpu_seconds": seconds,
                                  "gaps": gaps}}}
    text = "\n".join(report._large_d(res))
    assert "## 5. Large d" in text
    # a row measured before the baseline was priced: dashes in the baseline's columns
    assert "| 2048 | 2.5 min | 4 x 10 | 4 | 1.85 | 0.12% | yes | 745 | – | – | – | – |" in text
    row |= {"baseline_chains": 4, "baseline_burn_in": 8, "vectorised_step_seconds": 2.27,
            "vectorised_seconds": 300.0}
    text = "\n".join(report._large_d(res))
    assert ("| 2048 | 2.5 min | 4 x 10 | 4 | 1.85 | 0.12% | yes | 745 | 4 x 9 | 2.27 s "
            "| 5 min | 2x faster |") in text
    assert "priced, not run" in text and "for free" in text
    text = "\n".join(report._floors(res))
    assert "missed by 0.050 s" in text and "| computed d = 1 |" in text and "| met |" in text


def test_the_large_d_baseline_is_priced_from_a_measured_step(monkeypatch):
    """chains x (first generation and distance + cold burn-in x step), with the chains the
    half-width on WD needs and the step measured on one chain of the baseline's code."""
    large_d = pytest.importorskip("benchmarks.large_d")
    suite = pytest.importorskip("benchmarks.suite")
    from benchmarks.paper import cold_burn_in
    from benchmarks.worker import chain_seconds
    from ess import config

    t = chain_seconds(4, 20, 20, 0.9, generations=2, repeats=1)
    assert t["step_seconds"] >= 0 and t["first_seconds"] > 0 and t["chain_seconds"] > 0
    assert not t["eigh_root"] and chain_seconds(50, 20, 20, 0.9, 1, 1)["eigh_root"]
    from benchmarks import baselines
    assert baselines._root.__name__ == "_root"    # the baseline's own, restored
    timing = {"first_seconds": 0.5, "step_seconds": 2.0, "eigh_root": True}
    monkeypatch.setattr(suite, "_worker", lambda spec: (
        timing if spec["kind"] == "generations" and spec["repeats"] >= 1 else None,
        suite.Child(0.0, 64.0, "")))
    st = large_d.SETTING
    monkeypatch.setattr(config, "MAX_WORK", 1e15)   # as in the timed child
    burn = cold_burn_in(2048, st["n_r"], st["n_s"], st["lam"], st["rel_precision"])
    assert burn > 1
    row = {"d": 2048, "seconds": 60.0, "wd": 100.0, "log_slope": -1.0,
           "single_generation_sd": 1.0, "baseline_burn_in": burn}
    out = large_d.price_baseline(row, log=lambda _: None)
    chains = suite.chains_needed(1.0, st["rel_precision"] * 1.0 * 100.0)
    assert out["baseline_burn_in"] == burn and out["baseline_chains"] == chains
    assert out["baseline_steps"] == chains * (burn + 1)
    assert out["vectorised_seconds"] == pytest.approx(chains * (0.5 + 2.0 * (burn - 1)))
    assert out["vectorised_over_ess"] == pytest.approx(out["vectorised_seconds"] / 60.0)
    assert large_d.price_baseline(row | {"log_slope": None}) == {}
