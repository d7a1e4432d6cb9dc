"""Holding BLAS to one thread while results are computed with it.

NumPy and the large-``d`` kernels (:mod:`ess.kernels.lapack`) call BLAS libraries
that may split a call over threads of their own; how a call is split can change
the order of its sums, so the bits of its result. ess's numbers must not depend
on any thread count, so the calls whose results it keeps run on one BLAS thread
(and the chain threads, not BLAS, use the cores).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

#: Computations in this process holding BLAS to one thread, and the limiter that
#: restores the libraries' thread counts when the last one ends.
_HOLD: dict = {"users": 0, "limiter": None}
_LOCK = threading.Lock()


@contextlib.contextmanager
def single_thread(active: bool = True) -> Iterator[None]:
    """Hold every BLAS library loaded in the process to one thread (when ``active``).

    Nested and concurrent holds share one: the first sets it (through
    ``threadpoolctl``), the last restores the libraries' own thread counts. Other
    code of the process running meanwhile gets one BLAS thread too.
    """
    if not active:
        yield
        return
    with _LOCK:
        if _HOLD["users"] == 0:
            from threadpoolctl import threadpool_limits

            _HOLD["limiter"] = threadpool_limits(limits=1, user_api="blas")
        _HOLD["users"] += 1
    try:
        yield
    finally:
        with _LOCK:
            _HOLD["users"] -= 1
            if _HOLD["users"] == 0:
                _HOLD["limiter"].restore_original_limits()
                _HOLD["limiter"] = None
