"""Operation decisions without a target: facts are given, commands are read back."""

from __future__ import annotations

from typing import Any

import pytest

from deploys.uv import operations as uv_ops


class FakeHost:
    def __init__(self, facts: dict[str, Any]) -> None:
        self.facts = facts
        self.noops: list[str] = []
        self.logs: list[str] = []
        self.name = "fake"
        self.current_op_hash = "op"

    def get_fact(self, fact: type, **kwargs: Any) -> Any:
        return self.facts[fact.__name__]

    def noop(self, text: str) -> None:
        self.noops.append(text)

    def log(self, text: str, *args: Any) -> None:
        self.logs.append(text)


def commands(op: Any, fake: FakeHost, monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> list[str]:
    monkeypatch.setattr(uv_ops, "host", fake)
    monkeypatch.setattr("deploys.common.report.host", fake)
    return [str(getattr(c, "get_raw_value", lambda c=c: c)()) for c in op._inner(**kwargs)]


def test_installer_method_runs_the_pinned_official_script(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeHost({"UvInstall": {"version": None, "machine": "x86_64", "profile_line": False}})
    cmds = commands(
        uv_ops.uv_binary,
        fake,
        monkeypatch,
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


def test_uv_at_the_pinned_version_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeHost({"UvInstall": {"version": "0.13.9", "machine": "x86_64", "profile_line": True}})
    cmds = commands(
        uv_ops.uv_binary,
        fake,
        monkeypatch,
        version="0.13.9",
        path="/root/.local/bin/uv",
        profile="/root/.profile",
        method="installer",
    )
    assert cmds == []
    assert fake.noops == ["uv 0.13.9 is installed at /root/.local/bin/uv"]


def test_sync_runs_only_when_commit_lock_or_environment_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stamp = {"commit": "a" * 40, "lock": "l" * 64, "env": "e"}
    same = {"UvSyncState": {"head": "a" * 40, "lock": "l" * 64, "stamp": stamp}}
    kwargs = {
        "repo_path": "/opt/egograph/repo",
        "uv": "/root/.local/bin/uv",
        "environment": {},
        "env_digest": "e",
    }
    fake = FakeHost(same)
    assert commands(uv_ops.uv_sync, fake, monkeypatch, **kwargs) == []
    moved = FakeHost({"UvSyncState": {**same["UvSyncState"], "lock": "m" * 64}})
    (script,) = commands(uv_ops.uv_sync, moved, monkeypatch, **kwargs)
    assert "sync --all-packages --locked" in script
    assert "uv sync needed: uv.lock changed" in moved.logs
