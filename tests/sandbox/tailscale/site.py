"""Tailscale in the sandbox: the real ``tailscale`` package in a signed apt repository served
by the host, the tailnets of the sandbox's headscale, and the host's own tailnet node.

- :func:`settings` points the deploy at them: the repository, its keyring pin, the control
  server (``tailscale_login_server``) and a pre-auth key file of one tailnet (``certs``: a
  tailnet whose nodes may serve HTTPS, the runbook's path; ``plain``: stock headscale, HTTP
  only). See ``headscale.py``.
- :class:`HostNode` is a second tailnet node on the controller itself (userspace
  networking, a SOCKS5 proxy on loopback): a client that reaches the services through the
  tailnet, as a person's laptop would.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import host, paths
from . import TAILSCALE, headscale
from .build import RepoInfo, build_repo
from .gobuild import ensure_built

BASE_URL = f"http://{paths.HOST_IP}:{paths.HTTP_PORT}/tailscale"
LOGIN_SERVER = headscale.SERVER_URL
BASE_DOMAIN = headscale.BASE_DOMAIN
CERTS, PLAIN = headscale.CERTS, headscale.PLAIN


def publish_repo() -> RepoInfo:
    """Build (or reuse) the repository under the host's HTTP root."""
    return build_repo(
        paths.WWW_ROOT / "tailscale", paths.STATE / "tailscale-key", base_url=BASE_URL
    )


def authkey_file(tailnet: str = headscale.CERTS) -> Path:
    """The controller-side pre-auth key file (0600) of ``tailnet``."""
    return headscale.authkey_file(tailnet)


def authkey(tailnet: str = headscale.CERTS) -> str:
    """The key itself, for tests that check it is never shown."""
    return authkey_file(tailnet).read_text().strip()


def settings(tailnet: str = headscale.CERTS) -> dict[str, Any]:
    """Settings that install the real package from the local repository and log in to the
    sandbox's control server with a key of ``tailnet``."""
    info = publish_repo()
    return {
        "tailscale_repo_url": f"{BASE_URL}/stable",
        "tailscale_keyring_sha256": info.keyring_sha256,
        "tailscale_version": info.version,
        "tailscale_login_server": LOGIN_SERVER,
        "tailscale_authkey_source": {"file": str(authkey_file(tailnet))},
    }


def fqdn(name: str) -> str:
    """A node's MagicDNS name in the sandbox's tailnets."""
    return f"{name}.{BASE_DOMAIN}"


def node_of(ssh: Any) -> dict[str, Any]:
    """``tailscale status --json`` of a container (``ssh(cmd)`` runs a command in it)."""
    return dict(json.loads(ssh("tailscale status --json --peers=false").stdout))


@dataclass(frozen=True)
class HostNode:
    """The controller's own tailnet node: tailscaled in userspace mode under the sandbox
    state, with a SOCKS5 proxy on ``127.0.0.1:SOCKS_PORT`` that resolves tailnet names
    from the netmap (``ipn/ipnlocal/resolve.go``)."""

    SOCKS_PORT = 1055
    NAME = "sandbox-host"
    dir: Path = paths.STATE / "host-node"

    @property
    def socket(self) -> Path:
        return self.dir / "tailscaled.sock"

    def cli(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        tailscale = ensure_built(TAILSCALE) / "tailscale"
        return subprocess.run(
            [str(tailscale), f"--socket={self.socket}", *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )

    def ensure_up(self) -> HostNode:
        headscale.ensure_running()
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        tailscaled = ensure_built(TAILSCALE) / "tailscaled"
        host.daemon(
            "host-tailscaled",
            [
                str(tailscaled),
                "--tun=userspace-networking",
                f"--state={self.dir / 'tailscaled.state'}",
                f"--socket={self.socket}",
                "--port=0",
                "--no-logs-no-support",
                f"--socks5-server=127.0.0.1:{self.SOCKS_PORT}",
            ],
            self.SOCKS_PORT,
            address="127.0.0.1",
            env={"TS_DEBUG_USE_DERP_HTTP": "1"},
        )
        deadline = time.monotonic() + 20  # a restarted daemon reads its state first
        while True:
            state = json.loads(self.cli("status", "--json", "--peers=false").stdout or "{}")
            if state.get("BackendState") not in (None, "NoState", "Starting"):
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.3)
        if state.get("BackendState") != "Running":
            up = self.cli(
                "up",
                f"--login-server={LOGIN_SERVER}",
                f"--auth-key=file:{authkey_file(headscale.PLAIN)}",
                f"--hostname={self.NAME}",
                "--reset",
                "--timeout=60s",
            )
            if up.returncode != 0:
                raise RuntimeError(f"the host's tailnet node did not come up: {up.stderr}")
        return self

    def curl(self, url: str, *args: str, timeout: int = 10) -> subprocess.CompletedProcess[str]:
        """``curl`` through the tailnet (the name is resolved by this node)."""
        return subprocess.run(
            ["curl", "-sS", "-m", str(timeout), "--socks5-hostname",
             f"127.0.0.1:{self.SOCKS_PORT}", *args, url],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout + 5,
        )  # fmt: skip

    def wait_for_peer(self, name: str, timeout: float = 30) -> None:
        """Until this node's netmap knows ``name`` (a new peer appears within a second or
        two: headscale batches changes)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = json.loads(self.cli("status", "--json").stdout or "{}")
            peers = (status.get("Peer") or {}).values()
            if any(str(p.get("DNSName", "")).rstrip(".") == fqdn(name) for p in peers):
                return
            time.sleep(0.5)
        raise TimeoutError(f"{name} did not appear in the host node's netmap")
