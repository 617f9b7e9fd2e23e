"""The one-round-trip state read (deploys.common.snapshot): the snapshot's sections run in
a real shell here, and must give what each fact gives when read on its own."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pyinfra.api import FactBase, StringCommand
from pyinfra.api.exceptions import FactProcessError
from pyinfra.context import ctx_host, ctx_state

from deploys.common import snapshot
from deploys.common.facts import FileStates
from deploys.common.snapshot import StateSnapshot, fact_read, read_fact


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


def _operation_modules() -> list[Any]:
    """Every module of the package, imported (operations live in several)."""
    import deploys

    found = []
    for info in pkgutil.walk_packages(deploys.__path__, "deploys."):
        if info.name.rsplit(".", 1)[-1] in ("prod", "update", "rollback", "destroy", "docker_vm"):
            continue  # entry files run a deploy when imported
        found.append(importlib.import_module(info.name))
    return found


DECLARED = sorted(
    {
        (module.__name__, name): op
        for module in _operation_modules()
        for name, op in snapshot.declared_operations(module).items()
        if getattr(op, "__module__", "") == module.__name__
    }.items()
)


def test_the_operations_are_found() -> None:
    names = {name for (_, name), _ in DECLARED}
    assert {
        "apt_packages",
        "release",
        "release_guard",
        "daemon_reload",
        "tailscale_serve",
        "uv_sync",
    } <= names
    assert len(DECLARED) >= 15


@pytest.mark.parametrize(("where", "op"), DECLARED, ids=[f"{m}.{n}" for (m, n), _ in DECLARED])
def test_an_operation_reads_only_what_it_declares(where: tuple[str, str], op: Any) -> None:
    """The declared read is the only read: the body gets it as its first argument and
    asks pyinfra for no fact itself."""
    body = inspect.getsource(inspect.unwrap(op._inner))
    for call in ("read_fact(", "get_fact(", "host.get_fact"):
        assert call not in body, f"{where}: the body reads a fact itself ({call})"
    first = next(iter(inspect.signature(inspect.unwrap(op._inner)).parameters))
    assert first not in inspect.signature(op).parameters  # the value, not an argument


def test_a_dry_run_walks_the_deploy_once_to_declare_first(shell_host: ShellHost) -> None:
    """pyinfra decides each operation as the deploy calls it when it checks for changes,
    so the reads of later operations must be declared before the first one reads."""

    @snapshot.operation(read=lambda text, **_: fact_read(Lines, text=text))
    def show(lines: list[str], text: str) -> Any:
        yield f"echo {text}"

    walks: list[tuple[bool, Any]] = []

    def steps() -> None:
        planning = snapshot._planning()
        walks.append((planning, show(text="a").will_change if planning else None))

    checking = SimpleNamespace(is_executing=False, should_check_for_changes=lambda: True)
    with ctx_state.use(checking):
        snapshot.planned(steps)()
        # The op registered nothing, and what it returned can be asked (as
        # `restarted=op.will_change` would) without crashing the dry run.
        assert walks == [(True, False), (False, None)]
        assert read_fact(Lines, text="a") == ["a"]
    assert shell_host.reads == ["StateSnapshot"]

    walks.clear()
    running = SimpleNamespace(is_executing=False, should_check_for_changes=lambda: False)
    with ctx_state.use(running):
        snapshot.planned(steps)()
    assert walks == [(False, None)]  # -y: the deploy's own walk declares before execution


def test_taken_is_what_execution_read_first_even_after_the_host_changed(
    tmp_path: Path, shell_host: ShellHost
) -> None:
    """The audit log's commit before a run: the snapshot execution took, not a later read."""
    (tmp_path / "a").write_text("A\n")
    wanted = fact_read(FileStates, paths=[str(tmp_path / "a")])
    snapshot.declare([wanted])
    with executing(False):
        read_fact(wanted.fact, **wanted.kwargs)
        assert snapshot.taken(wanted) is None  # a dry run's read is not the run's start
    with executing(True):
        first = read_fact(wanted.fact, **wanted.kwargs)
        snapshot.changing()
        (tmp_path / "a").write_text("B\n")
        assert read_fact(wanted.fact, **wanted.kwargs) != first
        assert snapshot.taken(wanted) == first
    assert snapshot.taken(fact_read(Lines, text="never declared")) is None
