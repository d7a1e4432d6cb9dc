"""ess: how much synthetic data can you safely mix into training?

Effective sample sizes and admissible thresholds of self-consuming Gaussian
loops ("Self-Consuming Generative Models Go MAD", Alemohammad et al., ICLR 2024).

The public functions (:func:`estimate`, :func:`threshold`, :func:`simulate`,
:func:`table`, :func:`threshold_grid`, :func:`reference_curve`) return frozen
result objects (:mod:`ess.results`); every default is in :mod:`ess.defaults`.
"""

__version__ = "0.1.0"

from ess.api import (  # noqa: E402
    estimate,
    reference_curve,
    simulate,
    table,
    threshold,
    threshold_grid,
)
from ess.params import ParameterError  # noqa: E402
from ess.results import (  # noqa: E402
    EstimateResult,
    Interval,
    ReferenceCurveResult,
    SimulateGridResult,
    SimulateResult,
    TableResult,
    ThresholdGridResult,
    ThresholdResult,
)

__all__ = [
    "__version__",
    "estimate",
    "threshold",
    "simulate",
    "table",
    "threshold_grid",
    "reference_curve",
    "EstimateResult",
    "ThresholdResult",
    "SimulateResult",
    "SimulateGridResult",
    "TableResult",
    "ThresholdGridResult",
    "ReferenceCurveResult",
    "Interval",
    "ParameterError",
]
