"""Where the sandbox keeps things on the host."""

from __future__ import annotations

import os
from pathlib import Path

STATE = Path(os.environ.get("EGOGRAPH_SANDBOX_DIR", "/var/lib/egograph-sandbox"))
"""Containers, keys, known_hosts, served repositories: per machine, rebuilt when missing."""

CACHE = Path(os.environ.get("EGOGRAPH_SANDBOX_CACHE", "/var/cache/egograph-sandbox"))
"""The debootstrapped root filesystem, reused between runs."""

BRIDGE = "egosbx0"
SUBNET = "10.213.0"
HOST_IP = f"{SUBNET}.1"
HTTP_PORT = 8213
"""Host-side HTTP server (DuckDB extension repository, apt repositories) on the bridge."""

CONTAINERS = STATE / "containers"
SSH_KEY = STATE / "ssh" / "id_ed25519"
KNOWN_HOSTS = STATE / "ssh" / "known_hosts"
SSH_CONFIG = STATE / "ssh" / "config"
GIT_ROOT = STATE / "git"
WWW_ROOT = STATE / "www"
RUN = STATE / "run"
