"""What a long step prints while it runs: one line every few seconds, pure (no pyinfra).

A line is ``<what>: <elapsed> s, <the newest line the step wrote>`` (``<what>: <elapsed> s``
while it has written nothing), the way pyinfra's own per-host lines look once the host's
prefix is in front: ``[egograph-prod] download ubuntu-24.04…: 12 s, 32768K ........ 25% …``.
Steps that end within :data:`EVERY` seconds print nothing.

The controller-side waits (PVE tasks) format their lines here; a command on the target
prints its own (:func:`deploys.common.shell.with_heartbeat`, the same form).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

EVERY = 4
"""Seconds between two progress lines of one step (and before the first)."""

MAX_LINE = 160
"""A quoted log line is cut to this many characters."""

_CREDENTIALS = re.compile(r"://[^/@\s]+@")
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]")


def redact(line: str) -> str:
    """``line`` with the credentials of any URL in it masked (``https://***@host/…``) and
    control characters (colours, carriage returns) dropped, cut to :data:`MAX_LINE`."""
    line = _UNPRINTABLE.sub("", line)
    line = _CREDENTIALS.sub("://***@", line)
    return line[:MAX_LINE]


def progress_line(what: str, elapsed: float, last: str = "") -> str:
    """``<what>: <elapsed> s[, <last>]`` (whole seconds, rounded down)."""
    text = f"{what}: {int(elapsed)} s"
    shown = redact(last).strip()
    return f"{text}, {shown}" if shown else text


class Throttle:
    """Says when the next progress line is due: ``every`` seconds after the start, then
    every ``every`` seconds (never two within ``every``, however often it is asked)."""

    def __init__(self, every: float = EVERY, clock: Callable[[], float] = time.monotonic):
        self.every = every
        self.clock = clock
        self.start = clock()
        self._next = self.start + every

    def due(self) -> float | None:
        """The elapsed seconds when a line is due now (and the next one is scheduled),
        else None."""
        now = self.clock()
        if now < self._next:
            return None
        # A late check (a slow poll) does not make the lines after it bunch up.
        self._next = now + self.every
        return now - self.start
