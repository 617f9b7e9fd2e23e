"""The emulator's containers as real sandbox containers (systemd-nspawn, SSH, own address).

- create: a new sandbox container (an overlay over the cached rootfs stands in for the
  unpacked template); the create-time SSH keys become root's authorized_keys and the
  conf's hostname its hostname, as PVE's setup does
- start: boots it; ``/dev/net/tun`` exists inside only when the config it starts with
  grants it (raw ``lxc.*`` lines or ``devN: /dev/net/tun``), so a missing patch fails
  Tailscale as on real Proxmox
- interfaces: the container's real addresses, in PVE's ``/interfaces`` shape
- snapshots: a copy of the container's disk (its overlay's upper layer) per snapshot,
  ``snapshots/<name>`` beside it; a rollback puts that copy back while the container is
  stopped, so the files really go back (as a volume rollback does on lvmthin or ZFS)
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from typing import Any

from tests.sandbox import container as sandbox
from tests.sandbox import paths
from tests.sandbox.host import run

from .backend import ContainerBackend


class _PveContainer(sandbox.Container):
    """A sandbox container seeded the way PVE sets up a new CT."""

    hostname: str = ""
    keys: str = ""

    def _seed(self) -> None:
        super()._seed()
        if self.hostname:
            etc = self.root / "etc"
            (etc / "hostname").write_text(f"{self.hostname}\n")
            (etc / "hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {self.hostname}\n")
        # The create's ssh-public-keys and nothing else, written once, as pve-container
        # does at create (src/PVE/LXC/Create.pm / Setup/Base.pm ``set_user_authorized_ssh_keys``:
        # /root/.ssh/authorized_keys, mode 0600 in a 0700 .ssh). The sandbox reaches the
        # container by entering it (Container.exec, as `pct exec` does), not with a key.
        keys = self.root / "root/.ssh/authorized_keys"
        if not (self.dir / "upper/root/.ssh/authorized_keys").exists():
            keys.write_text(self.keys)
            keys.chmod(0o600)


class SandboxBackend(ContainerBackend):
    """Containers named ``<prefix><vmid>`` in the sandbox (they survive an emulator restart)."""

    def __init__(self, prefix: str = "pve") -> None:
        self.prefix = prefix
        self._lock = threading.Lock()

    def _meta_path(self, vmid: int) -> Any:
        return paths.CONTAINERS / self.name(vmid) / sandbox.API_CREATED

    def name(self, vmid: int) -> str:
        return f"{self.prefix}{vmid}"

    def _get(self, vmid: int, tun: bool = False) -> _PveContainer:
        base = sandbox.get(self.name(vmid), tun=tun)
        c = _PveContainer(base.name, base.index, tun)
        meta = self._meta_path(vmid)
        if meta.exists():
            data = json.loads(meta.read_text())
            c.hostname = data.get("hostname", "")
            c.keys = data.get("keys", "")
        return c

    def exists(self, vmid: int) -> bool:
        return self._meta_path(vmid).exists()

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
            c = sandbox.get(self.name(vmid), tun=False)
            keys = ssh_public_keys or ""
            if keys and not keys.endswith("\n"):
                keys += "\n"
            # written before the first start: it marks the container as the API's
            # (sandbox.API_CREATED: no sandbox key, no known_hosts line)
            self._meta_path(vmid).write_text(
                json.dumps({"hostname": str(conf.get("hostname", "")), "keys": keys}) + "\n"
            )
            c.dir.mkdir(parents=True, exist_ok=True)
        return []

    def start(self, vmid: int, conf: dict[str, Any]) -> None:
        c = self._get(vmid, tun=self.tun_allowed(conf))
        hostname = str(conf.get("hostname") or "")
        if hostname:
            c.hostname = hostname
        c.start()

    def stop(self, vmid: int) -> None:
        if self.exists(vmid):
            self._get(vmid).stop()

    def shutdown(self, vmid: int, timeout: int = 60) -> None:
        if self.exists(vmid):
            self._get(vmid).stop(timeout=min(timeout, 30))

    def destroy(self, vmid: int) -> None:
        if self.exists(vmid) or (paths.CONTAINERS / self.name(vmid)).exists():
            self._get(vmid).destroy()

    def tear_down(self, node: Any) -> None:
        """Destroy every container ``node`` (a ``site.Node``) has a conf for, then stop it:
        the end of each test's emulated node."""
        for conf in node.conf_dir.glob("*.conf"):
            self.destroy(int(conf.stem))
        node.stop()

    def _snapshot_dir(self, vmid: int, name: str) -> Any:
        return paths.CONTAINERS / self.name(vmid) / "snapshots" / name

    def snapshot(self, vmid: int, name: str) -> None:
        c = self._get(vmid)
        target = self._snapshot_dir(vmid, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        # upstream freezes a running CT's filesystems first (LXC/Config.pm
        # __snapshot_freeze); here its writes are flushed
        os.sync()
        (c.dir / "upper").mkdir(parents=True, exist_ok=True)
        run("cp", "-a", "--reflink=auto", str(c.dir / "upper"), str(target))

    def rollback(self, vmid: int, name: str) -> None:
        source = self._snapshot_dir(vmid, name)
        if not source.is_dir():
            raise RuntimeError(f"no files kept for snapshot {name!r} of CT {vmid}")
        c = self._get(vmid)
        c.stop()
        # an overlay's layers are not changed under it: unmounted, replaced, mounted again
        # at the next start (Container._mount)
        if os.path.ismount(c.root):
            run("umount", str(c.root))
        for layer in ("upper", "work"):
            shutil.rmtree(c.dir / layer, ignore_errors=True)
        run("cp", "-a", "--reflink=auto", str(source), str(c.dir / "upper"))
        (c.dir / "work").mkdir()

    def delete_snapshot(self, vmid: int, name: str) -> None:
        shutil.rmtree(self._snapshot_dir(vmid, name), ignore_errors=True)

    def status(self, vmid: int) -> str:
        if not self.exists(vmid):
            return "stopped"
        return "running" if self._get(vmid).running() else "stopped"

    def tun_present(self, vmid: int) -> bool:
        """Test helper: whether /dev/net/tun exists inside the running container."""
        probe = self._get(vmid).ssh("test -c /dev/net/tun && echo yes || echo no", check=False)
        return probe.stdout.strip() == "yes"

    def interfaces(self, vmid: int) -> list[dict[str, Any]] | None:
        if self.status(vmid) != "running":
            return None
        c = self._get(vmid)
        out = run("ip", "-n", c.netns, "-j", "addr", "show", check=False)
        if out.returncode != 0:
            return None
        result = []
        for link in json.loads(out.stdout or "[]"):
            hw = str(link.get("address", "00:00:00:00:00:00"))
            item: dict[str, Any] = {
                "name": link.get("ifname"),
                "hwaddr": hw,
                "hardware-address": hw,
                "ip-addresses": [],
            }
            for addr in link.get("addr_info", []):
                family = "inet" if addr.get("family") == "inet" else "inet6"
                item["ip-addresses"].append(
                    {
                        "ip-address": addr.get("local"),
                        "ip-address-type": family,
                        "prefix": addr.get("prefixlen"),
                    }
                )
                item[family] = f"{addr.get('local')}/{addr.get('prefixlen')}"
            result.append(item)
        return result
