"""`PostgresBus` on a real PostgreSQL: wake-ups cross processes' buses, and a listener whose
connection is killed reconnects, wakes everyone (what it missed is in the database) and hears
again."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from opsflow.runtime.pg_bus import PostgresBus
from tests.conftest import BACKENDS, _pg_admin, blank_pg_database

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif("postgresql" not in BACKENDS, reason="LISTEN/NOTIFY is PostgreSQL's"),
]


@pytest.fixture
def pg_url() -> Iterator[str]:
    with blank_pg_database("opsflow_bus") as url:
        yield url


@pytest.fixture
def buses(pg_url: str) -> Iterator[tuple[PostgresBus, PostgresBus]]:
    """Two buses on one database, as two replicas would have, both listening."""
    pair = (PostgresBus(pg_url), PostgresBus(pg_url))
    for bus in pair:
        bus.start()
    for bus in pair:
        assert bus.connected.wait(10)
    yield pair
    for bus in pair:
        bus.stop()


def kill_listeners(pg_url: str) -> int:
    """Terminate the database's LISTEN connections, as a PostgreSQL restart would."""
    dbname = pg_url.rsplit("/", 1)[1]
    with _pg_admin() as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND query LIKE 'LISTEN%%'",
            (dbname,),
        ).fetchall()
    return len(rows)


@pytest.mark.anyio
async def test_a_change_on_one_bus_wakes_the_watchers_of_another(
    buses: tuple[PostgresBus, PostgresBus],
) -> None:
    here, there = buses
    async with there.watch_execution("ex-1") as watch, there.watch_jobs() as jobs:
        watch.clear()
        here.executions_changed(["ex-1"])
        here.jobs_queued()
        assert await watch.wait(5)
        assert await jobs.wait(5)
        here.executions_changed(["ex-other"])
        assert not await watch.wait(0.5), "a change of another execution woke this watcher"


@pytest.mark.anyio
async def test_a_listener_that_lost_its_connection_wakes_everyone_and_hears_again(
    buses: tuple[PostgresBus, PostgresBus], pg_url: str
) -> None:
    here, there = buses
    async with there.watch_execution("ex-2") as watch:
        watch.clear()
        assert kill_listeners(pg_url) == 2
        assert await watch.wait(10), "no wake-up after the reconnect"
        assert await asyncio.to_thread(there.connected.wait, 10)
        assert await asyncio.to_thread(here.connected.wait, 10)
        watch.clear()
        here.executions_changed(["ex-2"])
        assert await watch.wait(5), "nothing heard after the reconnect"
