"""An emulated Proxmox node for the sandbox: the PVE API emulator backed by sandbox
containers, and the node's SSH side.

- The API: ``python -m tests.sandbox.pve.site serve`` runs :class:`PveEmulator` with
  :class:`SandboxBackend` on 127.0.0.1 (its own CA, a least-privilege API token and a
  root@pam password; the secrets sit in 0600 files under the state directory).
- The node over SSH: an sshd per node on the sandbox bridge (``10.213.0.1``, a free port)
  with its own host key, ``known_hosts`` and config under
  ``<state>/node-ssh/``; root logs in with the sandbox key and finds the node's ``pct``
  (:mod:`.pct`) on its PATH. The conf files the TUN patch edits are the emulator's
  ``<state>/etc/pve/lxc/<vmid>.conf`` (setting ``pve_conf_dir``).
- :func:`settings` gives the settings that point the deploy at both. The container host
  trusts nothing in advance: its key is the one passed as ``ct_ssh_public_keys``, and
  its host key is pinned in the node's ``containers.known_hosts`` (``ct_ssh_known_hosts``)
  by the deploy itself, read through the node.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import paths
from ..host import run

DEPLOY_TOKEN = "deploy@pve!egograph"
DEPLOY_USER = "deploy@pve"
# The least-privilege setup the README documents ("API access"): each role, and the ACL path
# it is granted on, to the user and to its token (privilege separation intersects them).
# tests/unit/proxmox/test_least_privilege.py checks that the README says the same.
DEPLOY_ROLES = {
    "EgographDeploy": [
        "VM.Allocate", "VM.Audit", "VM.Config.CPU", "VM.Config.Disk", "VM.Config.Memory",
        "VM.Config.Network", "VM.Config.Options", "VM.PowerMgmt", "VM.Snapshot",
    ],
    "EgographDisk": ["Datastore.AllocateSpace"],
    "EgographTemplates": ["Datastore.AllocateTemplate", "Datastore.Audit"],
    "EgographNet": ["SDN.Use"],
}  # fmt: skip
DEPLOY_ACL = {
    "/vms": "EgographDeploy",
    "/storage/local-lvm": "EgographDisk",
    "/storage/local": "EgographTemplates",
    "/sdn/zones/localnetwork/vmbr0": "EgographNet",
}
PROJECT = Path(__file__).resolve().parents[3]


# --------------------------------------------------------------------------- node sshd


def ensure_sshd_installed() -> None:
    if Path("/usr/sbin/sshd").exists():
        return
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    # openssh-server's postinst would start the host's own sshd: keep it stopped.
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
           "RUNLEVEL": "1"}  # fmt: skip
    subprocess.run(["apt-get", "install", "-y", "-qq", "openssh-server"], check=True, env=env)


def _listening(host: str, port: int) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((paths.HOST_IP, 0))
        return int(sock.getsockname()[1])


def ensure_node_sshd(node_dir: Path, port: int, state_dir: Path, prefix: str) -> Path:
    """Start the sshd of one emulated node (once) on ``port``; return its known_hosts file.

    Each node has its own: its ``pct`` (:mod:`.pct`) must find that node's containers, so
    the sshd names the emulator's state directory and container prefix in the session's
    environment (``SetEnv``) and puts the node's ``bin/pct`` first on its PATH."""
    ensure_sshd_installed()
    node_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    hostkey = node_dir / "ssh_host_ed25519_key"
    if not hostkey.exists():
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "pve-node", "-f", str(hostkey))
    auth = node_dir / "authorized_keys"
    auth.write_text(paths.SSH_KEY.with_suffix(".pub").read_text())
    auth.chmod(0o600)
    bindir = node_dir / "bin"
    bindir.mkdir(exist_ok=True)
    pct = bindir / "pct"
    pct.write_text(
        f'#!/bin/sh\nPYTHONPATH={PROJECT} exec {sys.executable} -m tests.sandbox.pve.pct "$@"\n'
    )
    pct.chmod(0o755)
    from .pct import PREFIX_ENV, STATE_ENV

    config = node_dir / "sshd_config"
    config.write_text(
        f"ListenAddress {paths.HOST_IP}:{port}\n"
        f"HostKey {hostkey}\n"
        f"PidFile {node_dir / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {auth}\n"
        "PermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "UsePAM no\nStrictModes no\n"
        f"SetEnv PATH={bindir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "
        f"{STATE_ENV}={state_dir.resolve()} {PREFIX_ENV}={prefix}\n"
        "Subsystem sftp internal-sftp\n"
    )
    known = node_dir / "known_hosts"
    kind, key = Path(f"{hostkey}.pub").read_text().split()[:2]
    known.write_text(f"[{paths.HOST_IP}]:{port} {kind} {key}\n")
    if not _listening(paths.HOST_IP, port):
        Path("/run/sshd").mkdir(exist_ok=True)
        run("/usr/sbin/sshd", "-f", str(config), "-E", str(node_dir / "sshd.log"))
        for _ in range(50):
            if _listening(paths.HOST_IP, port):
                break
            time.sleep(0.1)
        else:
            raise RuntimeError(f"node sshd did not start; see {node_dir / 'sshd.log'}")
    return known


def stop_node_sshd(node_dir: Path) -> None:
    pidfile = node_dir / "sshd.pid"
    with contextlib.suppress(OSError, ValueError):
        os.kill(int(pidfile.read_text()), signal.SIGTERM)
    pidfile.unlink(missing_ok=True)


# --------------------------------------------------------------------------- API emulator


@dataclass
class Node:
    """A running emulator process and what the deploy needs to reach it."""

    state_dir: Path
    info: dict[str, Any]
    proc: subprocess.Popen[str] | None = None

    @property
    def port(self) -> int:
        return int(self.info["port"])

    @property
    def ca_path(self) -> str:
        return str(self.info["ca_path"])

    @property
    def conf_dir(self) -> Path:
        return self.state_dir / "etc/pve/lxc"

    @property
    def ssh_dir(self) -> Path:
        """The node sshd's files (config, host key, known_hosts, log, ``bin/pct``)."""
        return self.state_dir / "node-ssh"

    @property
    def ssh_port(self) -> int:
        return int(self.info["ssh_port"])

    @property
    def containers_known_hosts(self) -> Path:
        """The known_hosts the deploy manages for this node's containers."""
        return self.state_dir / "containers.known_hosts"

    def api(self, path: str, method: str = "GET", **params: Any) -> Any:
        """Call the API as root@pam (test helper)."""
        from deploys.proxmox.client import PveClient

        root = PveClient(
            "127.0.0.1",
            port=self.port,
            user="root@pam",
            password=(self.state_dir / "root.password").read_text().strip(),
            ca_bundle=self.ca_path,
        )
        return root.request(method, path, params)

    def admin(self, path: str, method: str = "GET", body: Any = None) -> Any:
        import requests

        resp = requests.request(
            method,
            f"https://127.0.0.1:{self.port}/_emulator/{path}",
            json=body,
            verify=self.ca_path,
            timeout=10,
        )
        return resp.json()["data"] if resp.content else None

    def stop(self) -> None:
        pid = self.proc.pid if self.proc is not None else int(self.info.get("pid", 0))
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        stop_node_sshd(self.ssh_dir)


def _credentials(state_dir: Path) -> dict[str, Any]:
    state_dir.mkdir(parents=True, exist_ok=True)
    out: dict[str, str] = {}
    for name in ("token.secret", "root.password"):
        path = state_dir / name
        if not path.exists():
            path.touch(mode=0o600)
            path.write_text(secrets.token_hex(16) + "\n")
        out[name] = path.read_text().strip()
    return {
        "users": {"root@pam": {"password": out["root.password"]}},
        "tokens": {DEPLOY_TOKEN: {"secret": out["token.secret"], "privsep": 1}},
    }


def deploy_access(omit: Iterable[str] = ()) -> dict[str, Any]:
    """The emulator's ``roles`` and ``acl`` for the deploy's token, without the privileges
    in ``omit`` (a misconfigured token, for the tests)."""
    left_out = set(omit)
    roles = {name: [p for p in privs if p not in left_out] for name, privs in DEPLOY_ROLES.items()}
    acl = [
        {"path": path, "roles": [role], "users": [DEPLOY_USER], "tokens": [DEPLOY_TOKEN]}
        for path, role in DEPLOY_ACL.items()
    ]
    return {"roles": roles, "acl": acl}


def start_node(
    state_dir: Path,
    *,
    version: str = "9.1",
    prefix: str = "pve",
    port: int = 0,
    daemon: bool = False,
    omit: Iterable[str] = (),
    ssh_port: int = 0,
) -> Node:
    """Start the emulator (empty node: no containers, no templates) and the node's sshd
    (on ``ssh_port``, 0: a free one). ``omit``: privileges the deploy's token lacks (see
    :func:`deploy_access`)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    ssh_port = ssh_port or _free_port()
    ensure_node_sshd(state_dir / "node-ssh", ssh_port, state_dir, prefix)
    cmd = [
        sys.executable, "-m", "tests.sandbox.pve.site", "serve", "--state-dir", str(state_dir),
        "--version", version, "--prefix", prefix, "--port", str(port),
        *(f"--omit={priv}" for priv in omit),
    ]  # fmt: skip
    log = open(state_dir / "emulator.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        cmd,
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        stderr=log,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=daemon,
    )
    assert proc.stdout is not None
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(60)
    if not line or not line[0].strip():
        proc.kill()
        raise RuntimeError(f"emulator did not start; see {state_dir / 'emulator.log'}")
    info = {**json.loads(line[0]), "ssh_port": ssh_port}
    (state_dir / "emulator.json").write_text(json.dumps(info) + "\n")
    return Node(state_dir, info, None if daemon else proc)


def running_node(state_dir: Path) -> Node | None:
    """The daemon started earlier for ``state_dir`` (make demo), if it still runs."""
    try:
        info = json.loads((state_dir / "emulator.json").read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError):
        return None
    return Node(state_dir, info)


def settings(node: Node, **overrides: Any) -> dict[str, Any]:
    """Settings pointing the deploy at ``node``, plus the container host's SSH data."""
    key = paths.SSH_KEY
    data: dict[str, Any] = {
        "pve_host": "127.0.0.1",
        "pve_port": node.port,
        "pve_node": "pve",
        "pve_token_id": DEPLOY_TOKEN,
        "pve_secret_source": {"file": str(node.state_dir / "token.secret")},
        "pve_ca_bundle": node.ca_path,
        "pve_task_timeout": 180,
        "pve_ssh_host": paths.HOST_IP,
        "pve_ssh_port": node.ssh_port,
        "pve_ssh_user": "root",
        "pve_ssh_key": str(key),
        "pve_ssh_known_hosts": str(node.ssh_dir / "known_hosts"),
        "pve_conf_dir": str(node.conf_dir),
        # the container host (@pvelxc): root logs in with the key the create installs, and
        # its host key is the one the deploy pins (read through the node), nothing seeded
        "ct_ssh_public_keys": [str(key.with_suffix(".pub"))],
        "ct_ssh_known_hosts": str(node.containers_known_hosts),
        "ssh_user": "root",
        "ssh_key": str(key),
    }
    data.update(overrides)
    if data.get("ct_tun_method") == "dev":
        # dev0 is root@pam's alone: a password ticket, not a token
        data.update(
            pve_token_id="",
            pve_user="root@pam",
            pve_secret_source={"file": str(node.state_dir / "root.password")},
        )
    return data


# --------------------------------------------------------------------------- the daemon


def serve(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.sandbox.pve.site serve")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--version", default="9.1")
    parser.add_argument("--prefix", default="pve")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--omit", action="append", default=[], help="a privilege to leave out")
    args = parser.parse_args(argv)

    from .emulator import PveEmulator
    from .sandbox_backend import SandboxBackend

    state_dir = Path(args.state_dir)
    creds = _credentials(state_dir)
    emu = PveEmulator(
        state_dir,
        version=args.version,
        users=creds["users"],
        tokens=creds["tokens"],
        **deploy_access(args.omit),
        backend=SandboxBackend(args.prefix),
        auth_delay=0.5,
        templates=(),
    ).start(port=args.port, host="127.0.0.1")
    info = {"port": emu.port, "ca_path": str(emu.ca_path), "fingerprint": emu.fingerprint,
            "node": emu.node, "pid": os.getpid(), "version": args.version}  # fmt: skip
    sys.stdout.write(json.dumps(info) + "\n")
    sys.stdout.flush()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    emu.stop()
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        raise SystemExit(serve(sys.argv[2:]))
    raise SystemExit("usage: python -m tests.sandbox.pve.site serve --state-dir DIR")
