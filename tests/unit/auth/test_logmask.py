"""The server's log filter: every learned secret masked in whatever a handler writes."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from opsflow.auth.logmask import CHATTY_LOGGERS, SecretLogFilter

VALUE = "hunter2-but-longer"


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO, SecretLogFilter]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("opsflow.test.logmask")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    levels = {name: logging.getLogger(name).level for name in CHATTY_LOGGERS}
    found = SecretLogFilter()
    try:
        yield logger, stream, found
    finally:
        logger.removeHandler(handler)
        for other in [*logging.getLogger().handlers, *_named_handlers()]:
            other.removeFilter(found)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _named_handlers() -> list[logging.Handler]:
    return [
        h
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
        for h in logger.handlers
    ]


def test_installed_filter_masks_messages_arguments_and_tracebacks(
    captured: tuple[logging.Logger, io.StringIO, SecretLogFilter],
) -> None:
    logger, stream, found = captured
    found.install()
    found.learn([VALUE])
    logger.info("GET https://example.com/?token=%s", VALUE)
    logger.info("as JSON: %s", f'{{"t": "{VALUE}"}}')
    logger.info("hex: %s", VALUE.encode().hex())
    try:
        raise RuntimeError(f"refused {VALUE}")
    except RuntimeError:
        logger.exception("a step failed")
    text = stream.getvalue()
    assert VALUE not in text and VALUE.encode().hex() not in text
    assert "token=***" in text and "refused ***" in text
    assert "Traceback" in text  # the traceback is still there, masked


def test_values_learned_after_install_are_masked_too(
    captured: tuple[logging.Logger, io.StringIO, SecretLogFilter],
) -> None:
    logger, stream, found = captured
    found.install()
    logger.info("before anything is known: nothing to mask")
    found.learn(["another-secret-value"])
    logger.info("now: another-secret-value")
    assert stream.getvalue().splitlines()[-1] == "now: ***"


def test_http_libraries_request_lines_are_off(
    captured: tuple[logging.Logger, io.StringIO, SecretLogFilter],
) -> None:
    _, _, found = captured
    found.install()
    for name in CHATTY_LOGGERS:
        assert not logging.getLogger(name).isEnabledFor(logging.INFO)
        assert logging.getLogger(name).isEnabledFor(logging.WARNING)


def test_a_formatter_that_reads_the_arguments_gets_them_masked_and_in_shape() -> None:
    # uvicorn's access formatter unpacks (client, method, path, version, status) from the
    # record's arguments: masking must keep that shape, or every access line fails to print.
    from uvicorn.logging import AccessFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s'))
    found = SecretLogFilter()
    handler.addFilter(found)
    found.learn([VALUE])
    logger = logging.getLogger("opsflow.test.logmask.access")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    errors: list[str] = []
    handler.handleError = lambda record: errors.append(str(record.msg))  # type: ignore[method-assign]
    try:
        args = ("127.0.0.1:5000", "GET", f"/api/v1/x?token={VALUE}", "1.1", 200)
        logger.info('%s - "%s %s HTTP/%s" %d', *args)
        logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5001", "GET", "/plain", "1.1", 404)
    finally:
        logger.removeHandler(handler)
    assert errors == []
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith('127.0.0.1:5000 - "GET /api/v1/x?token=*** HTTP/1.1" 200')
    assert lines[1].startswith('127.0.0.1:5001 - "GET /plain HTTP/1.1" 404')
    assert VALUE not in stream.getvalue()


def test_a_secret_split_between_format_and_argument_or_inside_an_object_is_masked(
    captured: tuple[logging.Logger, io.StringIO, SecretLogFilter],
) -> None:
    logger, stream, found = captured
    found.install()
    found.learn([VALUE])

    class Holder:
        def __str__(self) -> str:
            return f"holder of {VALUE}"

    logger.info("split: hunter2-%s", "but-longer")
    logger.info("object: %s", Holder())
    logger.info("mapping: %(who)s", {"who": VALUE})
    assert stream.getvalue().splitlines() == ["split: ***", "object: holder of ***", "mapping: ***"]
