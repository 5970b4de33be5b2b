"""``/api/v1/docs``: Swagger UI from files inside the installation, so it works offline.

FastAPI's default page loads Swagger UI from a CDN; this one serves the ``swagger-ui-bundle-v2``
package's copy of the Swagger UI distribution (FastAPI's self-hosting recipe), so the page
references only same-origin assets.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path


def install(app: FastAPI, prefix: str) -> None:
    """Add ``{prefix}/docs`` and its assets under ``{prefix}/docs/assets/``."""
    docs = f"{prefix}/docs"
    assets = f"{docs}/assets"
    app.mount(assets, StaticFiles(directory=swagger_ui_path), name="swagger-ui")

    # Plain routes (as FastAPI's own docs_url): pages for people, not API operations.
    async def swagger_ui(_request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=f"{prefix}/openapi.json",
            title=f"{app.title} API",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon-32x32.png",
            oauth2_redirect_url=f"{docs}/oauth2-redirect",
        )

    async def swagger_ui_redirect(_request: Request) -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    app.add_route(docs, swagger_ui, include_in_schema=False)
    app.add_route(f"{docs}/oauth2-redirect", swagger_ui_redirect, include_in_schema=False)
