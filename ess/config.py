"""Compilation flags, limits and defaults shared by every layer of `ess`.

Every ``@njit`` in the package takes its options from :data:`JIT`, so caching,
``nogil`` and ``fastmath`` are decided in one place.

This module does not import Numba: an answer read from the result store needs
none of it (about 0.3 s of start-up). Numba is imported, and ess's cache locator
registered with it, when a kernel module first reads :data:`JIT` to define its
kernels (:func:`__getattr__`).
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

#: Options for every Numba kernel, read as :data:`JIT` (which registers the cache
#: locator first). ``cache=True`` keeps compiled code on disk so that a second
#: process does not recompile; ``nogil=True`` lets chunks of chains run in
#: parallel threads; ``fastmath`` stays off so results are reproducible bit for bit.
_JIT = {"cache": True, "nogil": True, "fastmath": False}


def __getattr__(name: str):
    """``config.JIT``: the kernels' Numba options, read by each kernel module just
    before it defines its kernels; the first read imports Numba and registers
    ess's cache locator (:func:`_register_kernel_locator`) so that the kernels are
    cached where :func:`kernel_cache_dir` says."""
    if name == "JIT":
        _register_kernel_locator()
        return _JIT
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: Largest dimension accepted: FID's feature space (Inception's pool layer).
MAX_D = 2048
#: Dimension from which the kernels use BLAS and LAPACK (:mod:`ess.kernels.lapack`).
#: Below it the plain loops of :mod:`ess.kernels.sampling` and
#: :mod:`ess.kernels.distance` run, and their numbers are unchanged. Time per
#: generation of one chain on one thread (fresh loop, a distance every third
#: generation; LAPACK path / loops, best of 3 on the project's shared 2-core
#: machine, so noisy): at (n_r, n_s) = (100, 900),
#: d = 32: 0.034 / 0.029 ms, 64: 0.152 / 0.154, 80: 0.22 / 0.25, 96: 0.31 / 0.40,
#: 128: 0.62 / 1.13, 160: 0.93 / 1.77, 200: 2.4 / 3.1 ms. BLAS pays from about
#: d = 80 (1.2x at 96); the switch is at 128 so that the paper's d = 100 keeps its
#: numbers bit for bit, for a gain of under 1.3x there.
LAPACK_MIN_D = 128
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
#: Largest work budget (``max_work``, ``--max-work``) a user may give: about ten
#: thousand times the default, hours of computing.
MAX_WORK_LIMIT = 1e13
#: Smallest work budget a user may give (a few milliseconds).
MIN_WORK = 1e3
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
    """Work units of one group draw (sample mean and scatter) in dimension ``d``,
    with its share of the generation's factor and distance.

    Below :data:`LAPACK_MIN_D`, ``1 + d^3 / 20`` (see :data:`MAX_WORK`: a unit is
    about 7 ns of one core at d = 100). From there the kernels call BLAS, measured
    (one thread, ``n_r = n_s = 1000``, a distance every third generation) at about
    0.31 ms a group at d = 128, 150 ms at d = 1024 and 0.9 s at d = 2048, where
    ``d^3 / 20`` units would say 0.7 ms, 0.37 s and 2.9 s: ``d^3 / 50`` (0.29 ms,
    0.15 s, 1.2 s) keeps a unit about the same time.
    """
    if d >= LAPACK_MIN_D:
        return d**3 / 50.0
    return 1.0 + d**3 / 20.0


def cache_dir() -> Path:
    """Directory of the on-disk caches (compiled kernels, reference curves, results).

    ``ESS_CACHE_DIR`` overrides it; otherwise the operating system's per-user
    cache folder (``platformdirs.user_cache_dir("ess")``): ``$XDG_CACHE_HOME/ess``
    or ``~/.cache/ess`` on Linux, ``~/Library/Caches/ess`` on macOS,
    ``%LOCALAPPDATA%\\ess\\Cache`` on Windows.

    Returns
    -------
    pathlib.Path
        The folder (not created here).
    """
    env = os.environ.get("ESS_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs  # here: not imported at all when ESS_CACHE_DIR is set

    return Path(platformdirs.user_cache_dir("ess", appauthor=False))


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


def kernel_cache_root() -> Path:
    """Folder that holds the folders of compiled kernels, one per kernel-source version.

    Numba's ``NUMBA_CACHE_DIR`` (``numba.config.CACHE_DIR``) when the user set it,
    to send every Numba cache there; otherwise ``<cache_dir()>/numba``. A child
    process with another ``ESS_CACHE_DIR`` reuses this process's compiled kernels
    when given this folder as its ``NUMBA_CACHE_DIR``.

    Returns
    -------
    pathlib.Path
        The folder.
    """
    import numba

    user = numba.config.CACHE_DIR
    return Path(user) if user else cache_dir() / "numba"


def kernel_cache_dir() -> Path:
    """Where Numba keeps ess's compiled kernels: one folder per version of their sources.

    Numba's own cache checks only the file that defines a function, not the files
    it calls into, so an edited helper in another file could be served stale.
    Naming the folder by a hash of every kernel source and of ``config.py`` (the
    JIT flags), and by the Numba version, rules that out; it also keeps compiled
    code out of a possibly read-only install folder.

    Returns
    -------
    pathlib.Path
        ``<kernel_cache_root()>/<numba version>-<source hash>``.
    """
    import numba

    return kernel_cache_root() / f"{numba.__version__}-{source_hash('config.py', 'kernels/*.py')}"


#: The folder of ess's kernel sources: the functions defined there are cached in
#: :func:`kernel_cache_dir`.
_KERNEL_SOURCES = Path(__file__).resolve().parent / "kernels"


@functools.cache
def _in_kernel_sources(py_file: str) -> bool:
    """Whether ``py_file`` is in ``ess/kernels/`` (resolved once per file)."""
    return Path(py_file).resolve().parent == _KERNEL_SOURCES


#: Folders of compiled kernels checked in this process, and the error of each check.
_CHECKED_FOLDERS: dict[str, OSError | None] = {}


def _checked_folder(path: str, check) -> OSError | None:
    """The ``OSError`` that ``check()`` raised the first time ``path`` was checked, or
    ``None`` if it passed."""
    if path not in _CHECKED_FOLDERS:
        try:
            check()
            _CHECKED_FOLDERS[path] = None
        except OSError as e:
            _CHECKED_FOLDERS[path] = e
    return _CHECKED_FOLDERS[path]


@functools.cache
def _kernel_locator_class() -> type:
    """The class of :func:`_register_kernel_locator` (built on first use: it
    subclasses Numba's locators, so building it imports Numba)."""
    from numba.core.caching import _CacheLocator, _SourceFileBackedLocatorMixin

    class _KernelCacheLocator(_SourceFileBackedLocatorMixin, _CacheLocator):
        """Numba cache locator for ess's kernels, and for nothing else.

        Numba asks its locator classes in turn where to cache a function; this one,
        registered first, answers only for functions defined in ``ess/kernels/`` and
        places them in :func:`kernel_cache_dir` (in a subfolder per source folder, as
        Numba's own ``NUMBA_CACHE_DIR`` locator does). For every other function it
        answers nothing, so Numba decides as it would without ess: ``import ess``
        leaves ``numba.config.CACHE_DIR`` and the user's own caches alone. If the
        folder cannot be created or written, Numba's own locators take over.
        """

        def __init__(self, py_func, py_file: str) -> None:
            self._py_file = py_file
            self._lineno = py_func.__code__.co_firstlineno
            self._cache_path = str(kernel_cache_dir() / self.get_suitable_cache_subpath(py_file))

        def get_cache_path(self) -> str:
            """The folder of this function's cache files."""
            return self._cache_path

        def ensure_cache_path(self) -> None:
            """Numba's check that the folder exists and is writable (it creates a
            temporary file there), once per folder and process rather than once per
            kernel: a new process would otherwise create one file per kernel module's
            every function before its first answer."""
            error = _checked_folder(self._cache_path, super().ensure_cache_path)
            if error is not None:
                raise error

        @classmethod
        def from_function(cls, py_func, py_file: str):
            """A locator for a function of ``ess/kernels/``, else ``None``."""
            if not _in_kernel_sources(py_file):
                return None
            return super().from_function(py_func, py_file)

    _KernelCacheLocator.__module__ = __name__
    return _KernelCacheLocator


@functools.cache
def _register_kernel_locator() -> None:
    """Put ess's kernel cache locator first in Numba's list of locators (once).

    A user's ``NUMBA_CACHE_LOCATOR_CLASSES`` replaces that list, and then decides
    for ess's kernels too.
    """
    from numba.core import caching

    # Numba's base class of function caches, whose ``_locator_classes`` Numba asks
    # in turn (named ``_CacheImpl`` in older Numba).
    impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl
    locator = _kernel_locator_class()
    classes = impl._locator_classes
    classes[:] = [c for c in classes if c.__qualname__ != locator.__qualname__
                  or c.__module__ != __name__]
    classes.insert(0, locator)
