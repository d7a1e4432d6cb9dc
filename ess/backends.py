"""Where the cells of a grid run: joblib threads on this machine, or a Dask cluster.

A table or heatmap is a list of independent cells (one :func:`ess.estimate` or
:func:`ess.threshold` call each). :func:`map_cells` runs them

* ``"local"`` (the default): on this machine with joblib's threading backend.
  The Numba kernels release the GIL, so threads use every core without the
  start-up cost of worker processes. The ``n_jobs`` threads are split between
  cells running side by side and the chunk threads inside each cell
  (:func:`split_jobs`), so the machine is never oversubscribed;
* ``"dask"``: one task per cell on a Dask distributed cluster, given by its
  scheduler address or, in Python, a ``distributed.Client``.

A cell's numbers never depend on where it runs or on how many threads it
has: its chains are split into chunks whose count and seeds depend only on
the parameters and ``seed`` (:mod:`ess.chains`), and the reference curve is a
deterministic function of its key, computed (or read from the worker's own
on-disk cache) the same way everywhere. So every backend gives the same
numbers bit for bit, as long as the workers run the same versions of ``ess``,
NumPy and Numba.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ess.params import ParameterError, check_choice, check_jobs
from ess.progress import NULL_PROGRESS, Progress

T = TypeVar("T")

#: Backends accepted by ``backend=`` and ``--backend``.
BACKENDS = ("local", "dask")
#: Seconds allowed to reach a Dask scheduler before giving up with one clear line.
CONNECT_TIMEOUT = 10.0

_MISSING_DASK = "backend 'dask' needs the optional extra: pip install 'ess[distributed]'"


@dataclass(frozen=True)
class Backend:
    """A validated choice of where cells run.

    Build it with :func:`get_backend`, which checks every field.

    Attributes
    ----------
    name : {"local", "dask"}
        The backend.
    scheduler : str or distributed.Client or None
        Scheduler address or client (``"dask"`` only).
    n_jobs : int or None
        ``"local"``: threads in all (``None`` for every core). ``"dask"``:
        threads of each cell on its worker (``None`` for 1).
    """

    name: str
    scheduler: Any = None
    n_jobs: int | None = None


def _distributed():
    """Import ``distributed``, or explain in one line how to install it."""
    try:
        import distributed
    except ImportError:
        raise ParameterError("backend", _MISSING_DASK) from None
    return distributed


def get_backend(backend: str = "local", scheduler: Any = None,
                n_jobs: int | None = None) -> Backend:
    """Validate a backend choice before any cell is computed.

    Parameters
    ----------
    backend : {"local", "dask"}
        Joblib threads on this machine, or a Dask distributed cluster.
    scheduler : str or distributed.Client, optional
        With ``"dask"`` (required there, refused otherwise): the scheduler's
        address (``"tcp://host:8786"``) or a connected ``distributed.Client``.
    n_jobs : int, optional
        ``"local"``: threads in all, ``None`` or ``-1`` for every core.
        ``"dask"``: threads of each cell on its worker (default 1, since the
        workers' own threads spread the cells; ``-1`` for every core of the
        worker's machine).

    Returns
    -------
    Backend

    Raises
    ------
    ParameterError
        An unknown backend, a scheduler without ``"dask"`` (or ``"dask"``
        without a scheduler), a bad ``n_jobs``, or ``"dask"`` while Dask is not
        installed.
    """
    name = check_choice("backend", backend, BACKENDS)
    if name == "local":
        if scheduler is not None:
            raise ParameterError("scheduler",
                "scheduler applies to backend 'dask' only (--backend dask); "
                                 "the backend is 'local'")
        return Backend(name, None, check_jobs(n_jobs))
    distributed = _distributed()
    if scheduler is None:
        raise ParameterError("scheduler", "backend 'dask' needs a scheduler: its address "
                             "(--scheduler tcp://host:8786) or, in Python, a distributed.Client")
    if isinstance(scheduler, str):
        if not scheduler.strip():
            raise ParameterError("scheduler", "scheduler must be a Dask scheduler address such as "
                                 "tcp://host:8786; got ''")
        scheduler = scheduler.strip()
    elif not isinstance(scheduler, distributed.Client):
        raise ParameterError("scheduler",
            "scheduler must be a Dask scheduler address (a string such as "
                             "tcp://host:8786) or a distributed.Client; got "
                             f"{type(scheduler).__name__}")
    if n_jobs is not None:   # -1 stays -1: every core of the worker's machine
        n_jobs = -1 if str(n_jobs).strip() == "-1" else check_jobs(n_jobs)
    return Backend(name, scheduler, n_jobs)


def split_jobs(n_cells: int, n_jobs: int) -> tuple[int, int]:
    """Split ``n_jobs`` threads between cells side by side and threads inside a cell.

    As many cells as possible run at once, each on an equal share of the
    threads: many cells run one thread each, a single cell gets them all. The
    split never changes a cell's numbers (chunk seeds do not depend on threads).

    Returns
    -------
    (int, int)
        Cells run at once, and threads per cell; their product is at most
        ``n_jobs``.
    """
    workers = max(1, min(n_jobs, n_cells))
    return workers, max(1, n_jobs // workers)


def _indexed(fn: Callable[..., T], i: int, cell: dict) -> tuple[int, T]:
    return i, fn(**cell)


def _call(fn: Callable[..., T], cell: dict) -> T:
    """The task that runs one cell on a Dask worker."""
    return fn(**cell)


def _map_local(fn: Callable[..., T], cells: Sequence[dict], n_jobs: int,
               progress: Progress) -> list[T]:
    workers, threads = split_jobs(len(cells), n_jobs)
    tasks = [{**cell, "n_jobs": threads} for cell in cells]
    out: list = [None] * len(tasks)
    if workers == 1:
        for i, cell in enumerate(tasks):
            out[i] = fn(**cell)
            progress.update()
        return out
    import joblib  # lazily: `import ess` stays light

    par = joblib.Parallel(n_jobs=workers, backend="threading", batch_size=1,
                          return_as="generator_unordered")
    for i, res in par(joblib.delayed(_indexed)(fn, i, cell) for i, cell in enumerate(tasks)):
        out[i] = res
        progress.update()
    return out


def _probe(address: str, timeout: float) -> None:
    """Reach the scheduler at ``address`` within ``timeout`` seconds, or raise.

    ``distributed.Client`` bounds the TCP connection but can wait forever for a
    service that accepts it and never answers (a wrong port), and a half-built
    client prints a traceback when it is collected. This probe, on its own
    event loop in its own thread, connects and shakes hands under a hard
    deadline, so that a wrong address costs at most ``timeout`` and one line.
    """
    import asyncio

    distributed = _distributed()
    try:
        scheme, _ = distributed.comm.parse_address(address)
        distributed.comm.registry.get_backend(scheme)
        if scheme != "inproc":
            distributed.comm.get_address_host_port(address)
    except ValueError as e:
        raise ParameterError("scheduler", f"scheduler must be a Dask scheduler address such as "
                             f"tcp://host:8786; got {address!r} ({e})") from None
    if scheme != "tcp":   # in-process, or TLS/websockets: left to the client and its timeout
        return
    error: list[BaseException] = []

    async def handshake() -> None:
        comm = await asyncio.wait_for(distributed.comm.connect(address, timeout=timeout),
                                      timeout)
        comm.abort()

    def run() -> None:
        try:
            asyncio.run(handshake())
        except BaseException as e:   # reported below as one line
            error.append(e)

    t = threading.Thread(target=run, name="ess-scheduler-probe", daemon=True)
    t.start()
    t.join(timeout + 5.0)
    if t.is_alive() or error:
        e = error[0] if error else TimeoutError()
        why = (f"nothing answered within {timeout:g} s" if isinstance(e, TimeoutError)
               else str(e).splitlines()[0] if isinstance(e, OSError) and str(e)
               else "what answered is not a Dask scheduler")
        raise ParameterError("scheduler",
            f"scheduler: cannot reach a Dask scheduler at {address!r} "
                             f"({why})")


def _connect(scheduler: Any):
    """A client for ``scheduler`` and whether this function opened it."""
    distributed = _distributed()
    if not isinstance(scheduler, str):
        return scheduler, False
    _probe(scheduler, CONNECT_TIMEOUT)
    try:
        client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except Exception as e:   # one line, never a traceback
        raise ParameterError("scheduler", f"scheduler: cannot connect to {scheduler!r} "
                             f"({str(e).splitlines()[0] if str(e) else type(e).__name__})"
                             ) from None
    return client, True


def _map_dask(fn: Callable[..., T], cells: Sequence[dict], backend: Backend,
              progress: Progress) -> list[T]:
    distributed = _distributed()
    client, owned = _connect(backend.scheduler)
    threads = 1 if backend.n_jobs is None else backend.n_jobs
    tag = uuid.uuid4().hex[:12]
    futures = []
    try:
        futures = [client.submit(_call, fn, {**cell, "n_jobs": threads},
                                 key=f"ess-{fn.__name__}-{tag}-{i}", pure=False)
                   for i, cell in enumerate(cells)]
        index = {f.key: i for i, f in enumerate(futures)}
        out: list = [None] * len(futures)
        for fut in distributed.as_completed(futures, loop=client.loop):
            out[index[fut.key]] = fut.result()
            progress.update()
        return out
    finally:   # never mask the result or the original error
        with contextlib.suppress(Exception):
            client.cancel([f for f in futures if not f.done()])
        if owned:
            with contextlib.suppress(Exception):
                client.close()


def map_cells(fn: Callable[..., T], cells: Sequence[dict], backend: Backend | None = None,
              progress: Progress = NULL_PROGRESS) -> list[T]:
    """``[fn(**cell) for cell in cells]``, spread over threads or a Dask cluster.

    Every cell is called with an ``n_jobs`` keyword (threads for that cell)
    set by the backend; ``fn`` must give the same result whatever ``n_jobs``.
    Cells should be validated before: nothing here checks them.

    Parameters
    ----------
    fn : callable
        A module-level function (Dask workers import it by name).
    cells : sequence of dict
        Keyword arguments of each call.
    backend : Backend, optional
        From :func:`get_backend`; default local, every core.
    progress : Progress
        Advanced by one as each cell finishes.

    Returns
    -------
    list
        The results, in the order of ``cells``.
    """
    backend = get_backend() if backend is None else backend
    if not cells:
        return []
    if backend.name == "dask":
        return _map_dask(fn, cells, backend, progress)
    return _map_local(fn, cells, check_jobs(backend.n_jobs), progress)


__all__ = ["BACKENDS", "Backend", "get_backend", "map_cells", "split_jobs"]
