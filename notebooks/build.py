"""Build the notebooks (``notebooks/*.ipynb``) from their sources in ``notebooks/src``.

Each source is a Python file in the "percent" format: cells start with ``# %%``
(code) or ``# %% [markdown]`` (text, every line a ``# `` comment). Edit the
source, then run ``python notebooks/build.py``; ``tests/test_notebooks.py``
checks that the notebooks are up to date and runs them at the small size.

``python notebooks/build.py --execute [NAME ...]`` also runs the notebooks (all, or
those whose names start with a NAME) top to bottom at the size ``ESS_NB_SIZE`` says
(full by default, which rewrites ``docs/figures/``) and saves the executed copies,
outputs included, to ``notebooks/executed/`` (not committed).
"""

from __future__ import annotations

import sys
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


def build(src: Path) -> nbformat.NotebookNode:
    """The notebook of one source file."""
    nb = nbformat.v4.new_notebook()
    nb.cells = cells(src.read_text())
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    return nb


def execute(nb: nbformat.NotebookNode, name: str) -> None:
    """Run a notebook in a fresh kernel, in this folder, and save the executed copy."""
    import time

    from nbclient import NotebookClient

    t0 = time.perf_counter()
    NotebookClient(nb, timeout=3600, kernel_name="python3",
                   resources={"metadata": {"path": str(HERE)}}).execute()
    out = HERE / "executed" / f"{name}.ipynb"
    out.parent.mkdir(exist_ok=True)
    nbformat.write(nb, out)
    print(f"ran {name} in {time.perf_counter() - t0:.0f} s -> {out.relative_to(HERE.parent)}")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    run = "--execute" in args
    names = [a for a in args if a != "--execute"]
    for src in sorted((HERE / "src").glob("*.py")):
        nb = build(src)
        target = HERE / f"{src.stem}.ipynb"
        nbformat.write(nb, target)
        print(f"wrote {target.relative_to(HERE.parent)}")
        if run and (not names or any(src.stem.startswith(n) for n in names)):
            execute(nb, src.stem)
    return 0


if __name__ == "__main__":
    sys.exit(main())
