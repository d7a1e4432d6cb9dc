"""Command line: ``ess estimate | threshold | table | heatmap | simulate | bench | serve``.

A thin layer: parse strings, call :mod:`ess.api`, print. Every value is
validated by :mod:`ess.params`, so a bad value gets one line naming the
parameter and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ess import __version__, config, defaults
from ess.params import ParameterError, check_choice, lam_from_guidance, parse_list

DEFAULT_DIR = Path("ess-results")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit status 2
        self.exit(2, f"ess: error: {message} (see 'ess {self.prog.split()[-1]} --help')\n"
                  if " " in self.prog else f"ess: error: {message} (see 'ess --help')\n")


def _model_flags(sp: argparse.ArgumentParser, lists: bool = False, n_s: bool = True,
                 loop: bool = True, collapsing: bool = False) -> None:
    many = " (comma-separated list)" if lists else ""
    sp.add_argument("--d", default="1", help="dimension (default 1)")
    sp.add_argument("--n-r", default=None, help=f"real samples per generation{many}")
    if n_s:
        sp.add_argument("--n-s", default=None, help=f"synthetic samples per generation{many}")
    g = sp.add_mutually_exclusive_group()
    g.add_argument("--lam", default=None, help=f"sampling bias in [0, 1]{many}")
    g.add_argument("--guidance", default=None,
                   help=f"classifier-free guidance w >= 0, lam = 1/(1+w){many}")
    sp.add_argument("--n-ini", default=None, help="size of the first real set (default n_r)")
    if loop:
        kinds = "fresh | augmentation | fully-synthetic" if collapsing else (
            "fresh | augmentation (the fully synthetic loop has no limit: use simulate)")
        sp.add_argument("--loop", default="fresh", help=f"{kinds} (default fresh)")
    sp.add_argument("--memory", default="1", help="past models feeding synthetic data: K or all")
    sp.add_argument("--metric", default="w2sq", help="w2sq (default) | w2")
    sp.add_argument("--cov-estimator", default="unbiased", help="unbiased (default) | mle")
    sp.add_argument("--sigma-r", default=None,
                    help="reference covariance: comma-separated diagonal, or a .npy/.txt file")
    sp.add_argument("--mu-r", default=None, help="reference mean: comma-separated values")
    sp.add_argument("--seed", default="0", help="seed (default 0)")
    sp.add_argument("--jobs", default=None, help="threads (default: every core)")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")


def _budget_flags(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--rel-precision", default="0.01",
                    help="relative 95%% half-width wanted on n_e (default 0.01)")
    sp.add_argument("--max-chains", default=str(config.DEFAULT_MAX_CHAINS),
                    help=f"chain budget (default {config.DEFAULT_MAX_CHAINS}, "
                         f"at most {config.MAX_CHAINS})")


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


def build_parser() -> argparse.ArgumentParser:
    """The ``ess`` argument parser."""
    ap = _Parser(prog="ess", description="Effective sample size of self-consuming "
                 "Gaussian loops: how much synthetic data can you mix into training?")
    ap.add_argument("--version", action="version", version=f"ess {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    sp = sub.add_parser("estimate", help="limit WD(n_r, n_s, lam) and n_e")
    _model_flags(sp)
    _budget_flags(sp)
    _store_flags(sp)
    sp.add_argument("--json", action="store_true", help="print one JSON object")

    sp = sub.add_parser("threshold", help="admissible threshold n_s*(n_r, lam)")
    _model_flags(sp, n_s=False, loop=False)
    _budget_flags(sp)
    _store_flags(sp)
    sp.add_argument("--cap", default=None, help="largest n_s searched (default 100 n_r)")
    sp.add_argument("--json", action="store_true", help="print one JSON object")

    sp = sub.add_parser("table", help="n_e and n_e/n_r with CIs over a grid")
    _model_flags(sp, lists=True, loop=False)
    _budget_flags(sp)
    _store_flags(sp)
    _backend_flags(sp)
    sp.add_argument("--out", default=str(DEFAULT_DIR / "ess_table.csv"),
                    help="output file: .csv, .json or .md (default ess-results/ess_table.csv)")
    sp.add_argument("--json", action="store_true", help="also print the rows as JSON")

    sp = sub.add_parser("heatmap", help="threshold heatmap, or n_e/n_r heatmap (Fig. 11)")
    sp.add_argument("--kind", default="threshold",
                    help="threshold: n_s* over (n_r, lam); ne: n_e/n_r over (n_r, n_s) at one lam")
    _model_flags(sp, lists=True, loop=False)
    _budget_flags(sp)
    _store_flags(sp)
    sp.add_argument("--cap", default=None, help="largest n_s searched (default 100 n_r)")
    _backend_flags(sp)
    sp.add_argument("--out", default=None,
                    help="figure (.png/.pdf/.svg); its numbers go to the same name .csv "
                         "(default ess-results/threshold_heatmap.png or ne_heatmap.png)")

    sp = sub.add_parser("simulate", help="trajectories of any loop kind")
    _model_flags(sp, collapsing=True)
    sp.add_argument("--chains", default="200", help="chains (default 200)")
    sp.add_argument("--generations", default="50", help="generations (default 50)")
    sp.add_argument("--out", default=str(DEFAULT_DIR / "simulate.csv"),
                    help="per-generation CSV/JSON/MD (default ess-results/simulate.csv)")
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
                        description="Serve estimates, thresholds, tables and reference curves "
                        "over HTTP (OpenAPI docs at /docs). Answers are kept in the result "
                        "store shared with the command line and the Python API. Stop with "
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
    sp.add_argument("--max-queue", default=str(lim.max_queue),
                    help=f"computations waiting for a worker before requests get 429 "
                         f"(default {lim.max_queue})")
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


def _writable(path: Path, name: str = "out") -> Path:
    """Check before computing that ``path`` can be written."""
    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as e:
        raise ParameterError(name,
            f"{name} must be a writable file path; cannot write {str(path)!r} "
                             f"({e.strerror})") from None
    if not existed:
        path.unlink()
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
    return kw


def _budget(args) -> dict:
    """Precision, chain budget and result store of a computing command."""
    store = False if args.no_store else args.store
    return {"rel_precision": args.rel_precision, "max_chains": args.max_chains, "store": store}


def _took(res) -> str:
    return f"{res.seconds:.2f} s" + (" (from the result store)" if res.from_store else "")


def _where(args) -> dict:
    """``backend`` and ``scheduler`` of a grid command (validated by the API)."""
    return {"backend": args.backend, "scheduler": args.scheduler}


def _one(name: str, values: list[str]) -> str:
    if len(values) != 1:
        raise ParameterError(name, f"{name} takes one value here, got {len(values)}")
    return values[0]


def _ci(ci, fmt: str = ".6g") -> str:
    if ci is None:
        return ""
    lo, hi = ci
    hi_s = "beyond the cap" if hi is None else format(hi, fmt)
    return f"95% CI [{format(lo, fmt)}, {hi_s}]"


def _header(r) -> str:
    return (f"d = {r.d}, metric {r.metric}, {r.cov_estimator} covariance, "
            f"memory {r.memory}, seed {r.seed}")


def _cmd_estimate(args) -> int:
    from ess.api import estimate

    key, lam = _lam_values(args, "1")
    kw = _common(args) | _budget(args)
    kw[key] = _one(key, lam)
    res = estimate(n_r=_or(args.n_r, defaults.N_R), n_s=_or(args.n_s, defaults.N_S), loop=args.loop,
                   **kw)
    if args.json:
        print(json.dumps(res.to_dict()))
        return 0
    print(f"ess estimate: {res.loop} loop, n_r = {res.n_r}, n_s = {res.n_s}, "
          f"lam = {res.lam:g}, n_ini = {res.n_ini}")
    print(f"  {_header(res)}")
    print(f"  limit WD      {res.wd:.6g}   {_ci(res.wd_ci)}")
    if res.n_e is None:
        print(f"  n_e           below 2 ({res.note})")
    else:
        print(f"  n_e           {res.n_e:.5g}   {_ci(res.n_e_ci, '.5g')}")
        lo, hi = res.n_e_over_n_r_ci
        verdict = ("synthetic data helps" if lo > 1 else
                   "synthetic data hurts" if hi < 1 else "no significant effect")
        print(f"  n_e / n_r     {res.n_e_over_n_r:.4f}   {_ci(res.n_e_over_n_r_ci, '.4f')}"
              f"   ({verdict})")
    print(f"  {res.chains} chains x {res.generations} generations (burn-in {res.burn_in}); "
          f"n_e known to ±{100 * res.n_e_rel_halfwidth:.2f}% "
          f"({'precision reached' if res.precision_reached else 'PRECISION NOT REACHED'}); "
          f"{'converged' if res.converged else 'DRIFT DETECTED'}; {_took(res)}")
    if res.note and res.n_e is not None:
        print(f"  note: {res.note}")
    return 0


def _cmd_threshold(args) -> int:
    from ess.api import threshold

    key, lam = _lam_values(args, "0.9")
    kw = _common(args) | _budget(args)
    kw[key] = _one(key, lam)
    res = threshold(n_r=_or(args.n_r, defaults.N_R), cap=args.cap, **kw)
    if args.json:
        print(json.dumps(res.to_dict()))
        return 0
    print(f"ess threshold: fresh loop, n_r = {res.n_r}, lam = {res.lam:g}")
    print(f"  {_header(res)}")
    if res.n_s_star is None:
        print(f"  n_s*   none up to the cap ({res.cap}): n_e >= n_r for every n_s searched")
    else:
        print(f"  n_s*   {res.n_s_star}   {_ci(res.n_s_star_ci, 'd')}")
        what = ("no positive amount of synthetic data is admissible" if res.n_s_star == 0
                else f"up to {res.n_s_star} synthetic samples per generation keep n_e >= n_r")
        print(f"         ({what})")
    print(f"  {res.evaluations} evaluations, common random numbers; "
          f"{'precision reached' if res.precision_reached else 'PRECISION NOT REACHED'}; "
          f"{_took(res)}")
    if res.note:
        print(f"  note: {res.note}")
    return 0


def _cmd_table(args) -> int:
    from ess.api import table
    from ess.report import check_table_path, estimate_rows, write_rows

    out = _writable(check_table_path(args.out, "out"))
    lam = _lam_list(args, "1,0.9,0.7")
    kw = _common(args) | _budget(args) | _where(args)
    n_r = parse_list("n_r", _or(args.n_r, "50,100,200"))
    n_s = parse_list("n_s", _or(args.n_s, "0,50,100,200,400"))
    res = table(n_r=n_r, n_s=n_s, lam=lam, **kw)
    rows = estimate_rows(res)
    write_rows(rows, out, title=f"ESS table ({_header(res[0])})")
    if args.json:
        print(json.dumps(rows))
    else:
        print(f"ess table: {len(rows)} cells, {_header(res[0])}")
        print(f"  {'n_r':>6} {'n_s':>6} {'lam':>5} {'n_e':>10} {'n_e/n_r':>8}  95% CI of n_e/n_r")
        for r in res:
            ne = "< 2" if r.n_e is None else f"{r.n_e:.5g}"
            ratio = "" if r.n_e is None else f"{r.n_e_over_n_r:.4f}"
            ci = "" if r.n_e is None else _ci(r.n_e_over_n_r_ci, ".4f")[7:]
            flag = "" if r.precision_reached and r.converged else "  (!) " + r.note
            print(f"  {r.n_r:>6} {r.n_s:>6} {r.lam:>5g} {ne:>10} {ratio:>8}  {ci}{flag}")
        stored = sum(r.from_store for r in res)
        if stored:
            print(f"  {stored} of {len(res)} cells from the result store")
        print(f"wrote {out}")
    return 0


def _cmd_heatmap(args) -> int:
    from ess.report import (
        check_table_path,
        estimate_rows,
        ne_heatmap,
        threshold_heatmap,
        threshold_rows,
        write_rows,
    )

    kind = check_choice("kind", args.kind, ("threshold", "ne"))
    default = DEFAULT_DIR / ("threshold_heatmap.png" if kind == "threshold" else "ne_heatmap.png")
    out = Path(args.out) if args.out else default
    if out.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise ParameterError("out", f"out must end in .png, .pdf or .svg, got {str(out)!r}")
    csv_path = _writable(check_table_path(out.with_suffix(".csv")))
    _writable(out)
    kw = _common(args) | _budget(args) | _where(args)
    if kind == "threshold":
        from ess.api import threshold_grid

        if args.n_s is not None:
            raise ParameterError("n_s",
                "n_s is searched by the threshold heatmap; do not give --n-s")
        lam = _lam_list(args, "0.5,0.6,0.7,0.8,0.9")
        n_r = parse_list("n_r", _or(args.n_r, "25,50,100,200,400"))
        res = threshold_grid(n_r=n_r, lam=lam, cap=args.cap, **kw)
        write_rows(threshold_rows(res), csv_path)
        threshold_heatmap(res, out)
    else:
        from ess.api import table

        if args.cap is not None:
            raise ParameterError("cap",
                "cap applies to the threshold heatmap only (--kind threshold)")
        kw["lam"] = [_one("lam", _lam_list(args, "0.85"))]
        n_r = parse_list("n_r", _or(args.n_r, "100,200,400,800"))
        n_s = parse_list("n_s", _or(args.n_s, "25,50,100,200,400,800,1600,3200"))
        res = table(n_r=n_r, n_s=n_s, **kw)
        write_rows(estimate_rows(res), csv_path)
        ne_heatmap(res, out)
    print(f"wrote {out} and {csv_path}")
    return 0


def _cmd_simulate(args) -> int:
    from ess.api import simulate
    from ess.report import check_table_path, simulate_plot, write_rows

    out = _writable(check_table_path(args.out, "out"))
    plot = None
    if args.plot is not None:
        plot = Path(args.plot) if args.plot else out.with_suffix(".png")
        if plot.suffix.lower() not in (".png", ".pdf", ".svg"):
            raise ParameterError("plot", f"plot must end in .png, .pdf or .svg, got {str(plot)!r}")
        _writable(plot, "plot")
    key, lam = _lam_values(args, "1")
    kw = _common(args)
    kw[key] = _one(key, lam)
    res = simulate(n_r=_or(args.n_r, defaults.N_R), n_s=_or(args.n_s, defaults.N_S), loop=args.loop,
                   chains=args.chains, generations=args.generations, **kw)
    write_rows(res.rows, out, title=f"simulate: {res.loop} loop ({_header(res)})")
    if plot is not None:
        simulate_plot(res, plot)
    if args.json:
        print(json.dumps(res.to_dict()))
    else:
        last = res.rows[-1]
        real = "" if res.loop == "fully-synthetic" else f"n_r = {res.n_r}, "
        print(f"ess simulate: {res.loop} loop, {real}n_s = {res.n_s}, "
              f"lam = {res.lam:g}, {res.chains} chains x {res.generations} generations")
        print(f"  {_header(res)}")
        print(f"  generation {last['generation']}: mean {res.metric} = {last['dist_mean']:.4g} "
              f"(5-95%: {last['dist_q05']:.4g}..{last['dist_q95']:.4g}), "
              f"mean tr Sigma/d = {last['tr_sigma_over_d_mean']:.4g}")
        print(f"wrote {out}" + (f" and {plot}" if plot else ""))
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
        _writable(out / "bench.md")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from benchmarks.suite import run

    run(quick=args.quick, out_dir=out)
    return 0


def _cmd_serve(args) -> int:
    from ess.limits import Limits
    from ess.params import check_int
    from ess.service import serve

    names = ("max_d", "max_grid", "max_chains", "max_work", "workers", "max_queue", "sync_cells")
    limits = Limits(**{n: getattr(args, n) for n in names}).checked()
    port = check_int("port", args.port, 0, 65535)
    level = check_choice("log_level", args.log_level, ("warning", "info", "debug"))
    return serve(host=args.host, port=port, store=args.store, limits=limits, log_level=level)


_COMMANDS = {"estimate": _cmd_estimate, "threshold": _cmd_threshold, "table": _cmd_table,
             "heatmap": _cmd_heatmap, "simulate": _cmd_simulate, "bench": _cmd_bench,
             "serve": _cmd_serve}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for bad input)."""
    ap = build_parser()
    try:
        args = ap.parse_args(argv)
    except SystemExit as e:   # --help, --version, or a usage error (status 2)
        return e.code if isinstance(e.code, int) else 0
    if args.command is None:
        ap.print_help()
        return 2
    try:
        return _COMMANDS[args.command](args)
    except ParameterError as e:
        print(f"ess: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ess: interrupted", file=sys.stderr)
        return 130


def main_entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
