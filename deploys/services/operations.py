"""Operations that keep the app's systemd services loaded, enabled, current and healthy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand

from ..common.commands import chain
from ..common.report import change_reason
from ..common.snapshot import FactRead, fact_read, operation
from ..common.stamps import STATE_DIR
from ..repo.commit import Commit, commit_of
from .facts import ServiceStates, SystemUser
from .release import release_script


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


@operation(read=_probe_read)
def service(
    states: dict[str, Any],
    unit: str,
    *,
    probe: ServiceProbe,
    stamp: dict[str, str | None],
    unit_file: str,
    env_file: str,
    health_url: str,
    health_timeout: int,
    repo_path: str,
    ref: str,
    commit: Commit = None,
) -> Any:
    """
    Keep ``unit`` enabled and running the wanted release, and healthy.

    The deploy records what a unit was last started with (``stamp``: digests of its unit
    file and env file, and the commit) once it answered its health URL. The unit is
    restarted when any of these differ — also when an earlier run changed a file and was
    interrupted before the restart — and is never restarted otherwise. After a (re)start the
    health URL must answer 200 within ``health_timeout`` seconds, else the run fails with the
    unit's last journal lines — and the last good release (checkout, environment, unit and
    env files) is put back and restarted, so a broken release never leaves the service down
    (see ``deploys.services.release``).

    + unit: unit name without ``.service``
    + probe: what to read, for every service of the run (:class:`ServiceProbe`)
    + stamp: ``{"unit": sha, "env": sha}`` of the wanted files; ``env`` None: the env file
      is kept on the server and its current digest there is the wanted one
    + unit_file/env_file: their paths; the stamp records the digests of the files as they
      are when the unit starts healthy (computed on the target, never passed in argv)
    + ref: the branch (or pinned commit) the checkout follows, for a rollback
    + commit: the commit the run moves to when known (lets a dry run predict the restart)

    **Example:**

    .. code:: python

        service(name="egograph-backend running", unit="egograph-backend",
                stamp={"unit": "9f2c…", "env": "41d0…"},
                unit_file="/etc/systemd/system/egograph-backend.service",
                env_file="/opt/egograph/repo/egograph/backend/.env", health_url="http://127.0.0.1:8000/health",
                health_timeout=60, repo_path="/opt/egograph/repo")
    """
    commit = commit_of(commit)
    current = states["units"].get(unit, {})
    head = states["head"]
    started = current.get("stamp") or {}

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

    active = current.get("ActiveState") == "active"
    wanted = {"unit": stamp["unit"], "env": stamp["env"] or current.get("env_sha256")}
    reasons = [f"{key} file changed" for key in ("unit", "env") if started.get(key) != wanted[key]]
    if started.get("commit") != head or (commit and started.get("commit") != commit):
        reasons.append("code or dependencies changed")
    rolled_back = current.get("rolled_back")
    if rolled_back:
        reasons.append(
            f"release {str(rolled_back.get('failed_commit'))[:12]} was rolled back at "
            f"{rolled_back.get('at')} after failing its health check"
        )
    if not started:
        reasons = ["never started by the deploy"]
    if active and current.get("healthy") is False:
        reasons.append(f"not answering {health_url}")
    if active and not reasons:
        if commands:
            yield chain(commands)
        else:
            host.noop(f"{unit} is running, current and healthy")
        return
    verb = "restart" if active else "start"
    change_reason(f"{verb} {unit}: {', '.join(reasons) if active else 'not running'}")

    release = StringCommand(
        release_script(
            unit=unit,
            verb=verb,
            health_url=health_url,
            health_timeout=health_timeout,
            unit_file=unit_file,
            env_file=env_file,
            repo_path=repo_path,
            ref=ref,
            state_dir=STATE_DIR,
        )
    )
    yield chain([*commands, release])


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
