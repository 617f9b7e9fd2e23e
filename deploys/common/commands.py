"""Shell command helpers shared by the operations."""

from __future__ import annotations

from collections.abc import Sequence

from pyinfra.api import StringCommand


class Chain(StringCommand):
    """Several commands as one, each in its own subshell, stopping at the first that fails
    as pyinfra would: one round trip (about 50 ms over SSH) instead of one per command.
    ``parts`` keeps the commands."""

    def __init__(self, parts: Sequence[StringCommand | str]) -> None:
        self.parts = list(parts)
        bits: list[StringCommand | str] = []
        for command in self.parts:
            if bits:
                bits.append("&&")
            # The newline ends a trailing comment in a multi-line script.
            bits += ["(", command, "\n)"]
        super().__init__(*bits)


def chain(commands: Sequence[StringCommand | str]) -> StringCommand:
    """``commands`` as one command (see :class:`Chain`); a single command as it is."""
    if len(commands) == 1:
        only = commands[0]
        return only if isinstance(only, StringCommand) else StringCommand(only)
    return Chain(commands)
