"""The shell that (re)starts a unit and keeps the last good release if the new one fails.

Pure string building (no pyinfra), so the script can be read and tested on its own. It runs
on the target as one command:

1. ``systemctl restart`` (or start) the unit, then poll its health URL (bounded).
2. Healthy: record the stamp (digests of the unit and env files as they are, the commit),
   keep copies of those files as the *good* release, drop the environment snapshot the sync
   left (``.venv.rollback``) and any rollback marker. Exit 0.
3. Not healthy: print the unit's last journal lines, then — if an earlier release was healthy
   — put back its checkout, environment, unit file and env file, restart, confirm it is
   healthy, write a rollback marker (shown by later runs and the drift report) and exit 1
   with the reason. The service is never left down when the previous release was healthy.
"""

from __future__ import annotations

import json
import shlex

from ..common.shell import wait_healthy_function
from ..common.stamps import VENV_SNAPSHOT, good_copies, rolled_back_marker, started_stamp
from ..repo.shell import checkout_command


def release_script(
    *,
    unit: str,
    verb: str,
    health_url: str,
    health_timeout: int,
    unit_file: str,
    env_file: str,
    repo_path: str,
    ref: str,
    state_dir: str,
) -> str:
    q = shlex.quote
    stamp = started_stamp(unit, state_dir)
    good = good_copies(unit, state_dir)
    marker = rolled_back_marker(unit, state_dir)
    snapshot = f"{repo_path}/{VENV_SNAPSHOT}"
    stamp_fmt = json.dumps({"unit": "%s", "env": "%s", "commit": "%s"})
    marker_fmt = json.dumps({"failed_commit": "%s", "restored_commit": "%s", "at": "%s"})
    return f"""\
unit={q(unit + ".service")}
{wait_healthy_function(health_url, health_timeout)}
digest() {{ sha256sum "$1" 2>/dev/null | cut -c1-64; }}
systemctl {q(verb)} "$unit"
if wait_healthy; then
  install -d -m 700 {q(state_dir)} {q(good)}
  printf {q(stamp_fmt)} "$(digest {q(unit_file)})" "$(digest {q(env_file)})" \\
    "$(git -C {q(repo_path)} rev-parse HEAD 2>/dev/null)" > {q(stamp + ".tmp")}
  cp -p {q(unit_file)} {q(good + "/unit")} && cp -p {q(env_file)} {q(good + "/env")}
  mv -f {q(stamp + ".tmp")} {q(stamp)}
  rm -rf {q(snapshot)} {q(marker)}
  exit 0
fi
echo {q(f"{unit} did not answer 200 on {health_url} within {health_timeout}s; last journal lines:")} >&2
journalctl -u "$unit" -n 40 --no-pager >&2
good_commit=$(sed -n 's/.*"commit": "\\([0-9a-f]*\\)".*/\\1/p' {q(stamp)} 2>/dev/null)
if [ -z "$good_commit" ] || [ ! -f {q(good + "/unit")} ]; then
  echo "no earlier healthy release of {unit} to roll back to" >&2
  exit 1
fi
failed_commit=$(git -C {q(repo_path)} rev-parse HEAD)
{checkout_command(repo_path, ref, "good_commit")}
if [ -d {q(snapshot)} ]; then rm -rf {q(repo_path + "/.venv")} && mv {q(snapshot)} {q(repo_path + "/.venv")}; fi
cp -p {q(good + "/unit")} {q(unit_file)} && cp -p {q(good + "/env")} {q(env_file)}
systemctl daemon-reload
systemctl restart "$unit"
if wait_healthy; then
  printf {q(marker_fmt)} "$failed_commit" "$good_commit" "$(date -u +%FT%TZ)" > {q(marker)}
  echo "ROLLED BACK: the new release ($failed_commit) of {unit} failed its health check;" \\
    "the last good release ($good_commit) is running again and healthy" >&2
else
  echo "ROLLBACK FAILED: the last good release ($good_commit) of {unit} is not healthy either" >&2
fi
exit 1
"""
