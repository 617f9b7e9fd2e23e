"""headscale, the tailnet's control server, on the sandbox host.

One server for the whole sandbox (``http://10.213.0.1:8080``), with its embedded DERP
relay, MagicDNS and the base domain ``tailnet.test``, and two users standing for two kinds
of tailnet:

- ``certs``: its nodes get the ``https`` node attribute from the policy (``nodeAttrs``,
  which headscale v0.29 passes into the node's CapMap). ``tailscale serve`` then takes the
  tailnet for one that issues certificates (``cmd/tailscale/cli/serve_legacy.go``
  ``enableFeatureInteractive`` returns at once when Self has the cap) and stores exactly
  the config it stores on Tailscale's own service (TCP 443 HTTPS, Web ``<dnsname>:443``).
  TLS handshakes still fail: headscale issues no certificates (``CertDomains`` stays empty,
  ``feature/acme/cert.go`` ``resolveCertDomain``), which is what it cannot do and the one
  gap left.
- ``plain``: stock headscale. It answers the HTTPS feature query with 501 "Not implemented
  yet" (``hscontrol/noise.go``), so HTTPS serve fails and only plain HTTP serve works.

Offline settings (shared notes/real-tailscale-headscale.md §4): no DERP map download
(``derp.urls: []``), the embedded DERP region on the bridge address, no update check, no
DNS override. The server's DERP speaks plain HTTP (no certificate for 10.213.0.1): every
tailscaled in the sandbox runs with ``TS_DEBUG_USE_DERP_HTTP=1`` (see ``DERP_DROP_IN``).
One database per pinned version (headscale refuses downgrades and skipped minors).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import host, paths
from . import HEADSCALE
from .gobuild import ensure_built

PORT = 8080
STUN_PORT = 3478
SERVER_URL = f"http://{paths.HOST_IP}:{PORT}"
BASE_DOMAIN = "tailnet.test"
CERTS = "certs"
PLAIN = "plain"
TAILNETS = (CERTS, PLAIN)
KEY_VALIDITY = "720h"
HS_DIR = paths.STATE / f"headscale-{HEADSCALE.version}"

DERP_DROP_IN = """\
# egograph sandbox: the control server's embedded DERP relay speaks plain HTTP (it has no
# certificate for the bridge address). tailscaled dials DERP over TLS unless told otherwise
# (derp/derphttp/derphttp_client.go useHTTPS); without a live DERP a node alone on the
# tailnet never leaves Starting (ipn/ipnlocal/local.go nextStateLocked). No log uploads:
# the sandbox is offline.
[Service]
Environment=TS_DEBUG_USE_DERP_HTTP=1 TS_NO_LOGS_NO_SUPPORT=true
"""
DERP_DROP_IN_PATH = "etc/systemd/system/tailscaled.service.d/egograph-sandbox.conf"

POLICY = {"nodeAttrs": [{"target": [f"{CERTS}@"], "attr": ["https"]}]}
"""No ``acls``: allow-all between every node, as a fresh tailnet."""


def _config() -> str:
    d = HS_DIR
    return f"""\
server_url: {SERVER_URL}
listen_addr: {paths.HOST_IP}:{PORT}
metrics_listen_addr: ""
grpc_listen_addr: 127.0.0.1:50443
disable_check_updates: true
noise:
  private_key_path: {d}/noise_private.key
prefixes:
  v4: 100.64.0.0/10
  v6: fd7a:115c:a1e0::/48
  allocation: sequential
derp:
  server:
    enabled: true
    region_id: 999
    region_code: sandbox
    region_name: sandbox embedded DERP
    verify_clients: true
    stun_listen_addr: {paths.HOST_IP}:{STUN_PORT}
    private_key_path: {d}/derp_server_private.key
    automatically_add_embedded_derp_region: true
    ipv4: {paths.HOST_IP}
  urls: []
  paths: []
  auto_update_enabled: false
database:
  type: sqlite
  sqlite:
    path: {d}/db.sqlite
    write_ahead_log: true
dns:
  magic_dns: true
  base_domain: {BASE_DOMAIN}
  override_local_dns: false
  nameservers:
    global: []
    split: {{}}
  search_domains: []
unix_socket: {d}/headscale.sock
unix_socket_permission: "0770"
policy:
  mode: file
  path: {d}/policy.hujson
log:
  level: info
"""


def binary() -> Path:
    return ensure_built(HEADSCALE) / "headscale"


def cli(*args: str) -> Any:
    """``headscale <args> -o json``, parsed."""
    proc = subprocess.run(
        [str(binary()), "-c", str(HS_DIR / "config.yaml"), *args, "-o", "json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"headscale {' '.join(args)} failed: {proc.stderr or proc.stdout}")
    return json.loads(proc.stdout) if proc.stdout.strip() else None


def ensure_running() -> None:
    """Start the server (once), create its users, then give it the policy. The policy names
    the users, and headscale refuses to start on a policy naming users it lacks ("user not
    found"): a new database starts allow-all, and the policy follows by SIGHUP (which
    reloads it, hscontrol/app.go)."""
    HS_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
    (HS_DIR / "config.yaml").write_text(_config())
    policy_file = HS_DIR / "policy.hujson"
    if not policy_file.exists():
        policy_file.write_text("{}\n")
    host.daemon("headscale", [str(binary()), "serve", "-c", str(HS_DIR / "config.yaml")], PORT)
    for _ in range(50):  # the API socket comes up just after the HTTP listener
        if (HS_DIR / "headscale.sock").exists():
            break
        time.sleep(0.1)
    users = {u["name"] for u in cli("users", "list") or []}
    for name in TAILNETS:
        if name not in users:
            cli("users", "create", name)
    policy = json.dumps(POLICY, indent=2) + "\n"
    if policy_file.read_text() != policy:
        policy_file.write_text(policy)
        os.kill(int((paths.RUN / "headscale.pid").read_text()), signal.SIGHUP)
        time.sleep(1)  # the reload is asynchronous; nodes get it with the next netmap


def _user_id(name: str) -> str:
    for user in cli("users", "list") or []:
        if user["name"] == name:
            return str(user["id"])
    raise RuntimeError(f"headscale has no user {name!r}")


def authkey_file(tailnet: str) -> Path:
    """A reusable pre-auth key of ``tailnet`` in a controller-side file (0600), as a user
    keeps the key they made in the admin console; a new one when the file is older than
    half the key's validity."""
    if tailnet not in TAILNETS:
        raise ValueError(f"tailnet must be one of {TAILNETS}")
    ensure_running()
    secrets = paths.STATE / "secrets"
    secrets.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = secrets / f"headscale-{HEADSCALE.version}-{tailnet}.authkey"
    if path.is_file() and time.time() - path.stat().st_mtime < 15 * 86400:
        return path
    created = cli(
        "preauthkeys",
        "create",
        "--user",
        _user_id(tailnet),
        "--reusable",
        "--expiration",
        KEY_VALIDITY,
    )
    key = created["key"] if isinstance(created, dict) else str(created)
    tmp = path.with_suffix(".tmp")
    tmp.touch(mode=0o600)
    tmp.chmod(0o600)
    tmp.write_text(key + "\n")
    tmp.replace(path)
    return path


def nodes() -> list[dict[str, Any]]:
    return list(cli("nodes", "list") or [])


def delete_node(node_id: int | str) -> None:
    subprocess.run(
        [str(binary()), "-c", str(HS_DIR / "config.yaml"), "nodes", "delete", "-i", str(node_id),
         "--force"],
        capture_output=True,
        check=False,
        timeout=60,
    )  # fmt: skip


def forget_nodes_named(name: str) -> None:
    """Delete the nodes called ``name`` or ``name-<n>`` (headscale's suffix for a name that
    was taken): a fresh demo gets its plain name back."""
    if not (HS_DIR / "headscale.sock").exists():
        return
    for node in nodes():
        given = str(node.get("given_name") or "")
        if given == name or (given.startswith(name + "-") and given[len(name) + 1 :].isdigit()):
            delete_node(node["id"])


def forget_container_node(ssh: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    """Delete a container's node (``ssh(cmd, ...)`` runs a command in it) before the
    container goes, so that the next container may take its name."""
    if not (HS_DIR / "headscale.sock").exists():
        return
    try:
        proc = ssh("tailscale status --json --peers=false 2>/dev/null", check=False, timeout=10)
        node_id = (json.loads(proc.stdout or "{}").get("Self") or {}).get("ID")
    except (subprocess.SubprocessError, ValueError, OSError):
        return
    if node_id:
        delete_node(node_id)
