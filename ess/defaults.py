"""Every default of a user-facing parameter, in one place.

The Python API, the command line (whose ``--help`` prints these values), the
service's request schemas and the notebooks all read them from here, so that
``ess estimate`` and ``ess.estimate()`` can never disagree about what an omitted
parameter means. Limits (largest values accepted) live in :mod:`ess.config`.
"""

from __future__ import annotations

from ess import config

#: Dimension: 1, so that a first try is instant (contract section 5).
D = 1
#: Real samples per generation.
N_R = 100
#: Synthetic samples per generation, for ``estimate`` and ``simulate`` alike.
#: ``n_s = 0`` is the reference fit itself (``n_e = n_r`` exactly), so a first
#: try shows the effect of synthetic data instead.
N_S = 100
#: Sampling bias of ``estimate``, ``simulate`` and ``table``: unbiased.
LAM = 1.0
#: Sampling bias of ``threshold``: below 1, where a threshold exists (at
#: ``lam = 1`` the answer is typically "none up to the cap").
THRESHOLD_LAM = 0.9
#: Loop kind of ``estimate`` and ``simulate``.
LOOP = "fresh"
#: Past models feeding the synthetic data (the paper's main setting).
MEMORY = 1
#: Distance to ``P_r``: the squared 2-Wasserstein (Fréchet) distance.
METRIC = "w2sq"
#: Covariance divisor ``n - 1`` (the paper's Eq. 1).
COV_ESTIMATOR = "unbiased"
#: Seed: the same seed gives the same numbers on any number of jobs.
SEED = 0
#: Wanted relative 95% half-width on ``n_e``.
REL_PRECISION = 0.01
#: Chain budget of one computation.
MAX_CHAINS = config.DEFAULT_MAX_CHAINS
#: Work budget of one computation (``max_work``; ``--max-work``): it admits every cell
#: of the paper's Fig. 11 grid and every threshold of its Fig. 12 with the full cap.
MAX_WORK = config.MAX_WORK
#: Threshold cap, as a multiple of ``n_r`` (contract section 3: ``100 n_r``).
CAP_PER_N_R = 100

#: ``ess serve --queue-deadline``: seconds a request may wait for a worker before it gets
#: ``503`` with ``Retry-After``. A minute: clients of a synchronous answer commonly give
#: up after 30 to 120 s, so a request queued longer is likely no longer wanted, and
#: keeping it would only delay those behind it; ``Retry-After`` tells it when to return.
QUEUE_DEADLINE = 60.0

#: ``simulate``: chains and generations.
CHAINS = 200
GENERATIONS = 50

#: ``table``: the grid's axes.
TABLE_N_R = (50, 100, 200)
TABLE_N_S = (0, 50, 100, 200, 400)
TABLE_LAM = (1.0, 0.9, 0.7)

#: ``threshold_grid`` and ``ess heatmap --kind threshold``: the grid's axes.
HEATMAP_N_R = (25, 50, 100, 200, 400)
HEATMAP_LAM = (0.5, 0.6, 0.7, 0.8, 0.9)

#: ``ess heatmap --kind ne`` (the paper's Fig. 11 at small ``d``): one panel per ``lam``.
NE_HEATMAP_N_R = (100, 200, 400, 800)
NE_HEATMAP_N_S = (25, 50, 100, 200, 400, 800, 1600, 3200)
NE_HEATMAP_LAM = (0.7, 0.85, 1.0)

#: ``ess.reference_curve``: the sample sizes at which the curve is reported.
REFERENCE_N = tuple(2**k for k in range(1, 11))

#: ``ess serve --header-timeout``: seconds a client has to send a request's headers (from
#: the connection's opening, or from the first byte after a previous answer), and the
#: longest pause while it sends a body. Headers are a few hundred bytes, which a working
#: client sends in milliseconds; 10 s still covers three retransmissions of a lost packet
#: (TCP waits 1, then 2, then 4 s), while an idle or byte-at-a-time ("slowloris") socket
#: holds its connection 10 s instead of for ever. (Between requests, uvicorn closes a
#: kept-alive connection after 5 s of silence.)
HEADER_TIMEOUT = 10.0
#: ``ess serve --max-connections``: file descriptors kept below the process's limit
#: (``ulimit -n``) for everything but client connections. An idle server holds 8 (standard
#: streams, the listening socket, the event loop's selector and wake-up pipe); a store
#: write, a reference-curve file or a figure's fonts open a few more for a moment; 64
#: leaves room for all of them at once, and for the new connection that closes an idle one.
FD_HEADROOM = 64
#: ``ess serve --max-connections``, when the descriptor limit allows it (else that limit
#: less ``FD_HEADROOM``): a lab's clients need a few connections each, and 1000 open
#: sockets cost the server 4.7 MB (measured: 4.8 KiB each, idle or with partial headers).
MAX_CONNECTIONS = 1024
