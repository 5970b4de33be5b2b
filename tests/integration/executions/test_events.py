"""Live events over SSE: they arrive while the run goes on, end with ``end``, and a client
that reconnects with ``Last-Event-ID`` gets every event once, in order."""

from __future__ import annotations

import time
from typing import Any

import pytest

from opsflow.runtime.host import RuntimeHost
from opsflow.status import ExecutionStatus, LogStream, StepStatus
from opsflow.store import jobs as jobs_store
from opsflow.store import logs as logs_store
from opsflow.store.jobs import Job
from opsflow.store.logs import LogLine
from opsflow.store.session import Session

from .conftest import TEST_TIMEOUT, Api, Event, sse_events

pytestmark = pytest.mark.timeout(TEST_TIMEOUT)

SLOW = """\
id: slow-step
steps:
  - id: nap
    type: script
    shell: sh
    run: |
      echo "going to sleep"
      sleep 1
      echo "awake"
  - id: after
    type: script
    shell: sh
    needs: [nap]
    run: echo "after the nap"
"""


def ids(events: list[Event]) -> list[str]:
    return [e.id for e in events if e.kind != "end"]


def find(events: list[tuple[float, Event]], kind: str, **data: Any) -> float:
    """When the first event of ``kind`` whose data has ``data`` arrived."""
    for arrived, event in events:
        if event.kind == kind and all(event.data.get(k) == v for k, v in data.items()):
            return arrived
    raise AssertionError(f"no {kind} event with {data}: {[e for _, e in events]}")


def test_events_arrive_while_the_step_runs_and_the_stream_ends_with_end(api: Api) -> None:
    api.publish(SLOW)
    started = api.start("slow-step")
    arrivals: list[tuple[float, Event]] = []
    with api.client.stream("GET", f"/api/v1/executions/{started['id']}/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for event in sse_events(response):
            arrivals.append((time.monotonic(), event))

    running = find(arrivals, "step", step="nap", status=StepStatus.RUNNING)
    first_line = find(arrivals, "log", step="nap", text="going to sleep")
    succeeded = find(arrivals, "step", step="nap", status=StepStatus.SUCCEEDED)
    # The script sleeps 1 s between its first line and its end; live means we saw both before.
    assert succeeded - running > 0.5
    assert succeeded - first_line > 0.5

    kinds = [e.kind for _, e in arrivals]
    assert kinds[-1] == "end" and kinds.count("end") == 1
    assert {"execution", "step", "job", "log", "engine"} <= set(kinds)
    statuses = [e.data["status"] for _, e in arrivals if e.kind == "execution"]
    assert statuses[-1] == ExecutionStatus.COMPLETED
    jobs = [(e.data["step"], e.data["status"]) for _, e in arrivals if e.kind == "job"]
    assert ("nap", "running") in jobs and ("nap", "completed") in jobs
    # A step's lines come between its start and its end.
    order = [e for _, e in arrivals]
    nap_lines = [i for i, e in enumerate(order) if e.kind == "log" and e.data["step"] == "nap"]
    after_start = next(
        i
        for i, e in enumerate(order)
        if e.kind == "step" and e.data == {**e.data, "step": "after", "status": "running"}
    )
    assert max(nap_lines) < after_start


def test_a_finished_run_replays_its_whole_history(api: Api) -> None:
    api.publish(SLOW.replace("sleep 1", "true"))
    detail = api.run("slow-step")
    events = api.events(detail["id"])
    assert [e.kind for e in events].count("end") == 1 and events[-1].kind == "end"
    texts = [e.data["text"] for e in events if e.kind == "log"]
    assert [t for t in texts if not t.startswith(("running ", "exit code"))] == [
        "going to sleep",
        "awake",
        "after the nap",
    ]
    assert api.events(detail["id"]) == events, "the history reads the same every time"


def test_resuming_with_last_event_id_skips_nothing_and_repeats_nothing(api: Api) -> None:
    api.publish(SLOW.replace("sleep 1", "true"))
    detail = api.run("slow-step")
    full = api.events(detail["id"])
    whole = ids(full)
    assert len(set(whole)) == len(whole), "every event has its own id"
    for cut in (0, 3, len(whole) // 2, len(whole) - 2, len(whole) - 1):
        resumed = api.events(detail["id"], last_event_id=whole[cut])
        assert ids(resumed) == whole[cut + 1 :], f"resumed after {whole[cut]}"
        assert resumed[-1].kind == "end"
    # Browsers cannot set headers on EventSource; `after` in the query does the same.
    with api.client.stream(
        "GET", f"/api/v1/executions/{detail['id']}/events", params={"after": whole[3]}
    ) as response:
        assert ids(list(sse_events(response))) == whole[4:]


def test_a_dropped_connection_resumes_mid_run_where_it_stopped(api: Api) -> None:
    api.publish(SLOW)
    started = api.start("slow-step")
    first: list[Event] = []
    with api.client.stream("GET", f"/api/v1/executions/{started['id']}/events") as response:
        for event in sse_events(response):
            first.append(event)
            if event.kind == "log" and event.data["text"] == "going to sleep":
                break  # hang up while the step sleeps
    assert api.detail(started["id"])["status"] == ExecutionStatus.RUNNING

    rest = api.events(started["id"], last_event_id=first[-1].id)
    assert rest[-1].kind == "end"
    assert ids(first) + ids(rest) == ids(api.events(started["id"]))
    assert next(e.data["text"] for e in rest if e.kind == "log") == "awake"


TWO_SLEEPERS = """\
id: two-sleepers
steps:
  - {id: a, type: script, shell: sh, run: "echo a is up; sleep 30"}
  - {id: b, type: script, shell: sh, run: "echo b is up; sleep 30"}
"""


def forge_line(session: Session, job: Job, text: str) -> None:
    """Store one more stdout line of ``job`` as its agent would, in ``session``'s transaction."""
    (current,) = [
        j for j in jobs_store.jobs_of_execution(session, job.execution_id) if j.id == job.id
    ]
    line = LogLine(seq=current.last_seq + 1, at=time.time(), stream=LogStream.STDOUT, text=text)
    assert job.lease_token is not None
    logs_store.append(
        session,
        job_id=job.id,
        token=job.lease_token,
        execution_id=job.execution_id,
        step_id=job.step_id,
        lines=[line],
    )


def test_a_follower_gets_a_line_that_commits_after_a_later_numbered_one(
    api: Api, request: pytest.FixtureRequest
) -> None:
    """Two jobs' log batches commit in the opposite order of their ids, as two agents'
    batches can; a follower connected throughout must still get both lines."""
    services = api.client.app.state.services  # type: ignore[attr-defined]
    postgresql = services.settings.db_url.startswith("postgresql")
    host: RuntimeHost = services.extra["runtime"]
    api.publish(TWO_SLEEPERS)
    execution_id = api.start("two-sleepers")["id"]
    received: list[Event] = []
    with api.client.stream("GET", f"/api/v1/executions/{execution_id}/events") as response:
        stream = sse_events(response)

        def read_until(*texts: str) -> None:
            """Read until every one of ``texts`` was received as a log line."""
            for event in stream:
                received.append(event)
                logged = {e.data["text"] for e in received if e.kind == "log"}
                if logged >= set(texts):
                    return
            raise AssertionError(f"the stream ended before the lines {texts}")

        read_until("a is up", "b is up")
        with services.session() as session:
            job_a, job_b = sorted(
                jobs_store.jobs_of_execution(session, execution_id), key=lambda j: j.step_id
            )
        if postgresql:
            with services.session() as held:
                forge_line(held, job_a, "numbered first, committed last")
                with services.session() as session:
                    forge_line(session, job_b, "numbered last, committed first")
                host.bus.executions_changed([execution_id])  # as the runtime does on commit
                read_until("numbered last, committed first")
        else:  # SQLite has one writer at a time: ids are always committed in order
            with services.session() as session:
                forge_line(session, job_a, "numbered first, committed last")
            with services.session() as session:
                forge_line(session, job_b, "numbered last, committed first")
        host.bus.executions_changed([execution_id])
        cancelled = api.client.post(
            f"/api/v1/executions/{execution_id}/cancel", json={"mode": "force"}
        )
        assert cancelled.status_code == 200, cancelled.text
        received.extend(stream)
    assert received[-1].kind == "end"
    texts = [e.data["text"] for e in received if e.kind == "log"]
    assert "numbered first, committed last" in texts
    stored = [line["text"] for line in api.logs(execution_id)]
    assert sorted(texts) == sorted(stored)


PARALLEL_CHATTER = "id: parallel-chatter\nsteps:\n" + "".join(
    f"  - {{id: talk{n}, type: script, shell: sh, run: \"yes 'talk{n} says' | head -n 200\"}}\n"
    for n in range(16)
)


LOST_BATCH = (
    "src bug: agent/loop.py Agent._execute cancels the log flusher when the script ends; a "
    "batch it already took from the sink is lost (or overtaken by the final report and then "
    "dropped as a resend), leaving '[opsflow] log lines a..b were lost in transit'"
)


def test_every_line_of_jobs_running_side_by_side_is_stored(
    api: Api, request: pytest.FixtureRequest
) -> None:
    """Sixteen chatty jobs at once; every line of every job must be stored. A race decides
    whether a run loses lines, so up to three runs are tried."""
    api.publish(PARALLEL_CHATTER)
    for _ in range(3):
        detail = api.run("parallel-chatter")
        assert detail["status"] == ExecutionStatus.COMPLETED
        lines = api.logs(detail["id"], limit=10000)
        lost = [line["text"] for line in lines if "lost in transit" in line["text"]]
        assert lost == [], lost
        assert len([line for line in lines if line["stream"] == "stdout"]) == 16 * 200


def test_a_garbled_last_event_id_is_refused(api: Api) -> None:
    api.publish(SLOW.replace("sleep 1", "true"))
    detail = api.run("slow-step")
    response = api.client.get(
        f"/api/v1/executions/{detail['id']}/events", headers={"Last-Event-ID": "yesterday"}
    )
    assert response.status_code == 422, response.text
    assert "Last-Event-ID" in response.json()["detail"]


def test_events_of_an_unknown_execution_are_not_found(api: Api) -> None:
    response = api.client.get("/api/v1/executions/no-such-execution/events")
    assert response.status_code == 404, response.text
