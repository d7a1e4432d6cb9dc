"""Start-up: an answer from the result store imports neither Numba nor a kernel; a
computed answer loads only the kernels it runs. Each check runs in a new process."""

import json
import os
import subprocess
import sys

import numpy as np

import ess

#: Runs the command line in a new process, then prints the modules it imported and
#: the ess kernels it loaded (compiled or read from Numba's cache).
PROBE = """
import json, sys
from ess.cli import main
status = main({argv!r})
loaded = []
for name in ("random", "sampling", "distance", "lapack", "loops"):
    module = sys.modules.get("ess.kernels." + name)
    for attr, f in sorted(vars(module).items()) if module else ():
        if getattr(f, "signatures", None) and getattr(f, "__module__", "") == module.__name__:
            loaded.append(name + "." + attr)
print(json.dumps({{"status": status, "modules": sorted(sys.modules), "loaded": loaded}}))
"""

ESTIMATE = ["estimate", "--n-r", "100", "--n-s", "200", "--lam", "0.9", "--quiet", "--json"]


def _run(argv, tmp_path):
    env = dict(os.environ, ESS_CACHE_DIR=str(tmp_path / "cache"),
               ESS_STORE=str(tmp_path / "store"),
               NUMBA_CACHE_DIR=str(ess.config.kernel_cache_root()))   # compiled kernels
    out = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], env=env,
                         capture_output=True, text=True, timeout=600, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_store_hit_imports_no_numba_and_no_kernel(tmp_path):
    first = _run(ESTIMATE, tmp_path)
    assert first["status"] == 0 and "numba" in first["modules"]
    hit = _run(ESTIMATE, tmp_path)
    assert hit["status"] == 0
    assert "numba" not in hit["modules"] and "llvmlite" not in hit["modules"]
    assert not [m for m in hit["modules"] if m.startswith("ess.kernels.")
                and m != "ess.kernels.layout"]
    assert "scipy" not in hit["modules"] and "pandas" not in hit["modules"]


def test_computed_answer_loads_only_the_kernels_it_runs(tmp_path):
    _run(ESTIMATE, tmp_path)                     # computes and caches the reference curve
    run = _run(ESTIMATE + ["--no-store"], tmp_path)
    assert run["status"] == 0
    # the limit's chunk kernel, and nothing for the (cached) reference curve or simulate
    assert run["loaded"] == ["loops._limit_chunk"]


def test_t_quantiles_without_scipy_special_are_scipys():
    """``t975`` (no SciPy import: it cost 0.15-0.35 s of start-up) against SciPy's t
    quantile, for every ``dof`` up to 2000 (both of its methods and the switch) and
    large ones, to 1e-13 relative."""
    from scipy import stats

    from ess.stats import T_SERIES_DOF, t975

    dofs = np.array([*range(1, 2001), 10**4, 10**5, 10**6, 10**7, 2**24])
    assert T_SERIES_DOF < 2000
    got = np.array([t975(int(v)) for v in dofs])
    np.testing.assert_allclose(got, stats.t.ppf(0.975, dofs), rtol=1e-13, atol=0)
