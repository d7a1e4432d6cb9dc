"""Start-up: an answer from the result store imports neither Numba nor a kernel; a
computed answer loads only the kernels it runs. Each check runs in a new process."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

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
    # the d = 1 limit chunk kernel, and nothing for the (cached) reference curve or simulate
    assert run["loaded"] == ["loops._limit_chunk_d1"]


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


def test_import_ess_alone_imports_nothing_else():
    """``import ess`` loads no other module of the package (nor NumPy): its public
    names and submodules are imported on first use, and each resolves."""
    code = ("import sys, ess; print(sorted(m for m in sys.modules if m.startswith('ess')), "
            "'numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout.strip()
    assert out == "['ess'] False"
    for name in ess.__all__:
        assert getattr(ess, name) is not None and name in dir(ess)
    assert ess.estimate is ess.api.estimate and ess.Interval is ess.results.Interval
    assert ess.config.MAX_D == 2048
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        ess.no_such_name   # noqa: B018


def test_the_d1_limit_kernel_is_the_general_one():
    """:func:`_limit_chunk_d1` (what a ``d = 1`` limit loads) returns the numbers of
    :func:`_limit_chunk` bit for bit, cold and warm started, at two configs."""
    from ess.chains import chunk_rngs
    from ess.kernels.loops import LOOP_FRESH, _limit_chunk, _limit_chunk_d1
    from ess.kernels.warm import WARM_FIELDS
    from ess.plan import warm_start
    from ess.request import estimate_request

    ns = np.array([200, 50], dtype=np.int64)
    cold = np.empty((0, WARM_FIELDS))
    warm = np.array(warm_start(estimate_request(n_r=100, n_s=200, lam=0.9).params, (200, 50)))
    assert warm.shape == (2, WARM_FIELDS)
    for start in (cold, warm):
        got = []
        for kernel in (_limit_chunk, _limit_chunk_d1):
            real, syn, mix = chunk_rngs(7, 0, 3)
            got.append(kernel(real, syn, mix, 5, LOOP_FRESH, 100, 100, ns, 0.9, 1, False, 0,
                              np.zeros(1), np.ones((1, 1)), True, 4, 8, 1, start))
        assert got[0].shape == (5, 2, got[0].shape[2], 2)
        np.testing.assert_array_equal(got[0], got[1])
