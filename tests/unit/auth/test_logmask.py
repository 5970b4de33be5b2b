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
