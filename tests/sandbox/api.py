"""The sandbox's public face: what ``bench/`` and the tests' shared fixtures
(``tests/conftest.py``) use of it, and nothing else.

- the host: :func:`require_root_linux`, :func:`prepare_host`, and where things are
  (:data:`PROJECT`, the state and cache paths, the bridge's address and HTTP port)
- containers: :func:`container` (made when new, not started), :func:`all_containers`,
  :class:`Container` (``start``, ``destroy``, ``ssh``, ``pyinfra_data``)
- the app: :func:`publish_app` (the fixture app into this session's repository
  :data:`APP_REPO`), :func:`work_tree`, :data:`FIXTURE_APP`, :func:`write_secret_env`,
  :func:`crash_at_import` (a release that exits at import)
- a whole deploy: :func:`settings` (the sandbox's outside world) and
  :func:`write_hosts_file`
- the emulated Proxmox node: :func:`start_pve_node`, :class:`PveNode`, :func:`pve_settings`

The e2e tests reach further in (the Tailscale, Docker and PVE sites, the runner); bench
imports only this module.
"""

from __future__ import annotations

from . import host
from .app.site import (
    APP_REPO,
    FIXTURE_APP,
    crash_at_import,
    publish_app,
    work_tree,
    write_secret_env,
)
from .container import Container, all_containers
from .container import get as container
from .host import require_root_linux
from .paths import CACHE, GIT_ROOT, HOST_IP, HTTP_PORT, KNOWN_HOSTS, SSH_CONFIG, SSH_KEY, WWW_ROOT
from .pve.site import Node as PveNode
from .pve.site import settings as pve_settings
from .pve.site import start_node as start_pve_node
from .runner import PROJECT
from .site import settings, write_hosts_file

__all__ = [
    "APP_REPO",
    "CACHE",
    "FIXTURE_APP",
    "GIT_ROOT",
    "HOST_IP",
    "HTTP_PORT",
    "KNOWN_HOSTS",
    "PROJECT",
    "SSH_CONFIG",
    "SSH_KEY",
    "WWW_ROOT",
    "Container",
    "PveNode",
    "all_containers",
    "container",
    "crash_at_import",
    "prepare_host",
    "publish_app",
    "pve_settings",
    "require_root_linux",
    "settings",
    "start_pve_node",
    "work_tree",
    "write_hosts_file",
    "write_secret_env",
]


def prepare_host() -> None:
    """The host side of the sandbox: its packages, the bridge with NAT, and the host services
    the containers reach (git daemon, the HTTP server)."""
    host.ensure_packages()
    host.ensure_network()
    host.ensure_services()
