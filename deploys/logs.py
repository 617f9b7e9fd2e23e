"""``egodeploy logs``: a service's journal, over the deploy's own connection and trust.

The hosts are the deploy's, reached as a deploy reaches them (:mod:`.common.reach`): the
logs are read over exactly the path and host key a deploy uses. The node of a Proxmox
inventory runs no service and is skipped.

``-f`` follows until interrupted. It runs under a pseudo-terminal, so when the connection
closes (Ctrl-C here, a dropped network) sshd hangs up on ``journalctl`` and nothing is left
running on the target.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .services.settings import Service


class LogsError(Exception):
    """Bad arguments or an unreachable host: said in one line, before any output."""


def journal_command(unit: str, lines: int, follow: bool) -> str:
    """The command that shows ``unit``'s last ``lines`` journal lines (then follows)."""
    argv = ["journalctl", "--unit", f"{unit}.service", "--lines", str(lines), "--no-pager"]
    argv += ["--output", "short-iso"]
    if follow:
        argv.append("--follow")
    return shlex.join(argv)


def unit_of(services: Sequence[Service], name: str | None) -> str:
    """The unit of the service called ``name`` (its ``name`` or its ``unit``); the first
    service's without one."""
    if name is None:
        return services[0].unit
    for svc in services:
        if name in (svc.name, svc.unit, f"{svc.unit}.service"):
            return svc.unit
    known = ", ".join(f"{s.name} ({s.unit})" for s in services)
    raise LogsError(f"SERVICE {name!r}: no such service; expected one of {known}")


def show_logs(
    project_dir: Path, inventory: str, service: str | None, lines: int, follow: bool
) -> int:
    """Print each host's journal lines (pyinfra's ``[host]`` prefix on each), all hosts at
    once (``-f`` follows every one); the exit code."""
    from .common.reach import patch_gevent, reached

    patch_gevent()
    from gevent import joinall, spawn
    from pyinfra.api import StringCommand
    from pyinfra.api.exceptions import PyinfraError
    from pyinfra.api.output import set_echo

    from .hostsettings import settings_of

    # pyinfra prints a command's lines, as they come, through its pluggable echo (a no-op
    # outside its CLI, and stderr in it): here they are the output, so stdout, flushed.
    set_echo(_to_stdout)
    with reached(project_dir, inventory) as (_state, targets):
        commands = {
            h: journal_command(unit_of(settings_of(h.data).services, service), lines, follow)
            for h in targets
        }

        def journal(host: Any, command: str) -> bool:
            try:
                ok, _ = host.run_shell_command(
                    StringCommand(command), print_output=True, _get_pty=follow
                )
            except (PyinfraError, ConnectionError, OSError) as exc:
                raise LogsError(f"{host.name}: {exc}") from None
            return bool(ok)

        runs = [spawn(journal, h, c) for h, c in commands.items()]
        joinall(runs, raise_error=True)
        return 0 if all(r.value for r in runs) else 1


def _to_stdout(message: Any = None, **_: Any) -> None:
    # A pseudo-terminal (``-f``) ends lines with CR LF; the line is printed without the CR.
    print(str(message).rstrip("\r"), flush=True)
