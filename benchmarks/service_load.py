"""Load on `ess serve`: concurrent clients, a mix of store hits and new computations.

Run ``python -m benchmarks.service_load`` (or ``make bench-service``) from a
checkout: it starts a server on 127.0.0.1 (a free port, a fresh store, an access
token per client), fills the store with some answers, then lets 20 clients send
200 requests in all, half
repeats of stored answers and half small new estimates, while another thread
asks ``/v1/health`` every 50 ms. Every response is checked against its request,
and the new answers against the Python API computed afterwards in this process
(same seeds). Latencies go to ``benchmarks/results/service_load.{json,md}``.

The test suite runs the same load (``tests/test_service_process.py``) with its checks.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
#: Fields an estimate echoes from its request.
ECHO = ("d", "n_r", "n_s", "lam", "seed", "rel_precision")


class Server:
    """An ``ess serve`` process on 127.0.0.1 and a free port.

    Parameters
    ----------
    store : path
        Result store folder.
    *flags : str
        More ``ess serve`` flags (``--workers 1``, ``--max-queue 0``, ...).
    cache_dir : path, optional
        ``ESS_CACHE_DIR`` of the server (its own reference curves); the
        compiled kernels are shared with this process.
    preexec_fn : callable, optional
        Run in the server's process before it starts (e.g. to lower its
        file-descriptor limit).
    """

    def __init__(self, store: str | os.PathLike, *flags: str,
                 cache_dir: str | os.PathLike | None = None, timeout: float = 120.0,
                 preexec_fn=None) -> None:
        import ess.config

        env = dict(os.environ)
        env.pop("ESS_STORE", None)
        env["NUMBA_CACHE_DIR"] = str(ess.config.kernel_cache_root())   # this process's kernels
        if cache_dir is not None:
            env["ESS_CACHE_DIR"] = str(cache_dir)
        self.store = Path(store)
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ess", "serve", "--port", "0", "--store", str(store),
             *flags], stdout=subprocess.PIPE, stderr=self.log, text=True, env=env,
            preexec_fn=preexec_fn)
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if "listening on http://" not in line:
            self.proc.kill()
            raise RuntimeError(f"ess serve did not start: {line!r} {self.stderr()}")
        self.url = line.split("listening on ")[1].split()[0]

    def client(self, timeout: float = 300.0) -> httpx.Client:
        """An HTTP client for this server (no proxy from the environment)."""
        return httpx.Client(base_url=self.url, timeout=timeout, trust_env=False)

    def stderr(self) -> str:
        """What the server wrote on standard error so far."""
        self.log.seek(0)
        return self.log.read()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        """Send ``sig`` and wait for the process; its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc) -> None:
        self.stop(signal.SIGKILL if exc[0] is not None else signal.SIGTERM)


def _new_request(i: int) -> dict:
    """A small estimate nobody asked before (its own seed)."""
    return {"d": 1, "n_r": 100, "n_s": (0, 50, 100, 200)[i % 4], "lam": (0.7, 0.9, 1.0)[i % 3],
            "seed": 10_000 + i, "rel_precision": 0.05}


def _warm_request(i: int) -> dict:
    return {"d": 1 + i % 2, "n_r": 100, "n_s": 50 * (i % 5), "lam": 0.9, "seed": i,
            "rel_precision": 0.05}


def _numbers(d: dict) -> dict:
    return {k: v for k, v in d.items() if k not in ("seconds", "from_store")}


def make_tokens(path: str | os.PathLike, clients: int) -> list[str]:
    """Write a token file for ``clients`` clients (``client-<k> <token>``) for
    ``ess serve --token-file``; their tokens, in order."""
    import secrets

    tokens = [secrets.token_urlsafe(24) for _ in range(clients)]
    Path(path).write_text("".join(f"client-{k} {t}\n" for k, t in enumerate(tokens)))
    return tokens


def run_load(url: str, clients: int = 20, requests: int = 200, warm: int = 20,
             health_every: float = 0.05, tokens: list[str] | None = None) -> dict:
    """Drive the server at ``url``; latencies, and every failure found.

    With ``tokens`` (a server with ``--token-file``), client ``k`` sends
    ``tokens[k % len(tokens)]``; ``/v1/health`` is asked without one.

    Returns
    -------
    dict
        ``latency`` (p50/p99/max in ms for store hits, new computations, all,
        and health), counts, and ``failures``: a list of strings, empty when
        every response was right.
    """
    failures: list[str] = []

    def headers(k: int) -> dict:
        return {"Authorization": f"Bearer {tokens[k % len(tokens)]}"} if tokens else {}

    with httpx.Client(base_url=url, timeout=300, trust_env=False, headers=headers(0)) as c:
        stored = {}
        for i in range(warm):
            r = c.post("/v1/estimate", json=_warm_request(i))
            if r.status_code != 200:
                raise RuntimeError(f"warm-up request failed: {r.status_code} {r.text}")
            stored[i] = r.json()
        alone = []   # one client, one request at a time: the latency of a store hit
        for k in range(50):
            t0 = time.perf_counter()
            r = c.post("/v1/estimate", json=_warm_request(k % warm))
            alone.append(time.perf_counter() - t0)
            if r.status_code != 200 or not r.json()["from_store"]:
                failures.append(f"single-client hit {k}: {r.status_code} {r.text[:200]}")
    plan = []   # (kind, index) in a fixed interleaved order
    for i in range(requests):
        plan.append(("hit", i % warm) if i % 2 == 0 else ("new", i // 2))
    per_client = [(k, plan[k::clients]) for k in range(clients)]
    lat = {"hit": [], "new": []}
    answers: dict[int, dict] = {}
    lock = threading.Lock()
    stop = threading.Event()
    health: list[float] = []

    def poll_health() -> None:
        with httpx.Client(base_url=url, timeout=30, trust_env=False) as h:
            while not stop.is_set():
                t0 = time.perf_counter()
                r = h.get("/v1/health")
                dt = time.perf_counter() - t0
                with lock:
                    health.append(dt)
                    if r.status_code != 200 or r.json().get("status") != "ok":
                        failures.append(f"health: {r.status_code} {r.text[:200]}")
                stop.wait(health_every)

    def client(work: tuple[int, list[tuple[str, int]]]) -> None:
        k, items = work
        with httpx.Client(base_url=url, timeout=300, trust_env=False, headers=headers(k)) as cl:
            for kind, i in items:
                req = _warm_request(i) if kind == "hit" else _new_request(i)
                t0 = time.perf_counter()
                r = cl.post("/v1/estimate", json=req)
                dt = time.perf_counter() - t0
                with lock:
                    lat[kind].append(dt)
                if r.status_code != 200:
                    with lock:
                        failures.append(f"{kind} {req}: {r.status_code} {r.text[:200]}")
                    continue
                body = r.json()
                wrong = [k for k in ECHO if body.get(k) != req[k]]
                if wrong:
                    with lock:
                        failures.append(f"{kind} {req}: answer is for another request ({wrong})")
                elif kind == "hit":
                    if not body["from_store"] or _numbers(body) != _numbers(stored[i]):
                        with lock:
                            failures.append(f"hit {req}: not the stored answer")
                else:
                    with lock:
                        answers[i] = body

    watcher = threading.Thread(target=poll_health, daemon=True)
    watcher.start()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, per_client))
    wall = time.perf_counter() - t0
    stop.set()
    watcher.join()

    import ess  # new answers against the Python API with the same seeds

    for i, body in answers.items():
        ref = ess.estimate(**_new_request(i), store=False).to_dict()
        if _numbers(body) != _numbers(ref):
            failures.append(f"new {_new_request(i)}: differs from the Python API")
    missing = requests - sum(len(v) for v in lat.values())
    if missing:
        failures.append(f"{missing} requests got no answer")

    def stats(xs: list[float]) -> dict:
        a = np.array(xs) * 1e3
        return {"n": len(xs), "p50_ms": float(np.percentile(a, 50)),
                "p99_ms": float(np.percentile(a, 99)), "max_ms": float(a.max())}

    return {"clients": clients, "requests": requests, "wall_seconds": wall,
            "requests_per_second": requests / wall,
            "latency": {"store hit, one client alone": stats(alone),
                        "store hit": stats(lat["hit"]), "new computation": stats(lat["new"]),
                        "all": stats(lat["hit"] + lat["new"]), "health": stats(health)},
            "failures": failures}


def write_results(res: dict, out: Path, command: str) -> None:
    """``service_load.json`` and ``service_load.md`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    meta = {"command": command, "date": time.strftime("%Y-%m-%d %H:%M"),
            "machine": f"{os.cpu_count()} cores, {platform.machine()}, "
                       f"Python {platform.python_version()}"}
    (out / "service_load.json").write_text(json.dumps(meta | res, indent=2) + "\n")
    lines = [f"# Load on `ess serve` ({meta['date']}, {meta['machine']})", "",
             f"`{command}`: first 50 store hits from one client, one at a time; then "
             f"{res['clients']} concurrent clients send {res['requests']} estimate "
             f"requests (half store hits, half new d = 1 estimates at 5% precision), while "
             f"`/v1/health` is polled every 50 ms. Default server settings (2 workers), each "
             f"client with its own access token. Clients and server share the machine's cores.", "",
             "| requests | n | p50 (ms) | p99 (ms) | max (ms) |", "|---|---|---|---|---|"]
    for name, s in res["latency"].items():
        lines.append(f"| {name} | {s['n']} | {s['p50_ms']:.1f} | {s['p99_ms']:.1f} | "
                     f"{s['max_ms']:.1f} |")
    lines += ["", f"Wall time {res['wall_seconds']:.2f} s ({res['requests_per_second']:.0f} "
              f"requests/s); failures: {len(res['failures'])} "
              "(wrong, mixed-up, missing or non-200 answers)."]
    (out / "service_load.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Command line of the load benchmark."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks.service_load",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(RESULTS), help="output folder")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tokens = make_tokens(Path(tmp) / "tokens.txt", 20)
        with Server(Path(tmp) / "store", "--token-file", str(Path(tmp) / "tokens.txt")) as srv:
            res = run_load(srv.url, tokens=tokens)
    write_results(res, Path(args.out), "python -m benchmarks.service_load")
    print((Path(args.out) / "service_load.md").read_text())
    return 1 if res["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
