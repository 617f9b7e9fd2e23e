"""The one-round-trip state read (deploys.common.snapshot): the snapshot's sections run in
a real shell here, and must give what each fact gives when read on its own."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pyinfra.api import FactBase, StringCommand
from pyinfra.api.exceptions import FactProcessError
from pyinfra.context import ctx_host, ctx_state

from deploys.common import operations as common_ops
from deploys.common import snapshot
from deploys.common.facts import FileStates
from deploys.common.snapshot import FactRead, StateSnapshot, fact_read, read_fact
from deploys.duckdb import operations as duckdb_ops
from deploys.packages import operations as apt_ops
from deploys.repo import operations as repo_ops
from deploys.services import operations as service_ops
from deploys.tailscale import operations as tailscale_ops
from deploys.uv import operations as uv_ops


class Lines(FactBase[list[str]]):
    def command(self, text: str) -> str:
        return f"printf '{text}'"

    @staticmethod
    def default() -> list[str]:
        return ["<default>"]

    def process(self, output: list[str]) -> list[str]:
        return output


class ExitsEarly(Lines):
    def command(self) -> str:  # type: ignore[override]
        return "echo kept; exit 0; echo never"


class Fails(Lines):
    def command(self) -> str:  # type: ignore[override]
        return "echo partial; exit 3"


class NeedsMissingCommand(Lines):
    def requires_command(self) -> str:
        return "egograph-no-such-command"

    def command(self) -> str:  # type: ignore[override]
        return "echo never"


class Rejects(Lines):
    def command(self) -> str:  # type: ignore[override]
        return "echo not-json"

    def process(self, output: list[str]) -> list[str]:
        raise FactProcessError("rejected")


class ShellHost:
    """Reads facts by running their commands in a local shell, as pyinfra does over SSH
    (the guard for a missing command, the exit status, ``process``/``default``)."""

    def __init__(self) -> None:
        self.reads: list[str] = []
        self.name = "shell"

    def get_fact(self, cls: type[FactBase[Any]], **kwargs: Any) -> Any:
        self.reads.append(cls.__name__)
        fact = cls()
        command = fact.command(**kwargs) if callable(fact.command) else fact.command
        text = command.get_raw_value() if isinstance(command, StringCommand) else command
        required = fact.requires_command(**kwargs)
        if required:
            text = f"if command -v {required} >/dev/null; then ( {text} ); else exit 0; fi"
        done = subprocess.run(["sh", "-c", text], capture_output=True, text=True)
        lines = done.stdout.splitlines()
        if done.returncode != 0 or not lines:
            return fact.default()
        return fact.process(lines)


@pytest.fixture
def shell_host() -> Iterator[ShellHost]:
    fake = ShellHost()
    with ctx_host.use(fake):
        yield fake


def executing(flag: bool) -> Any:
    return ctx_state.use(SimpleNamespace(is_executing=flag))


def test_sections_give_what_each_fact_gives_on_its_own(
    tmp_path: Path, shell_host: ShellHost
) -> None:
    (tmp_path / "a").write_text("A\n")
    good = [
        fact_read(FileStates, paths=[str(tmp_path / "a"), str(tmp_path / "missing")]),
        fact_read(Lines, text="no newline at the end"),
        fact_read(Lines, text="x\\n\\n"),  # ends with an empty line
        fact_read(Lines, text=""),  # no output: the default
        fact_read(ExitsEarly),
    ]
    bad = [fact_read(Fails), fact_read(NeedsMissingCommand), fact_read(Rejects)]
    values = shell_host.get_fact(StateSnapshot, reads=snapshot.Reads(good + bad))

    assert values == {r.key: shell_host.get_fact(r.fact, **r.kwargs) for r in good}
    assert values[good[1].key] == ["no newline at the end"]
    assert values[good[2].key] == ["x", ""]
    assert values[good[3].key] == ["<default>"]
    assert values[good[4].key] == ["kept"]
    assert all(r.key not in values for r in bad)  # read live, where pyinfra reports them


def test_one_round_trip_until_the_host_changes(tmp_path: Path, shell_host: ShellHost) -> None:
    (tmp_path / "a").write_text("A\n")
    reads = [fact_read(FileStates, paths=[str(tmp_path / "a")]), fact_read(Lines, text="t")]
    snapshot.declare(reads)
    with executing(True):
        first = [read_fact(r.fact, **r.kwargs) for r in reads]
        again = [read_fact(r.fact, **r.kwargs) for r in reads]
        assert shell_host.reads == ["StateSnapshot"]
        assert first == again == [shell_host.get_fact(r.fact, **r.kwargs) for r in reads]

        shell_host.reads.clear()
        snapshot.changing()  # an operation yields a command: the snapshot is stale now
        (tmp_path / "a").write_text("B\n")
        changed = read_fact(FileStates, paths=[str(tmp_path / "a")])
        assert shell_host.reads == ["FileStates"]
        assert changed != first[0]


def test_a_dry_run_never_drops_it_and_execution_takes_it_again(shell_host: ShellHost) -> None:
    snapshot.declare([fact_read(Lines, text="t")])
    with executing(False):
        read_fact(Lines, text="t")
        snapshot.changing()  # preparing: nothing really changes
        read_fact(Lines, text="t")
    assert shell_host.reads == ["StateSnapshot"]
    with executing(True):  # an interactive run: prepared, asked, now executing
        read_fact(Lines, text="t")
        read_fact(Lines, text="t")
    assert shell_host.reads == ["StateSnapshot", "StateSnapshot"]


def test_reads_not_declared_are_live(shell_host: ShellHost) -> None:
    snapshot.declare([fact_read(Lines, text="t")])
    with executing(True):
        assert read_fact(Lines, text="other") == ["other"]
        assert read_fact(Fails) == ["<default>"]
    assert shell_host.reads == ["Lines", "Fails"]  # neither takes the snapshot


class _FirstRead(Exception):
    pass


class RecordingHost:
    """Stops an operation at its first fact read, keeping what it asked for."""

    def __init__(self) -> None:
        self.state = SimpleNamespace(is_executing=True)
        self.name = "recording"
        self.asked: FactRead | None = None

    def get_fact(self, cls: type[FactBase[Any]], **kwargs: Any) -> Any:
        self.asked = fact_read(cls, **kwargs)
        raise _FirstRead


SERVICE = {
    "unit": "egograph-backend",
    "stamp": {"unit": "u", "env": "e"},
    "unit_file": "/etc/systemd/system/egograph-backend.service",
    "env_file": "/opt/egograph/repo/egograph/backend/.env",
    "health_url": "http://127.0.0.1:8000/health",
    "health_timeout": 30,
    "repo_path": "/opt/egograph/repo",
    "ref": "main",
}
OPERATIONS: list[tuple[Any, dict[str, Any]]] = [
    (apt_ops.apt_packages, {"packages": ["git", "curl"]}),
    (
        tailscale_ops.tailscale_package,
        {
            "repo_url": "https://pkgs.example/stable",
            "keyring_url_template": "",
            "keyring_sha256": "0" * 64,
            "version": "",
            "userspace": False,
        },
    ),
    (tailscale_ops.tailscale_login, {"hostname": "h", "flags": [], "authkey_source": {}}),
    (tailscale_ops.tailscale_serve, {"services": [], "hostname": "h"}),
    (uv_ops.uv_binary, {"version": "0.13.9", "path": "/root/.local/bin/uv", "profile": "/p"}),
    (uv_ops.uv_sync, {"repo_path": "/r", "uv": "/uv", "environment": {}, "env_digest": "d"}),
    (repo_ops.checkout, {"url": "git://h/r.git", "path": "/r", "ref": "main"}),
    (common_ops.managed_file, {"path": "/etc/x", "content": "x"}),
    (common_ops.kept_file, {"path": "/etc/x"}),
    (duckdb_ops.duckdb_extensions, {"python": "/py", "extensions": ["httpfs"]}),
    (service_ops.daemon_reload, {"units": {"a": "sha"}, "repo_path": "/r"}),
    (service_ops.service, SERVICE),
    (service_ops.system_user, {"user": "u", "group": "g", "home": "/var/lib/u"}),
]


@pytest.mark.parametrize(("op", "kwargs"), OPERATIONS, ids=[op.__name__ for op, _ in OPERATIONS])
def test_each_operation_declares_what_it_reads(op: Any, kwargs: dict[str, Any]) -> None:
    declared: list[FactRead[Any]] = op.reads_of(**kwargs, name="label")
    fake = RecordingHost()
    with ctx_host.use(fake), pytest.raises(_FirstRead):
        list(op._inner(**kwargs))
    assert fake.asked is not None
    assert [r.key for r in declared] == [fake.asked.key]


def test_a_dry_run_walks_the_deploy_once_to_declare_first(shell_host: ShellHost) -> None:
    """pyinfra decides each operation as the deploy calls it when it checks for changes,
    so the reads of later operations must be declared before the first one reads."""

    @snapshot.operation(reads=lambda text, **_: [fact_read(Lines, text=text)])
    def show(text: str) -> Any:
        yield f"echo {text}"

    walks: list[tuple[bool, Any]] = []

    def steps() -> None:
        planning = snapshot._planning()
        walks.append((planning, show(text="a") if planning else None))

    checking = SimpleNamespace(is_executing=False, should_check_for_changes=lambda: True)
    with ctx_state.use(checking):
        snapshot.planned(steps)()
        assert walks == [(True, None), (False, None)]  # the op registered nothing
        assert read_fact(Lines, text="a") == ["a"]
    assert shell_host.reads == ["StateSnapshot"]

    walks.clear()
    running = SimpleNamespace(is_executing=False, should_check_for_changes=lambda: False)
    with ctx_state.use(running):
        snapshot.planned(steps)()
    assert walks == [(False, None)]  # -y: the deploy's own walk declares before execution
