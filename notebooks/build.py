"""Build the notebooks (``notebooks/*.ipynb``) from their sources in ``notebooks/src``.

Each source is a Python file in the "percent" format: cells start with ``# %%``
(code) or ``# %% [markdown]`` (text, every line a ``# `` comment). Edit the
source, then run ``python notebooks/build.py``; ``tests/test_notebooks.py``
checks that the notebooks are up to date and runs them at the small size.

``python notebooks/build.py [NAME ...]`` builds only the notebooks whose names start
with a NAME (``01``, ``02_aug``); ``--execute`` also runs them top to bottom at the size
``ESS_NB_SIZE`` says (full by default, which rewrites ``docs/figures/``) and saves the
executed copies, outputs included, to ``notebooks/executed/`` (not committed).

The build is deterministic: a cell's id is the notebook's name and the cell's index,
and a notebook whose text would not change is not rewritten, so building an unchanged
source leaves the working tree clean.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent


def cells(source: str) -> list:
    """Notebook cells of a percent-format source."""
    out = []
    kind, lines = None, []

    def flush() -> None:
        text = "\n".join(lines).strip("\n")
        if kind == "markdown":
            text = "\n".join(ln[2:] if ln.startswith("# ") else ln.lstrip("#")
                             for ln in text.splitlines())
            out.append(nbformat.v4.new_markdown_cell(text))
        elif kind == "code" and text:
            out.append(nbformat.v4.new_code_cell(text))

    for line in source.splitlines():
        if line.startswith("# %%"):
            flush()
            kind = "markdown" if "[markdown]" in line else "code"
            lines = []
        else:
            lines.append(line)
    flush()
    return out


def cell_id(name: str, index: int) -> str:
    """A stable cell id: the notebook's name and the cell's index (nbformat allows
    1-64 letters, digits, ``-`` and ``_``)."""
    return f"{name[:56]}-{index:03d}"


def build(src: Path) -> nbformat.NotebookNode:
    """The notebook of one source file, with stable cell ids (:func:`cell_id`)."""
    nb = nbformat.v4.new_notebook()
    nb.cells = cells(src.read_text())
    for i, cell in enumerate(nb.cells):
        cell["id"] = cell_id(src.stem, i)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    return nb


def render(src: Path) -> str:
    """The text of the notebook file of one source, as written to ``notebooks/``."""
    text = nbformat.writes(build(src))
    return text if text.endswith("\n") else text + "\n"  # as nbformat.write ends a file


def run(nb: nbformat.NotebookNode, timeout: int = 3600) -> None:
    """Run ``nb`` top to bottom in a fresh kernel started in this folder (outputs in ``nb``).

    On POSIX the kernel talks to the client over IPC sockets in a private temporary
    folder, not over TCP: jupyter_client starts kernels over TCP without CurveZMQ keys
    by default, for which ipykernel >= 7 prints a warning that the traffic is not
    encrypted. The socket path is absolute because the kernel runs in this folder and
    the client in the caller's (a relative path names two different sockets).
    """
    from nbclient import NotebookClient
    from traitlets.config import Config

    config = Config()
    with tempfile.TemporaryDirectory(prefix="ess-nb-") as sockets:
        if os.name == "posix":
            config.KernelManager.transport = "ipc"
            config.KernelManager.ip = os.path.join(sockets, "kernel")
        NotebookClient(nb, timeout=timeout, kernel_name="python3", config=config,
                       resources={"metadata": {"path": str(HERE)}}).execute()


def execute(nb: nbformat.NotebookNode, name: str) -> None:
    """Run a notebook in a fresh kernel, in this folder, and save the executed copy."""
    import time

    t0 = time.perf_counter()
    run(nb)
    out = HERE / "executed" / f"{name}.ipynb"
    out.parent.mkdir(exist_ok=True)
    nbformat.write(nb, out)
    print(f"ran {name} in {time.perf_counter() - t0:.0f} s -> {out.relative_to(HERE.parent)}")


def sources(names: list[str]) -> list[Path]:
    """The sources whose names start with one of ``names`` (every source if none)."""
    every = sorted((HERE / "src").glob("*.py"))
    chosen = [s for s in every if not names or any(s.stem.startswith(n) for n in names)]
    unknown = [n for n in names if not any(s.stem.startswith(n) for s in every)]
    if unknown:
        raise SystemExit(f"build.py: no notebook source starts with {', '.join(unknown)} "
                         f"(sources: {', '.join(s.stem for s in every)})")
    return chosen


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    run = "--execute" in args
    for src in sources([a for a in args if a != "--execute"]):
        target = HERE / f"{src.stem}.ipynb"
        text = render(src)
        rel = target.relative_to(HERE.parent)
        if target.exists() and target.read_text(encoding="utf-8") == text:
            print(f"{rel} is up to date")
        else:
            target.write_text(text, encoding="utf-8")
            print(f"wrote {rel}")
        if run:
            execute(build(src), src.stem)
    return 0


if __name__ == "__main__":
    sys.exit(main())
