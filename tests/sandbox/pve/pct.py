"""``pct`` on the emulated node: ``pct exec <vmid> -- <command...>`` for its sandbox
containers, the one subcommand the deploy uses (it reads a new container's host key).

Follows pve-container's src/PVE/CLI/pct.pm ``exec``: the CT's config is loaded first
(``PVE::LXC::Config->load_config``, which dies "Configuration file
'nodes/<node>/lxc/<vmid>.conf' does not exist" for an unknown vmid), a CT that does not run
is refused ("CT <vmid> not running", ``PVE::LXC::check_running``), then the command runs
inside through ``lxc-attach -n <vmid> -- <command...>``, whose exit status is pct's. The
Perl CLI's die exits 255 with the message on stderr. Here ``lxc-attach`` is entering the
sandbox container's namespaces (:meth:`tests.sandbox.container.Container.exec_argv`).

The node's sshd (:func:`tests.sandbox.pve.site.ensure_node_sshd`) puts this on the PATH
and names the emulator's state directory and container prefix in the environment.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

STATE_ENV = "EGOGRAPH_PVE_STATE"
PREFIX_ENV = "EGOGRAPH_PVE_PREFIX"
USAGE = "usage: pct exec <vmid> [--keep-env <bool>] -- <command> [<args>...]"


def _die(message: str) -> int:
    sys.stderr.write(f"{message}\n")
    return 255


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] != "exec":
        return _die(f"{USAGE}\n(the emulated node implements only 'pct exec')")
    vmid_text, rest = argv[1], argv[2:]
    if not vmid_text.isdigit():
        return _die(f"vmid: value does not look like a valid VM ID ({vmid_text!r})")
    while rest and rest[0] == "--keep-env":  # accepted and ignored, as a stand-in
        rest = rest[2:]
    if not rest or rest[0] != "--" or len(rest) < 2:
        return _die(f"missing command\n{USAGE}")
    command = rest[1:]
    vmid = int(vmid_text)
    state = Path(os.environ[STATE_ENV])
    try:
        node = json.loads((state / "emulator.json").read_text())["node"]
    except (OSError, ValueError, KeyError):
        node = "pve"
    if not (state / "etc/pve/lxc" / f"{vmid}.conf").exists():
        return _die(f"Configuration file 'nodes/{node}/lxc/{vmid}.conf' does not exist")

    from .sandbox_backend import SandboxBackend

    container = SandboxBackend(os.environ[PREFIX_ENV])._get(vmid)
    exec_argv = container.exec_argv(command)
    if exec_argv is None:
        return _die(f"CT {vmid} not running")
    os.execvp(exec_argv[0], exec_argv)  # its exit status is pct's, as with lxc-attach


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
