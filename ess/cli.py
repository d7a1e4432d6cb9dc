"""Command line: ``ess estimate | threshold | table | heatmap | simulate | bench | serve |
store``.

A thin layer: parse strings, call :mod:`ess.api`, print. Every value is
validated by :mod:`ess.params`, so a bad value gets one line naming the
parameter and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ess import __version__, config, defaults
from ess.params import ParameterError, check_choice, lam_from_guidance, parse_list

DEFAULT_DIR = Path("ess-results")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit status 2
        self.exit(2, f"ess: error: {message} (see 'ess {self.prog.split(maxsplit=1)[-1]} "
                  "--help')\n"
                  if " " in self.prog else f"ess: error: {message} (see 'ess --help')\n")


def _seq(values) -> str:
    """A default list as it is typed on the command line: ``0,50,100``."""
    return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def _model_flags(sp: argparse.ArgumentParser, n_r, n_s=None, lam=None, loop: bool = True,
                 collapsing: bool = False, lists: bool = False) -> None:
    """The loop's parameters; ``n_r``, ``n_s`` and ``lam`` are this command's defaults
    (``n_s = None``: the command has no ``--n-s``), shown by ``--help``."""
    many = " (comma-separated list)" if lists else ""
    sp.add_argument("--d", default=None,
                    help=f"dimension (default: the size of --sigma-r or --mu-r when given, "
                         f"else {defaults.D})")
    sp.add_argument("--n-r", default=None,
                    help=f"real samples per generation{many} (default {n_r})")
    if n_s is not None:
        sp.add_argument("--n-s", default=None,
                        help=f"synthetic samples per generation{many} (default {n_s})")
    g = sp.add_mutually_exclusive_group()
    g.add_argument("--lam", default=None,
                   help=f"sampling bias in [0, 1], 1 = unbiased{many} (default {lam})")
    g.add_argument("--guidance", default=None,
                   help=f"classifier-free guidance w >= 0, instead of --lam: lam = 1/(1+w){many}")
    sp.add_argument("--n-ini", default=None, help="size of the first real set (default n_r)")
    if loop:
        kinds = ("fresh | augmentation | fully-synthetic (alias replace) | accumulate | "
                 "accumulate-subsample; a comma-separated list draws them side by side"
                 if collapsing else
                 "fresh | augmentation (fully-synthetic, alias replace, and the accumulate "
                 "loops have no limit: use simulate)")
        sp.add_argument("--loop", default=defaults.LOOP,
                        help=f"{kinds} (default {defaults.LOOP})")
    sp.add_argument("--memory", default=str(defaults.MEMORY),
                    help=f"past models feeding synthetic data: K or all "
                         f"(default {defaults.MEMORY})")
    sp.add_argument("--metric", default=defaults.METRIC,
                    help=f"w2sq | w2 (default {defaults.METRIC})")
    sp.add_argument("--cov-estimator", default=defaults.COV_ESTIMATOR,
                    help=f"unbiased | mle (default {defaults.COV_ESTIMATOR})")
    sp.add_argument("--sigma-r", default=None,
                    help="reference covariance: comma-separated diagonal, or a .npy/.txt/.csv "
                         "file holding the matrix (default the identity)")
    sp.add_argument("--mu-r", default=None,
                    help="reference mean: comma-separated values (default 0)")
    sp.add_argument("--reference-data", default=None, metavar="FILE",
                    help="a .npy file of n x d real features (say Inception features, "
                         "n > d): mu_r and sigma_r are their mean and covariance, d their "
                         "columns (instead of --mu-r/--sigma-r; default none)")
    sp.add_argument("--seed", default=str(defaults.SEED), help=f"seed (default {defaults.SEED})")
    sp.add_argument("--jobs", default=None, help="threads (default: every core)")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")


def _budget_flags(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--rel-precision", default=str(defaults.REL_PRECISION),
                    help=f"relative 95%% half-width wanted on n_e "
                         f"(default {defaults.REL_PRECISION:g})")
    sp.add_argument("--max-chains", default=str(defaults.MAX_CHAINS),
                    help=f"chain budget (default {defaults.MAX_CHAINS}, "
                         f"at most {config.MAX_CHAINS})")
    sp.add_argument("--max-work", default=None,
                    help=f"work budget of one computation (default {defaults.MAX_WORK:g}, a "
                         f"few seconds on two cores at d = 100; from {config.MIN_WORK:g} to "
                         f"{config.MAX_WORK_LIMIT:g}): raise it for larger n_s or caps, the "
                         "refusals and notes say how far")


def _cap_flag(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--cap", default=None,
                    help=f"largest n_s searched (default {defaults.CAP_PER_N_R} n_r, lowered "
                         f"where the work budget --max-work requires it: the output says so)")


def _store_flags(sp: argparse.ArgumentParser) -> None:
    g = sp.add_mutually_exclusive_group()
    g.add_argument("--store", default=None,
                   help="result store folder (default $ESS_STORE, else results/ in the cache "
                        "folder): answers found there are not recomputed")
    g.add_argument("--no-store", action="store_true",
                   help="neither read nor write the result store")


def _backend_flags(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--backend", default="local",
                    help="where the cells run: local (threads on this machine, default) | dask "
                         "(a Dask cluster; pip install 'ess[distributed]')")
    sp.add_argument("--scheduler", default=None,
                    help="Dask scheduler address for --backend dask, e.g. tcp://host:8786")


#: ``ess heatmap --kind``: what each kind draws, and its default figure name.
HEATMAP_KINDS = {
    "threshold": ("heatmap of the admissible threshold n_s* over (n_r, lam)",
                  "threshold_heatmap.png"),
    "ne": ("heatmaps of n_e/n_r over (n_r, n_s), one panel per lam\n"
           f"{'':19}(the paper's Fig. 11)",
           "ne_heatmap.png"),
    "threshold-lines": ("lines of n_s* against lam, one per n_r, with 95% interval bars\n"
                        f"{'':19}(the paper's Fig. 12; the same cells as --kind threshold)",
                        "threshold_lines.png"),
}


def build_parser() -> argparse.ArgumentParser:
    """The ``ess`` argument parser."""
    ap = _Parser(prog="ess", description="Effective sample size of self-consuming "
                 "Gaussian loops: how much synthetic data can you mix into training?")
    ap.add_argument("--version", action="version", version=f"ess {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    sp = sub.add_parser("estimate", help="limit WD(n_r, n_s, lam) and n_e")
    _model_flags(sp, n_r=defaults.N_R, n_s=defaults.N_S, lam=f"{defaults.LAM:g}")
    _budget_flags(sp)
    _store_flags(sp)
    sp.add_argument("--json", action="store_true", help="print one JSON object")

    sp = sub.add_parser("threshold", help="admissible threshold n_s*(n_r, lam)")
    _model_flags(sp, n_r=defaults.N_R, lam=f"{defaults.THRESHOLD_LAM:g}", loop=False)
    _budget_flags(sp)
    _store_flags(sp)
    _cap_flag(sp)
    sp.add_argument("--json", action="store_true", help="print one JSON object")

    sp = sub.add_parser("table", help="n_e and n_e/n_r with CIs over a grid")
    _model_flags(sp, n_r=_seq(defaults.TABLE_N_R), n_s=_seq(defaults.TABLE_N_S),
                 lam=_seq(defaults.TABLE_LAM), loop=False, lists=True)
    _budget_flags(sp)
    _store_flags(sp)
    _backend_flags(sp)
    sp.add_argument("--out", default=str(DEFAULT_DIR / "ess_table.csv"),
                    help="output file: .csv or .json (every column) or .md (the columns a "
                         "reader wants) (default ess-results/ess_table.csv)")
    sp.add_argument("--json", action="store_true", help="also print the rows as JSON")

    kinds = "\n".join(f"  {k:<16} {what}" for k, (what, _) in HEATMAP_KINDS.items())
    sp = sub.add_parser(
        "heatmap", help="figures over a grid: threshold heatmap, n_e/n_r heatmaps (Fig. 11), "
        "threshold lines (Fig. 12)", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Draw a figure over a grid of cells and write its numbers beside it\n"
        f"(same name, .csv). --kind:\n{kinds}\n\nGrid defaults:\n"
        f"  threshold, threshold-lines  --n-r {_seq(defaults.HEATMAP_N_R)} "
        f"--lam {_seq(defaults.HEATMAP_LAM)}\n"
        f"  {'ne':<27} --n-r {_seq(defaults.NE_HEATMAP_N_R)} --n-s {_seq(defaults.NE_HEATMAP_N_S)} "
        f"--lam {_seq(defaults.NE_HEATMAP_LAM)}")
    sp.add_argument("--kind", default="threshold",
                    help=f"{' | '.join(HEATMAP_KINDS)} (default threshold)")
    _model_flags(sp, n_r=f"{_seq(defaults.HEATMAP_N_R)}; --kind ne: "
                 f"{_seq(defaults.NE_HEATMAP_N_R)}",
                 n_s=f"{_seq(defaults.NE_HEATMAP_N_S)}; --kind ne only: the other kinds "
                 "search n_s",
                 lam=f"{_seq(defaults.HEATMAP_LAM)}; --kind ne: {_seq(defaults.NE_HEATMAP_LAM)}"
                 ", one panel each", loop=False, lists=True)
    _budget_flags(sp)
    _store_flags(sp)
    _cap_flag(sp)
    _backend_flags(sp)
    sp.add_argument("--out", default=None,
                    help="figure (.png/.pdf/.svg); its numbers go to the same name .csv "
                         "(default ess-results/<kind's name>.png: "
                         + ", ".join(name for _, name in HEATMAP_KINDS.values()) + ")")

    sp = sub.add_parser("simulate", help="trajectories of any loop kind")
    _model_flags(sp, n_r=defaults.N_R, n_s=defaults.N_S, lam=f"{defaults.LAM:g}",
                 collapsing=True)
    sp.add_argument("--chains", default=str(defaults.CHAINS),
                    help=f"chains (default {defaults.CHAINS})")
    sp.add_argument("--generations", default=str(defaults.GENERATIONS),
                    help=f"generations (default {defaults.GENERATIONS})")
    sp.add_argument("--max-work", default=None,
                    help=f"work budget (default {defaults.MAX_WORK:g}, from "
                         f"{config.MIN_WORK:g} to {config.MAX_WORK_LIMIT:g})")
    sp.add_argument("--out", default=str(DEFAULT_DIR / "simulate.csv"),
                    help="per-generation table: .csv, .json or .md "
                         "(default ess-results/simulate.csv)")
    sp.add_argument("--plot", nargs="?", const="", default=None,
                    help="also draw a figure (default: the --out name with .png)")
    sp.add_argument("--json", action="store_true", help="print one JSON object")

    sp = sub.add_parser("bench", help="benchmarks against NumPy baselines (source checkout)",
                        description="Run the benchmark suite (benchmarks/suite.py of a source "
                        "checkout): ess against a per-sample and a vectorised NumPy baseline. "
                        "Writes bench.md, bench.json and PNG figures (bench-quick.* with "
                        "--quick).")
    sp.add_argument("--quick", action="store_true",
                    help="short run (under a minute on two cores with warm caches)")
    sp.add_argument("--out", default=None,
                    help="output folder (default benchmarks/results of the checkout)")

    from ess.limits import Limits

    lim = Limits()
    sp = sub.add_parser("serve", help="HTTP JSON API with a persistent result store",
                        description="Serve estimates, thresholds, tables, simulations and "
                        "reference curves over HTTP (OpenAPI docs at /docs). Answers are kept "
                        "in the result store shared with the command line and the Python API. "
                        "Stop with "
                        "Ctrl-C or SIGTERM: running computations are cancelled cleanly.")
    sp.add_argument("--host", default="127.0.0.1", help="address to listen on "
                    "(default 127.0.0.1; 0.0.0.0 for every interface)")
    sp.add_argument("--port", default="8000", help="TCP port (default 8000; 0 picks a free one)")
    sp.add_argument("--workers", default=str(lim.workers),
                    help=f"computations run side by side, in threads of this one process "
                         f"(default {lim.workers}); each gets the cores shared among those "
                         f"running when it starts")
    sp.add_argument("--store", default=None,
                    help="result store folder (default $ESS_STORE, else results/ in the "
                         "cache folder)")
    sp.add_argument("--max-d", default=str(lim.max_d),
                    help=f"largest dimension accepted (default {lim.max_d})")
    sp.add_argument("--max-grid", default=str(lim.max_grid),
                    help=f"largest number of table cells (default {lim.max_grid})")
    sp.add_argument("--max-chains", default=str(lim.max_chains),
                    help=f"largest chain budget of one request (default {lim.max_chains})")
    sp.add_argument("--max-work", default=f"{lim.max_work:g}",
                    help=f"largest work of one estimate or threshold evaluation at its chain "
                         f"budget (default {lim.max_work:g}: 3 to 30 s on two cores with "
                         f"memory 1)")
    sp.add_argument("--max-request-work", default=f"{lim.max_request_work:g}",
                    help=f"largest work of one request, bounded before anything runs: a "
                         f"threshold search's most evaluations times one's bound (searches run "
                         f"each evaluation under their share of it), a table's sum over the cells "
                         f"it has to compute, a simulation's over its loops (default "
                         f"{lim.max_request_work:g})")
    sp.add_argument("--max-rows", default=str(lim.max_rows),
                    help=f"largest number of per-generation rows of one simulation, generations "
                         f"times loops (default {lim.max_rows})")
    sp.add_argument("--queue-deadline", default=f"{lim.queue_deadline:g}",
                    help=f"seconds a request may wait for a worker before it gets 503 with "
                         f"Retry-After (default {lim.queue_deadline:g}; table jobs excepted)")
    sp.add_argument("--max-queue", default=str(lim.max_queue),
                    help=f"computations waiting for a worker before requests get 429 "
                         f"(default {lim.max_queue})")
    sp.add_argument("--max-per-client", default=str(lim.max_per_client),
                    help=f"computations one client (token, or address without tokens) may "
                         f"have running or waiting before its requests get 429 "
                         f"(default {lim.max_per_client})")
    sp.add_argument("--token-file", default=None,
                    help="access tokens, one 'name token' per line: every /v1/ request but "
                         "/v1/health then needs 'Authorization: Bearer <token>'")
    sp.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                    help="a Host name the server answers to besides localhost, the loopback "
                         "addresses and --host (repeat for more); other names get 421, so "
                         "that web pages cannot reach the server by DNS rebinding")
    sp.add_argument("--max-body-kb", default=str(lim.max_body_kb),
                    help=f"largest request body in KiB; beyond, 413 (default "
                         f"{lim.max_body_kb})")
    sp.add_argument("--header-timeout", default=f"{defaults.HEADER_TIMEOUT:g}",
                    help=f"seconds a client has to send a request's headers, and longest "
                         f"pause while it sends a body; then 408 and the connection is "
                         f"closed (default {defaults.HEADER_TIMEOUT:g})")
    sp.add_argument("--max-connections", default=None,
                    help=f"connections open at once: past it a new connection closes the "
                         f"longest idle one, or gets 503 when all have requests in progress "
                         f"(default {defaults.MAX_CONNECTIONS}, or the file-descriptor "
                         f"limit, ulimit -n, less {defaults.FD_HEADROOM} when lower)")
    sp.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                    help="a web origin (https://host[:port]) whose pages may call the API "
                         "from a browser (repeat for more); without it the server sends "
                         "no CORS header")
    sp.add_argument("--job-ttl", default=f"{lim.job_ttl:g}",
                    help=f"seconds a finished table job is kept for GET /v1/jobs/{{id}} "
                         f"(default {lim.job_ttl:g}; its cells stay in the store)")
    sp.add_argument("--allow-anonymous", action="store_true",
                    help="listen on an address other than loopback without --token-file "
                         "(refused otherwise)")
    from ess.store import DEFAULT_MAX_MB

    sp.add_argument("--store-max-mb", default=str(DEFAULT_MAX_MB),
                    help=f"bound on the result store in MB (2^20 bytes): past it the least "
                         f"recently used answers are removed (default {DEFAULT_MAX_MB})")
    _store_parser(sub)
    sp.add_argument("--log-level", default="warning",
                    help="warning (default: problems only) | info (also one line per "
                         "request) | debug")
    sp.add_argument("--sync-cells", default=str(lim.sync_cells),
                    help=f"tables with more cells to compute run as jobs "
                         f"(default {lim.sync_cells})")
    return ap


# ---------------------------------------------------------------------------------
def _lam_values(args, default: str) -> tuple[str, list[str]]:
    if args.guidance is not None:
        return "guidance", parse_list("guidance", args.guidance)
    return "lam", parse_list("lam", args.lam if args.lam is not None else default)


def _lam_list(args, default: str) -> list:
    """The ``lam`` values of a grid, from ``--lam`` or converted from ``--guidance``."""
    key, values = _lam_values(args, default)
    if key == "guidance":
        return [lam_from_guidance(w) for w in values]
    return values


def _sigma(text: str | None):
    if text is None:
        return None
    p = Path(text)
    if p.suffix in (".npy", ".txt", ".csv") or p.exists():
        import numpy as np

        try:
            return np.load(p) if p.suffix == ".npy" else np.loadtxt(p, delimiter=None
                                                                   if p.suffix != ".csv" else ",")
        except (OSError, ValueError) as e:
            raise ParameterError("sigma_r", f"sigma_r: cannot read {text!r} ({e})") from None
    return parse_list("sigma_r", text)   # numbers as text: validation converts them


def _writable(path: Path, name: str = "out", given: str | None = None,
              what: str = "file path") -> Path:
    """Check before computing that ``path`` can be written (creating its folder).

    The message names ``given``, the path the user typed (``path`` may be a file
    derived from it, such as the .csv beside a figure), and what is wrong.
    """
    given = str(path) if given is None else given
    derived = "" if str(path) == given else f" (for {str(path)!r})"

    def refuse(reason: str):
        raise ParameterError(name, f"{name} must be a writable {what}; cannot write "
                             f"{given!r}{derived}: {reason}")

    for folder in path.parents:   # the nearest existing folder must be a folder
        if folder.exists() or folder.is_symlink():
            if not folder.is_dir():
                refuse(f"{str(folder)!r} is a file, not a folder")
            break
    if path.is_dir():
        refuse("it is a folder")
    existed = path.exists()
    missing = [f for f in path.parents if not f.exists()]   # innermost first
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as e:
        refuse(e.strerror or str(e))
    finally:   # leave no trace: the writers create the folders again
        if not existed and path.is_file():
            path.unlink()
        for folder in missing:
            if folder.is_dir():
                folder.rmdir()
    return path


def _or(value: str | None, default):
    """The flag's value, or ``default`` when the flag was not given (an empty string
    is a value, and is rejected by validation)."""
    return default if value is None else value


def _common(args) -> dict:
    kw = {"d": args.d, "n_ini": args.n_ini, "memory": args.memory, "metric": args.metric,
          "cov_estimator": args.cov_estimator, "seed": args.seed, "n_jobs": args.jobs,
          "sigma_r": _sigma(args.sigma_r), "progress": not args.quiet}
    if args.mu_r is not None:
        kw["mu_r"] = parse_list("mu_r", args.mu_r)   # converted (and checked) by validation
    if args.reference_data is not None:
        kw["reference_data"] = args.reference_data   # read (and checked) by validation
    return kw


def _budget(args) -> dict:
    """Precision, chain budget and result store of a computing command."""
    store = False if args.no_store else args.store
    return {"rel_precision": args.rel_precision, "max_chains": args.max_chains,
            "max_work": args.max_work, "store": store}


def _took(res) -> str:
    return f"{res.seconds:.2f} s" + (" (from the result store)" if res.from_store else "")


def _where(args) -> dict:
    """``backend`` and ``scheduler`` of a grid command (validated by the API)."""
    return {"backend": args.backend, "scheduler": args.scheduler}


def _one(name: str, values: list[str]) -> str:
    if len(values) != 1:
        raise ParameterError(name, f"{name} takes one value here, got {len(values)}")
    return values[0]


def _header(r) -> str:
    return (f"d = {r.d}, metric {r.metric}, {r.cov_estimator} covariance, "
            f"memory {r.memory}, seed {r.seed}")


def estimate_text(res) -> str:
    """What ``ess estimate`` prints for an :class:`~ess.results.EstimateResult`.

    Numbers keep their significant digits whatever their size, with as many as
    their interval resolves; ``n_s = 0`` is said to be exact (no Monte Carlo),
    and a null ``n_e`` gets no precision on ``n_e``.
    """
    from ess.report import VERDICT_TEXT, num, percent, with_ci

    lines = [f"ess estimate: {res.loop} loop, n_r = {res.n_r}, n_s = {res.n_s}, "
             f"lam = {res.lam:g}, n_ini = {res.n_ini}", f"  {_header(res)}"]
    verdict = VERDICT_TEXT.get(res.verdict, res.verdict)
    if res.n_s == 0:
        wd, wd_ci = with_ci(res.wd, *res.wd_ci)
        lines += [f"  limit WD      {wd}   95% CI {wd_ci}",
                  f"  n_e           {num(res.n_e)} = n_r exactly",
                  f"  n_e / n_r     1 exactly   ({verdict})"]
    else:
        wd, wd_ci = with_ci(res.wd, *res.wd_ci)
        lines.append(f"  limit WD      {wd}   95% CI {wd_ci}")
        if res.n_e is None:
            lines += ["  n_e           below 2 (see the note)",
                      f"  n_e / n_r     below {num(2 / res.n_r, 3)}"]
        else:
            ne, ne_ci = with_ci(res.n_e, *res.n_e_ci)
            ratio, ratio_ci = with_ci(res.n_e_over_n_r, *res.n_e_over_n_r_ci)
            lines += [f"  n_e           {ne}   95% CI {ne_ci}",
                      f"  n_e / n_r     {ratio}   95% CI {ratio_ci}   ({verdict})"]
        if res.n_e is None:
            wd_rel = (res.wd_ci[1] - res.wd_ci[0]) / 2 / abs(res.wd) if res.wd else math.inf
            known = f"WD known to ±{percent(wd_rel)}"
        else:
            known = f"n_e known to ±{percent(res.n_e_rel_halfwidth)}"
        reached = "precision reached" if res.precision_reached else "PRECISION NOT REACHED"
        lines.append(f"  {res.chains} chains x {res.generations} generations (burn-in "
                     f"{res.burn_in}); {known} ({reached}); "
                     f"{'converged' if res.converged else 'DRIFT DETECTED'}; {_took(res)}")
    if res.note:
        lines.append(f"  note: {res.note}")
    return "\n".join(lines)


def _cmd_estimate(args) -> int:
    from ess.api import estimate

    key, lam = _lam_values(args, f"{defaults.LAM:g}")
    kw = _common(args) | _budget(args)
    kw[key] = _one(key, lam)
    res = estimate(n_r=_or(args.n_r, defaults.N_R), n_s=_or(args.n_s, defaults.N_S),
                   loop=args.loop, **kw)
    print(json.dumps(res.to_dict()) if args.json else estimate_text(res))
    return 0


def threshold_text(res) -> str:
    """What ``ess threshold`` prints for a :class:`~ess.results.ThresholdResult`."""
    lines = [f"ess threshold: fresh loop, n_r = {res.n_r}, lam = {res.lam:g}",
             f"  {_header(res)}"]
    lo, hi = res.n_s_star_ci
    if res.n_s_star is None:
        lines.append(f"  n_s*   none up to the cap ({res.cap}): n_e >= n_r for every n_s "
                     f"searched (95% CI of n_s* [{lo}, beyond the cap])")
    else:
        lines.append(f"  n_s*   {res.n_s_star}   95% CI [{lo}, "
                     f"{'beyond the cap' if hi is None else hi}]")
        what = ("no positive amount of synthetic data is admissible" if res.n_s_star == 0
                else f"up to {res.n_s_star} synthetic samples per generation keep n_e >= n_r")
        lines.append(f"         ({what})")
    lines.append(f"  {res.evaluations} evaluations up to the cap {res.cap}, common random "
                 f"numbers; "
                 f"{'precision reached' if res.precision_reached else 'PRECISION NOT REACHED'}"
                 f"; {_took(res)}")
    if res.note:
        lines.append(f"  note: {res.note}")
    return "\n".join(lines)


def _cmd_threshold(args) -> int:
    from ess.api import threshold

    key, lam = _lam_values(args, f"{defaults.THRESHOLD_LAM:g}")
    kw = _common(args) | _budget(args)
    kw[key] = _one(key, lam)
    res = threshold(n_r=_or(args.n_r, defaults.N_R), cap=args.cap, **kw)
    print(json.dumps(res.to_dict()) if args.json else threshold_text(res))
    return 0


def table_text(res) -> str:
    """What ``ess table`` prints: one line per cell."""
    from ess.report import cell_notes, estimate_flags, num, with_ci

    lines = [f"ess table: {len(res)} cells, {_header(res[0])}",
             f"  {'n_r':>6} {'n_s':>6} {'lam':>5} {'n_e':>10} {'n_e/n_r':>9}  "
             f"{'95% CI of n_e/n_r':<20}  verdict"]
    for r in res:
        if r.n_e is None:
            ne, ratio, ci = "< 2", "", ""
        elif r.n_s == 0:
            ne, ratio, ci = num(r.n_e), "1", "exact"
        else:
            ne = with_ci(r.n_e, *r.n_e_ci)[0]
            ratio, ci = with_ci(r.n_e_over_n_r, *r.n_e_over_n_r_ci)
        flags = estimate_flags(r)
        lines.append(f"  {r.n_r:>6} {r.n_s:>6} {r.lam:>5g} {ne:>10} {ratio:>9}  {ci:<20}  "
                     f"{r.verdict}" + (f"  (!) {flags}" if flags else ""))
    lines += [f"  note: {n}" for n in cell_notes(res)]
    stored = sum(r.from_store for r in res)
    if stored:
        lines.append(f"  {stored} of {len(res)} cells from the result store")
    return "\n".join(lines)


def _cmd_table(args) -> int:
    from ess.api import table
    from ess.report import check_table_path, write_table

    out = _writable(check_table_path(args.out, "out"))
    lam = _lam_list(args, _seq(defaults.TABLE_LAM))
    kw = _common(args) | _budget(args) | _where(args)
    n_r = parse_list("n_r", _or(args.n_r, _seq(defaults.TABLE_N_R)))
    n_s = parse_list("n_s", _or(args.n_s, _seq(defaults.TABLE_N_S)))
    res = table(n_r=n_r, n_s=n_s, lam=lam, **kw)
    write_table(res, out, title=f"ESS table: {res[0].loop} loop, {_header(res[0])}, "
                f"rel_precision {res[0].rel_precision:g}")
    if args.json:
        print(json.dumps(res.to_rows()))
    else:
        print(table_text(res))
        print(f"wrote {out}")
    return 0


def _cmd_heatmap(args) -> int:
    from ess import report

    kind = check_choice("kind", args.kind, tuple(HEATMAP_KINDS))
    given = args.out if args.out else str(DEFAULT_DIR / HEATMAP_KINDS[kind][1])
    out = _writable(report.check_figure_path(given, "out"))   # the figure first
    csv_path = _writable(out.with_suffix(".csv"), "out", given)
    kw = _common(args) | _budget(args) | _where(args)
    if kind in ("threshold", "threshold-lines"):
        from ess.api import threshold_grid

        if args.n_s is not None:
            raise ParameterError("n_s", f"n_s is searched by --kind {kind}; do not give --n-s")
        lam = _lam_list(args, _seq(defaults.HEATMAP_LAM))
        n_r = parse_list("n_r", _or(args.n_r, _seq(defaults.HEATMAP_N_R)))
        res = threshold_grid(n_r=n_r, lam=lam, cap=args.cap, **kw)
        report.write_table(res, csv_path)
        draw = report.threshold_heatmap if kind == "threshold" else report.threshold_lines
        draw(res, out)
    else:
        from ess.api import table

        if args.cap is not None:
            raise ParameterError("cap", "cap applies to the threshold kinds only "
                                 "(--kind threshold or threshold-lines)")
        lam = _lam_list(args, _seq(defaults.NE_HEATMAP_LAM))
        n_r = parse_list("n_r", _or(args.n_r, _seq(defaults.NE_HEATMAP_N_R)))
        n_s = parse_list("n_s", _or(args.n_s, _seq(defaults.NE_HEATMAP_N_S)))
        res = table(n_r=n_r, n_s=n_s, lam=lam, **kw)
        report.write_table(res, csv_path)
        report.ne_heatmap(res, out)
    for note in report.cell_notes(res):
        print(f"note: {note}")
    print(f"wrote {out} and {csv_path}")
    return 0


def simulate_text(res, out=None, plot=None) -> str:
    """What ``ess simulate`` prints: per loop, the last generation's distance and
    ``n_e(t)`` with their 95% intervals, and ``tr Sigma / d``."""
    from ess.report import num, with_ci
    from ess.results import SimulateGridResult

    runs = list(res) if isinstance(res, SimulateGridResult) else [res]
    r0 = runs[0]
    loops = ", ".join(r.loop for r in runs)
    lines = [f"ess simulate: {loops} loop{'s' if len(runs) > 1 else ''}, n_r = {r0.n_r}, "
             f"n_s = {r0.n_s}, lam = {r0.lam:g}, n_ini = {r0.n_ini}, "
             f"{r0.chains} chains x {r0.generations} generations", f"  {_header(r0)}"]
    for r in runs:
        last = r.rows[-1]
        lo, hi = last["dist_ci"]
        dist, dist_ci = (with_ci(last["dist_mean"], lo, hi) if math.isfinite(lo)
                         else (num(last["dist_mean"]), "n/a"))
        if last["n_e"] is None:
            ne = f"n_e {last['n_e_note']}"
        else:
            n_lo, n_hi = last["n_e_ci"]
            ne_ci = (f"[{'below 2' if n_lo is None else num(n_lo)}, "
                     f"{'unbounded' if n_hi is None else num(n_hi)}]")
            ne = (f"n_e = {num(last['n_e'])} {ne_ci}, n_e / n_r = "
                  f"{num(last['n_e_over_n_r'])}")
        lines.append(f"  {r.loop}: generation {last['generation']}: mean {r.metric} = {dist} "
                     f"(95% CI {dist_ci}), {ne}; mean tr Sigma/d = "
                     f"{num(last['tr_sigma_over_d_mean'])}")
        if 0 < last["tr_sigma_over_d_mean"] < sys.float_info.min:
            lines.append(f"    (tr Sigma has collapsed: below {sys.float_info.min:.2g}, the "
                         "smallest normal float, its values have underflowed and lost their "
                         "digits)")
    if out is not None:
        lines.append(f"wrote {out}" + (f" and {plot}" if plot else ""))
    return "\n".join(lines)


def _cmd_simulate(args) -> int:
    from ess.api import simulate
    from ess.report import check_figure_path, check_table_path, simulate_plot, write_table

    out = _writable(check_table_path(args.out, "out"))
    plot = None
    if args.plot is not None:
        given = args.plot if args.plot else str(out.with_suffix(".png"))
        plot = _writable(check_figure_path(given, "plot"), "plot")
    key, lam = _lam_values(args, f"{defaults.LAM:g}")
    kw = _common(args)
    kw[key] = _one(key, lam)
    loops = parse_list("loop", args.loop)
    res = simulate(n_r=_or(args.n_r, defaults.N_R), n_s=_or(args.n_s, defaults.N_S),
                   loop=loops if len(loops) > 1 else loops[0], chains=args.chains,
                   generations=args.generations, max_work=args.max_work, **kw)
    r0 = res if len(loops) == 1 else res[0]
    names = ", ".join(r.loop for r in (res if len(loops) > 1 else [res]))
    write_table(res, out, title=f"simulate: {names} ({_header(r0)})")
    if plot is not None:
        simulate_plot(res, plot)
    print(json.dumps(res.to_dict() if len(loops) == 1 else {"loops": res.to_dicts()})
          if args.json else simulate_text(res, out, plot))
    return 0


def _source_root() -> Path | None:
    """The source checkout holding ``benchmarks/suite.py``; None for an installed package."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "benchmarks" / "suite.py").is_file() else None


def _cmd_bench(args) -> int:
    root = _source_root()
    if root is None:
        print("ess: error: `ess bench` needs a source checkout of ess (benchmarks/ is not "
              "installed): run it from a clone, e.g. `make bench`", file=sys.stderr)
        return 2
    out = None
    if args.out is not None:
        out = Path(args.out)
        _writable(out / "bench.md", "out", args.out, "folder")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from benchmarks.suite import run

    run(quick=args.quick, out_dir=out)
    return 0


def _cmd_serve(args) -> int:
    from ess.limits import Limits
    from ess.params import check_float, check_int
    from ess.service import serve

    names = ("max_d", "max_grid", "max_chains", "max_work", "workers", "max_queue",
             "max_per_client", "sync_cells", "max_body_kb", "job_ttl", "max_request_work",
             "queue_deadline", "max_rows")
    limits = Limits(**{n: getattr(args, n) for n in names}).checked()
    port = check_int("port", args.port, 0, 65535)
    level = check_choice("log_level", args.log_level, ("warning", "info", "debug"))
    max_mb = check_float("store_max_mb", args.store_max_mb, 1.0, 1e7)
    return serve(host=args.host, port=port, store=args.store, limits=limits, log_level=level,
                 token_file=args.token_file, allow_anonymous=args.allow_anonymous,
                 store_max_mb=max_mb, allow_hosts=args.allow_host,
                 header_timeout=args.header_timeout, max_connections=args.max_connections,
                 cors_origins=args.cors_origin)


def _store_parser(sub) -> None:
    """``ess store info | prune | clear``."""
    sp = sub.add_parser("store", help="size of the result store; prune or clear it",
                        description="The result store shared by the command line, the Python "
                        "API and ess serve: what it holds (info), removing the least recently "
                        "used answers down to a size (prune), or every answer (clear). "
                        "Removed answers are recomputed when asked again.")
    actions = sp.add_subparsers(dest="action", metavar="info | prune | clear",
                                parser_class=_Parser)
    for name, text in (("info", "folder, entries and size"),
                       ("prune", "remove the least recently used answers down to --max-mb"),
                       ("clear", "remove every answer")):
        a = actions.add_parser(name, help=text, description=text)
        a.add_argument("--store", default=None,
                       help="result store folder (default $ESS_STORE, else results/ in the "
                            "cache folder)")
        if name == "prune":
            a.add_argument("--max-mb", required=True,
                           help="size to prune down to, in MB (2^20 bytes)")
        a.add_argument("--json", action="store_true", help="print one JSON object")


def _cmd_store(args) -> int:
    from ess.params import check_float
    from ess.store import MB, ResultStore, default_store_dir

    if args.action is None:
        raise ParameterError("action", "ess store needs an action: info, prune or clear "
                             "(see 'ess store --help')")
    root = args.store if args.store else default_store_dir()
    if root is None:
        raise ParameterError("store", "store is off (ESS_STORE); give --store DIR")
    st = ResultStore(root)
    if st.root.exists() and not st.root.is_dir():
        raise ParameterError("store", f"store must be a folder, got {str(st.root)!r}")
    if args.action == "info":
        use = st.usage()
        out = {"store": str(st.root), "entries": use.entries, "bytes": use.bytes}
        text = (f"ess store: {st.root}{'' if st.root.exists() else ' (not created yet)'}\n"
                f"  {use.entries} answers, {use.bytes / MB:.2f} MB")
    else:
        if args.action == "prune":
            max_mb = check_float("max_mb", args.max_mb, 0.0, 1e7)
            done = st.prune(int(max_mb * MB))
        else:
            done = st.clear()
        out = {"store": str(st.root), "removed": done.removed, "freed_bytes": done.freed,
               "entries": done.kept.entries, "bytes": done.kept.bytes}
        text = (f"ess store: removed {done.removed} answers ({done.freed / MB:.2f} MB) from "
                f"{st.root}\n  left {done.kept.entries} answers, {done.kept.bytes / MB:.2f} MB")
        if done.skipped:
            text += f" ({done.skipped} being read were kept)"
    print(json.dumps(out) if args.json else text)
    return 0


_COMMANDS = {"estimate": _cmd_estimate, "threshold": _cmd_threshold, "table": _cmd_table,
             "heatmap": _cmd_heatmap, "simulate": _cmd_simulate, "bench": _cmd_bench,
             "serve": _cmd_serve, "store": _cmd_store}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for bad input).

    A closed pipe on stdout (``ess simulate --json | head``) ends the command
    quietly with status 1, as the Python documentation recommends (section
    "Note on SIGPIPE" of the ``signal`` module).
    """
    ap = build_parser()
    try:
        args = ap.parse_args(argv)
    except SystemExit as e:   # --help, --version, or a usage error (status 2)
        return e.code if isinstance(e.code, int) else 0
    if args.command is None:
        ap.print_help()
        return 2
    try:
        status = _COMMANDS[args.command](args)
        sys.stdout.flush()   # a closed pipe shows here, not at interpreter exit
        return status
    except ParameterError as e:
        print(f"ess: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ess: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Python flushes stdout again at exit: point it at devnull so that flush
        # does not fail (and print a traceback) too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def main_entry() -> None:
    """Console-script entry point (``ess``, ``python -m ess``): :func:`main`, then exit.

    Before exiting, the objects still alive are frozen (:func:`gc.freeze`), so that the
    interpreter's final garbage collections do not walk them: once Numba has loaded a
    kernel they are many, and walking them cost about 0.13 s of CPU time at the end of
    a ``d = 1`` answer (``benchmarks/startup.py``). Exit handlers still run.
    """
    status = main()
    import gc

    gc.freeze()
    sys.exit(status)
