"""Shell command helpers shared by the operations."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pyinfra.api import StringCommand
from pyinfra.connectors.util import CommandOutput


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


class Streamed(StringCommand):
    """A command whose output pyinfra shows as it comes, in the normal output, as ``-vvv``
    shows every command's: for a long command that prints its own progress lines
    (:func:`.shell.with_heartbeat`), each shown behind the host's prefix.

    It is pyinfra's own mechanism: ``StringCommand.execute`` passes ``state.print_output``
    (set by ``-vvv``) to the connector's ``run_shell_command``, whose
    ``connectors.util.read_output_buffers`` echoes each line to stderr as it is read (so
    never into ``--json``'s stdout); here it is on for this command alone. A command that
    fails has had its output shown already, so it is not handed back to be printed again
    (``api.operations._run_host_op`` prints a failed command's output unless
    ``state.print_output``)."""

    def execute(self, state: Any, host: Any, connector_arguments: Any) -> Any:
        if state.print_output:
            return super().execute(state, host, connector_arguments)
        connector_arguments.update(self.connector_arguments)
        status, output = host.run_shell_command(
            self, print_output=True, print_input=state.print_input, **connector_arguments
        )
        if status is False:
            return status, CommandOutput([])
        return status, output
