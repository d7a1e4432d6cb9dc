"""The notebooks run top to bottom (at the small size) and match their sources."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
SOURCES = sorted((NOTEBOOKS / "src").glob("*.py"))


def _builder():
    spec = importlib.util.spec_from_file_location("nb_build", NOTEBOOKS / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_source_has_its_notebook_up_to_date():
    """Each tracked notebook is, byte for byte, what ``build.py`` writes from its source
    (cells, stable cell ids, metadata), so building an unchanged source changes nothing."""
    render = _builder().render
    assert len(SOURCES) == 5
    for src in SOURCES:
        text = (NOTEBOOKS / f"{src.stem}.ipynb").read_text(encoding="utf-8")
        assert text == render(src), f"{src.name} changed: run python notebooks/build.py"


def test_build_is_deterministic(tmp_path):
    """Two builds of a source give the same text, with cell ids from the name and index."""
    builder = _builder()
    src = tmp_path / "07_example.py"
    src.write_text("# %% [markdown]\n# # Title\n\n# %%\nx = 1\n\n# %%\nprint(x)\n")
    assert builder.render(src) == builder.render(src)
    nb = builder.build(src)
    assert [c.id for c in nb.cells] == ["07_example-000", "07_example-001", "07_example-002"]
    nbformat.validate(nb)


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_notebook_runs_at_small_size(src, monkeypatch):
    """Every cell runs without error (the notebooks check their own claims with asserts)."""
    monkeypatch.setenv("ESS_NB_SIZE", "small")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOKS / f"{src.stem}.ipynb", as_version=4)
    _builder().run(nb, timeout=600)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
