"""Where ess keeps its caches: its own folder, and never the user's Numba cache."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import platformdirs
import pytest

from ess import config
from ess.kernels.loops import _sum_sq

USER_MODULE = """
from numba import njit


@njit(cache=True)
def plus_one(x):
    return x + 1
"""


def _import_file(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cache_dir_is_ess_cache_dir_or_the_platforms(monkeypatch, tmp_path):
    monkeypatch.setenv("ESS_CACHE_DIR", str(tmp_path / "mine"))
    assert config.cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("ESS_CACHE_DIR")
    assert config.cache_dir() == Path(platformdirs.user_cache_dir("ess", appauthor=False))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG paths are Linux's")
def test_cache_dir_on_linux_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("ESS_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert config.cache_dir() == tmp_path / "xdg" / "ess"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert config.cache_dir() == tmp_path / ".cache" / "ess"


def test_kernel_cache_dir_is_keyed_by_numba_and_the_kernel_sources(monkeypatch, tmp_path):
    monkeypatch.setattr(numba.config, "CACHE_DIR", "")
    monkeypatch.setenv("ESS_CACHE_DIR", str(tmp_path))
    folder = config.kernel_cache_dir()
    assert folder.parent == tmp_path / "numba"
    assert folder.name == f"{numba.__version__}-{config.source_hash('config.py', 'kernels/*.py')}"
    # a NUMBA_CACHE_DIR set by the user holds ess's kernels too, in their own folder
    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path / "numba-user"))
    assert config.kernel_cache_dir() == tmp_path / "numba-user" / folder.name


def test_kernels_are_cached_in_the_kernel_folder():
    """ess's kernels are located in ``kernel_cache_dir()`` (as it was when they were
    defined): their index files are written there."""
    _sum_sq(np.eye(2))
    folder = Path(_sum_sq._cache.cache_path)
    assert folder.parent == config.kernel_cache_dir()
    assert list(folder.glob("loops._sum_sq-*.nbi"))


def test_a_users_function_is_cached_where_numba_would_put_it(tmp_path):
    """A user's ``@njit(cache=True)`` function in a file of their own, compiled after
    ``import ess``, is cached where Numba's own locators put it: beside its file, or
    under the user's ``NUMBA_CACHE_DIR``; never in ess's folder."""
    path = tmp_path / "user_kernels.py"
    path.write_text(USER_MODULE)
    module = _import_file(path)
    assert module.plus_one(41) == 42
    folder = Path(module.plus_one._cache.cache_path)
    if numba.config.CACHE_DIR:
        assert folder.parent == Path(numba.config.CACHE_DIR)
    else:
        assert folder == tmp_path / "__pycache__"
    assert list(folder.glob("user_kernels.plus_one-*.nbi"))
    assert not folder.is_relative_to(config.kernel_cache_dir())


def test_import_ess_leaves_numbas_cache_setting_alone(tmp_path):
    """In a new process without ``NUMBA_CACHE_DIR``: ``numba.config.CACHE_DIR`` is the
    same before and after ``import ess``, and a user's cached function lands in the
    ``__pycache__`` beside its file, as without ess."""
    (tmp_path / "user_kernels.py").write_text(USER_MODULE)
    code = (
        "import json, numba; before = numba.config.CACHE_DIR; import ess, ess.kernels.loops; "
        "import user_kernels; user_kernels.plus_one(1); "
        "print(json.dumps([before, numba.config.CACHE_DIR, "
        "user_kernels.plus_one._cache.cache_path, "
        "ess.kernels.loops._sum_sq._cache.cache_path, str(ess.config.kernel_cache_dir())]))")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(Path(config.__file__).parents[1])])
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120, check=True)
    before, after, user, kernel, kernels = json.loads(run.stdout)
    assert before == after == ""
    assert Path(user) == tmp_path / "__pycache__"
    assert Path(kernel).parent == Path(kernels)
