"""``egodeploy preflight``: every check for every deploy target, in the order a deploy
meets them, and nothing changed anywhere.

1. On the controller (:mod:`.checks`): the secrets, SSH keys, the API's TLS settings, the
   keyring pin, and the settings validation. A failure here stops a deploy before it
   connects to anything, so preflight does not connect either.
2. The Proxmox node (:mod:`.proxmox`): the API with TLS verified, the token's privileges
   for this run, the node's SSH, the template storage.
3. The target itself: ``repo_url`` answers with ``repo_branch``, asked on the target over
   the deploy's own connection with the fact the deploy's first operation reads
   (:class:`deploys.repo.facts.GitCheckout`, judged by
   :func:`deploys.repo.operations.remote_problem`): one command per host. A container
   that does not exist yet (or has no git yet) cannot ask; the controller asks instead,
   and says so.
"""

from __future__ import annotations

import logging
import subprocess
from contextlib import chdir
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .checks import FAIL, PASS, SKIP, Check, controller_checks, settings_check

if TYPE_CHECKING:
    from ..settings import Settings

REPO_FIX = (
    "check repo_url and repo_branch, and that the target reaches the repository (a private "
    "one needs credentials on the target)"
)


def run_preflight(project_dir: Path, inventory: str) -> dict[str, list[Check]]:
    """Each deploy target's checks (the hosts file's names, as ``inventory.py`` reads it)."""
    from ..common.reach import patch_gevent

    patch_gevent()  # before paramiko and requests load (the node's SSH, the API)
    from ..inventory import (
        pinned_host_key_conflicts,
        pyinfra_keys,
        settings_part,
        ssh_key_problems,
        target_data,
    )
    from ..settings import SettingsError, raw_defaults, validate

    results: dict[str, list[Check]] = {}
    ready: dict[str, Settings] = {}
    keys = pyinfra_keys()
    with chdir(project_dir):
        targets = target_data(inventory, [])
        for name, _data, merged in targets:
            given = settings_part(merged, keys)
            try:
                settings: Settings | None = validate(given)
                errors: list[str] = []
            except SettingsError as exc:
                settings, errors = None, list(exc.errors)
            errors += ssh_key_problems(merged)
            if given.get("pve_host"):
                errors += pinned_host_key_conflicts(merged)
            values = {**raw_defaults(), **given}
            checks = controller_checks(values, merged)
            checks.append(settings_check(errors, checks))
            if errors or any(not c.ok for c in checks):
                untried = "not tried: a deploy stops at the failures above, before connecting"
                checks += [Check(n, SKIP, untried) for n in remote_names(values)]
            elif settings is not None:
                checks += node_checks(settings, values, merged, checks)
                ready[name] = settings
            results[name] = checks
    if ready and len(ready) < len(results):
        # the inventory refuses every target while one is refused: no connection at all
        for name in ready:
            results[name].append(
                Check(
                    "repo_url",
                    SKIP,
                    "not tried: another target's settings are refused, and a deploy stops there",
                )
            )
    elif ready:
        try:
            found = repo_checks(project_dir, inventory, ready)
        except (Exception, SystemExit) as exc:  # pyinfra's inventory loader, its CLI errors
            found = {}
            why = f"cannot load the inventory {inventory} in {project_dir}: {exc}"
        else:
            why = "the inventory holds no host for it"
        for name in ready:
            results[name].append(found.get(name) or Check(
                "repo_url", FAIL, f"not checked: {why}",
                "run from the deploy's project directory (--project-dir, --inventory)",
            ))  # fmt: skip
    return results


def remote_names(values: dict[str, Any]) -> list[str]:
    """The checks that reach beyond the controller, for a target with ``values``."""
    node = ["pve_api", "node_ssh", "pve_privileges", "template_storage"]
    return [*(node if values.get("pve_host") else []), "repo_url"]


def node_checks(
    settings: Settings, values: dict[str, Any], merged: dict[str, Any], checks: list[Check]
) -> list[Check]:
    """The Proxmox checks; a container that does not exist yet will log in to the tailnet,
    so from then on a missing auth key fails instead of warning."""
    if not settings.pve_host:
        return []
    from .proxmox import proxmox_checks

    found, exists = proxmox_checks(settings)
    if exists is False and settings.tailscale_enabled:
        again = {c.name: c for c in controller_checks(values, merged, login_needed=True)}
        checks[:] = [again.get(c.name, c) if c.name.startswith("secret:tailscale") else c
                     for c in checks]  # fmt: skip
    return found


def repo_checks(project_dir: Path, inventory: str, ready: dict[str, Settings]) -> dict[str, Check]:
    """``repo_url`` for each target whose other checks allow a deploy to start."""
    from pyinfra.api.exceptions import PyinfraError

    from ..common.reach import inventory_state
    from ..common.roles import NODE_ROLE, ROLE
    from ..repo.facts import GitCheckout

    # pyinfra's connectors log to its logger (a container read as not there yet, a failed
    # connection): each check says it, once, in its own words; no stray lines on stderr
    logging.getLogger("pyinfra").addHandler(logging.NullHandler())
    found: dict[str, Check] = {}
    with inventory_state(project_dir, inventory) as (_state, hosts):
        for host in hosts:
            if host.data.get(ROLE) == NODE_ROLE:
                continue
            target = host.name.removeprefix("@pvelxc/")
            settings = ready.get(target)
            if settings is None:
                continue
            args = {"path": settings.repo_path, "url": settings.repo_url,
                    "ref": settings.repo_branch}  # fmt: skip
            try:
                host.connect(raise_exceptions=True, show_errors=False)
                current = host.get_fact(GitCheckout, **args)
            except (PyinfraError, ConnectionError, OSError) as exc:
                found[target] = Check(
                    "repo_url", FAIL, f"{host.name}: cannot run a command there: {exc}",
                    "check the host's ssh_* data (user, key, known_hosts) and that it answers",
                    "repo_url",
                )  # fmt: skip
                continue
            found[target] = repo_check(current, settings, where="the target")
            if not current["remote_checked"]:
                local = GitCheckout().command(**args).get_raw_value()
                answer = subprocess.run(["sh", "-c", local], capture_output=True, text=True,
                                        timeout=120, stdin=subprocess.DEVNULL)  # fmt: skip
                why = (
                    "the container does not exist yet"
                    if getattr(host.connector, "target_pending", False)
                    else "git is not on the target yet"
                )
                found[target] = repo_check(
                    GitCheckout().process(answer.stdout.splitlines()), settings,
                    where=f"the controller ({why}; the deploy asks on the target first thing)",
                )  # fmt: skip
    return found


def repo_check(current: dict[str, Any], settings: Settings, *, where: str) -> Check:
    """The remote's answer as the deploy's first operation judges it."""
    from ..repo.operations import remote_problem, shown_url

    problem = remote_problem(current, settings.repo_url, settings.repo_branch)
    if problem:
        return Check("repo_url", FAIL, f"{problem} (asked from {where})", REPO_FIX, "repo_url")
    if not current["remote_checked"]:
        return Check("repo_url", SKIP, f"git is not installed on {where}", setting="repo_url")
    commit = str(current["remote"])[:12]
    return Check(
        "repo_url", PASS,
        f"{shown_url(settings.repo_url)} has {settings.repo_branch} at {commit} (asked from "
        f"{where})", setting="repo_url",
    )  # fmt: skip
