"""Docker variant on a VM (runbook §8): ``pyinfra inventory.py deploys/docker_vm.py``.

The target is the VM (or any Debian/Ubuntu host) over SSH. In order: system packages,
Tailscale, the Docker engine, the checkout (same refusal of local changes as the LXC
deploy), the env file (0600, outside the checkout), the image built from the whole
workspace and tagged with the commit, the container on 127.0.0.1 (rolled back to the
previous one if the new one is unhealthy), then ``tailscale serve`` on the VM host.
"""

from deploys import vm
from deploys.common.connection import without_nagle

without_nagle()
vm.converge()
