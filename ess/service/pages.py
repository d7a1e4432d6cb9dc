"""What ``ess serve`` shows a browser: the calculator page at ``/``, the API docs at
``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), and the figures of ``/v1/figures``.

Everything a page loads comes from this server: the calculator's HTML, script
and style from ``ess/service/static`` (package data, no third-party code: its
chart is SVG drawn by its own script), Swagger UI's and ReDoc's files from the
``fastapi-standalone-docs`` package (Swagger UI under the Apache 2.0 licence,
ReDoc under MIT; their licence files are served beside them). No CDN, no
fonts from elsewhere, no validator badge: the pages work on an air-gapped
cluster.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

#: The calculator's files (package data).
STATIC = Path(__file__).resolve().parent / "static"
#: Figure formats of ``/v1/figures`` and their media types.
FIGURE_TYPES = {"svg": "image/svg+xml", "png": "image/png"}

pages = APIRouter(include_in_schema=False)


def docs_assets() -> Path | None:
    """Folder of Swagger UI's and ReDoc's files (``swagger/``, ``redoc/``), shipped by
    the ``fastapi-standalone-docs`` package (a dependency of ess); ``None`` when that
    package is missing (``/docs`` then says how to install it)."""
    try:
        import fastapi_standalone_docs
    except ImportError:
        return None
    return Path(fastapi_standalone_docs.__file__).resolve().parent / "static"


_NO_ASSETS = HTMLResponse(
    "<!doctype html><title>ess: API docs</title><p>The API docs need the files of Swagger UI "
    "and ReDoc from the Python package <code>fastapi-standalone-docs</code> (a dependency of "
    "ess): <code>pip install fastapi-standalone-docs</code>, then restart <code>ess serve"
    "</code>. The schema itself is at <a href='openapi.json'>/openapi.json</a>.</p>",
    status_code=503)


def _root(request: Request) -> str:
    return request.scope.get("root_path", "").rstrip("/")


@pages.get("/")
async def calculator() -> FileResponse:
    """The calculator page."""
    return FileResponse(STATIC / "index.html", media_type="text/html")


@pages.get("/docs")
async def swagger(request: Request) -> HTMLResponse:
    """Swagger UI from this server's files; no validator badge (it would call
    another host)."""
    if docs_assets() is None:
        return _NO_ASSETS
    root = _root(request)
    return get_swagger_ui_html(
        openapi_url=f"{root}/openapi.json", title="ess: API docs",
        swagger_js_url=f"{root}/assets/swagger/swagger-ui-bundle.js",
        swagger_css_url=f"{root}/assets/swagger/swagger-ui.css",
        swagger_favicon_url=f"{root}/static/favicon.svg",
        oauth2_redirect_url=f"{root}/docs/oauth2-redirect",
        swagger_ui_parameters={"validatorUrl": None, "tryItOutEnabled": True})


@pages.get("/docs/oauth2-redirect")
async def swagger_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@pages.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    """ReDoc from this server's files, without Google's fonts."""
    if docs_assets() is None:
        return _NO_ASSETS
    root = _root(request)
    return get_redoc_html(openapi_url=f"{root}/openapi.json", title="ess: API reference",
                          redoc_js_url=f"{root}/assets/redoc/redoc.standalone.js",
                          redoc_favicon_url=f"{root}/static/favicon.svg",
                          with_google_fonts=False)


def add_pages(app: FastAPI) -> None:
    """Add the calculator, the docs and their files to ``app``."""
    app.include_router(pages)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    assets = docs_assets()
    if assets is not None:
        app.mount("/assets/swagger", StaticFiles(directory=assets / "swagger"), name="swagger")
        app.mount("/assets/redoc", StaticFiles(directory=assets / "redoc"), name="redoc")


#: matplotlib figures are drawn one at a time (its text and font caches are shared).
_DRAWING = threading.RLock()


def figure_bytes(fig, fmt: str) -> bytes:
    """``fig`` as SVG or PNG, laid out as ``ess heatmap`` saves it."""
    buf = io.BytesIO()
    with _DRAWING:
        fig.savefig(buf, format=fmt, dpi=130, bbox_inches="tight", pad_inches=0.08)
    return buf.getvalue()


def threshold_heatmap(results, fmt: str) -> bytes:
    """The threshold heatmap of ``results``, by :func:`ess.report.threshold_heatmap`
    (the code of ``ess heatmap``)."""
    from ess import report

    with _DRAWING:
        return figure_bytes(report.threshold_heatmap(results), fmt)
