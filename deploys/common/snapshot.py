"""One round trip for the state a run's operations read.

Each operation decides from one fact, and pyinfra reads every fact in its own round trip
(there is no fact cache in 3.10): a no-op run of the full deploy used to send 13 commands,
about 50 ms each. Here the operations *declare* what they will read when the deploy calls
them (``operation(reads=...)``), and the first read of a host during execution fetches all
of it at once with :class:`StateSnapshot`: one shell script that runs every declared fact's
own command in turn, each in a subshell, its output and exit status framed by a marker line,
and parsed by the fact's own ``process``.

A dry run (and the check before an interactive run's prompt) decides each operation as
soon as the deploy calls it, before later operations have declared their reads: the deploy
is therefore walked once first with :func:`planned`, in which the operations only declare
their reads and register nothing.

The snapshot is only trusted while nothing has changed the host: the first command any of
these operations yields while executing drops it, and every later read is a live
``host.get_fact`` again. A no-op run therefore costs one command; a run that changes
something pays for the snapshot once and then reads as before. A dry run never executes,
so it decides every operation from the one snapshot. Anything the snapshot could not
answer as the live fact would (a section that failed, a missing command, output the fact
rejects) is read live, so errors surface exactly as pyinfra reports them.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import json
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, ParamSpec, TypeVar, cast

from pyinfra import host
from pyinfra.api import FactBase, QuoteString, StringCommand
from pyinfra.api import operation as pyinfra_operation
from pyinfra.api.exceptions import FactProcessError
from pyinfra.api.operation import OperationMeta, PyinfraOperation
from pyinfra.context import ctx_host, ctx_state

P = ParamSpec("P")
T = TypeVar("T")

MARK = "##EGOGRAPH-DEPLOY-SECTION##"
MISSING = "##EGOGRAPH-DEPLOY-NOCMD##"
OUT = "egograph_state_read"
"""The shell variable the state read's output is collected in."""


@dataclass(frozen=True)
class FactRead(Generic[T]):
    """A fact and the arguments an operation will read it with."""

    fact: type[FactBase[T]]
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return key_of(self.fact, self.kwargs)


def fact_read(fact: type[FactBase[T]], **kwargs: Any) -> FactRead[T]:
    return FactRead(fact, kwargs)


def key_of(fact: type[FactBase[Any]], kwargs: dict[str, Any]) -> str:
    args = json.dumps(kwargs, sort_keys=True, default=str)
    return f"{fact.__module__}.{fact.__qualname__}({args})"


class Reads(tuple[FactRead[Any], ...]):
    """The declared reads, shown by their fact names in pyinfra's fact log lines."""

    def __str__(self) -> str:
        return ", ".join(dict.fromkeys(r.fact.__name__ for r in self))


class StateSnapshot(FactBase[dict[str, Any]]):
    """
    Several facts in one round trip: ``{key: value}`` for every read whose command ran,
    succeeded and whose output the fact accepted (see the module doc). Used by
    :func:`read_fact`; a query from the command line shows what a no-op run reads:

    .. code:: python

        {
            "deploys.uv.facts.UvInstall({...})": {"version": "0.13.9", ...},
            ...
        }
    """

    def command(self, reads: Reads) -> StringCommand:
        self._reads = list(reads)
        bits: list[Any] = []
        for index, wanted in enumerate(self._reads):
            fact = wanted.fact()
            command = _call(fact.command, wanted.kwargs)
            required = _call(fact.requires_command, wanted.kwargs)
            if required:
                bits += ["if command -v", required, ">/dev/null 2>&1; then (", command, ");"]
                bits += ["else echo", QuoteString(MISSING), "; fi;"]
            else:
                bits += ["(", command, ");"]
            # The newline ends a last line that had none; process() drops it again.
            bits.append(f"printf '\\n{MARK} {index} %d\\n' $?;")
        # Collected, then written at once: each read's echo and printf is a write of its
        # own, which sshd sends as an SSH packet of its own, and the controller decrypts,
        # checks and hands on every packet in Python (paramiko's ``Packetizer``). A no-op
        # run's connection: 65 packets read → 15 (measured 2026-12-03, deploys/prod.py).
        return StringCommand(f"{OUT}=$(", *bits, "true", f'); printf "%s\\n" "${OUT}"')

    @staticmethod
    def default() -> dict[str, Any]:
        return {}

    def process(self, output: list[str]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        lines: list[str] = []
        for line in output:
            if not line.startswith(MARK + " "):
                lines.append(line)
                continue
            _, index, status = line.split()
            if lines and lines[-1] == "":
                lines.pop()
            wanted = self._reads[int(index)]
            if status == "0" and lines != [MISSING]:
                fact = wanted.fact()
                # Output the fact rejects is read live, so pyinfra reports it as it would.
                with contextlib.suppress(FactProcessError):
                    values[wanted.key] = fact.process(lines) if lines else fact.default()
            lines = []
        return values


def _call(attribute: Any, kwargs: dict[str, Any]) -> Any:
    return attribute(**kwargs) if callable(attribute) else attribute


@dataclass
class _HostReads:
    wanted: dict[str, FactRead[Any]] = field(default_factory=dict)
    values: dict[str, Any] | None = None
    taken_while_executing: bool = False
    trusted: bool = True
    planning: bool = False


_ATTRIBUTE = "_egograph_snapshot"
"""Where a host keeps its snapshot record: on the pyinfra ``Host`` object itself, so it
lives and goes with the host (no state of this module's own)."""


def _record() -> _HostReads | None:
    current = ctx_host.get()
    return None if current is None else getattr(current, _ATTRIBUTE, None)


def _record_of(current: Any) -> _HostReads:
    record = getattr(current, _ATTRIBUTE, None)
    if record is None:
        record = _HostReads()
        setattr(current, _ATTRIBUTE, record)
    return record


def declare(reads: Iterable[FactRead]) -> None:
    """Add reads to the current host's snapshot (called while the deploy is prepared)."""
    current = ctx_host.get()
    if current is None:
        return
    record = _record_of(current)
    for wanted in reads:
        record.wanted.setdefault(wanted.key, wanted)


def planned(steps: Callable[[], None]) -> Callable[[], None]:
    """Wrap a deploy's steps (the calls of its operations) so that, when pyinfra decides
    operations while preparing (``--dry``, or before the prompt), the steps run once first
    only to declare every read: the dry run then reads the host in one command too."""

    @functools.wraps(steps)
    def run() -> None:
        current = ctx_host.get()
        state = ctx_state.get() if ctx_state.isset() else None
        if current is not None and state is not None and state.should_check_for_changes():
            record = _record_of(current)
            record.planning = True
            try:
                steps()
            finally:
                record.planning = False
        steps()

    return run


def _planning() -> bool:
    record = _record()
    return record is not None and record.planning


def _executing() -> bool:
    return bool(ctx_state.isset() and ctx_state.get().is_executing)


def changing() -> None:
    """The current host is about to change: stop trusting its snapshot."""
    record = _record()
    if record is not None and _executing():
        record.trusted = False


def read_fact(fact: type[FactBase[T]], **kwargs: Any) -> T:
    """``host.get_fact(fact, **kwargs)``, answered from the host's snapshot when it holds it
    and nothing has changed the host since it was taken."""
    record = _record()
    key = key_of(fact, kwargs)
    if record is None or not record.trusted or key not in record.wanted:
        return host.get_fact(fact, **kwargs)
    executing = _executing()
    if record.values is None or (executing and not record.taken_while_executing):
        # Taken again when execution starts: an interactive run prepares, asks, then runs.
        record.values = host.get_fact(StateSnapshot, reads=Reads(record.wanted.values()))
        record.taken_while_executing = executing
    if key in record.values:
        return cast(T, copy.deepcopy(record.values[key]))
    return host.get_fact(fact, **kwargs)


def taken(wanted: FactRead[T]) -> T | None:
    """What the current host's snapshot read for ``wanted`` when execution started (the
    state before this run changed anything); None when it holds no such value."""
    record = _record()
    if record is None or record.values is None or not record.taken_while_executing:
        return None
    value = record.values.get(wanted.key)
    return None if value is None else cast(T, copy.deepcopy(value))


def operation(
    *, read: Callable[..., FactRead[Any]], **options: Any
) -> Callable[[Callable[..., Generator[Any, None, None]]], PyinfraOperation[...]]:
    """pyinfra's ``@operation()``, deciding from one declared read:

    - ``read(**arguments)`` names the fact the operation decides from (called with the
      operation's own arguments, defaults applied, when the deploy calls it: the snapshot
      reads every declared fact at once);
    - the body receives that fact's value as its first argument, and reads nothing else;
    - the first command it yields while executing drops the host's snapshot.

    The operation's own arguments are the body's other parameters; that is the signature
    pyinfra and callers see. In the planning walk (see :func:`planned`) a call registers
    nothing and returns an ``OperationMeta`` that changes nothing.
    """

    def decorate(func: Callable[..., Generator[Any, None, None]]) -> PyinfraOperation[...]:
        full = inspect.signature(func)
        own = full.replace(parameters=list(full.parameters.values())[1:])

        def read_of(*args: Any, **kwargs: Any) -> FactRead[Any]:
            mine = {k: v for k, v in kwargs.items() if k in own.parameters}
            bound = own.bind_partial(*args, **mine)
            bound.apply_defaults()
            return read(**bound.arguments)

        @functools.wraps(func)
        def commands(*args: Any, **kwargs: Any) -> Generator[Any, None, None]:
            for command in func(_value_of(read_of(*args, **kwargs)), *args, **kwargs):
                changing()
                yield command

        commands.__signature__ = own  # type: ignore[attr-defined]
        op = pyinfra_operation(**options)(commands)

        @functools.wraps(op)
        def declaring(*args: Any, **kwargs: Any) -> Any:
            declare([read_of(*args, **kwargs)])
            if _planning():
                return OperationMeta("planned", False)
            return op(*args, **kwargs)

        declaring._inner = op._inner  # type: ignore[attr-defined]
        declaring.read_of = read_of  # type: ignore[attr-defined]
        return cast(PyinfraOperation[...], declaring)

    return decorate


def _value_of(wanted: FactRead[T]) -> T:
    return read_fact(wanted.fact, **wanted.kwargs)


def declared_operations(module: Any) -> dict[str, Any]:
    """The operations a module defines with :func:`operation` (tests find them here)."""
    return {
        name: value
        for name, value in vars(module).items()
        if callable(value) and hasattr(value, "read_of") and hasattr(value, "_inner")
    }
