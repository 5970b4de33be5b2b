"""Measuring CPU time inside a long test session.

Once the suite has run for a while, its heap holds millions of objects and one full garbage
collection costs hundreds of milliseconds of CPU; it lands in whatever code happens to allocate
when the collector's thresholds trip. That is the test process's cost, not the measured code's,
so every timing assertion measures inside `collector_held`.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_held() -> Iterator[None]:
    """Collect once, then keep the garbage collector off until the block ends."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
