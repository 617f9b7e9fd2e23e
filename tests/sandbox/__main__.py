"""Sandbox command line: ``python -m tests.sandbox build|up|pve-up|down|status``.

build               build what the sandbox runs, once per pinned version (cached under
                    /var/cache/egograph-sandbox): the Debian root, tailscale/tailscaled
                    and headscale from their Go modules, the signed Tailscale repository
up [--name demo]    build (once) and boot a container, serve the fixture app, and write
                    the hosts file the inventory reads (EGOGRAPH_HOSTS_FILE)
pve-up              an EMPTY emulated Proxmox node (API emulator backed by sandbox
                    containers, the node's sshd) and the hosts file for deploys/prod.py,
                    which then creates the container from nothing
down [--name N]     destroy a container (all of them without --name) and stop the
                    host services
status              list containers and their addresses
demo-check          after `make demo`: the service's tailnet URL, and a request through the
                    tailnet from the host's own tailnet node
"""

from __future__ import annotations

import argparse
import sys

from . import container, host, paths, site
from .app import site as app_site
from .pve import site as pve_site
from .rootfs import ensure_rootfs
from .tailscale import headscale
from .tailscale import site as tailscale_site

HOSTS_FILE = paths.STATE / "hosts.json"
PVE_STATE = paths.STATE / "pve"
PVE_PREFIX = "demo-ct"
DEMO_TAILNET_NAME = "egograph-prod"


def build() -> None:
    reason = host.require_root_linux()
    if reason:
        print(f"sandbox: not building ({reason})", file=sys.stderr)
        return
    host.ensure_packages()
    ensure_rootfs()
    tailscale_site.publish_repo()
    headscale.binary()


def up(name: str) -> None:
    reason = host.require_root_linux()
    if reason:
        sys.exit(f"sandbox: {reason}")
    host.ensure_packages()
    host.ensure_network()
    host.ensure_services()
    app_site.publish_app()
    env = app_site.write_secret_env()
    c = container.get(name)
    print(f"sandbox: starting container {name} ({c.ip}) ...", file=sys.stderr)
    c.start()
    site.write_hosts_file(HOSTS_FILE, [(name, {**c.pyinfra_data(), **site.settings(env)})])
    print(f"sandbox: {name} is up at {c.ip}; hosts file {HOSTS_FILE}", file=sys.stderr)
    print(f"sandbox: ssh -F {paths.SSH_CONFIG} {name}", file=sys.stderr)


def pve_down() -> None:
    node = pve_site.running_node(PVE_STATE)
    if node is not None:
        node.stop()
    for c in container.all_containers():
        if c.name.startswith(PVE_PREFIX):
            c.destroy()
    pve_site.stop_node_sshd(PVE_STATE / "node-ssh")


def pve_up() -> None:
    """A fresh, empty emulated node: earlier demo containers and node state are removed."""
    import shutil

    reason = host.require_root_linux()
    if reason:
        sys.exit(f"sandbox: {reason}")
    host.ensure_packages()
    host.ensure_network()
    host.ensure_services()
    app_site.publish_app()
    env = app_site.write_secret_env()
    pve_down()
    shutil.rmtree(PVE_STATE, ignore_errors=True)
    container._ensure_client_key()
    node = pve_site.start_node(PVE_STATE, prefix=PVE_PREFIX, daemon=True)
    # The demo is a self-hosted tailnet as a headscale user has it: stock headscale, the
    # services published over plain HTTP inside the tailnet.
    data = {**site.settings(env, tailnet=headscale.PLAIN), **pve_site.settings(node)}
    for svc in data["services"]:
        svc["publish"] = "http"
    headscale.forget_nodes_named(DEMO_TAILNET_NAME)
    tailscale_site.HostNode().ensure_up()
    site.write_hosts_file(HOSTS_FILE, [("egograph-prod", data)])
    print(f"sandbox: empty PVE node: API https://127.0.0.1:{node.port} (CA {node.ca_path}), "
          f"SSH {paths.HOST_IP}:{node.ssh_port}; hosts file {HOSTS_FILE}",
          file=sys.stderr)  # fmt: skip
    print(f"sandbox: the container will be {PVE_PREFIX}100; the deploy pins its host key in "
          f"{node.containers_known_hosts} (read through the node)", file=sys.stderr)  # fmt: skip


def down(name: str | None) -> None:
    for c in container.all_containers():
        if name is None or c.name == name:
            c.destroy()
    if name is None:
        pve_down()
        host.stop_services()


def demo_check() -> None:
    """The demo's service over the tailnet, as a person on another tailnet device sees it."""
    import json

    data = json.loads(HOSTS_FILE.read_text())["hosts"][0]["data"]
    port = next((s.get("publish_port") or 80 for s in data["services"]), 80)
    url = f"http://{tailscale_site.fqdn(DEMO_TAILNET_NAME)}{'' if port == 80 else f':{port}'}"
    health = data["services"][0].get("health_path", "/health")
    node = tailscale_site.HostNode().ensure_up()
    node.wait_for_peer(DEMO_TAILNET_NAME)
    answer = node.curl(url + health, "-f")
    print(f"The service on the tailnet: {url}/  (from the host's own tailnet node "
          f"'{node.NAME}', via its SOCKS5 proxy 127.0.0.1:{node.SOCKS_PORT})")  # fmt: skip
    print(f"curl --socks5-hostname 127.0.0.1:{node.SOCKS_PORT} {url}{health}")
    print(answer.stdout.strip() or answer.stderr.strip())
    if answer.returncode != 0:
        sys.exit(f"sandbox: the request through the tailnet failed (curl exit {answer.returncode})")


def status() -> None:
    for c in container.all_containers():
        print(f"{c.name}\t{c.ip}\t{'running' if c.running() else 'stopped'}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.sandbox")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_up = sub.add_parser("up")
    p_up.add_argument("--name", default="demo")
    p_down = sub.add_parser("down")
    p_down.add_argument("--name")
    sub.add_parser("status")
    sub.add_parser("pve-up")
    sub.add_parser("build")
    sub.add_parser("demo-check")
    args = parser.parse_args()
    if args.cmd == "build":
        build()
    elif args.cmd == "demo-check":
        demo_check()
    elif args.cmd == "up":
        up(args.name)
    elif args.cmd == "pve-up":
        pve_up()
    elif args.cmd == "down":
        down(args.name)
    else:
        status()


if __name__ == "__main__":
    main()
