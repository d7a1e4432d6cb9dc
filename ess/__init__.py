"""ess: how much synthetic data can you safely mix into training?

Effective sample sizes and admissible thresholds of self-consuming Gaussian
loops ("Self-Consuming Generative Models Go MAD", Alemohammad et al., ICLR 2024).

The public functions (:func:`estimate`, :func:`threshold`, :func:`simulate`,
:func:`table`, :func:`threshold_grid`, :func:`reference_curve`) return frozen
result objects (:mod:`ess.results`); every default is in :mod:`ess.defaults`.

The names below are imported on first use (PEP 562), and so are the submodules
(``ess.config``, ...): ``import ess`` itself costs next to nothing, and a command
answered from the result store never imports the modules that compute.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: Where each public name lives.
_PUBLIC = {
    "estimate": "ess.api",
    "threshold": "ess.api",
    "simulate": "ess.api",
    "table": "ess.api",
    "threshold_grid": "ess.api",
    "reference_curve": "ess.api",
    "EstimateResult": "ess.results",
    "ThresholdResult": "ess.results",
    "SimulateResult": "ess.results",
    "SimulateGridResult": "ess.results",
    "TableResult": "ess.results",
    "ThresholdGridResult": "ess.results",
    "ReferenceCurveResult": "ess.results",
    "Interval": "ess.results",
    "ParameterError": "ess.params",
}

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

def __getattr__(name: str):
    """A public name (from the module that defines it) or a submodule, on first use."""
    module = _PUBLIC.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value
    if not name.startswith("_"):
        try:
            return importlib.import_module(f"ess.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"ess.{name}":
                raise
    raise AttributeError(f"module 'ess' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
