"""Operation decisions without a target: facts are given, commands are read back."""

from __future__ import annotations

from typing import Any

from deploys.common.commands import Streamed
from deploys.uv import operations as uv_ops
from deploys.uv.facts import UvInstall, UvSyncState
from tests.unit.fakes import FakeHost, run_op


def commands(op: Any, facts: dict[type, Any], **kwargs: Any) -> tuple[list[str], FakeHost]:
    fake = run_op(op, facts, **kwargs)
    return [c.get_raw_value() for c in fake.commands], fake


def test_installer_method_runs_the_pinned_official_script() -> None:
    cmds, fake = commands(
        uv_ops.uv_binary,
        {UvInstall: {"version": None, "machine": "x86_64", "profile_line": False}},
        version="0.13.9",
        path="/root/.local/bin/uv",
        profile="/root/.profile",
        method="installer",
    )
    assert cmds[0].startswith(
        "curl -LsSf --proto =https --retry 3 https://astral.sh/uv/0.13.9/install.sh | env "
        "UV_INSTALL_DIR=/root/.local/bin UV_NO_MODIFY_PATH=1 sh && /root/.local/bin/uv --version"
    )
    assert cmds[1] == "printf '%s\\n' 'export PATH=\"/root/.local/bin:$PATH\"' >> /root/.profile"
    assert "uv at /root/.local/bin/uv is missing, want 0.13.9" in fake.logs


def test_uv_at_the_pinned_version_is_left_alone() -> None:
    cmds, fake = commands(
        uv_ops.uv_binary,
        {UvInstall: {"version": "0.13.9", "machine": "x86_64", "profile_line": True}},
        version="0.13.9",
        path="/root/.local/bin/uv",
        profile="/root/.profile",
        method="installer",
    )
    assert cmds == []
    assert fake.noops == ["uv 0.13.9 is installed at /root/.local/bin/uv"]


def test_sync_runs_only_when_commit_lock_or_environment_changed() -> None:
    stamp = {"commit": "a" * 40, "lock": "l" * 64, "env": "e"}
    same = {UvSyncState: {"head": "a" * 40, "lock": "l" * 64, "stamp": stamp}}
    kwargs = {
        "repo_path": "/opt/egograph/repo",
        "uv": "/root/.local/bin/uv",
        "environment": {},
        "env_digest": "e",
    }
    assert commands(uv_ops.uv_sync, same, **kwargs)[0] == []
    (script,), moved = commands(
        uv_ops.uv_sync, {UvSyncState: {**same[UvSyncState], "lock": "m" * 64}}, **kwargs
    )
    assert "sync --all-packages --locked" in script
    assert "uv sync needed: uv.lock changed" in moved.logs


def test_a_sync_is_streamed_and_prints_its_progress() -> None:
    fake = run_op(
        uv_ops.uv_sync,
        {UvSyncState: {"head": "a" * 40, "lock": "l" * 64, "stamp": None}},
        repo_path="/opt/egograph/repo",
        uv="/root/.local/bin/uv",
        environment={},
        env_digest="e",
    )
    (command,) = fake.commands
    # pyinfra shows its output as it comes (deploys.common.commands.Streamed)
    assert isinstance(command, Streamed)
    script = command.get_raw_value()
    assert "printf '%s: %s s%s\\n' 'uv sync'" in script
    # uv's output goes to the file the lines quote, and to stderr when it fails
    assert '--locked --no-progress\n) >"$hb_log" 2>&1\nrc=$?' in script
    assert script.index('[ "$rc" -eq 0 ] || cat "$hb_log" >&2') < script.index(
        'if [ "$rc" -eq 0 ]; then'
    )
