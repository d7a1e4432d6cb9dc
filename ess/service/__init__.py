"""The estimator as a service: ``ess serve``, an HTTP JSON API (FastAPI on uvicorn).

One process answers every request. Answers come from the result store
(:mod:`ess.store`) when it has them; otherwise they are computed by a fixed
number of worker threads (``workers``), since the Numba kernels release the GIL
while they run, so the event loop, and ``/v1/health``, stay responsive. Requests
beyond the workers wait in a bounded queue; when it is full the answer is
``429`` with ``Retry-After``. Identical computations asked for at the same time
run once. Tables too long to answer at once run as jobs (``202`` and a job id).

Every request field is checked twice: by its JSON schema (types and the
package's ranges, published at ``/openapi.json`` and ``/docs``) and by the same
validation as the Python API. Either failure, and a request over one of the
server's :class:`~ess.limits.Limits`, gets ``422`` locating the field
(``loc: ["body", field]``) with a message naming it, or the limit; never ``500``.

Modules, each using only those listed before it: :mod:`~ess.service.jobs` (table
jobs), :mod:`~ess.service.scheduler` (the computing threads),
:mod:`~ess.service.schemas` (request and response models),
:mod:`~ess.service.state` (the :class:`Service`: one server's state and checks),
:mod:`~ess.service.app` (routers and :func:`create_app`),
:mod:`~ess.service.connections` (read timeouts and the connection cap, in uvicorn's
protocol layer) and :mod:`~ess.service.server` (:func:`serve`, the process).
"""

from ess.service.app import create_app
from ess.service.server import serve
from ess.service.state import REFERENCE_N, Service

__all__ = ["REFERENCE_N", "Service", "create_app", "serve"]
