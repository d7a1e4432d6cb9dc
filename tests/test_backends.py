"""Scale-out: cells on joblib threads or a Dask cluster give the same numbers, bit for bit."""

import json
import os
import socket
import subprocess
import sys

import pytest

import ess
from ess import backends
from ess.backends import get_backend, map_cells, split_jobs
from ess.cli import main
from ess.progress import Progress

TABLE = dict(d=1, n_r=[50, 100], n_s=[0, 100], lam=[1.0, 0.9], rel_precision=0.05, seed=3)
GRID = dict(d=1, n_r=[20, 40], lam=[0.6], rel_precision=0.05, seed=3)
CLI_TABLE = ["table", "--n-r", "50,100", "--n-s", "0,100", "--lam", "1,0.9",
             "--rel-precision", "0.05", "--seed", "3", "--quiet"]


def _numbers(results):
    """Every field of every cell but the wall-clock time."""
    rows = [r.to_dict() for r in results]
    for row in rows:
        row.pop("seconds")
    return rows


def _square(x, n_jobs):
    return x * x


# -- local backend --------------------------------------------------------------------

def test_split_jobs_never_oversubscribes():
    assert split_jobs(1, 8) == (1, 8)      # one cell gets every thread
    assert split_jobs(45, 8) == (8, 1)     # many cells: one thread each
    assert split_jobs(3, 8) == (3, 2)
    assert split_jobs(5, 1) == (1, 1)
    for cells in range(1, 20):
        for jobs in range(1, 20):
            w, t = split_jobs(cells, jobs)
            assert 1 <= w <= cells and w * t <= jobs


def test_local_table_same_whatever_n_jobs():
    serial = _numbers(ess.table(n_jobs=1, **TABLE))
    assert _numbers(ess.table(n_jobs=2, **TABLE)) == serial     # two cells side by side
    assert _numbers(ess.table(n_jobs=3, **TABLE)) == serial
    one = dict(TABLE, n_r=[50], n_s=[100], lam=[0.9])
    assert _numbers(ess.table(n_jobs=2, **one)) == [serial[3]]   # one cell, two threads


def test_local_threshold_grid_same_whatever_n_jobs():
    assert _numbers(ess.threshold_grid(n_jobs=1, **GRID)) == \
        _numbers(ess.threshold_grid(n_jobs=2, **GRID))


def test_map_cells_keeps_order_and_counts_progress():
    cells = [{"x": x} for x in range(7)]
    bar = Progress(enabled=False)
    assert map_cells(_square, cells, get_backend("local", n_jobs=3), bar) == \
        [x * x for x in range(7)]
    assert bar.done == 7


# -- Dask ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  protocol="tcp://", dashboard_address=None) as c:
        yield c


def test_dask_table_identical_to_local(cluster, tmp_path, monkeypatch):
    local = _numbers(ess.table(**TABLE))
    monkeypatch.setenv("ESS_CACHE_DIR", str(tmp_path))   # workers compute the curve afresh
    assert _numbers(ess.table(backend="dask", scheduler=cluster.scheduler_address,
                              **TABLE)) == local
    assert list((tmp_path / "reference").glob("*.json"))
    assert _numbers(ess.table(n_jobs=1, **TABLE)) == local


def test_dask_client_and_threshold_grid(cluster):
    distributed = pytest.importorskip("distributed")
    local = _numbers(ess.threshold_grid(**GRID))
    with distributed.Client(cluster, set_as_default=False) as client:
        assert _numbers(ess.threshold_grid(backend="dask", scheduler=client, **GRID)) == local
        bar = Progress(enabled=False)
        cells = [{"x": x} for x in range(5)]
        assert map_cells(_square, cells, get_backend("dask", client), bar) == \
            [x * x for x in range(5)]
        assert bar.done == 5
        assert client.status == "running"   # a client given by the caller stays open


def test_blas_threads_do_not_change_numbers(tmp_path):
    """A Dask worker runs one BLAS thread, a local process one per core: same numbers."""
    code = ("import json, ess; print(json.dumps(ess.reference_curve([10, 20, 40, 80, 160], "
            "rel_precision=0.05).f))")
    out = []
    for threads in ("1", "2"):
        env = dict(os.environ, OPENBLAS_NUM_THREADS=threads, OMP_NUM_THREADS=threads,
                   ESS_CACHE_DIR=str(tmp_path / threads),   # compute the curve afresh
                   NUMBA_CACHE_DIR=str(ess.config.kernel_cache_root()))  # but not the kernels
        run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, timeout=300, check=True)
        out.append(json.loads(run.stdout))
    assert out[0] == out[1]


def test_cli_dask_table_identical_to_local(cluster, tmp_path):
    rows = {}
    for name, extra in (("local", []),
                        ("dask", ["--backend", "dask", "--scheduler", cluster.scheduler_address])):
        out = tmp_path / f"{name}.json"
        assert main(CLI_TABLE + ["--out", str(out)] + extra) == 0
        rows[name] = json.loads(out.read_text())
        for row in rows[name]:
            row.pop("seconds", None)
    assert len(rows["local"]) == 8 and rows["dask"] == rows["local"]


# -- one clear line for every mistake ---------------------------------------------------

@pytest.fixture
def silent_port():
    """A port that accepts connections and never answers (not a Dask scheduler)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(4)
    yield f"tcp://127.0.0.1:{s.getsockname()[1]}"
    s.close()


@pytest.fixture
def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"tcp://127.0.0.1:{port}"


@pytest.fixture
def quick_timeout(monkeypatch):
    monkeypatch.setattr(backends, "CONNECT_TIMEOUT", 0.5)


@pytest.fixture
def no_dask(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)   # `import distributed` fails


MISTAKES = [
    (dict(backend="spark"), "backend must be one of local, dask"),
    (dict(backend="dask"), "backend 'dask' needs a scheduler"),
    (dict(scheduler="tcp://127.0.0.1:8786"), "scheduler applies to backend 'dask' only"),
    (dict(backend="dask", scheduler="nonsense"), "scheduler must be a Dask scheduler address"),
    (dict(backend="dask", scheduler=42), "scheduler must be a Dask scheduler address"),
]


def _cli_flags(kw):
    flags = []
    for k, v in kw.items():
        flags += [f"--{k}", str(v)]
    return flags


def _one_line(capsys, rc):
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2 and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("kw,message", MISTAKES, ids=[m for _, m in MISTAKES])
def test_backend_mistakes_python(kw, message):
    pytest.importorskip("distributed")
    for fn in (ess.table, ess.threshold_grid):
        with pytest.raises(ess.ParameterError, match=message):
            fn(d=1, n_r=[50], lam=[0.9], **kw)


@pytest.mark.parametrize("kw,message", MISTAKES[:4], ids=[m for _, m in MISTAKES[:4]])
@pytest.mark.parametrize("command", ["table", "heatmap"])
def test_backend_mistakes_cli(kw, message, command, tmp_path, capsys):
    pytest.importorskip("distributed")
    out = tmp_path / ("t.csv" if command == "table" else "h.png")
    rc = main([command, "--n-r", "50", "--lam", "0.9", "--quiet", "--out", str(out)]
              + _cli_flags(kw))
    assert message in _one_line(capsys, rc)


def test_dask_missing(no_dask, tmp_path, capsys):
    with pytest.raises(ess.ParameterError, match=r"pip install 'ess\[distributed\]'"):
        ess.table(backend="dask", scheduler="tcp://127.0.0.1:8786")
    rc = main(["table", "--backend", "dask", "--scheduler", "tcp://127.0.0.1:8786", "--quiet",
               "--out", str(tmp_path / "t.csv")])
    line = _one_line(capsys, rc)
    assert line == "ess: error: backend 'dask' needs the optional extra: " \
                   "pip install 'ess[distributed]'"
    assert _numbers(ess.table(n_jobs=2, **TABLE))   # the local backend does not need Dask


@pytest.mark.parametrize("which", ["silent_port", "closed_port"])
def test_unreachable_scheduler_one_line(which, request, quick_timeout, tmp_path, capsys):
    pytest.importorskip("distributed")
    address = request.getfixturevalue(which)
    with pytest.raises(ess.ParameterError, match="cannot reach a Dask scheduler"):
        ess.table(n_r=[50], n_s=[0], lam=[1.0], backend="dask", scheduler=address)
    rc = main(["heatmap", "--n-r", "50", "--lam", "0.9", "--backend", "dask", "--scheduler",
               address, "--quiet", "--out", str(tmp_path / "h.png")])
    assert address in _one_line(capsys, rc)


def test_cells_validated_before_connecting(closed_port):
    pytest.importorskip("distributed")
    with pytest.raises(ess.ParameterError, match="rel_precision"):   # not the scheduler
        ess.table(n_r=[50], rel_precision=0, backend="dask", scheduler=closed_port)
