"""Sandbox command line: ``python -m tests.sandbox up|down|status``.

up [--name demo]    build (once) and boot a container, serve the fixture app, and write
                    the hosts file the inventory reads (EGOGRAPH_HOSTS_FILE)
down [--name N]     destroy a container (all of them without --name) and stop the
                    host services
status              list containers and their addresses
"""

from __future__ import annotations

import argparse
import sys

from . import container, host, paths, site

HOSTS_FILE = paths.STATE / "hosts.json"


def up(name: str) -> None:
    reason = host.require_root_linux()
    if reason:
        sys.exit(f"sandbox: {reason}")
    host.ensure_packages()
    host.ensure_network()
    host.ensure_services()
    site.publish_app()
    env = site.write_secret_env()
    c = container.get(name)
    print(f"sandbox: starting container {name} ({c.ip}) ...", file=sys.stderr)
    c.start()
    site.write_hosts_file(HOSTS_FILE, [(name, {**c.pyinfra_data(), **site.settings(env)})])
    print(f"sandbox: {name} is up at {c.ip}; hosts file {HOSTS_FILE}", file=sys.stderr)
    print(f"sandbox: ssh -F {paths.SSH_CONFIG} {name}", file=sys.stderr)


def down(name: str | None) -> None:
    for c in container.all_containers():
        if name is None or c.name == name:
            c.destroy()
    if name is None:
        host.stop_services()


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
    args = parser.parse_args()
    if args.cmd == "up":
        up(args.name)
    elif args.cmd == "down":
        down(args.name)
    else:
        status()


if __name__ == "__main__":
    main()
