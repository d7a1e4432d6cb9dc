"""Compilation flags, limits and defaults shared by every layer of `ess`.

Every ``@njit`` in the package takes its options from :data:`JIT`, so caching,
``nogil`` and ``fastmath`` are decided in one place.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import numba

#: Options for every Numba kernel. ``cache=True`` keeps compiled code on disk so
#: that a second process does not recompile; ``nogil=True`` lets chunks of
#: chains run in parallel threads; ``fastmath`` stays off so results are
#: reproducible bit for bit.
JIT = {"cache": True, "nogil": True, "fastmath": False}

#: Largest dimension accepted.
MAX_D = 200
#: Largest number of chains one estimate may use (the budget ceiling).
MAX_CHAINS = 1_000_000
#: Default number of chains one estimate may use before reporting that the
#: requested precision was not reached.
DEFAULT_MAX_CHAINS = 200_000
#: Largest count (n_r, n_s, n_ini, caps) accepted.
MAX_COUNT = 10**7
#: Largest number of generations for ``simulate``.
MAX_GENERATIONS = 100_000
#: Largest number of cells in a table or heatmap grid.
MAX_GRID = 10_000
#: Work budget of one Monte Carlo computation (one estimate, one threshold
#: evaluation, one simulate), in units of about one scalar group draw: a group
#: draw costs ``1 + d^3 / 20`` units. With ``memory = 1``, 1e9 units took 31 s at
#: d = 10, 6.4 s at d = 30 and 3.4 s at d = 100 on two cores (the row-vectorised
#: kernels make large d cheaper than the cubic model says).
MAX_WORK = 1e9
#: Work budget of one reference-curve point.
MAX_REFERENCE_WORK = 5e7
#: Largest memory for per-chain model buffers and simulate output, in bytes.
MAX_BYTES = 2**30

#: Seed of the reference curve's random numbers: the curve is a property of
#: (d, metric, cov_estimator, Sigma_r), shared by every user seed.
REFERENCE_SEED = 20240509

#: z-value of a two-sided 95% interval.
Z95 = 1.959963984540054


def group_cost(d: int) -> float:
    """Work units of one group draw (sample mean and scatter) in dimension ``d``."""
    return 1.0 + d**3 / 20.0


def cache_dir() -> Path:
    """Directory of the on-disk caches (reference curves).

    ``ESS_CACHE_DIR`` overrides it; otherwise ``$XDG_CACHE_HOME/ess`` or
    ``~/.cache/ess``.
    """
    env = os.environ.get("ESS_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ess"


@functools.cache
def default_jobs() -> int:
    """Number of worker threads used when ``n_jobs`` is not given: every core."""
    return max(1, os.cpu_count() or 1)


@functools.cache
def source_hash(*names: str) -> str:
    """Hash of the package's source files ``names`` (globs relative to the package)."""
    h = hashlib.sha256()
    here = Path(__file__).parent
    for pattern in names:
        for f in sorted(here.glob(pattern)):
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _kernel_cache_dir() -> Path:
    """Where Numba keeps compiled kernels: one folder per version of the kernel sources.

    Numba's own cache checks only the time stamp of the file that defines a
    function, not of the files it calls into, so an edited helper in another
    file could be served stale. Keying the folder by a hash of every kernel
    source (and of the Numba version) rules that out, and keeps the cache out
    of a possibly read-only install directory.
    """
    return cache_dir() / "numba" / f"{numba.__version__}-{source_hash('config.py', 'kernels/*.py')}"


if not os.environ.get("NUMBA_CACHE_DIR"):
    numba.config.CACHE_DIR = str(_kernel_cache_dir())
