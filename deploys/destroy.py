"""Destroy the container, explicitly: ``pyinfra inventory.py deploys/destroy.py``.

The one way the deploy removes a container (``prod.py`` never does): stopped, then
destroyed with its disks (``DELETE /nodes/{node}/lxc/{vmid}?purge=1``). pyinfra asks before
executing unless ``-y`` is given; ``--dry`` shows what would go. Nothing runs on the
container itself.
"""

from pyinfra import host

from deploys import proxmox
from deploys.common.connection import without_nagle
from deploys.common.roles import NODE_ROLE, ROLE
from deploys.hostsettings import current

without_nagle()
if host.data.get(ROLE) == NODE_ROLE:
    proxmox.destroy_container(settings=current())
