"""Tasks: UPIDs, the worker threads with PVE's log and exit status format, and the task
endpoints (pve-manager:PVE/API2/Tasks.pm).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from .auth import AuthApi, Identity
from .errors import PveError, param_error
from .schema import split_list


@dataclass
class Task:
    upid: str
    node: str
    pid: int
    pstart: int
    starttime: int
    type: str
    id: str
    user: str
    tokenid: str | None
    status: str = "running"
    exitstatus: str | None = None
    endtime: int | None = None
    lines: list[str] = dc_field(default_factory=list)
    warnings: int = 0
    cancel: threading.Event = dc_field(default_factory=threading.Event)
    done: threading.Event = dc_field(default_factory=threading.Event)

    def log(self, line: str) -> None:
        self.lines.extend(line.rstrip("\n").split("\n"))

    def warn(self, line: str) -> None:
        self.warnings += 1
        self.log("WARN: " + line)

    def sleep(self, seconds: float) -> None:
        if self.cancel.wait(seconds):
            raise TaskAbort("received interrupt")

    def status_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "upid": self.upid,
            "node": self.node,
            "pid": self.pid,
            "pstart": self.pstart,
            "starttime": self.starttime,
            "type": self.type,
            "id": self.id,
            "user": self.user,
            "status": self.status,
        }
        if self.tokenid:
            d["tokenid"] = self.tokenid
        if self.status == "stopped":
            d["exitstatus"] = self.exitstatus
        return d


class TaskAbort(Exception):
    pass


UPID_RE = re.compile(
    r"^UPID:([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):"
    r"([0-9A-Fa-f]{8}):([^:\s]+):([^:\s]*):([^:\s]+):$"
)


class TasksApi(AuthApi):
    """Background tasks, each a thread with its UPID, and ``/nodes/{node}/tasks``."""

    tasks: dict[str, Task]
    task_faults: dict[str, list[dict[str, Any]]]
    task_min_duration: float
    _pid: int
    _pstart: int

    def _take_task_fault(self, task_type: str) -> dict[str, Any] | None:
        with self.lock:
            queue = self.task_faults.get(task_type)
            if queue:
                return queue.pop(0)
        return None

    def _new_upid(self, task_type: str, task_id: str, ident: Identity) -> Task:
        with self.lock:
            self._pid += 1
            self._pstart += 7
            starttime = int(time.time())
            user = ident.authuser
            upid = (
                f"UPID:{self.node}:{self._pid:08X}:{self._pstart:08X}:{starttime:08X}:"
                f"{task_type}:{task_id}:{user}:"
            )
            task = Task(
                upid=upid, node=self.node, pid=self._pid, pstart=self._pstart,
                starttime=starttime, type=task_type, id=task_id, user=ident.user,
                tokenid=ident.tokenid,
            )  # fmt: skip
            self.tasks[upid] = task
        return task

    def run_task(
        self,
        task_type: str,
        task_id: str,
        ident: Identity,
        func: Callable[[Task], None],
        on_error: Callable[[Task], None] | None = None,
    ) -> str:
        task = self._new_upid(task_type, task_id, ident)
        fault = self._take_task_fault(task_type)

        def runner() -> None:
            started = time.monotonic()
            error: str | None = None
            try:
                if fault and fault.get("slow"):
                    task.sleep(float(fault["slow"]))
                if fault and fault.get("fail"):
                    raise TaskAbort(str(fault["fail"]))
                func(task)
                if fault and fault.get("warnings"):
                    for i in range(int(fault["warnings"])):
                        task.warn(f"injected warning {i + 1}")
                remaining = self.task_min_duration - (time.monotonic() - started)
                if remaining > 0:
                    task.sleep(remaining)
            except TaskAbort as exc:
                error = str(exc).rstrip("\n")
            except PveError as exc:
                error = exc.message.rstrip("\n")
            except Exception as exc:
                error = str(exc).rstrip("\n") or exc.__class__.__name__
            if error is not None and on_error is not None:
                try:
                    on_error(task)
                except Exception as exc:
                    task.log(f"cleanup failed: {exc}")
            with self.lock:
                if error is not None:
                    task.log(f"TASK ERROR: {error}")
                    task.exitstatus = error
                elif task.warnings:
                    task.log(f"TASK WARNINGS: {task.warnings}")
                    task.exitstatus = f"WARNINGS: {task.warnings}"
                else:
                    task.log("TASK OK")
                    task.exitstatus = "OK"
                task.endtime = int(time.time())
                task.status = "stopped"
            task.done.set()

        threading.Thread(target=runner, name=f"task-{task_type}", daemon=True).start()
        return task.upid

    def wait_tasks(self, timeout: float = 10.0) -> None:
        """Test helper: wait until every task has finished."""
        deadline = time.monotonic() + timeout
        for task in list(self.tasks.values()):
            task.done.wait(max(0.0, deadline - time.monotonic()))

    @staticmethod
    def _task_owner(upid: str) -> tuple[str, str | None]:
        """(user, token name) from a UPID's user field; 400 if it does not parse."""
        m = UPID_RE.match(upid)
        if not m:
            raise param_error({"upid": "unable to parse worker upid"})
        user, _, token = m.group(8).partition("!")
        return user, token or None

    @staticmethod
    def _owns_task(ident: Identity, user: str, tokenid: str | None) -> bool:
        """A token's task is its own and its owner's; a user's task is only the user's, not
        its tokens' (a string test: pve-manager:PVE/API2/Tasks.pm:$check_task_user)."""
        if tokenid:
            return ident.authuser in (f"{user}!{tokenid}", user)
        return ident.authuser == user

    def _get_task(
        self, ident: Identity, upid: str, node: str, priv: str, *, known_first: bool = True
    ) -> Task:
        """The task, for its owner or with ``priv`` on ``/nodes/{node}`` (the URL's node).
        Status and stop say "no such task" before the permission check, the log after it
        (pve-manager:PVE/API2/Tasks.pm:read_task_status, stop_task, read_task_log)."""
        user, tokenid = self._task_owner(upid)
        task = self.tasks.get(upid)
        if task is None and known_first:
            raise param_error({"upid": "no such task"})
        if not self._owns_task(ident, user, tokenid):
            self.rpc.check(ident.authuser, f"/nodes/{node}", [priv])
        if task is None:
            raise param_error({"upid": "no such task"})
        return task

    def api_get_nodes_node_tasks(
        self, ident: Identity, a: dict[str, Any], extra: dict[str, Any]
    ) -> Any:
        # own tasks, or all of them with Sys.Audit on the node
        # (pve-manager:PVE/API2/Tasks.pm:node_tasks)
        audit = self.rpc.check(ident.authuser, f"/nodes/{a['node']}", ["Sys.Audit"], noerr=True)
        source = a.get("source", "archive")
        out = []
        for task in sorted(self.tasks.values(), key=lambda t: (t.starttime, t.pid), reverse=True):
            if not (audit or self._owns_task(ident, task.user, task.tokenid)):
                continue
            if source == "archive" and task.status == "running":
                continue
            if source == "active" and task.status != "running":
                continue
            if a.get("vmid") is not None and task.id != str(a["vmid"]):
                continue
            if a.get("typefilter") and task.type != a["typefilter"]:
                continue
            if a.get("userfilter") and a["userfilter"] not in task.user:
                continue
            if a.get("errors") and task.exitstatus in ("OK", None):
                continue
            if a.get("since") is not None and task.starttime < int(a["since"]):
                continue
            if a.get("until") is not None and task.starttime > int(a["until"]):
                continue
            if a.get("statusfilter"):
                want = {s.lower() for s in split_list(a["statusfilter"])}
                es = task.exitstatus or ""
                kind = "ok" if es == "OK" else "warning" if es.startswith("WARNINGS") else "error"
                if kind not in want:
                    continue
            item: dict[str, Any] = {
                "upid": task.upid, "node": task.node, "pid": task.pid, "pstart": task.pstart,
                "starttime": task.starttime, "type": task.type, "id": task.id,
                "user": task.user,
            }  # fmt: skip
            if task.tokenid:
                item["tokenid"] = task.tokenid
            if task.status == "stopped":
                item["status"] = task.exitstatus
                item["endtime"] = task.endtime
            out.append(item)
        start = int(a.get("start", 0))
        limit = int(a.get("limit", 50))
        extra["total"] = len(out)
        return out[start : start + limit] if limit else out[start:]

    def api_delete_nodes_node_tasks_upid(
        self, ident: Identity, a: dict[str, Any], extra: dict[str, Any]
    ) -> Any:
        task = self._get_task(ident, a["upid"], a["node"], "Sys.Modify")
        if task.status == "running":
            task.cancel.set()
        return None

    def api_get_nodes_node_tasks_upid_status(
        self, ident: Identity, a: dict[str, Any], extra: dict[str, Any]
    ) -> Any:
        return self._get_task(ident, a["upid"], a["node"], "Sys.Audit").status_dict()

    def api_get_nodes_node_tasks_upid_log(
        self, ident: Identity, a: dict[str, Any], extra: dict[str, Any]
    ) -> Any:
        task = self._get_task(ident, a["upid"], a["node"], "Sys.Audit", known_first=False)
        lines = list(task.lines)
        start = int(a.get("start", 0))
        limit = int(a.get("limit", 50))
        if not lines:
            extra["total"] = 1
            return [{"n": 1, "t": "no content"}]
        sel = lines[start : start + limit] if limit else lines[start:]
        extra["total"] = len(lines)
        return [{"n": start + i + 1, "t": t} for i, t in enumerate(sel)]
