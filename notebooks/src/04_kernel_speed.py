# %% [markdown]
# # 4. How fast, and against what
#
# The benchmark suite (`make bench`, or `ess bench` from a source checkout) measures `ess`
# side by side with two NumPy baselines written for it: (a) the paper-style per-sample loop
# and (b) the fastest vectorised NumPy on sufficient statistics. It saves every number in
# `benchmarks/results/bench.json`; this notebook reads that file (it does not re-measure) and
# draws the ratios. `benchmarks/results/bench.md` explains each measurement.

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

sns.set_theme(style="whitegrid", context="notebook")
bench = json.loads((Path("..") / "benchmarks" / "results" / "bench.json").read_text())
m = bench["machine"]
print(f"{bench['command']} on {bench['date'][:10]}: {m['cores']} cores, Python {m['python']}, "
      f"NumPy {m['numpy']}, Numba {m['numba']}, ess {m['ess']} at {m['revision']}")
agree = pd.DataFrame(bench["agreement"])
print(f"baselines agree with ess: {int(agree.passed.sum())} of {len(agree)} "
      f"(largest |z| = {agree.z.abs().max():.2f})")

# %% [markdown]
# ## Kernel throughput: generation-steps per second

# %%
rates = pd.DataFrame(bench["rates"])
rates = rates[(rates.n_s == 200)]
cores = m["cores"]


def label(r):
    if r.impl == "ess":
        return f"ess, {r.jobs} thread{'s' if r.jobs > 1 else ''}"
    return {"persample": "(a) per-sample, 1 core", "vectorised": "(b) vectorised, 1 core",
            "vectorised-blas": "(b) vectorised, BLAS threads"}[r.impl]


rates["implementation"] = rates.apply(label, axis=1)
main = rates[rates.d.isin([1, 2, 10, 50])].drop_duplicates(["implementation", "d"])
table = main.pivot(index="d", columns="implementation", values="rate")
print(table.map(lambda v: f"{v:.3g}").to_string())
vec = table["(b) vectorised, 1 core"]
print("\ness on every core / vectorised NumPy on one core:\n",
      (table[f"ess, {cores} threads"] / vec).round(2).to_string())
fig, ax = plt.subplots(figsize=(9, 4))
sns.barplot(data=main, x="d", y="rate", hue="implementation", ax=ax, palette="colorblind")
ax.set(yscale="log", ylabel="generation-steps per second", title="throughput, n_r = 100, "
       "n_s = 200, lam = 0.9 (higher is better)")
fig.tight_layout()

# %% [markdown]
# ## Time to an `n_e` with a 1% relative 95% half-width

# %%
ttn = pd.DataFrame(bench["time_to_ne"])
ttn["setting"] = [f"({d}, {a}, {b}, {c})"
                  for d, a, b, c in zip(ttn.d, ttn.n_r, ttn.n_s, ttn.lam, strict=True)]
show = ttn[["setting", "ess_seconds", "vectorised_seconds", "persample_seconds",
            "chains", "generations", "baseline_chains", "burn_in"]].copy()
show["vs (b)"] = show.vectorised_seconds / show.ess_seconds
show["vs (a)"] = show.persample_seconds / show.ess_seconds
print(show.round(4).to_string(index=False))
long = ttn.melt(id_vars="setting", value_vars=["ess_seconds", "vectorised_seconds",
                                                "persample_seconds"],
                var_name="implementation", value_name="seconds")
fig, ax = plt.subplots(figsize=(9, 4))
sns.barplot(data=long, x="setting", y="seconds", hue="implementation", ax=ax,
            palette="colorblind")
ax.set(yscale="log", xlabel="(d, n_r, n_s, lam)", title="time to a 1% n_e (baselines "
       "extrapolated; lower is better)")
fig.tight_layout()

# %% [markdown]
# **Reading it.** `ess` wins where its statistics save generation-steps: averaging each chain
# over its kept window with exact control variates needs far fewer steps than averaging the
# last generation of independent chains, so at `d = 1` it reaches 1% twenty to thirty times
# sooner than vectorised NumPy, at `d = 10` forty to fifty times (and three to four orders of
# magnitude sooner than the per-sample loop). Per step its kernels are 1.1-2x vectorised NumPy
# up to `d = 50` on one core and scale with the cores; at `d = 100` NumPy's batched LAPACK is
# a little faster per step, and at the paper's `d = 100` so few last-generation chains
# suffice for 1% that a plain vectorised script is quicker for a single answer.
