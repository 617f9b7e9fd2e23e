"""A fake pyinfra host for running an operation's decisions without a target: facts are
given by (fact, arguments), and the commands the operation yields are kept for the test to
read. A read of anything else fails the test."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

from pyinfra.context import ctx_host

from deploys.common.commands import Chain
from deploys.common.snapshot import key_of


class UnregisteredRead(AssertionError):
    """The operation read a fact, or a fact with arguments, the test did not give it."""


class FakeHost:
    def __init__(self, facts: dict[str, Any], *, executing: bool = True) -> None:
        self.facts = facts
        """``key_of(fact, kwargs)`` → the value."""
        self.state = SimpleNamespace(is_executing=executing, config=SimpleNamespace(DIFF=False))
        self.name = "fake"
        self.connector = SimpleNamespace()
        self.current_op_hash = None
        self.noops: list[str] = []
        self.logs: list[str] = []
        self.commands: list[Any] = []
        self.round_trips = 0

    def get_fact(self, cls: type, *args: Any, **kwargs: Any) -> Any:
        key = key_of(cls, kwargs)
        if key not in self.facts:
            raise UnregisteredRead(f"read {key}; the test gave {sorted(self.facts)}")
        return copy.deepcopy(self.facts[key])

    def noop(self, message: str) -> None:
        self.noops.append(message)

    def log(self, message: str, *args: Any, **kwargs: Any) -> None:
        self.logs.append(message)


def run_op(op: Any, facts: dict[type, Any], *, executing: bool = True, **kwargs: Any) -> FakeHost:
    """Run ``op``'s generator on a fake host that answers exactly the read ``op`` declares
    for these arguments (``facts`` gives its value by fact class); ``fake.commands`` holds
    what it yielded, a chain of commands as its parts, and ``fake.round_trips`` how many
    commands it yielded."""
    wanted = op.read_of(**kwargs)
    if wanted.fact not in facts:
        raise UnregisteredRead(f"{op.__name__} reads {wanted.key}; the test gave {list(facts)}")
    fake = FakeHost({wanted.key: facts[wanted.fact]}, executing=executing)
    with ctx_host.use(fake):
        yielded = list(op._inner(**kwargs))
    fake.round_trips = len(yielded)
    fake.commands = [p for c in yielded for p in (c.parts if isinstance(c, Chain) else [c])]
    return fake
