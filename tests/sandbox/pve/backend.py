"""Container backends: what the emulator asks of the host.

The emulator owns the PVE side (configs, locks, tasks, pending changes, permissions); the
backend only does what the host would do to a container. :class:`FakeBackend` keeps it in
memory; ``sandbox_backend.py`` boots sandbox containers.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from typing import Any


class ContainerBackend(ABC):
    """What the emulator asks of the host.  All methods may block; they run in task threads.

    * :meth:`create` -- unpack ``template_path`` into a new root for ``vmid``.  Runs inside
      the ``vzcreate`` task; may return warning lines (each becomes a ``WARN:`` log line and
      counts towards ``WARNINGS: n``); raising fails the task with
      ``unable to create CT <vmid> - <str(exc)>`` and the emulator then removes the config.
      ``ssh_public_keys`` / ``password`` are the create parameters PVE does not store.
    * :meth:`start` / :meth:`stop` / :meth:`shutdown` -- called from the ``vzstart``,
      ``vzstop``, ``vzshutdown`` and ``vzreboot`` (shutdown + start) tasks.  ``start`` gets
      the *effective* config: pending changes applied, raw lines as
      ``conf["lxc"] = [[key, value], ...]``, values as strings/ints as in the conf file.
    * :meth:`destroy` -- remove the root (``vzdestroy``); the container is stopped first.
    * :meth:`status` -- ``"running"`` or ``"stopped"`` (the emulator's source of truth).
    * :meth:`interfaces` -- the ``/interfaces`` payload while running, ``None`` when stopped.

    ``/dev/net/tun`` rule (:meth:`tun_allowed`): a backend must make the device available
    in the container only when the config it was *started* with grants it -- raw lines
    (``lxc.cgroup2.devices.allow: c 10:200 rwm`` and an ``lxc.mount.entry`` binding
    ``/dev/net/tun``) or a ``devN: /dev/net/tun`` passthrough.  Raw lines edited into the
    conf file while the container runs take effect at the next start/reboot, as on PVE.
    """

    @abstractmethod
    def create(
        self,
        vmid: int,
        conf: dict[str, Any],
        template_path: str | None,
        *,
        ssh_public_keys: str | None = None,
        password: str | None = None,
    ) -> list[str]:
        """Create the root filesystem; return warning lines (may be empty)."""

    @abstractmethod
    def start(self, vmid: int, conf: dict[str, Any]) -> None:
        """Boot the container with the given effective config."""

    @abstractmethod
    def stop(self, vmid: int) -> None:
        """Hard stop."""

    def shutdown(self, vmid: int, timeout: int = 60) -> None:
        """Clean shutdown; defaults to :meth:`stop`."""
        self.stop(vmid)

    @abstractmethod
    def destroy(self, vmid: int) -> None:
        """Remove everything belonging to the container (it is stopped)."""

    # Snapshots: the volumes' part of PVE's (pve-guest-common AbstractConfig.pm
    # snapshot_create / snapshot_rollback / snapshot_delete); the emulator keeps the
    # config's part and calls these only on a storage that can snapshot.
    @abstractmethod
    def snapshot(self, vmid: int, name: str) -> None:
        """Keep the container's files as they are now, as snapshot ``name``."""

    @abstractmethod
    def rollback(self, vmid: int, name: str) -> None:
        """Put the container's files back to snapshot ``name`` (it is stopped)."""

    @abstractmethod
    def delete_snapshot(self, vmid: int, name: str) -> None:
        """Forget snapshot ``name``'s files (none: nothing to do)."""

    @abstractmethod
    def status(self, vmid: int) -> str:
        """``"running"`` or ``"stopped"``."""

    @abstractmethod
    def interfaces(self, vmid: int) -> list[dict[str, Any]] | None:
        """Interface list like PVE's ``/interfaces``; ``None`` when not running."""

    @staticmethod
    def tun_allowed(conf: dict[str, Any]) -> bool:
        """True when ``conf`` grants ``/dev/net/tun`` (raw lxc lines or a dev passthrough)."""
        for key, value in conf.items():
            if key.startswith("dev") and key[3:].isdigit():
                first = str(value).split(",")[0]
                path = first.split("=", 1)[1] if first.startswith("path=") else first
                if path == "/dev/net/tun":
                    return True
        cgroup_ok = False
        mount_ok = False
        for item in conf.get("lxc", []) or []:
            key, value = str(item[0]), str(item[1]).strip()
            if key == "lxc.cgroup2.devices.allow":
                parts = value.split()
                if (parts and parts[0] == "a") or (
                    len(parts) >= 3
                    and parts[0] in ("c", "a")
                    and "w" in parts[2]
                    and parts[1] in ("10:200", "*:*", "10:*")
                ):
                    cgroup_ok = True
            elif key == "lxc.mount.entry":
                parts = value.split()
                if len(parts) >= 2 and parts[0] == "/dev/net/tun":
                    mount_ok = True
        return cgroup_ok and mount_ok


class FakeBackend(ContainerBackend):
    """In-memory backend: instant, keeps status flags, fakes eth0 with a fixed address."""

    def __init__(self, address_prefix: str = "10.10.10.", start_delay: float = 0.0) -> None:
        self._lock = threading.Lock()
        self.created: dict[int, dict[str, Any]] = {}
        self.running: dict[int, dict[str, Any]] = {}
        self.started_at: dict[int, float] = {}
        self.tun: dict[int, bool] = {}
        self.ssh_keys: dict[int, str | None] = {}
        self.address_prefix = address_prefix
        self.start_delay = start_delay
        self.calls: list[tuple[str, int]] = []

    def create(
        self,
        vmid: int,
        conf: dict[str, Any],
        template_path: str | None,
        *,
        ssh_public_keys: str | None = None,
        password: str | None = None,
    ) -> list[str]:
        with self._lock:
            self.calls.append(("create", vmid))
            self.created[vmid] = dict(conf)
            self.ssh_keys[vmid] = ssh_public_keys
        return []

    def start(self, vmid: int, conf: dict[str, Any]) -> None:
        if self.start_delay:
            time.sleep(self.start_delay)
        with self._lock:
            self.calls.append(("start", vmid))
            self.running[vmid] = dict(conf)
            self.started_at[vmid] = time.time()
            self.tun[vmid] = self.tun_allowed(conf)

    def stop(self, vmid: int) -> None:
        with self._lock:
            self.calls.append(("stop", vmid))
            self.running.pop(vmid, None)
            self.started_at.pop(vmid, None)
            self.tun.pop(vmid, None)

    def destroy(self, vmid: int) -> None:
        with self._lock:
            self.calls.append(("destroy", vmid))
            self.running.pop(vmid, None)
            self.created.pop(vmid, None)

    def status(self, vmid: int) -> str:
        return "running" if vmid in self.running else "stopped"

    def snapshot(self, vmid: int, name: str) -> None:
        with self._lock:
            self.calls.append(("snapshot " + name, vmid))

    def rollback(self, vmid: int, name: str) -> None:
        with self._lock:
            self.calls.append(("rollback " + name, vmid))

    def delete_snapshot(self, vmid: int, name: str) -> None:
        with self._lock:
            self.calls.append(("delsnapshot " + name, vmid))

    def tun_present(self, vmid: int) -> bool:
        """Whether /dev/net/tun exists in the running container (test helper)."""
        return self.tun.get(vmid, False)

    def interfaces(self, vmid: int) -> list[dict[str, Any]] | None:
        conf = self.running.get(vmid)
        if conf is None:
            return None
        hwaddr = "bc:24:11:00:00:01"
        net0 = str(conf.get("net0", ""))
        for part in net0.split(","):
            if part.startswith("hwaddr="):
                hwaddr = part.split("=", 1)[1].lower()
        addr = f"{self.address_prefix}{vmid % 250 + 2}"
        return [
            {
                "name": "lo",
                "hwaddr": "00:00:00:00:00:00",
                "hardware-address": "00:00:00:00:00:00",
                "inet": "127.0.0.1/8",
                "inet6": "::1/128",
                "ip-addresses": [
                    {"ip-address": "127.0.0.1", "ip-address-type": "inet", "prefix": 8},
                    {"ip-address": "::1", "ip-address-type": "inet6", "prefix": 128},
                ],
            },
            {
                "name": "eth0",
                "hwaddr": hwaddr,
                "hardware-address": hwaddr,
                "inet": f"{addr}/24",
                "inet6": "fe80::be24:11ff:fe00:1/64",
                "ip-addresses": [
                    {"ip-address": addr, "ip-address-type": "inet", "prefix": 24},
                    {
                        "ip-address": "fe80::be24:11ff:fe00:1",
                        "ip-address-type": "inet6",
                        "prefix": 64,
                    },
                ],
            },
        ]
