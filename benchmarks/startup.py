"""Workload: the start-up of a new ``ess`` process (issue 13, item 5).

``python -m benchmarks.startup [--runs 10] [--out FILE]`` times, in one run and
interleaved so that the machine's load falls on all alike, the fastest of ``--runs``
new processes of:

* ``python -c "import numpy"`` and ``python -c "import numba"``, the floors;
* ``python -m ess estimate --n-r 100 --n-s 200 --lam 0.9 --json`` answered from the
  result store (a store hit: must import neither Numba nor a kernel);
* the same ``d = 1`` estimate computed (``--no-store``; compiled kernels and the
  reference curve cached, as after a first call).

Targets: a store hit within 0.1 s of ``import numpy``; a computed ``d = 1`` estimate
within 0.3 s of ``import numba``. ``--runs 2`` is a tiny run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ESTIMATE = ["-m", "ess", "estimate", "--n-r", "100", "--n-s", "200", "--lam", "0.9", "--json",
            "--quiet"]
COMMANDS = {
    "import numpy": ["-c", "import numpy"],
    "import numba": ["-c", "import numba"],
    "store hit": ESTIMATE,
    "computed d = 1": [*ESTIMATE, "--no-store"],
}
#: What each ``ess`` command is compared with, and the target gap in seconds.
TARGETS = {"store hit": ("import numpy", 0.1), "computed d = 1": ("import numba", 0.3)}


def run(runs: int = 10, log=print) -> dict:
    """Fastest wall time of each command over ``runs`` interleaved new processes."""
    import ess

    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, ESS_CACHE_DIR=tmp, ESS_STORE=str(Path(tmp) / "store"),
                   NUMBA_CACHE_DIR=str(ess.config.kernel_cache_root()),
                   PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
        # fill the store and the reference curve's cache (and compile, if needed)
        subprocess.run([sys.executable, *ESTIMATE], env=env, check=True, capture_output=True)
        best = {name: float("inf") for name in COMMANDS}
        for _ in range(runs):
            for name, argv in COMMANDS.items():
                t0 = time.perf_counter()
                subprocess.run([sys.executable, *argv], env=env, check=True,
                               capture_output=True)
                best[name] = min(best[name], time.perf_counter() - t0)
    out = {"runs": runs, "seconds": best, "gaps": {}}
    for name, (floor, target) in TARGETS.items():
        gap = best[name] - best[floor]
        out["gaps"][name] = {"beside": floor, "gap": gap, "target": target}
        log(f"{name}: {best[name]:.3f} s, {gap:+.3f} s beside {floor} ({best[floor]:.3f} s); "
            f"target +{target} s")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10, help="processes per command (fastest kept)")
    ap.add_argument("--out", default=None, help="JSON file for the times")
    args = ap.parse_args(argv)
    res = run(args.runs)
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
