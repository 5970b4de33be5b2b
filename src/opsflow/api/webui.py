"""The web UI: its production build served at ``/``, with a fallback to ``index.html`` so a
deep link (``/executions/abc?step=x``) works after a reload.

The build lives inside the package (``src/opsflow/web_dist/``, gitignored, shipped in the
wheel); ``npm --prefix web run build`` writes it. Vite names the files under ``assets/`` by
their content hash, so they are cached for a year; ``index.html`` is revalidated every time, so
a new build is picked up at once. Without a build, every UI path answers a page that says how
to make one (503), never a 404.
"""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.exceptions import HTTPException

import opsflow
from opsflow.api.services import services_of
from opsflow.errors import NotFound

PACKAGED_BUILD = Path(opsflow.__file__).parent / "web_dist"
HASHED_DIR = "assets/"  # Vite's build.assetsDir: every name in it carries a content hash
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"

router = APIRouter(include_in_schema=False)


def build_dir(request: Request) -> Path:
    """Where this server's UI build is (``OPSFLOW_WEB_DIR`` or the packaged one)."""
    return services_of(request).settings.web_dir or PACKAGED_BUILD


@router.api_route("/{path:path}", methods=["GET", "HEAD"])
def web_ui(request: Request, path: str) -> Response:
    """A file of the build, or ``index.html`` for any other path the API does not own."""
    if path == "api" or path.startswith("api/"):
        raise NotFound(f"no API route {request.url.path}; see /api/v1/docs")
    if path == "hooks" or path.startswith("hooks/"):
        # A hook URL exists for POST; a browser opening it learns so, and from which method.
        raise HTTPException(
            405, "a hook URL takes deliveries by POST only", headers={"Allow": "POST"}
        )
    root = build_dir(request).resolve()
    index = root / "index.html"
    if not index.is_file():
        return missing_build_page(request)
    if path:
        candidate = (root / path).resolve()
        if candidate.is_relative_to(root) and candidate.is_file():
            cache = IMMUTABLE if path.startswith(HASHED_DIR) else REVALIDATE
            return FileResponse(candidate, headers={"Cache-Control": cache})
        if path.startswith(HASHED_DIR):  # a stale asset name: index.html would be wrong here
            raise NotFound(f"no file {request.url.path} in the web UI build")
    return FileResponse(index, media_type="text/html", headers={"Cache-Control": REVALIDATE})


def missing_build_page(request: Request) -> HTMLResponse:
    """503: the server runs, the UI is not built; says how to build it and what works now."""
    where = html.escape(str(build_dir(request)))
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>opsflow: web UI not built</title>
<style>body{{font-family:system-ui,sans-serif;max-width:42rem;margin:3rem auto;padding:0 1rem;
line-height:1.5}}code,pre{{background:#f3f3f3;padding:.1rem .3rem;border-radius:3px}}</style>
</head><body>
<h1>opsflow is running; its web UI is not built</h1>
<p>The server found no <code>index.html</code> in <code>{where}</code>.
Build the UI from the repository root, then reload this page:</p>
<pre>make run</pre>
<p>or, without make:</p>
<pre>npm --prefix web ci &amp;&amp; npm --prefix web run build</pre>
<p>Meanwhile everything works through the API and the CLI:</p>
<ul>
<li><a href="/api/v1/docs">API documentation</a> (try every route in the browser)</li>
<li>the CLI: <code>opsflow --help</code>, for example <code>opsflow workflows list</code>
and <code>opsflow run WORKFLOW</code></li>
</ul>
</body></html>
"""
    return HTMLResponse(body, status_code=503, headers={"Cache-Control": REVALIDATE})
