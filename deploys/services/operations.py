"""Operations that keep the app's systemd services loaded, enabled, current and healthy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand

from ..common.commands import chain
from ..common.report import change_reason, refuse
from ..common.snapshot import FactRead, fact_read, operation
from ..common.stamps import STATE_DIR
from ..repo.commit import Commit, commit_of
from .facts import ServiceStates, SystemUser
from .history import RollbackPlan
from .release import ManualRollback, ReleaseUnit, release_script


@dataclass(frozen=True)
class ServiceProbe:
    """What the systemd reload and every service operation of a run decide from, read once
    for all the services: systemd's view of each unit, its health, its env file's digest on
    the target, the stamps, and the checkout's head (``ServiceStates``)."""

    units: tuple[str, ...]
    health_urls: tuple[str, ...]
    env_files: tuple[str, ...]
    repo_path: str

    def read(self) -> FactRead[dict[str, Any]]:
        return fact_read(
            ServiceStates,
            units=list(self.units),
            repo_path=self.repo_path,
            stamp_dir=STATE_DIR,
            health_urls=list(self.health_urls),
            env_files=list(self.env_files),
        )


def _probe_read(probe: ServiceProbe, **_: Any) -> FactRead[dict[str, Any]]:
    return probe.read()


@operation(read=_probe_read)
def daemon_reload(states: dict[str, Any], units: dict[str, str], *, probe: ServiceProbe) -> Any:
    """
    ``systemctl daemon-reload`` only when systemd's copy of a unit is stale: the unit file
    differs from what systemd loaded (``NeedDaemonReload``), or, before the files are written
    (a dry run), its content will change.

    + units: unit name → sha256 of the wanted unit file
    + probe: what to read (the same :class:`ServiceProbe` the service operations get: a
      host in sync runs its systemd and health probes once per run)

    **Example:**

    .. code:: python

        daemon_reload(name="Reload systemd", units={"egograph-backend": "9f2c…"},
                      probe=probe)
    """
    current = states["units"]
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


@dataclass(frozen=True)
class ServiceRelease(ReleaseUnit):
    """One service in a release: what the release script needs (:class:`ReleaseUnit`) and
    the digests of the unit file and env file the deploy wants it started with
    (``env_sha256`` None: the env file is kept on the server, its digest there is wanted)."""

    unit_sha256: str = ""
    env_sha256: str | None = None


def _unit_decision(
    current: dict[str, Any], head: str | None, commit: str | None, svc: ServiceRelease
) -> tuple[list[StringCommand], list[str], bool]:
    """For one unit: the commands that unmask and enable it, why it must be (re)started
    (none: it runs the wanted release), and whether it is active."""
    unit = svc.unit
    commands: list[StringCommand] = []
    file_state = current.get("UnitFileState") or ""
    if file_state.startswith("masked"):
        # Someone masked it (e.g. `systemctl mask --runtime`): the deploy owns this unit.
        change_reason(f"{unit} is {file_state}")
        commands.append(
            StringCommand("systemctl", "unmask", "--runtime", QuoteString(f"{unit}.service"))
        )
        commands.append(StringCommand("systemctl", "unmask", QuoteString(f"{unit}.service")))
    if file_state != "enabled":
        change_reason(f"{unit} is not enabled ({file_state or 'no unit'})")
        commands.append(
            StringCommand("systemctl", "enable", "--quiet", QuoteString(f"{unit}.service"))
        )
    started = current.get("stamp") or {}
    active = current.get("ActiveState") == "active"
    wanted = {"unit": svc.unit_sha256, "env": svc.env_sha256 or current.get("env_sha256")}
    reasons = [f"{key} file changed" for key in ("unit", "env") if started.get(key) != wanted[key]]
    if started.get("commit") != head or (commit and started.get("commit") != commit):
        reasons.append("code or dependencies changed")
    if not started:
        reasons = ["never started by the deploy"]
    if active and current.get("healthy") is False:
        reasons.append(f"not answering {svc.health_url}")
    if not active:
        reasons = ["not running"]
    return commands, reasons, active


@operation(read=_probe_read)
def release(
    states: dict[str, Any],
    services: tuple[ServiceRelease, ...],
    *,
    probe: ServiceProbe,
    health_timeout: int,
    repo_path: str,
    ref: str,
    resync: str,
    commit: Commit = None,
    keep: int = 5,
    manual: ManualRollback | None = None,
) -> Any:
    """
    Keep every service enabled, running the wanted release, and healthy: a release is all
    of its services or none.

    The deploy records what a unit was last started with (its stamp: digests of its unit
    file and env file, and the commit) once every unit of that release answered its health
    URL. A unit is restarted when any of these differ — also when an earlier run changed a
    file and was interrupted before the restart — and is never restarted otherwise. The
    units that need it are (re)started in order, each watched until healthy (systemd too:
    a process that exits fails it at once); when one fails, every unit of the release goes
    back to the last good release (checkout, environment, unit and env files), a unit that
    never had one is stopped and disabled, and the run fails with the journal lines (see
    ``deploys.services.release``).

    + services: every service of the run, in order (:class:`ServiceRelease`)
    + probe: what to read, for every service of the run (:class:`ServiceProbe`)
    + health_timeout: seconds a (re)started unit has to answer 200
    + ref: the branch (or pinned commit) the checkout follows, for a rollback
    + resync: the deploy's ``uv sync`` command, run after a rollback moved the checkout
    + commit: the commit the run moves to when known (lets a dry run predict the restart)
    + keep: how many releases the history on the target keeps (``release_keep``)
    + manual: this release is a manual rollback (``egodeploy rollback``): once healthy, the
      release marker names the commit it left instead of being removed

    **Example:**

    .. code:: python

        release(name="egograph-backend running", services=(ServiceRelease(
                    unit="egograph-backend",
                    unit_file="/etc/systemd/system/egograph-backend.service",
                    env_file="/opt/egograph/repo/egograph/backend/.env",
                    health_url="http://127.0.0.1:8000/health",
                    unit_sha256="9f2c…", env_sha256="41d0…"),),
                probe=probe, health_timeout=60, repo_path="/opt/egograph/repo", ref="main",
                resync="env /root/.local/bin/uv sync --all-packages --locked --no-progress")
    """
    wanted_commit = commit_of(commit)
    commands: list[StringCommand] = []
    verbs: dict[str, str] = {}
    for svc in services:
        unit_commands, reasons, active = _unit_decision(
            states["units"].get(svc.unit, {}), states["head"], wanted_commit, svc
        )
        commands += unit_commands
        if reasons:
            verbs[svc.unit] = "restart" if active else "start"
            change_reason(f"{verbs[svc.unit]} {svc.unit}: {', '.join(reasons)}")
    if not verbs:
        if commands:
            yield chain(commands)
        else:
            units = ", ".join(svc.unit for svc in services)
            host.noop(f"{units}: running, current and healthy")
        return
    script = release_script(
        units=list(services),
        verbs=verbs,
        health_timeout=health_timeout,
        repo_path=repo_path,
        ref=ref,
        state_dir=STATE_DIR,
        resync=resync,
        keep=keep,
        manual=manual,
    )
    yield chain([*commands, StringCommand(script)])


@operation(read=_probe_read)
def release_guard(
    states: dict[str, Any],
    *,
    probe: ServiceProbe,
    commit: Commit,
    retry: bool = False,
    retry_why: str = "service_retry_rolled_back",
) -> Any:
    """
    Refuse to deploy a commit that was rolled back (the release marker names it), until a
    new commit arrives or ``retry`` asks for it again: a broken release is not restarted,
    with its outage, on every run. Nothing changes either way; the check runs before the
    checkout moves.

    + probe: what to read (the :class:`ServiceProbe` the release reads: no extra read)
    + commit: the run's commit
    + retry: deploy a rolled-back commit once more (``service_retry_rolled_back``)
    + retry_why: what asked for the retry, for the message

    **Example:**

    .. code:: python

        release_guard(name="main is not a rolled-back release", probe=probe,
                      commit=commit)
    """
    marker = states.get("rolled_back") or {}
    failed = marker.get("failed_commit")
    # A marker whose commit is the restored one was a failed configuration change (unit or
    # env file), not a bad commit: the commit itself stays deployable. The run's commit is
    # looked up only when there is a marker to compare it with.
    if not failed or failed == marker.get("restored_commit"):
        host.noop("no release was rolled back")
        return
    want = commit_of(commit)
    if want != failed:
        host.noop(f"release {failed[:12]} was rolled back; {(want or 'unknown')[:12]} is new")
        return
    if retry:
        host.log(f"release {failed} was rolled back at {marker.get('at')}: retrying it as asked")
        host.noop(f"retrying release {failed[:12]} ({retry_why})")
        return
    why = marker.get("reason") or f"{marker.get('failed_service')} failed"
    yield from refuse(
        f"release {failed} was rolled back at {marker.get('at')}: not deploying it again "
        f"({why}; {str(marker.get('restored_commit'))[:12]} runs). Push a fix, set "
        "service_retry_rolled_back = True (e.g. --data service_retry_rolled_back=True) to "
        f"try it once more, or egodeploy rollback --to {failed[:12]}."
    )


@operation(read=_probe_read)
def rollback_target(states: dict[str, Any], *, probe: ServiceProbe, plan: RollbackPlan) -> Any:
    """
    First in a manual rollback (``egodeploy rollback``), before anything changes: stop when
    there is nothing to roll back to (``plan.error``), or when the checkout moved since
    the plan was made from it (another run came between: its target may be stale).

    + probe: what to read (the :class:`ServiceProbe` the release reads: no extra read)
    + plan: where this host goes (:func:`deploys.services.history.rollback_plan`)

    **Example:**

    .. code:: python

        rollback_target(name="Rollback target", probe=probe,
                        plan=RollbackPlan(head="5d1c…", target="9e0b…", refuse="5d1c…"))
    """
    if plan.error:
        yield from refuse(plan.error)
        return
    target = str(plan.target)
    if states["head"] != plan.head:
        yield from refuse(
            f"the checkout moved to {str(states['head'])[:12]} after the rollback was planned "
            f"from {str(plan.head)[:12]}: nothing was changed; run egodeploy rollback again"
        )
        return
    if not plan.moves:
        host.noop(f"{target[:12]} runs already (rolled back)")
        return
    host.noop(f"rolling back from {str(plan.head)[:12]} to {target[:12]}")


def _user_read(
    user: str, group: str, home: str, owned_dirs: list[str] | None = None, **_: Any
) -> FactRead[dict[str, Any]]:
    return fact_read(SystemUser, user=user, group=group, dirs=[home, *(owned_dirs or [])])


@operation(read=_user_read)
def system_user(
    current: dict[str, Any],
    user: str,
    group: str,
    *,
    home: str,
    owned_dirs: list[str] | None = None,
) -> Any:
    """
    A system user with its own group, no login shell, and a HOME of its own; the user owns
    that HOME and ``owned_dirs`` (mode 0750), for a hardened service.

    + home: the user's HOME (also its units' StateDirectory=): made if missing
    + owned_dirs: directories the service writes (the app's data dir): made if missing; one
      owned by someone else is handed over with what is in it (``chown -R``), as systemd
      does with a StateDirectory= it finds with another owner

    **Example:**

    .. code:: python

        system_user(name="System user egograph", user="egograph", group="egograph",
                    home="/var/lib/egograph", owned_dirs=["/opt/egograph/data"])
    """
    dirs = [home, *(owned_dirs or [])]
    commands: list[StringCommand] = []
    if not current["group"]:
        change_reason(f"group {group} does not exist")
        commands.append(StringCommand("groupadd", "--system", QuoteString(group)))
    if not current["user"]:
        change_reason(f"user {user} does not exist")
        commands.append(
            StringCommand(
                "useradd",
                "--system",
                "--gid",
                QuoteString(group),
                "--no-create-home",
                "--home-dir",
                QuoteString(home),
                "--shell",
                "/usr/sbin/nologin",
                QuoteString(user),
            )
        )
    else:
        if current["primary_group"] != group:
            change_reason(f"user {user}'s group is {current['primary_group']}, want {group}")
            commands.append(
                StringCommand("usermod", "--gid", QuoteString(group), QuoteString(user))
            )
        if current["home"] != home:
            # DuckDB and other tools find their files through HOME: without one
            # (/nonexistent) DuckDB cannot load any extension.
            change_reason(f"user {user}'s HOME is {current['home']}, want {home}")
            commands.append(
                StringCommand("usermod", "--home", QuoteString(home), QuoteString(user))
            )
    owner = f"{user}:{group}"
    for path in dirs:
        state = current["dirs"].get(path)
        if state is None:
            change_reason(f"{path} does not exist")
            commands.append(
                StringCommand(
                    "install",
                    "-d",
                    "-o",
                    QuoteString(user),
                    "-g",
                    QuoteString(group),
                    "-m",
                    "750",
                    QuoteString(path),
                )
            )
            continue
        if state["owner"] != owner:
            change_reason(f"{path} is owned by {state['owner']}, want {owner}")
            commands.append(StringCommand("chown", "-R", QuoteString(owner), QuoteString(path)))
        if state["mode"] != 0o750:
            change_reason(f"{path} has mode {state['mode']:o}, want 750")
            commands.append(StringCommand("chmod", "750", QuoteString(path)))
    if not commands:
        host.noop(f"user {user}:{group} exists, HOME {home}, owning {', '.join(dirs)}")
        return
    yield chain(commands)
