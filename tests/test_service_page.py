"""The calculator page and the docs without a browser: what ``ess serve`` sends
(``/``, its files, ``/docs``, ``/redoc``, their assets), that none of it names
another host, that an installed copy has the page's files (package data), the
page's CSV columns, and the heatmap figure endpoint. The browser itself is in
``test_service_browser.py``."""

import fnmatch
import re
import tomllib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import ess
from ess.limits import Limits
from ess.service import create_app
from ess.service.auth import Tokens
from ess.service.pages import STATIC
from ess.store import ResultStore

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "page-test-token-0123456789"
#: URLs in a page: src, href and url(...) values.
_LINK = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url\(\s*["']?([^"')]+)""")


@pytest.fixture(scope="module")
def http(tmp_path_factory):
    app = create_app(ResultStore(tmp_path_factory.mktemp("page") / "store"), Limits(),
                     Tokens.from_pairs({"page": TOKEN}))
    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c


def _links(text: str) -> list[str]:
    return [a or b for a, b in _LINK.findall(text)]


def test_page_and_its_files_are_served_without_a_token(http):
    page = http.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    links = _links(page.text)
    assert {"static/style.css", "static/app.js", "static/favicon.svg"} <= set(links)
    for link in links:
        if not link.startswith(("#", "docs", "redoc")):
            assert http.get("/" + link).status_code == 200, link
    assert http.get("/static/app.js").headers["content-type"].startswith(
        ("text/javascript", "application/javascript"))


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_pages_use_this_servers_files_only(http, path):
    page = http.get(path)
    assert page.status_code == 200
    links = _links(page.text)
    assert links, page.text
    for link in links:
        assert link.startswith("/"), f"{path} loads {link} from elsewhere"
        assert http.get(link).status_code == 200, link
    assert "fonts.googleapis" not in page.text and "cdn" not in page.text.lower()
    if path == "/docs":
        assert '"validatorUrl": null' in page.text    # no badge fetched from swagger.io
        assert http.get("/openapi.json").json()["openapi"].startswith("3.1")


def test_the_page_names_no_other_host():
    """Every file of the page: no http(s) URL but SVG's namespace, no CDN."""
    for f in STATIC.iterdir():
        if f.suffix in (".html", ".js", ".css", ".svg"):
            urls = re.findall(r"https?://[^\s\"')]+", f.read_text())
            assert set(urls) <= {"http://www.w3.org/2000/svg"}, (f.name, urls)


def test_package_data_ships_every_file_of_the_page():
    """A non-editable install copies what ``[tool.setuptools.package-data]`` lists."""
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = conf["tool"]["setuptools"]["package-data"]["ess.service"]
    files = [f.relative_to(STATIC.parent).as_posix() for f in STATIC.rglob("*") if f.is_file()]
    assert {"static/index.html", "static/app.js", "static/style.css"} <= set(files)
    for f in files:
        assert any(fnmatch.fnmatch(f, p) for p in patterns), f"{f} is not package data"
    deps = " ".join(conf["project"]["dependencies"])
    assert "fastapi-standalone-docs" in deps     # /docs's files


def test_the_pages_csv_has_ess_tables_columns():
    js = (STATIC / "app.js").read_text()
    block = re.search(r"const CSV_COLUMNS = \[(.*?)\];", js, re.S).group(1)
    columns = re.findall(r'"([^"]+)"', block)
    t = ess.table(n_r=[100], n_s=[0, 50], lam=[0.9], rel_precision=0.05, store=False)
    assert columns == list(t.to_frame().columns)


def test_threshold_heatmap_figure(http):
    body = {"d": 1, "n_r": [50, 100], "lam": [0.8, 0.9], "rel_precision": 0.05, "seed": 5}
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert http.post("/v1/figures/threshold-heatmap", json=body).status_code == 401
    svg = http.post("/v1/figures/threshold-heatmap", json=body, headers=auth)
    assert svg.status_code == 200, svg.text
    assert svg.headers["content-type"] == "image/svg+xml" and "<svg" in svg.text
    # the figure's cells are ess.threshold_grid's (ess heatmap) and /v1/threshold's: it
    # stored them, and the thresholds read back are the Python API's
    grid = ess.threshold_grid(d=1, n_r=[50, 100], lam=[0.8, 0.9], rel_precision=0.05, seed=5,
                              store=False)
    for r in grid:
        one = http.post("/v1/threshold", headers=auth, json={
            "d": 1, "n_r": r.n_r, "lam": r.lam, "rel_precision": 0.05, "seed": 5}).json()
        assert one["from_store"] and one["n_s_star"] == r.n_s_star
    png = http.post("/v1/figures/threshold-heatmap?format=png", json=body, headers=auth)
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("body, query, loc", [
    ({"n_r": [50, 50]}, "", ["body", "n_r"]),
    ({"n_r": [1]}, "", ["body", "n_r", 0]),
    ({"lam": [0.5], "guidance": [1.0]}, "", ["body", "guidance"]),
    ({"n_r": list(range(2, 60)), "lam": [0.1 * k for k in range(1, 10)]}, "",
     ["body", "n_r"]),
    ({}, "?format=gif", ["query", "format"]),
])
def test_threshold_heatmap_refusals(http, body, query, loc):
    r = http.post("/v1/figures/threshold-heatmap" + query, json=body,
                  headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == loc
    assert str(loc[1]) in r.json()["detail"][0]["msg"]


def test_docs_without_their_package_say_how_to_install_it(tmp_path, monkeypatch):
    import ess.service.pages as pages

    monkeypatch.setattr(pages, "docs_assets", lambda: None)
    with TestClient(create_app(ResultStore(tmp_path), Limits()),
                    base_url="http://127.0.0.1") as c:
        for path in ("/docs", "/redoc"):
            r = c.get(path)
            assert r.status_code == 503 and "pip install fastapi-standalone-docs" in r.text
        assert c.get("/").status_code == 200
