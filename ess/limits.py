"""What one ``ess serve`` server accepts (kept apart from :mod:`ess.service` so that
the command line can show the defaults without importing the web framework)."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from ess import config, defaults
from ess.params import ParameterError, check_float, check_int


@dataclass(frozen=True)
class Limits:
    """What one server accepts; over a limit, a request gets ``422`` naming it.

    Attributes
    ----------
    max_d : int
        Largest dimension ``d``.
    max_grid : int
        Largest number of cells of a table.
    max_chains : int
        Largest ``max_chains`` (chain budget) of one request.
    max_work : float
        Largest work, in the units of :data:`ess.config.MAX_WORK`, that one
        Monte Carlo run of a request may need at its chain budget (an estimate,
        a table cell, or one threshold evaluation at the cap).
    max_request_work : float
        Largest work of one request, bounded from its plan before anything runs:
        an estimate's :attr:`max_work` figure; a threshold search's most
        evaluations times the figure of one at its cap; a table's or threshold
        grid's sum over the cells it has to compute (those not in the store); a
        simulation's sum over its loops.
    max_rows : int
        Largest number of per-generation rows of one simulation (``generations``
        times the number of loops): its answer's size, and the time the rows and
        their ``n_e(t)`` take beside the trajectories.
    workers : int
        Computations run side by side (threads of one process); each starts with
        the cores shared among those running at that moment.
    max_queue : int
        Computations waiting for a worker; beyond, ``429``.
    max_per_client : int
        Computations one client (a token's name, or an address when the
        server has no tokens) may hold running or queued; beyond, ``429``
        for that client while the others are still served.
    sync_cells : int
        Tables with at most this many cells to compute are answered at once;
        longer ones run as jobs.
    job_history : int
        Finished jobs kept for ``GET /v1/jobs/{id}``.
    job_ttl : float
        Seconds a finished job is kept (its table, for ``GET /v1/jobs/{id}``);
        its cells stay in the store.
    max_body_kb : int
        Largest request body in KiB; beyond, ``413``.
    queue_deadline : float
        Seconds a request may wait for a worker; beyond, it leaves the queue and
        gets ``503`` with ``Retry-After`` (jobs, which nobody waits for, excepted).
    """

    max_d: int = 100
    max_grid: int = 500
    max_chains: int = config.DEFAULT_MAX_CHAINS
    max_work: float = config.MAX_WORK
    #: 50 computations at their largest (about 6 minutes of one core at d = 100, the
    #: bound; real requests use a small part of it): the default threshold heatmap at
    #: d = 1 (25 searches, 3.4e10 at its chain budget) fits from a cold store, and one
    #: search's evaluations each get 8e8 of it (:meth:`ess.service.state.Service.shared`).
    max_request_work: float = 50 * config.MAX_WORK
    max_rows: int = 5_000
    workers: int = 2
    max_queue: int = 32
    max_per_client: int = 8
    sync_cells: int = 4
    job_history: int = 1000
    job_ttl: float = 3600.0
    max_body_kb: int = 256
    queue_deadline: float = defaults.QUEUE_DEADLINE

    #: Allowed range of each limit, for :meth:`checked`.
    RANGES = {"max_d": (1, config.MAX_D), "max_grid": (1, config.MAX_GRID),
              "max_chains": (1, config.MAX_CHAINS), "max_work": (1.0, config.MAX_WORK),
              "max_request_work": (1.0, config.MAX_WORK * config.MAX_GRID),
              "max_rows": (1, config.MAX_GENERATIONS),
              "workers": (1, 64), "max_queue": (0, 10_000),
              "max_per_client": (1, 10_000), "sync_cells": (0, config.MAX_GRID),
              "job_history": (1, 100_000), "job_ttl": (1.0, 1e7),
              "max_body_kb": (1, 100_000), "queue_deadline": (0.1, 1e6)}

    def checked(self) -> Limits:
        """These limits with every value checked against its allowed range and
        converted (so text from the command line is accepted).

        Raises
        ------
        ParameterError
            Naming the first limit outside its range.
        """
        values = {}
        for f in fields(self):
            lo, hi = self.RANGES[f.name]
            check = check_float if isinstance(lo, float) else check_int
            values[f.name] = check(f.name, getattr(self, f.name), lo, hi)
        if values["sync_cells"] > values["max_grid"]:
            raise ParameterError("sync_cells", f"sync_cells must be an integer in [0, max_grid = "
                                 f"{values['max_grid']}], got {values['sync_cells']}")
        return replace(self, **values)
