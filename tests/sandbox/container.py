"""Sandbox containers: real systemd-booted Debian containers reachable over SSH.

Each container is an overlay over the cached root filesystem (its own upper layer on disk,
so it survives a reboot and costs seconds to create), booted with ``systemd-nspawn --boot``
in a network namespace of its own on the sandbox bridge. sshd inside has a host key made
for that container; the sandbox writes its line to a known_hosts file, so clients verify it.

A container created through the emulated Proxmox API (:mod:`tests.sandbox.pve`) is set up
as PVE sets up a new CT instead: its own new host key that no known_hosts names, and only
the create's ``ssh-public-keys`` in root's authorized_keys. The sandbox then reaches it the
way the node does, by entering its namespaces (:meth:`Container.exec`, what ``pct exec``
does with ``lxc-attach``), never over SSH: only the deploy's own trust path is exercised.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from . import paths
from .host import ensure_inotify_instances, run
from .rootfs import ensure_rootfs
from .tailscale import headscale

FIRST_INDEX = 10
API_CREATED = "pve.json"
"""In a container's directory: it was created through the emulated Proxmox API."""
CGROUP_CONTROLLERS = ("cpuset", "cpu", "cpuacct", "memory", "devices", "freezer", "blkio", "pids")


@dataclass
class Container:
    name: str
    index: int
    tun: bool = True
    """Whether /dev/net/tun exists inside. systemd-nspawn always provides it; a container
    without it models an LXC container whose config does not grant the device."""
    docker: bool = False
    """Whether the container can run a Docker engine (a VM stand-in, see ``nspawn_args``)."""

    @property
    def dir(self) -> Path:
        return paths.CONTAINERS / self.name

    @property
    def root(self) -> Path:
        return self.dir / "root"

    @property
    def ip(self) -> str:
        return f"{paths.SUBNET}.{self.index}"

    @property
    def netns(self) -> str:
        return f"egosbx-{self.name}"

    @property
    def pidfile(self) -> Path:
        return self.dir / "nspawn.pid"

    @property
    def api_created(self) -> bool:
        """Created through the emulated Proxmox API: not in the sandbox's SSH files, and no
        sandbox key in it (see the module doc)."""
        return (self.dir / API_CREATED).exists()

    # --- lifecycle -----------------------------------------------------------------------

    def running(self) -> bool:
        pid = self._pid()
        if pid is None:
            return False
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)  # reap it if this process started it
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited

    def _pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text())
        except (OSError, ValueError):
            return None

    def _mount(self) -> None:
        if os.path.ismount(self.root):
            return
        for d in ("upper", "work", "root"):
            (self.dir / d).mkdir(parents=True, exist_ok=True)
        lower = ensure_rootfs()
        run(
            "mount",
            "-t",
            "overlay",
            "overlay",
            "-o",
            f"lowerdir={lower},upperdir={self.dir / 'upper'},workdir={self.dir / 'work'}",
            str(self.root),
        )

    def _network(self) -> None:
        if run("ip", "netns", "list").stdout.find(self.netns) < 0:
            run("ip", "netns", "add", self.netns)
        veth = f"vsbx{self.index}"
        if run("ip", "link", "show", veth, check=False).returncode != 0:
            run(
                "ip",
                "link",
                "add",
                veth,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                self.netns,
            )
            run("ip", "link", "set", veth, "master", paths.BRIDGE, "up")
            ns = ("ip", "-n", self.netns)
            run(*ns, "addr", "add", f"{self.ip}/24", "dev", "eth0")
            run(*ns, "link", "set", "eth0", "up")
            run(*ns, "link", "set", "lo", "up")
            run(*ns, "route", "add", "default", "via", paths.HOST_IP)

    def _seed(self) -> None:
        """Hostname, SSH access and DNS: what Proxmox would set up for a new container."""
        etc = self.root / "etc"
        (etc / "hostname").write_text(f"{self.name}\n")
        (etc / "hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {self.name}\n")
        ssh = self.root / "root/.ssh"
        ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
        ssh.chmod(0o700)
        if self.api_created:
            self._seed_host_key_inside()
        else:
            keys = ssh / "authorized_keys"
            keys.write_text(paths.SSH_KEY.with_suffix(".pub").read_text())
            keys.chmod(0o600)
            self._seed_host_key_known()
        # What the sandbox's network needs of any tailscaled (see headscale.DERP_DROP_IN):
        # the environment's, like the bridge, never the deploy's.
        drop_in = self.root / headscale.DERP_DROP_IN_PATH
        drop_in.parent.mkdir(parents=True, exist_ok=True)
        drop_in.write_text(headscale.DERP_DROP_IN)

    def _seed_host_key_inside(self) -> None:
        """A host key made inside the container on its first start, known to nobody, as
        pve-container's setup makes one for a new CT (src/PVE/LXC/Setup/Base.pm
        ``rewrite_ssh_host_keys``, run from ``post_create_hook``). The overlay's upper layer
        holds what was written for this container: a key there is its own (kept, as PVE
        keeps it, across restarts)."""
        if (self.dir / "upper/etc/ssh/ssh_host_ed25519_key").exists():
            return
        dest = self.root / "etc/ssh/ssh_host_ed25519_key"
        dest.unlink(missing_ok=True)
        Path(f"{dest}.pub").unlink(missing_ok=True)
        _keygen(str(dest), f"root@{self.name}")

    def _seed_host_key_known(self) -> None:
        """The container's host key, kept beside it for the sandbox known_hosts."""
        etc = self.root / "etc"
        hostkey = self.dir / "ssh_host_ed25519_key"
        if not hostkey.exists():
            run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", self.name, "-f", str(hostkey))
        for suffix in ("", ".pub"):
            dest = etc / "ssh" / f"ssh_host_ed25519_key{suffix}"
            shutil.copyfile(f"{hostkey}{suffix}", dest)
            dest.chmod(0o600 if not suffix else 0o644)

    def start(self, timeout: float = 90) -> None:
        if self.running():
            return
        ensure_inotify_instances()
        self._mount()
        self._network()
        self._seed()
        log = open(self.dir / "nspawn.log", "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(
            [
                "systemd-nspawn",
                "--quiet",
                "-D",
                str(self.root),
                "--boot",
                "--register=no",
                "--keep-unit",
                f"--machine={self.name}",
                f"--network-namespace-path=/run/netns/{self.netns}",
                "--resolv-conf=copy-host",
                "--timezone=off",
                "--console=read-only",
                *self.nspawn_args(),
            ],
            stdin=subprocess.DEVNULL,
            env={**os.environ, **self.nspawn_env()},
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        self.pidfile.write_text(f"{proc.pid}\n")
        write_ssh_files()
        self.wait_ready(timeout)

    def nspawn_args(self) -> list[str]:
        """Extra systemd-nspawn options. A Docker host (a VM stand-in) needs every
        capability (dockerd creates iptables chains, mounts, namespaces), and its
        ``/var/lib/docker`` on the host's own disk: overlay2 cannot use an overlay upper
        layer (the container's root) as its own upper layer ("failed to mount overlay:
        invalid argument")."""
        # CAP_NET_ADMIN in the container's own network namespace, as an unprivileged LXC
        # container has it: tailscaled creates tailscale0 (TUNSETIFF) and its routes.
        own_network = ["--capability=CAP_NET_ADMIN"]
        if not self.docker:
            return own_network
        data = self.dir / "docker"
        data.mkdir(exist_ok=True)
        return [
            *own_network,
            "--capability=all",
            "--system-call-filter=@keyring @mount @privileged",
            f"--bind={data}:/var/lib/docker",
        ]

    def nspawn_env(self) -> dict[str, str]:
        # On this cgroup v1 host nspawn mounts the controllers read-only; dockerd must
        # create cgroups for its containers.
        return {"SYSTEMD_NSPAWN_API_VFS_WRITABLE": "1"} if self.docker else {}

    def _writable_cgroups(self) -> None:
        """nspawn mounts the cgroup v1 controllers read-only (the API VFS variable above
        does not change that for them); runc must create a cgroup per container, so the
        VM stand-in gets each controller mounted again, writable, on top."""
        self.ssh(
            "for c in " + " ".join(CGROUP_CONTROLLERS) + "; do "
            'mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c"; done'
        )

    def wait_ready(self, timeout: float = 90) -> None:
        """Wait until sshd answers and systemd has finished booting."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise RuntimeError(f"{self.name}: nspawn exited; see {self.dir / 'nspawn.log'}")
            probe = self.ssh("systemctl is-system-running --wait", check=False, timeout=30)
            if probe.stdout.strip() in ("running", "degraded"):
                if not self.tun:
                    self.ssh("rm -f /dev/net/tun")
                if self.docker:
                    self._writable_cgroups()
                return
            time.sleep(0.5)
        raise TimeoutError(f"{self.name} did not boot within {timeout}s")

    def stop(self, timeout: float = 30) -> None:
        pid = self._pid()
        if pid is not None and self.running():
            os.kill(pid, signal.SIGTERM)  # nspawn turns this into an orderly shutdown
            deadline = time.monotonic() + timeout
            while self.running() and time.monotonic() < deadline:
                time.sleep(0.2)
            if self.running():
                os.kill(pid, signal.SIGKILL)
                time.sleep(0.5)
        self.pidfile.unlink(missing_ok=True)

    def reboot(self, timeout: float = 90) -> None:
        """Power-cycle the container (its disk, the upper layer, is kept)."""
        self.stop()
        self.start(timeout)

    def destroy(self) -> None:
        if self.running():
            headscale.forget_container_node(self.ssh)
        self.stop()
        if os.path.ismount(self.root):
            run("umount", str(self.root))
        run("ip", "netns", "del", self.netns, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)
        write_ssh_files()

    # --- access --------------------------------------------------------------------------

    def ssh(
        self, command: str, *, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run a shell command in the container: over SSH, or for a container created
        through the API (which trusts no sandbox key) by entering it (:meth:`exec`)."""
        if self.api_created:
            return self.exec(["/bin/sh", "-c", command], check=check, timeout=timeout)
        return subprocess.run(
            self.shell_argv(command),
            check=check,
            text=True,
            capture_output=True,
            timeout=timeout,
        )

    def shell_argv(self, command: str) -> list[str]:
        """The host command that runs ``command`` in the container, as :meth:`ssh` does
        (for a container created through the API, it must be running)."""
        if self.api_created:
            argv = self.exec_argv(["/bin/sh", "-c", command])
            if argv is None:
                raise RuntimeError(f"{self.name} is not running")
            return argv
        return ["ssh", "-F", str(paths.SSH_CONFIG), "-o", "ConnectTimeout=5", self.name, command]

    def leader(self) -> int | None:
        """The container's init (PID 1 inside): the child of its systemd-nspawn."""
        pid = self._pid()
        if pid is None or not self.running():
            return None
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return None
        return int(children[0]) if children else None

    def exec_argv(self, argv: list[str]) -> list[str] | None:
        """The host command that runs ``argv`` inside the running container, as root in
        its namespaces and root directory (what ``lxc-attach`` does for ``pct exec``);
        None when it does not run."""
        leader = self.leader()
        if leader is None:
            return None
        return [
            "nsenter", "-t", str(leader), "-m", "-u", "-i", "-n", "-p", "-r", "-w", "--",
            "/usr/bin/env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME=/root", "LANG=C.UTF-8", *argv,
        ]  # fmt: skip

    def exec(
        self, argv: list[str], *, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the container without SSH (see :meth:`exec_argv`); exit 255
        when it does not run."""
        cmd = self.exec_argv(argv)
        if cmd is None:
            result = subprocess.CompletedProcess(argv, 255, "", f"{self.name} is not running\n")
            if check:
                raise subprocess.CalledProcessError(255, argv, "", result.stderr)
            return result
        return subprocess.run(cmd, check=check, text=True, capture_output=True, timeout=timeout)

    def pyinfra_data(self) -> dict[str, object]:
        return {
            "ssh_hostname": self.ip,
            "ssh_user": "root",
            "ssh_key": str(paths.SSH_KEY),
            "ssh_known_hosts_file": str(paths.KNOWN_HOSTS),
            "ssh_strict_host_key_checking": "yes",
        }


def _keygen(path: str, comment: str) -> None:
    """A new ed25519 key pair at ``path`` (no passphrase)."""
    run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path)


def _ensure_client_key() -> None:
    if not paths.SSH_KEY.exists():
        paths.SSH_KEY.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _keygen(str(paths.SSH_KEY), "egograph-sandbox")


def all_containers() -> list[Container]:
    found = []
    for meta in sorted(paths.CONTAINERS.glob("*/meta.json")):
        data = json.loads(meta.read_text())
        found.append(
            Container(data["name"], data["index"], data.get("tun", True), data.get("docker", False))
        )
    return found


_SSH_FILES_LOCK = threading.Lock()


def write_ssh_files() -> None:
    """known_hosts and an ssh_config naming every container (for ssh, testinfra, people).
    Containers may boot in parallel threads: each rewrite reads and writes under one lock,
    so the last one names every container whose key existed before it."""
    with _SSH_FILES_LOCK:
        _write_ssh_files()


def _write_ssh_files() -> None:
    known, config = [], []
    for c in all_containers():
        if c.api_created:
            continue  # nobody knows its key until the deploy reads it through the node
        pub = c.dir / "ssh_host_ed25519_key.pub"
        fields = pub.read_text().split() if pub.exists() else []
        # Still being written by its container's own boot (in another thread): that boot
        # rewrites these files once the key is complete.
        if len(fields) >= 2:
            known.append(f"{c.ip} {fields[0]} {fields[1]}\n")
        config.append(
            f"Host {c.name}\n  HostName {c.ip}\n  User root\n  IdentityFile {paths.SSH_KEY}\n"
            f"  IdentitiesOnly yes\n  UserKnownHostsFile {paths.KNOWN_HOSTS}\n"
            "  StrictHostKeyChecking yes\n  LogLevel ERROR\n"
        )
    paths.KNOWN_HOSTS.write_text("".join(known))
    paths.SSH_CONFIG.write_text("".join(config))


def get(name: str, *, tun: bool = True, docker: bool = False) -> Container:
    """The container called ``name``, created (not started) when new."""
    _ensure_client_key()
    meta = paths.CONTAINERS / name / "meta.json"
    if meta.exists():
        data = json.loads(meta.read_text())
        return Container(
            data["name"], data["index"], data.get("tun", True), data.get("docker", False)
        )
    paths.CONTAINERS.mkdir(parents=True, exist_ok=True)
    # Test sessions, the bench and the demo may allocate at the same time: one address each.
    with (paths.CONTAINERS / ".allocate.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if meta.exists():
            return get(name, tun=tun, docker=docker)
        used = {c.index for c in all_containers()}
        index = next(i for i in range(FIRST_INDEX, 250) if i not in used)
        meta.parent.mkdir(parents=True, exist_ok=True)
        tmp = meta.with_suffix(".tmp")
        tmp.write_text(
            json.dumps({"name": name, "index": index, "tun": tun, "docker": docker}) + "\n"
        )
        tmp.replace(meta)
    return Container(name, index, tun, docker)
