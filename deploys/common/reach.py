"""The deploy's hosts as pyinfra's API sees them, for the ``egodeploy`` commands that reach
them outside a deploy (``logs``, ``status``, ``preflight``).

The hosts come from the deploy's inventory (``inventory.py``: the hosts file, its settings
checked as for a deploy), and each host is reached by its own pyinfra connector: plain SSH
with the host's ``ssh_*`` data (known_hosts included), or ``@pvelxc``, which finds the
container through the Proxmox API. So they read over exactly the path and host key a deploy
uses, never over a second, looser one. :func:`reached` leaves the node of a Proxmox
inventory out; :func:`inventory_state` yields every host, unconnected.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import chdir, contextmanager
from pathlib import Path
from typing import Any

from .roles import NODE_ROLE, ROLE


def patch_gevent() -> None:
    """pyinfra is gevent-based; as its own CLI does, patch before it (and paramiko) load.
    The deploy's modules and pyinfra load only after: the other commands start without
    them."""
    from gevent import monkey

    monkey.patch_all()


@contextmanager
def inventory_state(project_dir: Path, inventory: str) -> Iterator[tuple[Any, Any]]:
    """``(state, inventory)`` of the project's inventory, at pyinfra's connect stage (in
    ``project_dir``, as pyinfra's CLI runs); every host is disconnected afterwards."""
    from pyinfra.api import Config, State
    from pyinfra.api.connect import disconnect_all
    from pyinfra.api.state import StateStage
    from pyinfra.context import ctx_inventory, ctx_state
    from pyinfra_cli.inventory import make_inventory

    with chdir(project_dir):
        cwd = os.getcwd()
        if cwd not in sys.path:
            sys.path.append(cwd)  # as pyinfra's CLI does, for inventory.py's imports
        state = State(check_for_changes=False)
        state.cwd = cwd
        ctx_state.set(state)
        hosts = make_inventory(inventory, cwd=cwd)
        ctx_inventory.set(hosts)
        state.init(hosts, Config())
        state.set_stage(StateStage.Connect)
        try:
            yield state, hosts
        finally:
            disconnect_all(state)


@contextmanager
def reached(
    project_dir: Path, inventory: str, *, tolerate_unreachable: bool = False
) -> Iterator[tuple[Any, list[Any]]]:
    """pyinfra's State and the inventory's targets (the node left out), connected and in
    pyinfra's execute stage; disconnected at the end. A host pyinfra could not connect to
    stops it (pyinfra's error), or with ``tolerate_unreachable`` is yielded with
    ``host.connected`` False."""
    patch_gevent()
    from pyinfra.api.connect import connect_all
    from pyinfra.api.exceptions import PyinfraError
    from pyinfra.api.state import StateStage

    with inventory_state(project_dir, inventory) as (state, hosts):
        targets = [h for h in hosts if h.data.get(ROLE) != NODE_ROLE]
        try:
            connect_all(state)
        except PyinfraError:
            if not tolerate_unreachable:
                raise
        # Commands now run for real: a lazy connector (@pvelxc) connects to the container
        # itself instead of reading it as not there yet.
        state.is_executing = True
        state.set_stage(StateStage.Execute)
        yield state, targets
