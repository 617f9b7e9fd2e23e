"""The shell that (re)starts a release's units and keeps the last good release if any fails.

Pure string building (no pyinfra), so the script can be read and tested on its own. It runs
on the target as one command, for every service of the run at once, because a release is
all of its services or none:

1. ``systemctl restart`` (or start) each unit that needs it, in order, and wait until it
   answers its health URL — watching systemd meanwhile, so a process that exits (a release
   that crashes at import) ends the wait at once instead of after the timeout. Each
   (re)start is preceded by ``systemctl reset-failed``, which flushes the unit's start rate
   limit (systemd ``src/core/unit.c`` ``unit_reset_failed`` → ``ratelimit_reset``): the
   crash loop of a release just rolled back has spent most of the default 5 starts in
   10 s, and the next deploy's restart of a good release would otherwise be refused with
   "Start request repeated too quickly" and taken for that release's failure.
2. All healthy: only then record each unit's stamp (digests of its unit and env files as
   they are, the commit), keep copies of those files as the *good* release, and drop the
   environment snapshot the sync left (``.venv.rollback``) and the rollback marker, and
   record the commit in the release history (``deploys.services.history``: the last
   ``release_keep`` releases, each kept in the clone by a ref). A unit that came up healthy
   therefore never discards what a later one needs to go back. A manual rollback
   (``egodeploy rollback``) writes the marker instead of dropping it, naming the commit it
   left, as an automatic rollback does, so later runs do not redeploy that commit.
3. One not healthy: print its last journal lines; stop and disable every unit of the
   release that never had a healthy release (its unit and env file stay for inspection);
   put every other unit this release touched back on the last good release — checkout,
   environment, unit and env file — restart each, confirm every one healthy, write one
   marker naming the failed commit and service (shown by later runs and the drift report,
   which refuse that commit from then on) and exit 1 with the reason.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from ..common.shell import wait_unit_ready_function
from ..common.stamps import (
    VENV_SNAPSHOT,
    good_copies,
    release_history,
    release_marker,
    started_stamp,
)
from ..repo.shell import checkout_command
from .history import history_update_shell


@dataclass(frozen=True)
class ReleaseUnit:
    """One service as the release script sees it: its unit, the files it starts with and
    the URL that says it is healthy."""

    unit: str
    unit_file: str
    env_file: str
    health_url: str


@dataclass(frozen=True)
class ManualRollback:
    """A release that is a manual rollback: once healthy, the marker names ``refuse`` as
    the failed commit (the one the rollback left) and says ``reason``."""

    refuse: str
    reason: str


def release_script(
    *,
    units: list[ReleaseUnit],
    verbs: dict[str, str],
    health_timeout: int,
    repo_path: str,
    ref: str,
    state_dir: str,
    resync: str,
    keep: int = 5,
    manual: ManualRollback | None = None,
) -> str:
    """``verbs``: unit → ``restart`` or ``start``, for the units this release (re)starts;
    ``units``: every service of the run, in order (the ones not (re)started are checked
    healthy after a rollback); ``resync``: the deploy's ``uv sync``, run in the workspace
    once the services are back on a checkout that moved back: the restored environment is
    right, but uv judges workspace members by their files' times, which the checkout
    renewed, and would otherwise call it outdated. ``keep``: how many releases the history
    keeps (``release_keep``); ``manual``: this release is a manual rollback."""
    q = shlex.quote
    snapshot = f"{repo_path}/{VENV_SNAPSHOT}"
    failed_venv = f"{repo_path}/.venv.failed"
    stamp_fmt = json.dumps({"unit": "%s", "env": "%s", "commit": "%s"})
    marker_fmt = json.dumps(
        {"failed_commit": "%s", "failed_service": "%s", "restored_commit": "%s", "at": "%s"}
    )
    if manual is None:
        settle = f"rm -f {q(release_marker(state_dir))}"
    else:
        manual_fmt = json.dumps(
            {
                "failed_commit": "%s",
                "failed_service": "",
                "restored_commit": "%s",
                "at": "%s",
                "reason": "%s",
            }
        )
        reason = json.dumps(manual.reason)[1:-1]
        settle = (
            f'printf {q(manual_fmt)} {q(manual.refuse)} "$head" "$(date -u +%FT%TZ)" '
            f"{q(reason)} > "
            f"{q(release_marker(state_dir) + '.tmp')} && mv -f "
            f"{q(release_marker(state_dir) + '.tmp')} {q(release_marker(state_dir))}"
        )
    tried = [u for u in units if u.unit in verbs]
    start = "\n".join(
        f'  tried="$tried {u.unit}"; why="systemctl {verbs[u.unit]} {u.unit} failed"\n'
        f"  systemctl reset-failed {q(u.unit + '.service')} 2>/dev/null\n"
        f"  systemctl {verbs[u.unit]} {q(u.unit + '.service')} && "
        f"wait_ready {q(u.unit + '.service')} {q(u.health_url)} || "
        f"{{ failed={q(u.unit)}; return 1; }}"
        for u in tried
    )
    promote = "\n".join(
        f"  install -d -m 700 {q(good_copies(u.unit, state_dir))}\n"
        f'  printf {q(stamp_fmt)} "$(digest {q(u.unit_file)})" "$(digest {q(u.env_file)})" '
        f'"$head" > {q(started_stamp(u.unit, state_dir) + ".tmp")}\n'
        f"  cp -p {q(u.unit_file)} {q(good_copies(u.unit, state_dir) + '/unit')} && "
        f"cp -p {q(u.env_file)} {q(good_copies(u.unit, state_dir) + '/env')} && "
        f"mv -f {q(started_stamp(u.unit, state_dir) + '.tmp')} "
        f"{q(started_stamp(u.unit, state_dir))}"
        for u in tried
    )
    # Markers of the earlier one-per-unit layout go too, so none outlives this release.
    legacy = " ".join(q(f"{state_dir}/{u.unit}.rolled-back.json") for u in units)
    judge = "\n".join(
        f"judge {q(u.unit)} {q(started_stamp(u.unit, state_dir))} "
        f"{q(good_copies(u.unit, state_dir))}"
        for u in tried
    )
    restore = "\n".join(
        f'case " $restore " in *" {u.unit} "*)\n'
        f"  cp -p {q(good_copies(u.unit, state_dir) + '/unit')} {q(u.unit_file)} && "
        f"cp -p {q(good_copies(u.unit, state_dir) + '/env')} {q(u.env_file)} ;;\nesac"
        for u in tried
    )
    verify = "\n".join(
        f'case " $restore " in *" {u.unit} "*)\n'
        f"  systemctl reset-failed {q(u.unit + '.service')} 2>/dev/null\n"
        f"  systemctl restart {q(u.unit + '.service')} ;;\nesac\n"
        f'case " $stopped " in *" {u.unit} "*) ;; *)\n'
        f"  wait_ready {q(u.unit + '.service')} {q(u.health_url)} || "
        f'{{ ok=""; echo "$why" >&2; }} ;;\nesac'
        for u in units
    )
    return f"""\
{wait_unit_ready_function(health_timeout)}
digest() {{ sha256sum "$1" 2>/dev/null | cut -c1-64; }}
head=$(git -C {q(repo_path)} rev-parse HEAD 2>/dev/null)
tried=""
failed=""
release() {{
{start}
}}
if release; then
  install -d -m 700 {q(state_dir)}
{promote}
  rm -rf {q(snapshot)} {legacy}
  {settle}
  if [ -n "$head" ]; then
{history_update_shell(history_file=release_history(state_dir), repo_path=repo_path, keep=keep)}
  fi
  exit 0
fi
echo "RELEASE FAILED: $why; last journal lines of $failed:" >&2
journalctl -u "$failed.service" -n 40 --no-pager >&2
# Which units this release touched can go back to a healthy release, and which never had one.
good_commit=""
restore=""
stopped=""
judge() {{
  c=$(sed -n 's/.*"commit": "\\([0-9a-f]*\\)".*/\\1/p' "$2" 2>/dev/null)
  if [ -n "$c" ] && [ -f "$3/unit" ]; then
    restore="$restore $1"; good_commit=${{good_commit:-$c}}
  else
    systemctl disable --quiet --now "$1.service"
    stopped="$stopped $1"
    echo "$1 never became healthy: stopped and disabled; its unit and env file are kept" \\
      "for inspection" >&2
  fi
}}
{judge}
if [ -z "$restore" ]; then
  echo "no earlier healthy release of$tried to roll back to" >&2
  exit 1
fi
if [ "$head" != "$good_commit" ]; then
  {checkout_command(repo_path, ref, "good_commit")}
fi
# Renamed, not deleted, before the restarts: deleting a whole environment takes a while,
# and the services are down meanwhile. It goes once they are back.
if [ -d {q(snapshot)} ]; then
  rm -rf {q(failed_venv)}
  mv {q(repo_path + "/.venv")} {q(failed_venv)} && mv {q(snapshot)} {q(repo_path + "/.venv")}
fi
{restore}
systemctl daemon-reload
ok=1
{verify}
rm -rf {q(failed_venv)}
if [ "$head" != "$good_commit" ]; then
  (cd {q(repo_path)} && {resync} --quiet) || \
    echo "the restored environment could not be synced again (uv sync)" >&2
fi
if [ -n "$ok" ]; then
  install -d -m 700 {q(state_dir)}
  printf {q(marker_fmt)} "$head" "$failed" "$good_commit" "$(date -u +%FT%TZ)" \\
    > {q(release_marker(state_dir))}
  echo "ROLLED BACK: release $head failed ($failed);" \\
    "every service is back on the last good release ($good_commit) and healthy" >&2
else
  echo "ROLLBACK FAILED: the last good release ($good_commit) is not healthy either" >&2
fi
exit 1
"""
