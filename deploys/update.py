"""Update flow (runbook §7): ``pyinfra inventory.py deploys/update.py``.

Fetches ``repo_branch``, moves the checkout to it, syncs the environment when the commit
changed, restarts the services once and waits for ``/health`` (rolling back to the last good
release if the new one fails). Local changes on the server stop the run (listed);
``--data repo_discard_local_changes=True`` discards them. ``--dry`` shows what would happen.
With Proxmox in the inventory the node is left alone: only the container is updated.
"""

from pyinfra import host

from deploys import container
from deploys.common.connection import without_nagle
from deploys.common.roles import NODE_ROLE, ROLE

without_nagle()
if host.data.get(ROLE) != NODE_ROLE:
    container.update()
