"""Operations that keep the app's systemd services loaded, enabled, current and healthy."""

from __future__ import annotations

import json
from typing import Any

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation

from ..common.operations import STATE_DIR
from ..common.report import change_reason
from .facts import ServiceStates


@operation()
def daemon_reload(units: dict[str, str], *, repo_path: str) -> Any:
    """
    ``systemctl daemon-reload`` only when systemd's copy of a unit is stale: the unit file
    differs from what systemd loaded (``NeedDaemonReload``), or, before the files are written
    (a dry run), its content will change.

    + units: unit name → sha256 of the wanted unit file

    **Example:**

    .. code:: python

        daemon_reload(name="Reload systemd", units={"egograph-backend": "9f2c…"},
                      repo_path="/opt/egograph/repo")
    """
    current = host.get_fact(
        ServiceStates, units=list(units), repo_path=repo_path, stamp_dir=STATE_DIR
    )["units"]
    stale = sorted(
        u
        for u, sha in units.items()
        if current.get(u, {}).get("NeedDaemonReload") == "yes"
        or current.get(u, {}).get("file_sha256") != sha
        or current.get(u, {}).get("LoadState") == "not-found"
    )
    if not stale:
        host.noop("systemd has loaded the current unit files")
        return
    change_reason(f"systemd has a stale copy of {', '.join(stale)}")
    yield "systemctl daemon-reload"


@operation()
def service(
    unit: str,
    *,
    stamp: dict[str, str],
    unit_file: str,
    env_file: str,
    health_url: str,
    health_timeout: int,
    repo_path: str,
    commit: str | None = None,
) -> Any:
    """
    Keep ``unit`` enabled and running the wanted release, and healthy.

    The deploy records what a unit was last started with (``stamp``: digests of its unit
    file and env file, and the commit) once it answered its health URL. The unit is
    restarted when any of these differ — also when an earlier run changed a file and was
    interrupted before the restart — and is never restarted otherwise. After a (re)start the
    health URL must answer 200 within ``health_timeout`` seconds, else the run fails with the
    unit's last journal lines.

    + unit: unit name without ``.service``
    + stamp: ``{"unit": sha, "env": sha}`` of the wanted files
    + unit_file/env_file: their paths; the stamp records the digests of the files as they
      are when the unit starts healthy (computed on the target, never passed in argv)
    + commit: the commit the run moves to when known (lets a dry run predict the restart)

    **Example:**

    .. code:: python

        service(name="egograph-backend running", unit="egograph-backend",
                stamp={"unit": "9f2c…", "env": "41d0…"},
                unit_file="/etc/systemd/system/egograph-backend.service",
                env_file="/opt/egograph/repo/backend/.env", health_url="http://127.0.0.1:8000/health",
                health_timeout=60, repo_path="/opt/egograph/repo")
    """
    facts = host.get_fact(
        ServiceStates,
        units=[unit],
        repo_path=repo_path,
        stamp_dir=STATE_DIR,
        health_urls=[health_url],
    )
    current = facts["units"].get(unit, {})
    head = facts["head"]
    started = current.get("stamp") or {}

    if current.get("UnitFileState") != "enabled":
        change_reason(f"{unit} is not enabled ({current.get('UnitFileState') or 'no unit'})")
        yield StringCommand("systemctl", "enable", "--quiet", QuoteString(f"{unit}.service"))

    active = current.get("ActiveState") == "active"
    reasons = [f"{key} file changed" for key in ("unit", "env") if started.get(key) != stamp[key]]
    if started.get("commit") != head or (commit and started.get("commit") != commit):
        reasons.append("code or dependencies changed")
    if not started:
        reasons = ["never started by the deploy"]
    if active and current.get("healthy") is False:
        reasons.append(f"not answering {health_url}")
    if active and not reasons:
        host.noop(f"{unit} is running, current and healthy")
        return
    verb = "restart" if active else "start"
    change_reason(f"{verb} {unit}: {', '.join(reasons) if active else 'not running'}")

    yield StringCommand(
        StringCommand("systemctl", verb, QuoteString(f"{unit}.service")),
        "&&",
        _wait_healthy(unit, health_url, health_timeout),
        "&&",
        _write_stamp(unit, unit_file, env_file, repo_path),
    )


def _write_stamp(unit: str, unit_file: str, env_file: str, repo_path: str) -> StringCommand:
    """Record, atomically, what the unit runs now: digests of its files as they are on the
    target, and the checked-out commit."""
    stamp = f"{STATE_DIR}/{unit}.started.json"
    fmt = json.dumps({"unit": "%s", "env": "%s", "commit": "%s"})
    digest = [
        StringCommand('"$(sha256sum', QuoteString(path), '| cut -c1-64)"')
        for path in (unit_file, env_file)
    ]
    head = StringCommand('"$(git -C', QuoteString(repo_path), 'rev-parse HEAD 2>/dev/null)"')
    return StringCommand(
        StringCommand("install", "-d", "-m", "700", STATE_DIR),
        "&&",
        StringCommand("printf", QuoteString(fmt), *digest, head),
        ">",
        QuoteString(f"{stamp}.tmp"),
        "&&",
        StringCommand("mv", "-f", QuoteString(f"{stamp}.tmp"), QuoteString(stamp)),
    )


def _wait_healthy(unit: str, url: str, timeout: int) -> StringCommand:
    """A bounded poll of the health URL; on failure print why and the unit's journal."""
    return StringCommand(
        "(",
        f"deadline=$(( $(date +%s) + {int(timeout)} ));",
        "until curl -fsS -o /dev/null --max-time 5",
        QuoteString(url),
        "2>/dev/null; do",
        'if [ "$(date +%s)" -ge "$deadline" ]; then',
        "echo",
        QuoteString(f"{unit} did not answer 200 on {url} within {timeout}s; last journal lines:"),
        ">&2;",
        "journalctl -u",
        QuoteString(f"{unit}.service"),
        "-n 40 --no-pager >&2;",
        "exit 1; fi; sleep 1; done",
        ")",
    )
