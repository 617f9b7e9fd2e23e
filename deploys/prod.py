"""Production deploy: ``pyinfra inventory.py deploys/prod.py``.

Until the Proxmox concern lands this converges an existing container (runbook §2-5).
"""

from deploys import container

container.converge()
