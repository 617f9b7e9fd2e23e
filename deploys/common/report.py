"""Why an operation changes something: shown to people, and collected for drift reports.

Operations call ``change_reason("uv.lock changed")`` on the path that yields commands. The
reason is logged on the host's line (``-v`` shows it), and — when ``EGOGRAPH_REASONS_FILE``
names a file, as ``egodeploy drift`` does — appended there as one JSON line tagged with the
operation's hash, so the drift report can say why each operation would change.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator

from pyinfra import host
from pyinfra.api import OperationError, QuoteString, StringCommand

from .envvars import NOT_APPLIED, REASONS_FILE_ENV

logger = logging.getLogger("pyinfra")


def change_reason(reason: str) -> None:
    host.log(reason)
    _record(reason)


def not_applied(reason: str) -> None:
    """A difference from the settings that the deploy does not change (e.g. what PVE takes
    only when a container is created): a warning on every run, and an item of the drift
    report, so it never passes for in sync. Said once per host and run (an operation is
    decided twice when the run stops to ask)."""
    if warn_once(reason):
        _record(reason, kind=NOT_APPLIED)


def warn_once(reason: str) -> bool:
    """A warning on the current host, once per run; whether it was said now."""
    said: set[str] = getattr(host, _SAID, None) or set()
    if reason in said:
        return False
    setattr(host, _SAID, said | {reason})
    logger.warning(f"{host.print_prefix}{reason}")
    return True


_SAID = "_egograph_not_applied"
"""Where a host keeps what it said (on the pyinfra ``Host`` itself: it goes with the run)."""


def _record(reason: str, kind: str = "change") -> None:
    path = os.environ.get(REASONS_FILE_ENV)
    if path:
        line = {"host": host.name, "op_hash": host.current_op_hash, "reason": reason}
        if kind != "change":
            line["kind"] = kind
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")


def refuse(message: str) -> Iterator[StringCommand]:
    """Stop this host with ``message``: while preparing (a dry run, or before the prompt)
    as pyinfra's operation error; while executing, as a command that prints the message and
    fails, so the run ends with the message rather than a Python traceback.

    A target that does not exist yet (a container this run creates: its connector says
    ``target_pending``) is not refused while preparing: its facts are only defaults, so the
    operation counts as a change and is checked again, for real, when it executes."""
    pending = bool(getattr(host.connector, "target_pending", False))
    if not host.state.is_executing and not pending:
        raise OperationError(message)
    yield StringCommand("echo", QuoteString(message), ">&2;", "exit", "1")
