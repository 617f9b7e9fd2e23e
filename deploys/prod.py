"""Production deploy: ``pyinfra inventory.py deploys/prod.py``.

With Proxmox (``pve_host`` set) the inventory holds the node and the container: the node's
operations come first (template, container, ``/dev/net/tun``, running and reachable; runbook
§1-2), then the container's (runbook §2-5), which connects on first use. From an empty node
one run creates and converges everything; ``--dry`` creates nothing. Without Proxmox this
converges an existing container.
"""

from pyinfra import host

from deploys import container, proxmox
from deploys.common.connection import without_nagle
from deploys.common.roles import NODE_ROLE, ROLE
from deploys.hostsettings import current

without_nagle()
# Every host gets the Proxmox stage (it does nothing on the container host and without
# Proxmox), so pyinfra's operation graph puts the container's operations after it.
proxmox.ensure_container(settings=current())
if host.data.get(ROLE) != NODE_ROLE:
    container.converge()
