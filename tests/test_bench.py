"""`ess bench`: the command's wiring only (the suite's timings are never unit tests)."""

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
