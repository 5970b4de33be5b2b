"""Every example in ``examples/`` run to its intended end on the demo server (``opsflow
server --demo``), on SQLite and PostgreSQL; the three long end-to-end runs (ansible, agents
with pg_dump and the aws CLI, terraform in two regions) on SQLite only (`END_TO_END`).

What this machine lacks is replaced by local stand-ins: one loopback HTTP server plays the
CDN, the web site, Prometheus and the chat channels (the examples' URLs are pointed at it in
a copy of ``examples/`` the demo loads), and a ``kubectl`` stub answers the scale-out script.
Examples started by webhooks or alerts are run by hand with the params their trigger would
give. Examples whose steps need remote agent pools end, on this machine, with a clear
``pending_reason``, and the demo leaves them out. A notify channel the examples name and the
server lacks writes to the server's log. (``api-deploy`` has its own test.)
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

import httpx
import pytest

from tests.conftest import BACKENDS
from tests.servers import clean_env, free_port, fresh_database, opsflow_executable, run_server

pytestmark = pytest.mark.timeout(180)

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
CDN_TOKEN = "cdn-token-for-the-example-test"
RELEASE = "2.14.0"
LOCAL_INVENTORY = """\
[all:vars]
ansible_connection=local
ansible_python_interpreter={{ ansible_playbook_python }}

[dev]
web-dev-1

[test]
web-test-1
web-test-2

[prod]
web-prod-[1:3]
"""


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class StandIn:
    """The loopback HTTP server that plays every outside service, and what it was sent."""

    url: str
    seen: list[Seen] = field(default_factory=list)

    def to(self, prefix: str) -> list[Seen]:
        return [s for s in self.seen if s.path.startswith(prefix)]


def _handler(stand_in: StandIn) -> type[BaseHTTPRequestHandler]:
    answers: dict[str, tuple[int, Any]] = {
        "/cdn/": (202, {"purged": True}),
        "/site/": (200, "<html>warm</html>"),
        "/prom/": (
            200,
            {"status": "success", "data": {"result": [{"value": [1700000000, "0.93"]}]}},
        ),
        "/notify/": (200, {"ok": True}),
        "/edge/": (200, {"release": "ok"}),
    }

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
            stand_in.seen.append(Seen(self.command, self.path, dict(self.headers), body))
            status, payload = next(
                (a for p, a in answers.items() if self.path.startswith(p)), (404, {})
            )
            if self.path.startswith("/site/") and self.path.endswith("/version"):
                status, payload = 200, RELEASE
            if self.path.startswith("/prom/") and 'namespace="down"' in str(body):
                status, payload = 503, {"status": "error", "error": "unavailable"}
            data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header(
                "Content-Type", "text/html" if isinstance(payload, str) else "application/json"
            )
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture(scope="module")
def stand_in() -> Iterator[StandIn]:
    port = free_port()
    found = StandIn(f"http://127.0.0.1:{port}")
    httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler(found))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield found
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def _fresh_stand_in(stand_in: StandIn) -> None:
    """Each test sees only what its own run sent to the stand-in."""
    stand_in.seen.clear()


def _stand_in_examples(target: Path, url: str, web_root: Path) -> Path:
    """A copy of ``examples/`` whose outside URLs point at the stand-in, whose Ansible hosts
    are this machine, and whose web root is ``web_root``."""
    shutil.copytree(EXAMPLES, target)
    (target / "promote-release" / "inventory" / "hosts.ini").write_text(LOCAL_INVENTORY)
    rewrites: dict[str, list[tuple[str, str]]] = {
        "cache-purge-hook": [
            ("https://cdn.example.net", f"{url}/cdn"),
            ("https://{{ params.host }}", f"{url}/site/{{{{ params.host }}}}"),
        ],
        "incident-autoscale": [("http://prometheus.monitoring.svc:9090", f"{url}/prom")],
        "promote-release": [
            ("https://web.dev.example.internal", f"{url}/site/dev"),
            ("https://web.test.example.internal", f"{url}/site/test"),
            ("https://web.example.internal", f"{url}/site/prod"),
        ],
        "promote-release/deploy.yml": [("/srv/web", str(web_root))],
        "multi-region-rollout": [("https://edge.example.internal", f"{url}/edge")],
    }
    for name, pairs in rewrites.items():
        path = target / name if name.endswith(".yml") else target / name / "workflow.yaml"
        text = path.read_text()
        for old, new in pairs:
            assert old in text, f"{name}: {old} is no longer in the example"
            text = text.replace(old, new)
        path.write_text(text)
    return target


KUBECTL = """#!/bin/sh
# kubectl stand-in: a deployment with 4 replicas that scales and rolls out at once.
case "$*" in
  *"get deployment"*) echo 4 ;;
  *scale*) echo "deployment.apps/$4 scaled" ;;
  *rollout*) echo "deployment successfully rolled out" ;;
  *) echo "kubectl stand-in: unexpected $*" >&2; exit 2 ;;
esac
"""


@dataclass
class Demo:
    url: str
    token: str
    log: Path
    env: dict[str, str]
    examples: Path
    web_root: Path

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        response = httpx.request(
            method,
            f"{self.url}/api/v1{path}",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=60,
            **kwargs,
        )
        assert response.status_code < 300, response.text
        return response.json()

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [opsflow_executable(), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def wait_for(self, execution_id: str, step: str, status: str) -> None:
        """Read the run's events until ``step`` reaches ``status``; fails if the run ends."""
        with httpx.stream(
            "GET",
            f"{self.url}/api/v1/executions/{execution_id}/events",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=httpx.Timeout(30, read=120),
        ) as response:
            kind = ""
            for line in response.iter_lines():
                if line.startswith("event:"):
                    kind = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    data = json.loads(line.split(":", 1)[1])
                    if kind == "step" and (data.get("step"), data.get("status")) == (
                        step,
                        status,
                    ):
                        return
                    if kind == "end":
                        break
        detail = self.api("GET", f"/executions/{execution_id}")
        pytest.fail(f"{step} never became {status}: {_why(detail)}")

    def token_of(self, user: str) -> str:
        """A token of a new operator named ``user``."""
        self.api("POST", "/users", json={"name": user, "role": "operator"})
        token: str = self.api("POST", "/tokens", json={"user": user, "name": "test"})["token"]
        return token

    def run(self, workflow: str, *params: str) -> dict[str, Any]:
        """Run by hand with ``--follow`` until it ends; the execution's detail."""
        args = [a for p in params for a in ("-p", p)]
        done = self.cli("run", workflow, *args, "--follow", "-o", "json")
        detail: dict[str, Any] = json.loads(done.stdout)
        return detail


# The long examples run end to end on SQLite only, as the guide has end-to-end tests do: what
# they store on the server goes through the same store calls as the short examples here, which
# still run on PostgreSQL too, and each has its PostgreSQL variant where the store is the
# subject (approvals: tests/integration/executions, agent jobs: tests/integration/agents,
# terraform state: tests/integration/terraform, all on both backends).
END_TO_END = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture(scope="module", params=BACKENDS)
def db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    yield from fresh_database(request, tmp_path_factory, "demo")


@pytest.fixture(scope="module")
def demo(
    db_url: str, stand_in: StandIn, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Demo]:
    """``opsflow server --demo`` loading the stand-in copy of the examples."""
    cwd = tmp_path_factory.mktemp("demo-cwd")
    web_root = tmp_path_factory.mktemp("web-root")
    examples = _stand_in_examples(cwd / "examples", stand_in.url, web_root)
    bin_dir = tmp_path_factory.mktemp("demo-bin")
    (bin_dir / "kubectl").write_text(KUBECTL)
    (bin_dir / "kubectl").chmod(0o755)
    data_dir = tmp_path_factory.mktemp("demo-data")
    env = {
        **clean_env(),
        "PATH": f"{bin_dir}:{clean_env().get('PATH', '')}",
        "OPSFLOW_ADMIN_PASSWORD": "demo-admin-password",
        **{
            f"OPSFLOW_NOTIFY_{channel.upper().replace('-', '_')}": (
                stand_in.url.replace("http://", "json://") + f"/notify/{channel}"
            )
            for channel in ("web", "releases", "sre-oncall")
        },
    }
    with run_server(db_url, data_dir, "--demo", "--concurrency", "8", cwd=cwd, env=env) as server:
        cli_env = {**clean_env(), "OPSFLOW_URL": server.url, "OPSFLOW_TOKEN": server.token}
        yield Demo(server.url, server.token, server.log, cli_env, examples, web_root)


def _why(detail: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """Each step's status and error: what an assertion on a run's outcome shows."""
    return [(s["id"], s["status"], s["error"]) for s in detail["steps"] if s["error"]]


def _step(detail: dict[str, Any], step_id: str) -> dict[str, Any]:
    (step,) = [s for s in detail["steps"] if s["id"] == step_id]
    found: dict[str, Any] = step
    return found


def test_the_demo_loads_what_its_agent_can_run_and_says_what_it_left_out(demo: Demo) -> None:
    loaded = {w["id"] for w in demo.api("GET", "/workflows")["items"]}
    assert {"hello", "cache-purge-hook", "incident-autoscale", "promote-release"} <= loaded
    assert not loaded & {"nightly-db-backup", "multi-region-rollout"}
    startup = demo.log.read_text()
    assert (
        "demo: left out nightly-db-backup: no agent of this server can run it "
        "(step dump needs an agent of pool db-hosts;" in startup
    )
    assert "demo: left out multi-region-rollout" in startup
    assert "step plan-us needs an agent of pool us-east" in startup
    assert "step apply-eu needs an agent of pool eu-west" in startup


ANNOUNCING = """\
id: demo-announcing
notify: {channel: deploys}
steps:
  - {id: announce, type: notify, title: "Demo check", message: "hello from the demo"}
"""


def test_the_demo_writes_the_channels_its_examples_name_and_it_lacks_to_its_log(
    demo: Demo,
) -> None:
    # web, releases and sre-oncall are set in the environment (to the stand-in): those stay
    startup = demo.log.read_text()
    assert "demo: notify channels data-oncall, deploys write to this log" in startup
    published = httpx.put(
        f"{demo.url}/api/v1/workflows/demo-announcing?publish=true",
        content=ANNOUNCING,
        headers={"Authorization": f"Bearer {demo.token}", "Content-Type": "application/yaml"},
    )
    assert published.status_code in (200, 201), published.text
    detail = demo.run("demo-announcing")
    assert detail["status"] == "completed", _why(detail)
    assert "notify channel deploys: Demo check: hello from the demo" in demo.log.read_text()


def test_hello_runs_to_completion_through_the_short_branch(demo: Demo) -> None:
    detail = demo.run("hello", "who=opsflow", "repeat=2")
    assert detail["status"] == "completed", _why(detail)
    assert _step(detail, "greet")["outputs"]["greeting"] == "Hello, opsflow!"
    assert _step(detail, "is-long")["result"] == "false"
    assert _step(detail, "short")["status"] == "succeeded"
    assert _step(detail, "long")["status"] == "skipped"
    assert _step(detail, "done")["status"] == "succeeded"


def test_cache_purge_hook_purges_the_path_and_warms_it(demo: Demo, stand_in: StandIn) -> None:
    demo.api("PUT", "/secrets/CDN_API_TOKEN", json={"value": CDN_TOKEN})
    # The params the webhook trigger gives for a CMS body {"path": "/blog/launch"}.
    detail = demo.run("cache-purge-hook", "path=/blog/launch", "host=docs.example.com")
    assert detail["status"] == "completed", _why(detail)
    [purge] = stand_in.to("/cdn/")
    assert (purge.method, purge.path) == ("POST", "/cdn/api/v2/zones/docs.example.com/purge")
    assert purge.headers["Authorization"] == f"Bearer {CDN_TOKEN}"
    assert purge.body == {"paths": ["/blog/launch", "/blog/launch/*"], "soft": False}
    [warm] = stand_in.to("/site/")
    assert warm.path == "/site/docs.example.com/blog/launch"
    assert _step(detail, "purge-failed")["status"] == "skipped"
    assert not stand_in.to("/notify/web")


def test_incident_autoscale_scales_out_a_saturated_service_and_says_so(
    demo: Demo, stand_in: StandIn
) -> None:
    # The params the Alertmanager trigger takes from the alert's labels.
    detail = demo.run("incident-autoscale", "service=checkout", "namespace=shop")
    assert detail["status"] == "completed", _why(detail)
    [query] = stand_in.to("/prom/")
    assert query.method == "POST" and 'namespace="shop"' in str(query.body)
    assert _step(detail, "saturated")["result"] == "true"
    assert _step(detail, "scale-out")["outputs"] == {"exit_code": 0, "before": "4", "after": "6"}
    [told] = stand_in.to("/notify/sre-oncall")
    assert told.body["title"] == "checkout scaled out"
    assert "went from 4 to 6 replicas" in told.body["message"]
    assert "Alert: no summary" in told.body["message"]  # run by hand: no alert annotations
    assert _step(detail, "needs-a-human")["status"] == "skipped"


def test_incident_autoscale_tells_a_person_when_prometheus_cannot_be_read(
    demo: Demo, stand_in: StandIn
) -> None:
    detail = demo.run("incident-autoscale", "service=checkout", "namespace=down")
    assert _step(detail, "diagnose")["status"] == "failed"
    assert _step(detail, "needs-a-human")["status"] == "succeeded", _why(detail)
    [told] = [s for s in stand_in.to("/notify/sre-oncall") if "not scaled" in str(s.body)]
    assert told.body["title"] == "checkout is slow and was not scaled"


@pytest.mark.parametrize(
    ("example", "waiting"),
    [
        ("nightly-db-backup", {"dump": "no agent serves pool db-hosts"}),
        (
            "multi-region-rollout",
            {"plan-us": "no agent serves pool us-east", "plan-eu": "no agent serves pool eu-west"},
        ),
    ],
)
def test_an_example_for_remote_pools_says_no_agent_serves_them(
    demo: Demo, example: str, waiting: dict[str, str]
) -> None:
    demo.api("PUT", "/secrets/ORDERS_DB_PASSWORD", json={"value": "orders-db-password-x"})
    applied = demo.cli("apply", "-f", str(demo.examples / example))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    started = demo.cli("run", example)
    assert started.returncode == 0, started.stdout + started.stderr
    execution_id = started.stdout.split()[2]
    detail = demo.api("GET", f"/executions/{execution_id}")
    assert detail["status"] == "running", _why(detail)
    assert {s["id"]: s["pending_reason"] for s in detail["steps"] if s["id"] in waiting} == waiting
    shown = demo.cli("executions", "show", execution_id[:8])
    for step_id, reason in waiting.items():
        (row,) = [x for x in shown.stdout.splitlines() if x.startswith(f"{step_id} ")]
        assert reason in row
    cancelled = demo.cli("cancel", execution_id[:8])
    assert cancelled.returncode == 0, cancelled.stderr


@END_TO_END
@pytest.mark.timeout(300)
def test_promote_release_goes_through_dev_and_test_then_two_approvals_to_production(
    demo: Demo, stand_in: StandIn
) -> None:
    # The params the workflow trigger (build-web-release completed) would give.
    started = demo.cli("run", "promote-release", "-p", f"version={RELEASE}")
    assert started.returncode == 0, started.stdout + started.stderr
    execution_id = started.stdout.split()[2]
    demo.wait_for(execution_id, "approve-prod", "waiting")
    waiting = demo.api("GET", f"/executions/{execution_id}")
    assert _step(waiting, "approve-prod")["pending_reason"] == (
        "waiting for approval by dana, mateo, priya"
    )
    assert (demo.web_root / "releases" / RELEASE / "VERSION").read_text() == f"{RELEASE}\n"

    for person in ("dana", "mateo"):
        as_them = {**demo.env, "OPSFLOW_TOKEN": demo.token_of(person)}
        answered = subprocess.run(
            [opsflow_executable(), "approve", execution_id[:8], "approve-prod", "-n", "ok"],
            env=as_them,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert answered.returncode == 0, answered.stdout + answered.stderr
    demo.wait_for(execution_id, "released", "succeeded")
    detail = demo.api("GET", f"/executions/{execution_id}")
    assert detail["status"] == "completed", _why(detail)
    assert _step(detail, "integration-test")["outputs"]["passed"] == "4"
    stats = _step(detail, "deploy-prod")["outputs"]["stats"]
    assert sorted(stats) == ["web-prod-1", "web-prod-2", "web-prod-3"]
    assert all(s["failed"] == 0 and s["unreachable"] == 0 for s in stats.values())
    asked, released = [t.body["message"] for t in stand_in.to("/notify/releases")]
    assert asked.startswith(f"{RELEASE} passed dev and test (4 checks). Roll out to production?")
    assert f"opsflow approve {execution_id} approve-prod" in asked
    assert released == f"{RELEASE} is live in production."
    assert _step(detail, "promotion-failed")["status"] == "skipped"


@contextmanager
def _agent_of(
    demo: Demo, pool: str, work: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A real ``opsflow agent`` of ``pool`` connected to the demo (its token made through the
    API and given in OPSFLOW_TOKEN, as the docs say); stopped when the block ends."""
    token = demo.api("POST", "/agents/tokens", json={"pool": pool, "name": f"examples-{pool}"})
    work.mkdir(parents=True, exist_ok=True)
    argv = [opsflow_executable(), "agent", "--server", demo.url, "--pool", pool]
    argv += ["--work-dir", str(work)]
    with (work / "agent.log").open("ab") as out:
        process = subprocess.Popen(
            argv,
            env={**clean_env(), **(env or {}), "OPSFLOW_TOKEN": token["token"]},
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=work,
        )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Bucket:
    """What the S3 stand-in holds: (bucket, key) -> (bytes, last modified)."""

    url: str
    objects: dict[tuple[str, str], tuple[bytes, dt.datetime]] = field(default_factory=dict)


def _s3_handler(bucket: Bucket) -> type[BaseHTTPRequestHandler]:
    """The three S3 calls the backup example's aws CLI makes, in S3's own wire format:
    PutObject, ListObjectsV2 (XML) and DeleteObject, path-style."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _target(self) -> tuple[str, str, dict[str, list[str]]]:
            parts = urlsplit(self.path)
            name, _, key = unquote(parts.path).lstrip("/").partition("/")
            return name, key, parse_qs(parts.query)

        def _reply(self, status: int, body: bytes = b"", kind: str = "application/xml") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("ETag", '"stand-in"')
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_PUT(self) -> None:
            name, key, _ = self._target()
            data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            bucket.objects[(name, key)] = (data, dt.datetime.now(dt.UTC))
            self._reply(200)

        def do_GET(self) -> None:
            name, _, query = self._target()
            prefix = query.get("prefix", [""])[0]
            listed = [
                f"<Contents><Key>{escape(key)}</Key>"
                f"<LastModified>{when.strftime('%Y-%m-%dT%H:%M:%S.000Z')}</LastModified>"
                f'<ETag>"stand-in"</ETag><Size>{len(data)}</Size>'
                "<StorageClass>STANDARD</StorageClass></Contents>"
                for (b, key), (data, when) in sorted(bucket.objects.items())
                if b == name and key.startswith(prefix)
            ]
            body = (
                '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult '
                'xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                f"<Name>{escape(name)}</Name><Prefix>{escape(prefix)}</Prefix>"
                f"<KeyCount>{len(listed)}</KeyCount><MaxKeys>1000</MaxKeys>"
                f"<IsTruncated>false</IsTruncated>{''.join(listed)}</ListBucketResult>"
            )
            self._reply(200, body.encode())

        def do_DELETE(self) -> None:
            name, key, _ = self._target()
            bucket.objects.pop((name, key), None)
            self._reply(204)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def s3() -> Iterator[Bucket]:
    port = free_port()
    found = Bucket(f"http://127.0.0.1:{port}")
    httpd = ThreadingHTTPServer(("127.0.0.1", port), _s3_handler(found))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield found
    httpd.shutdown()
    httpd.server_close()


@END_TO_END
@pytest.mark.timeout(300)
def test_nightly_db_backup_dumps_uploads_and_prunes_on_an_agent_of_pool_db_hosts(
    demo: Demo, s3: Bucket, tmp_path: Path
) -> None:
    old = "postgres/test/test-20200101T000000Z.dump"
    s3.objects[("example-backups", old)] = (b"old", dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    demo.api("PUT", "/secrets/ORDERS_DB_PASSWORD", json={"value": "orders-db-password-x"})
    applied = demo.cli("apply", "-f", str(demo.examples / "nightly-db-backup"))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    agent_env = {
        # The aws CLI of the dev extra (the venv's bin first on PATH); pg_dump is PostgreSQL's.
        "PATH": f"{Path(sys.executable).parent}:{clean_env().get('PATH', '/usr/bin:/bin')}",
        # pg_dump reaches the test PostgreSQL (trust), the aws CLI the S3 stand-in.
        "PGHOST": "127.0.0.1",
        "PGPORT": "5432",
        "PGUSER": "postgres",
        "AWS_ENDPOINT_URL": s3.url,
        "AWS_ACCESS_KEY_ID": "stand-in",
        "AWS_SECRET_ACCESS_KEY": "stand-in-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "TMPDIR": str(tmp_path),
    }
    with _agent_of(demo, "db-hosts", tmp_path / "agent", agent_env):
        detail = demo.run("nightly-db-backup", "database=test")
    assert detail["status"] == "completed", _why(detail)
    dumped = _step(detail, "dump")["outputs"]
    assert int(dumped["bytes"]) > 0
    uploaded = _step(detail, "upload")["outputs"]["uploaded"]
    key = uploaded.removeprefix("s3://example-backups/")
    assert key.startswith("postgres/test/test-") and key.endswith(".dump"), uploaded
    data, _ = s3.objects[("example-backups", key)]
    assert data.startswith(b"PGDMP") and len(data) == int(dumped["bytes"])  # pg_dump's format
    assert ("example-backups", old) not in s3.objects  # older than keep_days: pruned
    assert str(_step(detail, "cleanup")["outputs"]["deleted"]) == "1"
    assert not Path(dumped["file"]).exists()  # the upload removed the local dump
    assert _step(detail, "report-failure")["status"] == "skipped"


@END_TO_END
@pytest.mark.timeout(300)
def test_multi_region_rollout_plans_asks_once_applies_both_regions_and_verifies(
    demo: Demo, stand_in: StandIn, tmp_path: Path
) -> None:
    applied = demo.cli("apply", "-f", str(demo.examples / "multi-region-rollout"))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    with (
        _agent_of(demo, "us-east", tmp_path / "us-east"),
        _agent_of(demo, "eu-west", tmp_path / "eu-west"),
    ):
        started = demo.cli("run", "multi-region-rollout", "-p", "release=v7")
        assert started.returncode == 0, started.stdout + started.stderr
        execution_id = started.stdout.split()[2]
        demo.wait_for(execution_id, "approve", "waiting")
        waiting = demo.api("GET", f"/executions/{execution_id}")
        gate = demo.api("GET", f"/executions/{execution_id}/approvals/approve")
        assert "Roll out v7?" in gate["message"], gate
        assert "US: +3 ~0 -0;" in gate["message"] and "EU: +2 ~0 -0." in gate["message"], gate
        assert _step(waiting, "approve")["pending_reason"].startswith("waiting for approval")
        # The demo's admin is in team platform (api-deploy's gate names it).
        answered = demo.cli("approve", execution_id[:8], "approve", "-n", "ship it")
        assert answered.returncode == 0, answered.stdout + answered.stderr
        demo.wait_for(execution_id, "rolled-out", "succeeded")
    detail = demo.api("GET", f"/executions/{execution_id}")
    assert detail["status"] == "completed", _why(detail)
    for step in ("plan-us", "plan-eu", "apply-us", "apply-eu", "verify"):
        assert _step(detail, step)["status"] == "succeeded", _why(detail)
    assert _step(detail, "region-failed")["status"] == "skipped"
    [checked] = stand_in.to("/edge/")
    assert (checked.method, checked.path) == ("GET", "/edge/release")
    # Each region's apply wrote its own workspace's state (the plan's, never the other's).
    states = {s["name"]: s for s in demo.api("GET", "/tfstate")}
    for region, nodes in (("us-east", 3), ("eu-west", 2)):
        state = states[f"multi-region-rollout/infra/{region}"]
        assert state["current"] is not None, states
        outputs = _step(detail, f"apply-{region.split('-')[0]}")["outputs"]
        assert len(json.dumps(outputs)) > 2, outputs
        assert f"edge-{region}-{nodes - 1}" in json.dumps(outputs), outputs
    assert "notify channel deploys: v7 is live in us-east and eu-west." in demo.log.read_text()
