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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..common.progress import EVERY, Throttle
from .errors import PveError, PveTaskError, PveTaskTimeout

if TYPE_CHECKING:
    from .client import PveClient

UPID_RE = re.compile(
    r"^UPID:(?P<node>[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):[0-9A-Fa-f]{8}:(?P<pstart>[0-9A-Fa-f]{8,9}):"
    r"(?P<starttime>[0-9A-Fa-f]{8}):(?P<type>[^:\s]+):(?P<id>[^:\s]*):(?P<user>[^:\s]+):$"
)
LOG_PAGE = 500


@dataclass(frozen=True)
class TaskResult:
    """A task that finished successfully (``OK`` or ``WARNINGS: n``)."""

    upid: str
    exitstatus: str
    warnings: list[str] = field(default_factory=list)


def parse_upid(upid: str) -> dict[str, str]:
    """Split a UPID into node/pstart/starttime/type/id/user (``pstart``: the worker
    process's start in clock ticks since boot, ``starttime``: the task's epoch, both hex);
    raises ValueError when malformed."""
    m = UPID_RE.match(upid)
    if not m:
        raise ValueError(f"not a PVE UPID: {upid!r}")
    return {k: m.group(k) for k in ("node", "pstart", "starttime", "type", "id", "user")}


def _started(info: dict[str, str]) -> tuple[int, int]:
    """When a task started, to order tasks: its epoch second, then its worker's start (a
    worker forked by another starts after it, in the same second too)."""
    return int(info["starttime"], 16), int(info["pstart"], 16)


def task_status(api: PveClient, upid: str) -> dict[str, Any]:
    node = parse_upid(upid)["node"]
    return dict(api.get(f"/nodes/{node}/tasks/{upid}/status"))


def task_log(api: PveClient, upid: str, last: int = 20) -> list[str]:
    """The last ``last`` lines of a task log (0: all of it)."""
    lines = task_log_from(api, upid, 0)
    return lines[-last:] if last else lines


def task_log_from(api: PveClient, upid: str, start: int) -> list[str]:
    """The task's log lines after the first ``start`` (all of them from 0), one page at a
    time (proxmoxer returns only ``data``, not ``total``). An empty log reads as ``[{"n": 1, "t": "no content"}]`` whatever ``start`` is,
    and past the end of a log with lines as ``[]`` (pve-common ``src/PVE/Tools.pm``
    ``dump_logfile_by_filehandle``, which the task log endpoint reads the file with)."""
    node = parse_upid(upid)["node"]
    path = f"/nodes/{node}/tasks/{upid}/log"
    lines: list[str] = []
    while True:
        chunk = api.get(path, start=start, limit=LOG_PAGE) or []
        if not lines and [(c.get("n"), c.get("t")) for c in chunk] == [(1, "no content")]:
            return []
        lines.extend(str(item.get("t", "")) for item in chunk)
        if len(chunk) < LOG_PAGE:
            return lines
        start += LOG_PAGE


def forked_task(
    api: PveClient,
    upid: str,
    task_type: str,
    *,
    wait: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
) -> str | None:
    """The ``task_type`` task for the same guest that task ``upid`` started, or None when
    none is listed within ``wait`` seconds. A PVE handler that calls another one directly
    from inside its task (Snapshot.pm ``rollback`` with ``start=1`` calls
    ``PVE::API2::LXC::Status->vm_start``) gets a task of its own for that call: pve-common
    ``src/PVE/RESTEnvironment.pm`` ``fork_worker`` forks whenever the caller is not the
    CLI, and lists the new task (``active_workers``) before it returns. So the first task
    ends while the second runs, and only the second says whether it worked. Listed with
    ``GET /nodes/{node}/tasks`` (``source=all``: running ones too), which shows a caller its
    own tasks with no privilege (pve-manager ``PVE/API2/Tasks.pm`` ``node_tasks``)."""
    first = parse_upid(upid)
    since = _started(first)
    deadline = time.monotonic() + wait
    while True:
        listed = api.get(
            f"/nodes/{first['node']}/tasks",
            vmid=first["id"], typefilter=task_type, source="all", since=since[0],
        )  # fmt: skip
        mine = []
        for item in listed or []:
            try:
                other = parse_upid(str(item.get("upid", "")))
            except ValueError:
                continue
            if other["user"] == first["user"] and _started(other) > since:
                mine.append((_started(other), str(item["upid"])))
        if mine:
            return min(mine)[1]
        if time.monotonic() >= deadline:
            return None
        sleep(0.2)


class LogTail:
    """The newest line of a running task's log, read on from where the last read ended."""

    def __init__(self, api: PveClient, upid: str) -> None:
        self.api = api
        self.upid = upid
        self.seen = 0
        self.last = ""

    def read(self) -> str:
        """The newest line so far ('' while the log is empty). A read that fails leaves the
        line read before: the progress line is a courtesy, the status poll decides."""
        try:
            new = task_log_from(self.api, self.upid, self.seen)
        except PveError:
            return self.last
        self.seen += len(new)
        if new:
            self.last = new[-1]
        return self.last


Progress = Callable[[float, str], None]
"""Called with the seconds waited and the task's newest log line."""


def wait_task(
    api: PveClient,
    upid: str,
    timeout: float = 300.0,
    poll_interval: float | None = None,
    *,
    progress: Progress | None = None,
    every: float = EVERY,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> TaskResult:
    """Poll until the task stops (every ``poll_interval`` s at most, the client's by
    default): ``OK``/``WARNINGS: n`` → the result; otherwise :class:`PveTaskError`, or
    :class:`PveTaskTimeout` once ``timeout`` has passed. While it runs, ``progress`` gets
    the time waited and the log's newest line every ``every`` seconds (the log is read
    only then, from where the last read ended)."""
    interval_cap = api.poll_interval if poll_interval is None else poll_interval
    throttle = Throttle(every, clock)
    deadline = throttle.start + timeout
    tail = LogTail(api, upid)
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
        if progress is not None and (elapsed := throttle.due()) is not None:
            progress(elapsed, tail.read())
        now = clock()
        if now >= deadline:
            raise PveTaskTimeout(upid, timeout)
        sleep(min(interval, max(0.0, deadline - now)))
        interval = min(interval * 2, interval_cap)
