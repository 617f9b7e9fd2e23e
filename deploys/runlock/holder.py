"""Who holds the run lock, and what the lock's read answered: pure, no pyinfra.

The holder's record is one line in the lock file, ``<connection> <json>``: the pid of the
target's sshd process that serves the holding run's SSH connection (the lock lives as long
as it does), and the controller's side as JSON (host, user, pid, entry point, and when the
run started, UTC), written by the run that took it.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import socket
import time
from dataclasses import dataclass
from typing import Any

LOCK_PATH = "/run/egograph-deploy.lock"
"""On tmpfs: a reboot frees it with everything else the run held."""

RUN_ENV = "EGOGRAPH_DEPLOY_RUN"
"""Set in the environment of every command of a run (pyinfra's ``config.ENV``), to this
run's :func:`run_tag`: a run that takes the lock waits until no process of another run
carries it (see :mod:`.facts`)."""


def run_tag() -> str:
    """This controller process, unique enough to tell runs apart on a target."""
    return f"{re.sub(r'[^A-Za-z0-9.-]', '-', socket.gethostname())}-{os.getpid()}-{time.time_ns()}"


def controller_user() -> str:
    """Who runs this controller process."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (a bare container)
        return str(os.getuid())


def controller_name() -> str:
    """This controller as ``user@host`` (the audit log's ``controller``)."""
    return f"{controller_user()}@{socket.gethostname()}"


def controller_record(entry: str, started: str) -> str:
    """This controller process as the lock file names it (the JSON part of the record)."""
    record = {
        "host": socket.gethostname(),
        "user": controller_user(),
        "pid": os.getpid(),
        "entry": entry,
        "started": started,
    }
    return json.dumps(record, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Holder:
    """The run that holds the lock, from its record (fields it lacks read ``?``)."""

    host: str = "?"
    user: str = "?"
    pid: str = "?"
    entry: str = "?"
    started: str = "?"

    def __str__(self) -> str:
        return (
            f"{self.entry} run by {self.user}@{self.host}, pid {self.pid}, started {self.started}"
        )


def parse_holder(record: str) -> Holder:
    """A :class:`Holder` from the lock file's line; a line cut short or empty (a run that
    took the lock an instant ago and has not written it yet) gives what it can."""
    _, _, text = record.partition(" ")
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    return Holder(
        **{k: str(data[k]) for k in ("host", "user", "pid", "entry", "started") if k in data}
    )


def parse_answer(lines: list[str]) -> dict[str, Any]:
    """The lock read's answer (one line, see :class:`deploys.runlock.facts.RunLock`)."""
    line = next((x for x in lines if x.strip()), "")
    word, _, rest = line.strip().partition(" ")
    if word in ("taken", "mine"):
        return {"state": "taken", "again": word == "mine", "connection": rest}
    if word == "held":
        holder = parse_holder(rest)
        return {"state": "held", "holder": vars(holder)}
    if word in ("free", "nossh", "reading"):
        return {"state": word}
    if word == "leftover":
        return {"state": "leftover", "pids": rest.split()}
    if not line.strip():
        return {"state": "unknown"}
    return {"state": "error", "detail": rest or line}


def reading_message(*, path: str, wait: int) -> str:
    """Why this run stops: dry runs (drift checks) kept reading the host all along."""
    return (
        f"dry runs (drift checks) kept reading this host for all of run_lock_wait ({wait} s: "
        f"they hold {path} shared while they read); this run changed nothing. Run again, or "
        "raise run_lock_wait"
    )


def leftover_message(pids: list[str], *, wait: int) -> str:
    """Why this run stops: commands of a run that was cut off still run on the target."""
    return (
        f"commands of an earlier run that was cut off (killed, or its connection lost) are "
        f"still running on this host (pids {' '.join(pids)}); this run waited {wait} s "
        "(run_lock_wait) for them and changed nothing. Run again when they end"
    )


def held_message(holder: dict[str, Any], *, path: str, wait: int, executing: bool) -> str:
    """Why this run stops: another run holds the lock."""
    who = Holder(**holder)
    if not executing:
        return (
            f"a deploy is running on this host: {who} (it holds {path}). What it has applied "
            "so far may be half a release, so this check cannot say the host is in sync; "
            "nothing was changed. Check again when that run ends"
        )
    waited = f"waited {wait} s" if wait else "did not wait"
    return (
        f"another deploy holds the run lock {path} on this host: {who}; this run {waited} "
        "(run_lock_wait) and changed nothing. Run again when it ends, or raise run_lock_wait"
    )
