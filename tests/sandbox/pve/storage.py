"""Storage: the node's storages, container volumes and templates, the storage and
``aplinfo`` endpoints (pve-storage; pve-manager:PVE/API2/Nodes.pm, APLInfo.pm).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from . import lxc_permissions as lxcperm
from .auth import Identity
from .conf import ConfApi
from .errors import PveError, param_error
from .schema import split_list
from .tasks import Task

DEFAULT_TEMPLATES = ("ubuntu-24.04-standard_24.04-2_amd64.tar.zst",)


APLINFO = [
    {
        "template": "ubuntu-24.04-standard_24.04-2_amd64.tar.zst",
        "package": "ubuntu-24.04-standard",
        "version": "24.04-2",
        "os": "ubuntu-24.04",
        "section": "system",
        "type": "lxc",
        "headline": "Ubuntu 24.04 Noble (standard)",
        "description": "Ubuntu 24.04 Noble (standard)",
        "location": "http://download.proxmox.com/images/system/"
        "ubuntu-24.04-standard_24.04-2_amd64.tar.zst",
        "sha512sum": "4d6c6f5d8d3d1c2e" * 8,
        "infopage": "https://pve.proxmox.com/wiki/Linux_Container#pct_supported_distributions",
        "maintainer": "Proxmox Support Team <support@proxmox.com>",
        "architecture": "amd64",
        "source": "http://download.proxmox.com/images/system",
        "manageurl": "",
    },
    {
        "template": "debian-13-standard_13.1-2_amd64.tar.zst",
        "package": "debian-13-standard",
        "version": "13.1-2",
        "os": "debian-13",
        "section": "system",
        "type": "lxc",
        "headline": "Debian 13 (standard)",
        "description": "Debian 13 Trixie (standard)",
        "location": "http://download.proxmox.com/images/system/"
        "debian-13-standard_13.1-2_amd64.tar.zst",
        "sha512sum": "9a1f0e7b3c5d2e4f" * 8,
        "infopage": "https://pve.proxmox.com/wiki/Linux_Container#pct_supported_distributions",
        "maintainer": "Proxmox Support Team <support@proxmox.com>",
        "architecture": "amd64",
        "source": "http://download.proxmox.com/images/system",
        "manageurl": "",
    },
    {
        "template": "debian-12-standard_12.12-1_amd64.tar.zst",
        "package": "debian-12-standard",
        "version": "12.12-1",
        "os": "debian-12",
        "section": "system",
        "type": "lxc",
        "headline": "Debian 12 (standard)",
        "description": "Debian 12 Bookworm (standard)",
        "location": "http://download.proxmox.com/images/system/"
        "debian-12-standard_12.12-1_amd64.tar.zst",
        "sha512sum": "1b2c3d4e5f607182" * 8,
        "infopage": "https://pve.proxmox.com/wiki/Linux_Container#pct_supported_distributions",
        "maintainer": "Proxmox Support Team <support@proxmox.com>",
        "architecture": "amd64",
        "source": "http://download.proxmox.com/images/system",
        "manageurl": "",
    },
]


class StorageApi(ConfApi):
    """Volumes on the storages, templates in ``local``'s cache, and their endpoints."""

    template_source: Path | None

    @property
    def template_dir(self) -> Path:
        return self.state_dir / "var/lib/vz/template/cache"

    def _install_template(self, name: str, path: Path) -> None:
        if self.template_source and (self.template_source / name).exists():
            shutil.copyfile(self.template_source / name, path)
        else:
            path.write_bytes(b"")

    def _check_target_storage(self, ident: Identity, sid: str) -> None:
        """A storage a create puts a volume on: enabled, for container directories, and
        Datastore.AllocateSpace on it (create_vm's $check_and_activate_storage)."""
        st = self._storage(sid)
        if "rootdir" not in st["content"]:
            raise param_error(
                {"storage": f"storage '{sid}' does not support container directories"}
            )
        self.rpc.check(ident.authuser, f"/storage/{sid}", ["Datastore.AllocateSpace"])

    def _alloc_volume(self, sid: str, vmid: int, size: str, disk_index: int) -> str:
        st = self._storage(sid)
        size_g = size.split(".")[0] if size.endswith(".0") else size
        if st["type"] == "dir":
            vol = f"{sid}:{vmid}/vm-{vmid}-disk-{disk_index}.raw"
        elif st["type"] == "zfspool":
            vol = f"{sid}:subvol-{vmid}-disk-{disk_index}"
        else:
            vol = f"{sid}:vm-{vmid}-disk-{disk_index}"
        return f"{vol},size={size_g}G"

    def _template_path(self, ostemplate: str) -> str:
        m = re.match(r"^([a-z][a-z0-9\-_.]*[a-z0-9]):vztmpl/(.+)$", ostemplate, re.IGNORECASE)
        if not m:
            if ostemplate.startswith("/") and Path(ostemplate).exists():
                return ostemplate
            raise PveError(500, f"unable to parse volume ID '{ostemplate}'")
        sid, name = m.group(1), m.group(2)
        st = self._storage(sid)
        if "vztmpl" not in st["content"] or "path" not in st:
            raise PveError(500, f"storage '{sid}' does not support templates")
        path = Path(st["path"]) / "template/cache" / name
        if not path.exists():
            raise PveError(500, f"volume '{ostemplate}' does not exist")
        return str(path)

    def api_get_nodes_node_storage(
        self, ident: Identity, a: dict[str, Any], extra: dict[str, Any]
    ) -> Any:
        want = set(split_list(a.get("content", "") or ""))
        out = []
        for sid, st in self.storages.items():
            if a.get("storage") and a["storage"] != sid:
                continue
            if want and not want & set(st["content"]):
                continue
            if not self.can(
                ident, f"/storage/{sid}", ["Datastore.Audit", "Datastore.AllocateSpace"]
            ):
                continue
            total, used = 100 * 1024**3, 10 * 1024**3
            out.append(
                {
                    "storage": sid, "type": st["type"], "content": ",".join(st["content"]),
                    "active": 1, "enabled": 1, "shared": 0, "total": total, "used": used,
                    "avail": total - used, "used_fraction": used / total,
                }
            )  # fmt: skip
        return out

    def api_get_nodes_node_storage_storage_content(
        self, ident: Identity, a: dict[str, Any], extra: dict[str, Any]
    ) -> Any:
        sid = a["storage"]
        st = self._storage(sid)
        content = a.get("content")
        out: list[dict[str, Any]] = []
        if "vztmpl" in st["content"] and content in (None, "vztmpl") and "path" in st:
            tdir = Path(st["path"]) / "template/cache"
            for p in sorted(tdir.glob("*")) if tdir.exists() else []:
                m = re.match(r"^.+\.(tar|tar\.(gz|xz|zst|bz2)|tgz)$", p.name)
                if not m or not p.is_file():
                    continue
                ext = m.group(1)
                fmt = {"tar": "tar", "tgz": "tgz", "tar.gz": "tgz", "tar.xz": "txz",
                       "tar.zst": "tzst", "tar.bz2": "tbz2"}[ext]  # fmt: skip
                stat = p.stat()
                out.append(
                    {"volid": f"{sid}:vztmpl/{p.name}", "content": "vztmpl", "format": fmt,
                     "size": stat.st_size, "ctime": int(stat.st_mtime)}
                )  # fmt: skip
        if "rootdir" in st["content"] and content in (None, "rootdir", "images"):
            for vmid in self.vmids():
                if a.get("vmid") is not None and vmid != a["vmid"]:
                    continue
                try:
                    conf = self.load_conf(vmid)
                except PveError:
                    continue
                rootfs = str(conf.get("rootfs", ""))
                if rootfs.startswith(f"{sid}:"):
                    volid = rootfs.split(",")[0]
                    out.append(
                        {"volid": volid, "content": "rootdir", "format": "raw", "vmid": vmid,
                         "size": 8 * 1024**3, "ctime": int(time.time())}
                    )  # fmt: skip
        # each volume only if check_volume_access passes, errors swallowed
        # (pve-storage:src/PVE/API2/Storage/Content.pm:index)
        return [
            item
            for item in out
            if lxcperm.volume_visible(self.rpc, ident.authuser, self.storages, item["volid"])
        ]

    def _download(self, sid: str, filename: str, ident: Identity, url: str) -> str:
        st = self._storage(sid)
        if "vztmpl" not in st["content"] or "path" not in st:
            raise PveError(500, f"storage '{sid}' does not support templates")
        target = Path(st["path"]) / "template/cache" / filename

        def work(task: Task) -> None:
            # The log's first and last lines are upstream's (pve-common src/PVE/Tools.pm
            # download_file_from_url, which pve-manager's apl_download and pve-storage's
            # download_url both call); between them a node logs wget's
            # ``--progress=dot:giga`` lines, which this copy has none of.
            task.log(f"downloading {url} to {target}")
            tmp = target.with_name(target.name + ".tmp")
            self._install_template(filename, tmp)
            os.replace(tmp, target)
            task.log(f"download of '{url}' to '{target}' finished")

        return self.run_task("download", filename, ident, work)

    def api_post_nodes_node_aplinfo(
        self, ident: Identity, a: dict[str, Any], extra: dict[str, Any]
    ) -> Any:
        record = next((r for r in APLINFO if r["template"] == a["template"]), None)
        if record is None:
            raise param_error({"template": "no such template"})
        return self._download(a["storage"], a["template"], ident, str(record["location"]))

    def api_get_nodes_node_aplinfo(
        self, ident: Identity, a: dict[str, Any], extra: dict[str, Any]
    ) -> Any:
        return [dict(r) for r in APLINFO]

    def api_post_nodes_node_storage_storage_download_url(
        self, ident: Identity, a: dict[str, Any], extra: dict[str, Any]
    ) -> Any:
        if a["content"] != "vztmpl":
            raise PveError(500, f"content type '{a['content']}' is not supported by the emulator")
        return self._download(a["storage"], a["filename"], ident, a["url"])
