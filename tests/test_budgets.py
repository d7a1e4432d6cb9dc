"""Work budgets users control (issue 13): --max-work / max_work, refusals that name the
cell and the flag, and answers that say what a budget cut."""

import json
from dataclasses import replace

import pytest

from ess import plan as planning
from ess.cli import main
from ess.request import estimate_request, threshold_request


def _run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_max_work_out_of_range_is_one_line_naming_it(capsys):
    for bad in ("0", "1e14", "lots", "nan"):
        status, out, err = _run(capsys, "estimate", "--max-work", bad, "--no-store")
        assert status == 2 and out == ""
        assert err.startswith("ess: error: max_work must be a number in [1000, 1e+13]")
        assert err.count("\n") == 1


def test_an_estimate_over_the_budget_is_refused_with_the_largest_n_s_and_the_flag(capsys):
    status, out, err = _run(capsys, "estimate", "--d", "100", "--n-s", "10000", "--lam", "0.85",
                            "--max-work", "3e7", "--no-store", "--json")
    assert status == 2 and out == ""
    assert "(d, n_r, n_s, lam) = (100, 100, 10000, 0.85)" in err
    assert "the largest n_s within it is" in err and "--max-work" in err
    # the same estimate goes through with no flag: the default budget admits it
    estimate_request(d=100, n_r=100, n_s=10_000, lam=0.85)


def test_a_grid_refused_before_computing_names_the_cell_and_the_flag(capsys, tmp_path):
    status, out, err = _run(capsys, "table", "--d", "100", "--n-r", "100", "--n-s", "100,10000",
                            "--lam", "0.85", "--max-work", "3e7", "--no-store",
                            "--out", str(tmp_path / "t.csv"))
    assert status == 2 and not (tmp_path / "t.csv").exists()
    assert err.startswith("ess: error: grid cell (n_r = 100, n_s = 10000, lam = 0.85): ")
    assert "--max-work" in err


def test_a_cap_lowered_by_the_budget_is_said_with_the_budget_the_full_cap_needs(capsys):
    """With a budget that fits the first rounds of the search up to n_s = 1024 but not
    up to the default cap 100 n_r = 5000 (lam = 1: slower mixing, longer burn-in, the
    larger n_s), the cap is lowered and the answer says so: the note, and the JSON keys
    ``cap_lowered_from`` and ``budget_note`` (with the max_work the full cap needs);
    that budget lets the full cap through."""
    p = threshold_request(d=10, n_r=50, lam=1.0, rel_precision=0.05).params
    budget = max(planning.first_round_work(replace(p, n_s=g), 0.05, n_values=2)
                 for g in planning.search_grid(1024))
    status, out, err = _run(capsys, "threshold", "--d", "10", "--n-r", "50", "--lam", "1",
                            "--rel-precision", "0.05", "--max-work", repr(budget),
                            "--no-store", "--json", "--quiet")
    assert status == 0, err
    res = json.loads(out)
    assert res["cap_lowered_from"] == 5000 and 1024 <= res["cap"] < 5000
    assert res["max_work"] == pytest.approx(budget)
    note = res["budget_note"]
    assert note.startswith(f"the cap was lowered from 5000 (100 n_r) to {res['cap']}")
    assert note in res["note"] and "--max-work" in note
    need = float(note.split("the full cap needs max_work >= ")[1].split(" ")[0])
    t = threshold_request(d=10, n_r=50, lam=1.0, rel_precision=0.05, max_work=need * 1.001)
    assert t.cap == t.cap_wanted == 5000
    # no budget given: the full cap, nothing said
    status, out, _ = _run(capsys, "threshold", "--d", "10", "--n-r", "50", "--lam", "1",
                          "--rel-precision", "0.05", "--no-store", "--json", "--quiet")
    res = json.loads(out)
    assert res["cap"] == 5000 and res["cap_lowered_from"] is None and res["budget_note"] == ""


def test_an_estimate_stopped_by_the_work_budget_says_so(capsys):
    """memory = 2 (no exact control-variate means, a cold start) asked to 0.3%: a budget
    of three first rounds stops the chains; the text and the JSON say it, with the
    budget that would reach the precision."""
    p = estimate_request(d=1, n_r=100, n_s=200, lam=0.9, memory=2,
                         rel_precision=0.003).params
    budget = 3 * planning.first_round_work(p, 0.003)
    args = ("estimate", "--n-s", "200", "--lam", "0.9", "--memory", "2", "--rel-precision",
            "0.003", "--max-work", repr(budget), "--no-store", "--quiet")
    status, out, _ = _run(capsys, *args, "--json")
    assert status == 0
    res = json.loads(out)
    assert not res["precision_reached"] and res["max_work"] == pytest.approx(budget)
    assert res["budget_note"].startswith(f"the work budget max_work = {budget:g} stopped")
    assert "--max-work" in res["budget_note"] and res["budget_note"] in res["note"]
    status, out, _ = _run(capsys, *args)
    assert "PRECISION NOT REACHED" in out and "the work budget max_work" in out


def test_simulate_takes_the_work_budget_too(capsys, tmp_path):
    status, out, err = _run(capsys, "simulate", "--d", "10", "--chains", "1000",
                            "--generations", "100", "--max-work", "1e5",
                            "--out", str(tmp_path / "s.csv"))
    assert status == 2 and "max_work = 100000" in err and "--max-work" in err
    most = int(1e5 // planning.chain_cost(estimate_request(d=10).params, 100))
    assert f"at most {most} chains of 100 generations" in err
