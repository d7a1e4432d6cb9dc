"""Wall time of ``ess estimate`` to the default precision, in a new process.

Three settings of issue 2: (d, n_r, n_s, lam) = (1, 100, 200, 0.9), (10, 100, 200, 0.9)
and the paper's (100, 100, 900, 0.8). For each: the first-ever call (empty caches:
Numba compiles, the reference curve is computed) and then the median of repeated
cold starts (new process, compiled code and reference curve cached).

In the same run, the kernel's throughput (generation-steps per second) is measured
side by side with the two NumPy baselines of :mod:`benchmarks.baselines`.

Run ``python -m benchmarks.bench_estimate`` from the repository root; it writes
``benchmarks/results/estimate_speed.md``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.throughput import generation_steps_per_second

SETTINGS = [(1, 100, 200, 0.9), (10, 100, 200, 0.9), (100, 100, 900, 0.8)]
TARGETS = {1: 1.0, 10: 5.0, 100: 60.0}
OUT = Path(__file__).parent / "results" / "estimate_speed.md"


def run_once(setting: tuple[int, int, int, float], env: dict) -> tuple[float, dict]:
    """Wall time of one ``ess estimate --json`` process and its JSON answer."""
    d, n_r, n_s, lam = setting
    cmd = [sys.executable, "-m", "ess", "estimate", "--d", str(d), "--n-r", str(n_r),
           "--n-s", str(n_s), "--lam", str(lam), "--json"]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    return time.perf_counter() - t0, json.loads(out.stdout)


def main(repeats: int = 5) -> int:
    """Measure every setting and write the Markdown table."""
    rows = []
    for s in SETTINGS:
        # a fresh, empty cache per setting: the first call compiles and builds the curve
        env = dict(os.environ, ESS_CACHE_DIR=tempfile.mkdtemp(prefix="ess-bench-"))
        env.pop("NUMBA_CACHE_DIR", None)
        first, _ = run_once(s, env)
        times, answer = [], {}
        for _ in range(repeats):
            t, answer = run_once(s, env)
            times.append(t)
        med = statistics.median(times)
        rows.append((s, first, med, min(times), answer))
        print(f"d={s[0]:>3} n_r={s[1]} n_s={s[2]} lam={s[3]}: first call {first:.1f} s, "
              f"cached {med:.2f} s (target {TARGETS[s[0]]:g} s), n_e = {answer['n_e']:.2f}, "
              f"±{100 * answer['n_e_rel_halfwidth']:.2f}%, {answer['chains']} chains")
    lines = [
        "# `ess estimate` wall time to the default precision (rel_precision = 0.01)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}. Command: `python -m benchmarks.bench_estimate`.",
        "Each time is a whole new process (`python -m ess estimate ... --json`), so it",
        f"includes Python, NumPy and Numba start-up; 'cached' is the median of {repeats} runs",
        "after the first call has filled the compiled-code and reference-curve caches.",
        "",
        "| d | n_r | n_s | lam | first call (empty caches) s | cached s | target s | n_e | "
        "95% half-width | chains x generations |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s, first, med, _, a in rows:
        lines.append(f"| {s[0]} | {s[1]} | {s[2]} | {s[3]} | {first:.1f} | {med:.2f} | "
                     f"{TARGETS[s[0]]:g} | {a['n_e']:.2f} | {100 * a['n_e_rel_halfwidth']:.2f}% "
                     f"| {a['chains']} x {a['generations']} |")
    lines += [
        "",
        "## Throughput, side by side in the same run",
        "",
        "Generation-steps per second (one generation of one chain) at n_r = 100, n_s = 200,",
        "lam = 0.9: the per-sample NumPy loop, the batched vectorised NumPy baseline (one",
        "core), and the `ess` kernel on 1 thread and on every core. Ratios are `ess` (all",
        "cores) over each baseline.",
        "",
        "| d | per-sample | vectorised NumPy | ess, 1 thread | ess, all cores | "
        "vs per-sample | vs vectorised |",
        "|---|---|---|---|---|---|---|",
    ]
    for d in (1, 10):
        ps = generation_steps_per_second("persample", d, seconds=1.5)
        vec = generation_steps_per_second("vectorised", d, seconds=1.5)
        e1 = generation_steps_per_second("ess", d, seconds=1.5, n_jobs=1)
        ea = generation_steps_per_second("ess", d, seconds=1.5, n_jobs=os.cpu_count() or 1)
        print(f"d={d}: per-sample {ps:.3g}, vectorised {vec:.3g}, ess 1 thread {e1:.3g}, "
              f"ess all cores {ea:.3g} generation-steps/s")
        lines.append(f"| {d} | {ps:.3g} | {vec:.3g} | {e1:.3g} | {ea:.3g} | {ea / ps:.0f}x | "
                     f"{ea / vec:.2f}x |")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")
    return 0 if all(med <= TARGETS[s[0]] for s, _, med, _, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
