"""``egodeploy``: operate the deploy — drift, status, logs, preflight, rollback, the timer.

    egodeploy drift [--json]            exit 0 in sync, 2 drift (a rolled-back release too),
                                        1 the check itself failed
    egodeploy status [--json]           each host's container, release, services, last runs
    egodeploy install-timer --every 15  run the drift check from systemd on this controller
    egodeploy preflight [--json]        what a deploy needs, checked; exit 1 when one fails
    egodeploy rollback [--to COMMIT]    back to the release before (or COMMIT), as a release
    egodeploy rollback --snapshot NAME  the container back to a snapshot (Proxmox), healthy
    egodeploy rollback --list           each container's snapshots

Each command is a thin shell over its module: ``drift``, ``logs``, ``preflight``, ``status``,
``rollback`` (the ``deploys/rollback.py`` entry; ``proxmox.revert`` for snapshots). This
module imports no pyinfra, so ``egodeploy --help`` stays fast.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import click

from .common.envvars import ROLLBACK_BY_ENV, ROLLBACK_TO_ENV
from .drift import render_text as render_drift
from .drift import run_drift_check


def project_options(command: Callable[..., None]) -> Callable[..., None]:
    """``--project-dir`` and ``--inventory``: where the deploy is, for every command."""
    command = click.option("--inventory", default="inventory.py", show_default=True)(command)
    return click.option(
        "--project-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=".",
        show_default=True,
        help="Where inventory.py and group_data/ are.",
    )(command)


@click.group()
def main() -> None:
    """Operate the EgoGraph deploy."""


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@project_options
@click.option("--deploy", default="deploys/prod.py", show_default=True)
@click.option(
    "--timeout",
    type=float,
    default=600,
    show_default=True,
    help="Seconds before the check itself counts as failed.",
)
def drift(as_json: bool, project_dir: Path, inventory: str, deploy: str, timeout: float) -> None:
    """Report drift between the hosts and the settings. Exit 0 in sync, 2 drift, 1 failed."""
    code, report = run_drift_check(project_dir, inventory, deploy, timeout)
    click.echo(json.dumps(report, indent=2) if as_json else render_drift(report))
    sys.exit(code)


@main.command()
@click.argument("service", required=False)
@click.option(
    "-n",
    "--lines",
    type=click.IntRange(min=0),
    default=50,
    show_default=True,
    help="How many of the last journal lines to show.",
)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until interrupted.")
@project_options
def logs(service: str | None, lines: int, follow: bool, project_dir: Path, inventory: str) -> None:
    """Show SERVICE's journal on every host (the first service without SERVICE), over the
    deploy's own SSH connection and host key."""
    from .logs import LogsError, show_logs

    try:
        code = show_logs(project_dir, inventory, service, lines, follow)
    except LogsError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        code = 130 if not follow else 0  # -f ends with Ctrl-C: that is its normal end
    sys.exit(code)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the checks as a JSON list.")
@project_options
def preflight(as_json: bool, project_dir: Path, inventory: str) -> None:
    """Check what a deploy needs (secrets, keys, the Proxmox API and token, the node, the
    repository) without changing anything. Exit 1 when a check failed."""
    from .preflight.checks import exit_code, render_text
    from .preflight.run import run_preflight

    results = run_preflight(project_dir, inventory)
    if as_json:
        listed = [c.as_dict(target) for target, checks in results.items() for c in checks]
        click.echo(json.dumps(listed, indent=2))
    else:
        click.echo(render_text(results))
    sys.exit(exit_code(results))


_ENTRIES = "How many of the last audit log entries to show."


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "-n", "--entries", type=click.IntRange(0), default=5, show_default=True, help=_ENTRIES
)
@click.option(
    "--show-commands", is_flag=True, help="Print each remote command (pyinfra's >>> lines)."
)
@project_options
def status(
    as_json: bool, entries: int, show_commands: bool, project_dir: Path, inventory: str
) -> None:
    """Each host's container, release, services, last runs and drift, read in one remote
    command per host. Exit 0 all healthy, 2 something is not, 1 a host could not be read."""
    from .common.reach import patch_gevent

    patch_gevent()  # before pyinfra loads (deploys.status imports it)
    from .status import show_status

    code, text = show_status(project_dir, inventory, entries, as_json, show_commands)
    click.echo(text)
    sys.exit(code)


_COMMIT = re.compile(r"^[0-9a-fA-F]{7,40}$")


def rollback_command(
    inventory: str, to: str | None, dry: bool, yes: bool, by: str, as_json: bool = False
) -> tuple[list[str], dict[str, str]]:
    """The pyinfra run ``egodeploy rollback`` makes, and what it adds to its environment."""
    flags = [("--dry", dry), ("-y", yes), ("--json", as_json)]
    args = [sys.executable, "-m", "pyinfra", *(flag for flag, on in flags if on)]
    env = {ROLLBACK_BY_ENV: by, **({ROLLBACK_TO_ENV: to.lower()} if to else {})}
    return [*args, inventory, "deploys/rollback.py"], env


@main.command()
@click.option(
    "--to",
    "to",
    default=None,
    metavar="COMMIT",
    help="A commit from the release history (7 to 40 hex digits); default: the release "
    "before the current one.",
)
@click.option("--dry", is_flag=True, help="Show what would change; change nothing.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask before changing anything.")
@click.option("--json", "as_json", is_flag=True, help="pyinfra's own JSON report on stdout.")
@click.option(
    "--snapshot",
    "snapshot",
    metavar="NAME",
    help="Instead: revert each container to this Proxmox snapshot (e.g. "
    "egograph_0123456789ab; see --list), then wait until its services are healthy.",
)
@click.option("--list", "list_only", is_flag=True, help="List each container's snapshots.")
@project_options
def rollback(
    to: str | None,
    dry: bool,
    yes: bool,
    as_json: bool,
    snapshot: str | None,
    list_only: bool,
    project_dir: Path,
    inventory: str,
) -> None:
    """Return each host to the release before its current one (or to COMMIT), as a
    release: pinned checkout, uv sync, restart, health gate, automatic rollback if it
    fails, audit entry. The branch's newer commit is then refused until a new commit
    arrives or `rollback --to` it. Exit non-zero when a host failed.

    With --snapshot NAME: the whole container, as the snapshot the deploy took before a
    release kept it (Proxmox only); --list shows the snapshots."""
    if snapshot is not None or list_only:
        _rollback_snapshot(snapshot, list_only, project_dir, inventory, to, dry, yes, as_json)
        return
    if to is not None and not _COMMIT.match(to):
        raise click.BadParameter(
            f"{to!r}: expected a commit from the release history (7 to 40 hex digits)",
            param_hint="--to",
        )
    from .runlock.holder import controller_name

    command, extra = rollback_command(inventory, to, dry, yes, controller_name(), as_json)
    proc = subprocess.run(command, cwd=project_dir, env={**os.environ, **extra})
    sys.exit(proc.returncode)


def _rollback_snapshot(
    snapshot: str | None,
    list_only: bool,
    project_dir: Path,
    inventory: str,
    to: str | None,
    dry: bool,
    yes: bool,
    as_json: bool,
) -> None:
    """``rollback --snapshot NAME`` / ``--list``: the Proxmox revert, which has no dry run,
    no question and no pyinfra report, so the release options are refused with it."""
    from .proxmox.revert import RevertError, list_snapshots, rollback_to_snapshot

    if snapshot is not None and list_only:
        raise click.UsageError("give --snapshot NAME or --list, not both")
    given = [flag for flag, on in [("--to", to is not None), ("--dry", dry), ("-y", yes),
                                   ("--json", as_json)] if on]  # fmt: skip
    if given:
        raise click.UsageError(
            f"{', '.join(given)}: not with --snapshot/--list (a snapshot revert has no dry "
            "run and asks nothing; use --list to see what is there)"
        )
    try:
        if list_only:
            click.echo("\n".join(list_snapshots(project_dir, inventory)) or "no hosts")
        else:
            assert snapshot is not None
            rollback_to_snapshot(project_dir, inventory, snapshot, click.echo)
    except RevertError as exc:
        raise click.ClickException(str(exc)) from None


TIMER_NAME = "egograph-drift"


def render_timer_units(
    project_dir: Path, every_minutes: int, hosts_file: str | None
) -> dict[str, str]:
    exe = Path(sys.argv[0]).resolve() if Path(sys.argv[0]).name == "egodeploy" else None
    command = shlex.quote(str(exe)) if exe else f"{shlex.quote(sys.executable)} -m deploys.cli"
    env = f"Environment=EGOGRAPH_HOSTS_FILE={hosts_file}\n" if hosts_file else ""
    service = (
        "[Unit]\n"
        "Description=EgoGraph deploy drift check\n"
        "After=network-online.target\nWants=network-online.target\n\n"
        "[Service]\nType=oneshot\n"
        f"WorkingDirectory={project_dir}\n{env}"
        f"ExecStart={command} drift --project-dir {shlex.quote(str(project_dir))}\n"
        # Drift (2) and a failed check (1) both leave the unit failed, so `systemctl
        # --failed` and OnFailure= hooks see them; the report itself is in the journal.
    )
    timer = (
        "[Unit]\nDescription=Run the EgoGraph drift check every "
        f"{every_minutes} minutes\n\n"
        f"[Timer]\nOnBootSec=5min\nOnUnitActiveSec={every_minutes}min\nPersistent=true\n\n"
        "[Install]\nWantedBy=timers.target\n"
    )
    return {f"{TIMER_NAME}.service": service, f"{TIMER_NAME}.timer": timer}


@main.command("install-timer")
@click.option(
    "--every",
    "every_minutes",
    type=click.IntRange(1, 1440),
    default=15,
    show_default=True,
    help="Minutes between checks.",
)
@click.option(
    "--project-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    show_default=True,
)
@click.option("--hosts-file", envvar="EGOGRAPH_HOSTS_FILE", default=None)
@click.option(
    "--unit-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("/etc/systemd/system"),
    show_default=True,
)
@click.option("--no-enable", is_flag=True, help="Write the units only.")
def install_timer(
    every_minutes: int, project_dir: Path, hosts_file: str | None, unit_dir: Path, no_enable: bool
) -> None:
    """Install a systemd service + timer that runs `egodeploy drift` (journal logging)."""
    units = render_timer_units(project_dir.resolve(), every_minutes, hosts_file)
    changed = False
    for name, text in units.items():
        path = unit_dir / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            changed = True
            click.echo(f"wrote {path}")
    if no_enable:
        return
    if changed:
        subprocess.run(["systemctl", "daemon-reload"], check=True)
    subprocess.run(["systemctl", "enable", "--now", f"{TIMER_NAME}.timer"], check=True)


if __name__ == "__main__":
    main()
