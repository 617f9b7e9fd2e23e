"""PVE tasks: every mutating call (create, start, reboot, delete, template download) returns
a UPID at once and runs in the background; the deploy waits for it to stop.

A task that ends ``OK`` or ``WARNINGS: n`` succeeded (its ``WARN`` lines are returned to
show); any other exit status is the error text, raised with the task's last log lines.
The shape follows proxmoxer's ``Tasks.blocking_status(prox, upid, ...)``, which returns
None on a timeout and never raises on a failed task.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import PveTaskError, PveTaskTimeout

if TYPE_CHECKING:
    from .client import PveClient

UPID_RE = re.compile(
    r"^UPID:(?P<node>[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):[0-9A-Fa-f]{8}:[0-9A-Fa-f]{8,9}:"
    r"[0-9A-Fa-f]{8}:(?P<type>[^:\s]+):(?P<id>[^:\s]*):(?P<user>[^:\s]+):$"
)
LOG_PAGE = 500


@dataclass(frozen=True)
class TaskResult:
    """A task that finished successfully (``OK`` or ``WARNINGS: n``)."""

    upid: str
    exitstatus: str
    warnings: list[str] = field(default_factory=list)


def parse_upid(upid: str) -> dict[str, str]:
    """Split a UPID into node/type/id/user; raises ValueError when malformed."""
    m = UPID_RE.match(upid)
    if not m:
        raise ValueError(f"not a PVE UPID: {upid!r}")
    return {k: m.group(k) for k in ("node", "type", "id", "user")}


def task_status(api: PveClient, upid: str) -> dict[str, Any]:
    node = parse_upid(upid)["node"]
    return dict(api.get(f"/nodes/{node}/tasks/{upid}/status"))


def task_log(api: PveClient, upid: str, last: int = 20) -> list[str]:
    """The last ``last`` lines of a task log (0: all of it)."""
    node = parse_upid(upid)["node"]
    path = f"/nodes/{node}/tasks/{upid}/log"
    # proxmoxer returns only ``data`` (not ``total``), so page through the log
    lines: list[str] = []
    start = 0
    while True:
        chunk = api.get(path, start=start, limit=LOG_PAGE) or []
        lines.extend(str(item.get("t", "")) for item in chunk)
        if len(chunk) < LOG_PAGE:
            break
        start += LOG_PAGE
    if lines == ["no content"]:
        return []
    return lines[-last:] if last else lines


def wait_task(
    api: PveClient, upid: str, timeout: float = 300.0, poll_interval: float | None = None
) -> TaskResult:
    """Poll until the task stops (every ``poll_interval`` s at most, the client's by
    default): ``OK``/``WARNINGS: n`` → the result; otherwise :class:`PveTaskError`, or
    :class:`PveTaskTimeout` once ``timeout`` has passed."""
    interval_cap = api.poll_interval if poll_interval is None else poll_interval
    deadline = time.monotonic() + timeout
    interval = min(0.1, interval_cap)
    while True:
        status = task_status(api, upid)
        if status.get("status") == "stopped":
            exitstatus = str(status.get("exitstatus", ""))
            if exitstatus == "OK":
                return TaskResult(upid, exitstatus, [])
            if exitstatus.startswith("WARNINGS:"):
                lines = task_log(api, upid, last=0)
                warns = [ln for ln in lines if ln.startswith("WARN")]
                warns = [ln for ln in warns if not ln.startswith("TASK WARNINGS")]
                return TaskResult(upid, exitstatus, warns)
            raise PveTaskError(upid, exitstatus, task_log(api, upid, last=20))
        now = time.monotonic()
        if now >= deadline:
            raise PveTaskTimeout(upid, timeout)
        time.sleep(min(interval, max(0.0, deadline - now)))
        interval = min(interval * 2, interval_cap)
