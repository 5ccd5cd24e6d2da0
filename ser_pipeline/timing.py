"""Seconds per pipeline stage, for logs, progress and the benchmark."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class StageClock:
    """Sums the seconds spent in each named stage; `listener` hears each stage's name as it starts."""

    def __init__(self, listener: Callable[[str], None] | None = None):
        self.seconds: dict[str, float] = {}
        self.listener = listener

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self.listener is not None:
            self.listener(name)
        began = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - began


def describe(stage_seconds: dict[str, float]) -> str:
    """'decode 1.20s, features 0.80s, ...' for logs."""
    return ", ".join(f"{name} {seconds:.2f}s" for name, seconds in stage_seconds.items())
