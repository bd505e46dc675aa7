"""The API documentation pages, ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), from our own origin.

FastAPI's pages load Swagger UI and ReDoc from a CDN (and ReDoc's fonts from Google): without internet,
or behind a proxy that blocks those, they are blank. The bundles are vendored instead, unmodified, under
``static/apidocs/`` with their licences (versions, sources and checksums in its README.md), and served
here; the pages are FastAPI's own HTML pointed at them. Each page carries a Content-Security-Policy
that allows this origin alone: Swagger UI's one inline script by its hash, computed from the page
itself so it follows a FastAPI upgrade.
"""
from __future__ import annotations

import base64
import hashlib
import mimetypes
import re
from functools import cache
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from stalela.errors import NotFound

ASSETS = Path(__file__).parent / "static" / "apidocs"
PREFIX = "/static/apidocs"
SWAGGER = f"{PREFIX}/swagger-ui"
REDOC = f"{PREFIX}/redoc"
# Every file served, by its URL path under PREFIX: a fixed set, read once (no path is built from input).
FILES = {p.relative_to(ASSETS).as_posix(): p for p in ASSETS.glob("*/*") if p.is_file()}
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)

router = APIRouter(include_in_schema=False)


def _csp(html: str) -> str:
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
                      for s in _INLINE_SCRIPT.findall(html))
    # Both UIs style their components inline; ReDoc runs its search index in a worker made from a blob;
    # the "Try it out" calls (Swagger UI) and the OpenAPI document go to this origin only.
    return (f"default-src 'none'; script-src 'self' {hashes}".rstrip() + "; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src blob:; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def _page(response: HTMLResponse) -> HTMLResponse:
    html = response.body.decode()
    return HTMLResponse(html, headers={"Content-Security-Policy": _csp(html), "X-Content-Type-Options": "nosniff",
                                       "Referrer-Policy": "same-origin"})


@cache
def _swagger(openapi_url: str, title: str) -> HTMLResponse:
    return _page(get_swagger_ui_html(
        openapi_url=openapi_url, title=f"{title} - Swagger UI", swagger_js_url=f"{SWAGGER}/swagger-ui-bundle.js",
        swagger_css_url=f"{SWAGGER}/swagger-ui.css", swagger_favicon_url=f"{SWAGGER}/favicon-32x32.png",
        # The online validator's badge would fetch an image from swagger.io with the document's URL.
        swagger_ui_parameters={"validatorUrl": None}))


@cache
def _redoc(openapi_url: str, title: str) -> HTMLResponse:
    return _page(get_redoc_html(openapi_url=openapi_url, title=f"{title} - ReDoc",
                                redoc_js_url=f"{REDOC}/redoc.standalone.js",
                                redoc_favicon_url=f"{SWAGGER}/favicon-32x32.png", with_google_fonts=False))


@router.get("/docs", response_class=HTMLResponse)
async def swagger_ui(request: Request) -> HTMLResponse:
    return _swagger(request.app.openapi_url, request.app.title)


@router.get("/redoc", response_class=HTMLResponse)
async def redoc(request: Request) -> HTMLResponse:
    return _redoc(request.app.openapi_url, request.app.title)


@router.get(PREFIX + "/{package}/{name}")
async def asset(package: str, name: str) -> FileResponse:
    path = FILES.get(f"{package}/{name}")
    if path is None:
        raise NotFound("no such file", code="not_found")
    media_type = mimetypes.guess_type(path.name)[0] or "text/plain"  # LICENSE, NOTICE
    # Versioned by the package (a new version changes the files, not their names): an hour is cautious.
    return FileResponse(path, media_type=media_type,
                        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"})
