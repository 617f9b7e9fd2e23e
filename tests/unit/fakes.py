"""A fake pyinfra host for running an operation's decisions without a target: facts are
given by class, and the commands the operation yields are kept for the test to read."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

from pyinfra.context import ctx_host

from deploys.common.commands import Chain


class FakeHost:
    def __init__(self, facts: dict[type, Any], *, executing: bool = True) -> None:
        self.facts = facts
        self.state = SimpleNamespace(is_executing=executing)
        self.name = "fake"
        self.connector = SimpleNamespace()
        self.current_op_hash = None
        self.noops: list[str] = []
        self.logs: list[str] = []
        self.commands: list[Any] = []
        self.round_trips = 0

    def get_fact(self, cls: type, *args: Any, **kwargs: Any) -> Any:
        return copy.deepcopy(self.facts[cls])

    def noop(self, message: str) -> None:
        self.noops.append(message)

    def log(self, message: str, *args: Any, **kwargs: Any) -> None:
        self.logs.append(message)


def run_op(op: Any, facts: dict[type, Any], *, executing: bool = True, **kwargs: Any) -> FakeHost:
    """Run ``op``'s generator on a fake host; ``fake.commands`` holds what it yielded, a
    chain of commands as its parts, and ``fake.round_trips`` how many commands it yielded."""
    fake = FakeHost(facts, executing=executing)
    with ctx_host.use(fake):
        yielded = list(op._inner(**kwargs))
    fake.round_trips = len(yielded)
    fake.commands = [p for c in yielded for p in (c.parts if isinstance(c, Chain) else [c])]
    return fake
