"""Build the notebooks (``notebooks/*.ipynb``) from their sources in ``notebooks/src``.

Each source is a Python file in the "percent" format: cells start with ``# %%``
(code) or ``# %% [markdown]`` (text, every line a ``# `` comment). Edit the
source, then run ``python notebooks/build.py``; ``tests/test_notebooks.py``
checks that the notebooks are up to date and runs them at the small size.
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


def main() -> int:
    for src in sorted((HERE / "src").glob("*.py")):
        target = HERE / f"{src.stem}.ipynb"
        nbformat.write(build(src), target)
        print(f"wrote {target.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
