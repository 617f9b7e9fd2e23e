"""Operations that install uv and sync the app's environment."""

from __future__ import annotations

import json
import shlex
from typing import Any

from pyinfra import host
from pyinfra.api import FileUploadCommand, FunctionCommand, QuoteString, StringCommand

from ..common.commands import Streamed, chain
from ..common.report import change_reason
from ..common.shell import with_heartbeat
from ..common.snapshot import FactRead, fact_read, operation
from ..common.stamps import VENV_SNAPSHOT
from ..repo.commit import Commit, commit_of
from ..repo.shell import checkout_command
from . import wheel
from .facts import UvInstall, UvSyncState


def profile_line(uv_dir: str) -> str:
    return f'export PATH="{uv_dir}:$PATH"'


def _uv_read(path: str, profile: str, **_: Any) -> FactRead[dict[str, Any]]:
    return fact_read(UvInstall, path=path, profile=profile, line=profile_line(_dir(path)))


def _dir(path: str) -> str:
    return path.rsplit("/", 1)[0]


@operation(read=_uv_read)
def uv_binary(
    current: dict[str, Any],
    version: str,
    path: str,
    profile: str,
    *,
    method: str = "installer",
    installer_url: str = "https://astral.sh/uv/{version}/install.sh",
    wheel_index: str = "",
) -> Any:
    """
    Install uv ``version`` at ``path`` (uvx beside it) and put its directory on PATH in
    ``profile``. Nothing happens when that version is already there.

    + method: ``installer`` runs the official, version-pinned install script on the target;
      ``wheel`` makes the controller fetch the uv wheel for the target's machine from
      ``wheel_index``, verify its sha256 and push the binaries
    + installer_url: the script's URL, ``{version}`` replaced
    + wheel_index: a simple index URL; '' = the controller uv's own configuration

    **Example:**

    .. code:: python

        uv_binary(name="Install uv 0.13.9", version="0.13.9",
                  path="/root/.local/bin/uv", profile="/root/.profile")
    """
    uv_dir = _dir(path)
    line = profile_line(uv_dir)

    if current["version"] == version:
        host.noop(f"uv {version} is installed at {path}")
    elif method == "installer":
        change_reason(f"uv at {path} is {current['version'] or 'missing'}, want {version}")
        url = installer_url.format(version=version)
        # UV_NO_MODIFY_PATH: the profile line below is managed here, idempotently.
        yield StringCommand(
            "curl",
            "-LsSf",
            "--proto",
            "=https",
            "--retry",
            "3",
            QuoteString(url),
            "|",
            "env",
            QuoteString(f"UV_INSTALL_DIR={uv_dir}"),
            "UV_NO_MODIFY_PATH=1",
            "sh",
            "&&",
            _version_check(path, version),
        )
    else:
        change_reason(f"uv at {path} is {current['version'] or 'missing'}, want {version}")
        machine = current["machine"] or "x86_64"
        local_uv, local_uvx = wheel.binary_paths(version, machine)
        yield FunctionCommand(
            wheel.ensure_binaries,
            (wheel_index, version, machine),
            {},
        )
        targets = ((local_uv, path), (local_uvx, f"{uv_dir}/uvx"))
        yield StringCommand("mkdir", "-p", QuoteString(uv_dir))
        finish = []
        for local, remote in targets:
            tmp = f"{remote}.egograph-deploy.tmp"
            yield FileUploadCommand(str(local), tmp)
            finish.append(
                StringCommand(
                    "chmod",
                    "755",
                    QuoteString(tmp),
                    "&&",
                    "mv",
                    "-f",
                    QuoteString(tmp),
                    QuoteString(remote),
                )
            )
        finish.append(_version_check(path, version))
        # The moves, the check and the PATH line below go over as one command.
        if not current["profile_line"]:
            change_reason(f"{profile} does not put {uv_dir} on PATH")
            finish.append(_profile_command(line, profile))
        yield chain(finish)
        return

    if not current["profile_line"]:
        change_reason(f"{profile} does not put {uv_dir} on PATH")
        yield _profile_command(line, profile)


def _version_check(path: str, version: str) -> StringCommand:
    return StringCommand(
        QuoteString(path), "--version", "|", "grep", "-qF", QuoteString(f"uv {version}")
    )


def _profile_command(line: str, profile: str) -> StringCommand:
    return StringCommand("printf", "'%s\\n'", QuoteString(line), ">>", QuoteString(profile))


def sync_stamp_path(repo_path: str) -> str:
    return f"{repo_path}/.venv/.egograph-deploy-sync.json"


def _sync_read(repo_path: str, **_: Any) -> FactRead[dict[str, Any]]:
    return fact_read(UvSyncState, repo_path=repo_path, stamp=sync_stamp_path(repo_path))


@operation(read=_sync_read)
def uv_sync(
    current: dict[str, Any],
    repo_path: str,
    uv: str,
    *,
    environment: dict[str, str],
    env_digest: str,
    ref: str = "main",
    commit: Commit = None,
) -> Any:
    """
    ``uv sync --all-packages --locked`` in the workspace, only when the checkout, its
    ``uv.lock`` or uv's environment changed since the last successful sync (a stamp in the
    venv records them). A lock that no longer matches the workspace fails the run loudly.

    + repo_path: the workspace root
    + uv: absolute path of the uv binary
    + environment: variables for uv (e.g. ``UV_SYSTEM_CERTS=1``); not secret
    + env_digest: identifies ``environment`` and the uv version in the stamp
    + commit: the commit the deploy is moving to, when known before the checkout moves —
      lets a dry run predict the sync

    **Example:**

    .. code:: python

        uv_sync(name="uv sync", repo_path="/opt/egograph/repo", uv="/root/.local/bin/uv",
                environment={}, env_digest="…")
    """
    commit = commit_of(commit)
    stamp = current["stamp"] or {}
    reasons = []
    if not stamp:
        reasons.append("never synced")
    else:
        if stamp.get("commit") != current["head"] or (commit and stamp.get("commit") != commit):
            reasons.append("checkout moved")
        if stamp.get("lock") != current["lock"]:
            reasons.append("uv.lock changed")
        if stamp.get("env") != env_digest:
            reasons.append("uv version or environment changed")
    if not reasons:
        host.noop(f"environment in {repo_path} matches commit {str(stamp.get('commit'))[:12]}")
        return
    change_reason(f"uv sync needed: {', '.join(reasons)}")
    # Shown as it runs: a long sync says every few seconds how long and what uv said last.
    yield Streamed(sync_script(repo_path, uv, environment, env_digest, ref))


def sync_command(uv: str, environment: dict[str, str]) -> str:
    """The shell of the deploy's ``uv sync`` (run in the workspace root)."""
    env = " ".join(shlex.quote(f"{k}={v}") for k, v in sorted(environment.items()))
    return f"env {env} {shlex.quote(uv)} sync --all-packages --locked --no-progress"


def sync_script(
    repo_path: str, uv: str, environment: dict[str, str], env_digest: str, ref: str
) -> str:
    """``uv sync`` that leaves the last good environment in place when it fails.

    Before syncing, the current ``.venv`` is copied to ``.venv.rollback`` (the services'
    release step drops it once every service of the new release is healthy, or puts it back
    when one is not). A snapshot already there is kept: it is the environment of the last
    good release, which a release synced but never made healthy (a run cut off, say) has not
    replaced. It is copied under another name and renamed, so a cut copy is never kept.
    While uv runs, the script prints ``uv sync: <n> s, <uv's newest line>`` every few
    seconds (:func:`deploys.common.shell.with_heartbeat`; uv's output itself is shown when
    it fails). If the sync fails — a stale lock with ``--locked``, a build error — the environment and
    the checkout are returned to what was last synced, so the running service is never
    restarted onto a half-made environment, and the run fails with uv's message. The
    restored environment is synced once more: the checkout's files are new to uv, which
    judges its workspace members by their files' times and would call it outdated.
    """
    q = shlex.quote
    stamp = sync_stamp_path(repo_path)
    snapshot = f"{repo_path}/{VENV_SNAPSHOT}"
    fmt = json.dumps({"commit": "%s", "lock": "%s", "env": env_digest})
    sync = sync_command(uv, environment)
    return f"""\
cd {q(repo_path)} || exit 1
rm -rf {q(snapshot + ".tmp")}
if [ -d .venv ] && [ ! -d {q(snapshot)} ]; then
  cp -a .venv {q(snapshot + ".tmp")} && mv {q(snapshot + ".tmp")} {q(snapshot)} || exit 1
fi
{with_heartbeat(sync, "uv sync")}if [ "$rc" -eq 0 ]; then
  printf {q(fmt)} "$(git rev-parse HEAD)" "$(sha256sum uv.lock | cut -c1-64)" > {q(stamp + ".tmp")}
  mv -f {q(stamp + ".tmp")} {q(stamp)}
  exit 0
fi
synced=$(sed -n 's/.*"commit": "\\([0-9a-f]*\\)".*/\\1/p' {q(snapshot + "/.egograph-deploy-sync.json")} 2>/dev/null)
if [ -n "$synced" ]; then
  failed=$(git rev-parse HEAD)
  {checkout_command(repo_path, ref, "synced")}
  rm -rf .venv && mv {q(snapshot)} .venv
  {sync} --quiet || echo "the restored environment could not be synced again" >&2
  echo "uv sync failed for $failed; checkout and environment are back at $synced;" >&2
  echo "the services were not restarted" >&2
fi
exit $rc
"""
