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

The children run with bytecode caching on (``PYTHONDONTWRITEBYTECODE`` removed from
their environment; the first, untimed call writes ``ess``'s ``.pyc`` files), as an
installed package has it: with it off, every new process compiles ``ess``'s sources
again, about 0.13 s that NumPy and Numba (compiled at install) do not pay.
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
    """Fastest wall time, and fewest CPU seconds, of each command over ``runs``
    interleaved new processes.

    The CPU time (user + system, of the child alone) is the steadier figure on a loaded
    machine, where a new process waits for a core for part of its wall time.
    """
    import resource

    import ess

    root = Path(__file__).resolve().parent.parent

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, ESS_CACHE_DIR=tmp, ESS_STORE=str(Path(tmp) / "store"),
                   NUMBA_CACHE_DIR=str(ess.config.kernel_cache_root()),
                   PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        # fill the store and the reference curve's cache, write the .pyc files (and
        # compile the kernels, if needed)
        for name in TARGETS:
            subprocess.run([sys.executable, *COMMANDS[name]], env=env, check=True,
                           capture_output=True)
        best = {name: float("inf") for name in COMMANDS}
        best_cpu = dict(best)
        for _ in range(runs):
            for name, argv in COMMANDS.items():
                t0, c0 = time.perf_counter(), cpu()
                subprocess.run([sys.executable, *argv], env=env, check=True,
                               capture_output=True)
                best[name] = min(best[name], time.perf_counter() - t0)
                best_cpu[name] = min(best_cpu[name], cpu() - c0)
    out = {"runs": runs, "seconds": best, "cpu_seconds": best_cpu, "gaps": {}}
    for name, (floor, target) in TARGETS.items():
        gap = best[name] - best[floor]
        cpu_gap = best_cpu[name] - best_cpu[floor]
        out["gaps"][name] = {"beside": floor, "gap": gap, "cpu_gap": cpu_gap, "target": target}
        log(f"{name}: {best[name]:.3f} s, {gap:+.3f} s beside {floor} ({best[floor]:.3f} s); "
            f"CPU {best_cpu[name]:.3f} s, {cpu_gap:+.3f} s beside {best_cpu[floor]:.3f} s; "
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
