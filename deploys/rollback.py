"""Manual rollback: ``egodeploy rollback [--to COMMIT]`` runs
``pyinfra inventory.py deploys/rollback.py`` (``EGOGRAPH_ROLLBACK_TO``: the commit).

Returns each container to the release before its current one in its release history (or
to the one ``--to`` names), as a release: checkout pinned to that commit, ``uv sync``,
restart, health gate, automatic rollback if it fails, audit entry. ``--dry`` shows what
would happen. With Proxmox in the inventory the node is left alone.
"""

from pyinfra import host

from deploys import container
from deploys.common.connection import without_nagle
from deploys.common.roles import NODE_ROLE, ROLE

without_nagle()
if host.data.get(ROLE) != NODE_ROLE:
    container.rollback()
