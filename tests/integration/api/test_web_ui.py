"""The server serves the web UI's build at ``/`` (deep links fall back to index.html), says how
to build it when there is none, and serves Swagger UI from the package (no CDN)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from opsflow.api.app import create_app
from opsflow.config import Settings

INDEX = "<!doctype html><title>opsflow</title><script src=/assets/app-3f9a1c.js></script>"


@pytest.fixture
def build(tmp_path: Path) -> Path:
    """A stand-in for Vite's output: index.html, a hashed asset and an unhashed file."""
    root = tmp_path / "web_dist"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text(INDEX)
    (root / "assets" / "app-3f9a1c.js").write_text("console.log('opsflow')")
    (root / "favicon.svg").write_text("<svg/>")
    (tmp_path / "secret.txt").write_text("outside the build")
    return root


def app_client(settings: Settings, web_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(dataclasses.replace(settings, web_dir=web_dir), extensions=[])) as c:
        yield c


@pytest.fixture
def ui(settings: Settings, build: Path) -> Iterator[TestClient]:
    yield from app_client(settings, build)


@pytest.fixture
def no_ui(settings: Settings, tmp_path: Path) -> Iterator[TestClient]:
    yield from app_client(settings, tmp_path / "never-built")


def test_deep_links_get_index_html_that_is_never_cached(ui: TestClient) -> None:
    for path in ["/", "/workflows", "/executions/abc123?step=apply&tab=logs", "/login"]:
        response = ui.get(path)
        assert response.status_code == 200, path
        assert response.text == INDEX
        assert response.headers["content-type"].startswith("text/html")
        assert response.headers["cache-control"] == "no-cache"
    assert ui.head("/executions/abc123").status_code == 200


def test_hashed_assets_are_cached_for_a_year_and_other_files_revalidated(ui: TestClient) -> None:
    asset = ui.get("/assets/app-3f9a1c.js")
    assert asset.status_code == 200 and asset.text == "console.log('opsflow')"
    assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
    icon = ui.get("/favicon.svg")
    assert icon.status_code == 200 and icon.headers["cache-control"] == "no-cache"
    gone = ui.get("/assets/app-0ld.js")
    assert gone.status_code == 404, "a stale asset is not answered with index.html"


def test_api_paths_and_files_outside_the_build_are_never_the_ui(ui: TestClient) -> None:
    unknown = ui.get("/api/v1/no-such-route")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    assert ui.get("/api/v1/healthz").status_code == 404
    assert ui.get("/healthz").json() == {"status": "ok"}
    escaped = ui.get("/%2e%2e/secret.txt")
    assert "outside the build" not in escaped.text


def test_without_a_build_every_ui_path_says_how_to_build_it(no_ui: TestClient) -> None:
    for path in ["/", "/executions/abc123"]:
        page = no_ui.get(path)
        assert page.status_code == 503
        assert page.headers["content-type"].startswith("text/html")
        assert "npm --prefix web ci &amp;&amp; npm --prefix web run build" in page.text
        assert "make run" in page.text
        assert 'href="/api/v1/docs"' in page.text and "opsflow --help" in page.text


def test_api_docs_load_only_same_origin_assets(no_ui: TestClient) -> None:
    page = no_ui.get("/api/v1/docs")
    assert page.status_code == 200
    refs = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert refs, page.text
    urls = re.findall(r"url: '([^']+)'", page.text)
    assert urls == ["/api/v1/openapi.json"]
    for ref in [*refs, *urls]:
        assert ref.startswith("/") and not ref.startswith("//"), ref
        assert no_ui.get(ref).status_code == 200, ref
    script = no_ui.get("/api/v1/docs/assets/swagger-ui-bundle.js")
    assert "SwaggerUIBundle" in script.text[:2000]
