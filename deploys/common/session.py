"""The deploy's hosts as pyinfra's API sees them, for the ``egodeploy`` commands that reach
them outside a deploy (``logs``, ``preflight``): the inventory (``inventory.py``, its
settings checked as for a deploy) in a pyinfra ``State``, each host with its own
connector, so a command travels the path and host key a deploy uses.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import chdir, contextmanager
from pathlib import Path
from typing import Any


def patch_for_pyinfra() -> None:
    """pyinfra is gevent-based; as its own CLI does, patch before it (and paramiko) load.
    The deploy's modules and pyinfra load only after this: the other commands start
    without them."""
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
