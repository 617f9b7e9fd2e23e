"""The audit log on the target: one entry per run that changed something there or failed.

- :mod:`.entry`: the entry's fields and the command that appends it (pure)
- here: the controller's side, pyinfra callbacks that write it at the end of a host's run

No operation of its own: an entry is written by callbacks on pyinfra's State, so the
operation counts, plans and drift reports are the deploy's alone, and a run that changes
nothing sends no command for it (the no-op run stays at one remote command). A host's entry
is written

- when one of its operations fails (pyinfra runs nothing after it on that host): at once,
  naming that operation; the release script's rollback marker, written during this run,
  makes it ``rolled_back``;
- when the last operation of the run has ended on every host (pyinfra's ``operation_end``),
  for each host still running that any operation changed.

A dry run executes nothing, so it writes nothing. Not covered: a controller killed before
the end (nothing runs to write it), and pyinfra's ``--serial`` / ``--no-wait`` modes, which
send no ``operation_end`` (a failure is still recorded).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gevent
from pyinfra.api import StringCommand
from pyinfra.api.arguments import CONNECTOR_ARGUMENT_KEYS
from pyinfra.api.state import BaseStateCallback
from pyinfra.api.util import format_exception
from pyinfra.context import ctx_host

from ..common.snapshot import FactRead, fact_read, taken
from ..common.stamps import STATE_DIR
from ..repo.facts import GitCheckout
from ..runlock.holder import controller_name
from .entry import append_command, entry_fields

if TYPE_CHECKING:
    from ..settings import Settings


@dataclass(frozen=True)
class RunAudit:
    """What a host's entry needs from the deploy: its entry point, the checkout, and the
    read that tells the commit before the run (the run's first state read holds it)."""

    entry: str
    repo_path: str
    checkout: FactRead[dict[str, Any]]
    state_dir: str = STATE_DIR


_PLAN = "_egograph_audit"
"""On the pyinfra Host: its :class:`RunAudit`; on the State: the run's start (epoch)."""
_DONE = "_egograph_audit_written"


def record_run(settings: Settings, entry: str) -> None:
    """Have this host's run recorded in its audit log (called by each entry point's deploy
    while pyinfra prepares it; once per host is enough, again is harmless)."""
    checkout = fact_read(
        GitCheckout, path=settings.repo_path, url=settings.repo_url, ref=settings.repo_branch
    )
    register(RunAudit(entry=entry, repo_path=settings.repo_path, checkout=checkout))


def register(plan: RunAudit) -> None:
    """Record the current host's run as ``plan`` says (:func:`record_run`)."""
    current = ctx_host.get()
    state = current.state
    if getattr(state, _PLAN, None) is None:
        setattr(state, _PLAN, time.time())
        state.add_callback_handler(AuditCallback())
    setattr(current, _PLAN, plan)


def changed_operations(state: Any, target: Any) -> list[str]:
    """The names of the operations that changed ``target`` so far, in run order."""
    names = []
    for op_hash in state.get_op_order():
        data = state.ops.get(target, {}).get(op_hash)
        if data is None:
            continue
        meta = data.operation_meta
        if meta.is_complete() and meta.did_change():
            names.append(", ".join(sorted(state.get_op_meta(op_hash).names)))
    return names


def write_entry(state: Any, target: Any, failed: str | None, arguments: dict[str, Any]) -> None:
    """Append ``target``'s entry; a write that fails is said, never fatal (the run's own
    result stands)."""
    plan: RunAudit | None = getattr(target, _PLAN, None)
    if plan is None or getattr(target, _DONE, False):
        return
    changed = changed_operations(state, target)
    if not changed and failed is None:
        return
    setattr(target, _DONE, True)
    started = float(getattr(state, _PLAN))
    with ctx_host.use(target):
        before = taken(plan.checkout)
    fields = entry_fields(
        controller=controller_name(),
        entry=plan.entry,
        started=started,
        ended=time.time(),
        commit_before=(before or {}).get("head"),
        changed=changed,
        failed=failed,
    )
    command = append_command(
        fields, repo_path=plan.repo_path, started=started, state_dir=plan.state_dir
    )
    try:
        ok, output = target.run_shell_command(StringCommand(command), **arguments)
    except Exception as exc:  # the connection may be what failed
        target.log(f"audit log: entry not written ({format_exception(exc)})")
        return
    if not ok:
        target.log(f"audit log: entry not written ({' '.join(output.stderr_lines)[-300:]})")


class AuditCallback(BaseStateCallback):
    """Writes each host's entry at the end of its run (module doc)."""

    @staticmethod
    def operation_host_error(
        state: Any, host: Any, op_hash: str, retry_count: int = 0, max_retries: int = 0
    ) -> None:
        data = state.get_op_data_for_host(host, op_hash)
        arguments = data.global_arguments
        if arguments.get("_ignore_errors"):
            return  # the run goes on (an ignored error); its end records it
        failed = ", ".join(sorted(state.get_op_meta(op_hash).names))
        write_entry(state, host, failed, _connector_arguments(arguments))

    @staticmethod
    def operation_end(state: Any, op_hash: str) -> None:
        if op_hash != state.get_op_order()[-1]:
            return
        gevent.joinall(
            [
                gevent.spawn(write_entry, state, target, None, _arguments_of(state, target))
                for target in list(state.inventory.get_active_hosts())
            ]
        )


def _arguments_of(state: Any, target: Any) -> dict[str, Any]:
    """The connector arguments of ``target``'s last operation."""
    for op_hash in reversed(state.get_op_order()):
        data = state.ops.get(target, {}).get(op_hash)
        if data is not None:
            return _connector_arguments(data.global_arguments)
    return {}


def _connector_arguments(arguments: dict[str, Any]) -> dict[str, Any]:
    """sudo and the like, as the failed operation had them (the state dir is root's)."""
    return {k: arguments[k] for k in CONNECTOR_ARGUMENT_KEYS if k in arguments}
