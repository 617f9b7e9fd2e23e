"""Container snapshots: ``/nodes/{node}/lxc/{vmid}/snapshot``, and ``…/feature``."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from .auth import Identity
from .errors import PveError
from .lxc import LxcApi
from .tasks import Task, TaskAbort


class SnapshotApi(LxcApi):
    # Snapshots (pve-container:src/PVE/API2/LXC/Snapshot.pm; the bookkeeping of
    # pve-guest-common:src/PVE/AbstractConfig.pm, which checks no privileges itself). The
    # volumes' part is the backend's (ContainerBackend.snapshot/rollback/delete_snapshot:
    # the sandbox keeps a copy of the container's files per snapshot), and only on a
    # storage whose plugin can snapshot the volume (volume_has_feature below). Privileges:
    # the schema's blocks (§2.19).

    def _volumes(self, conf: dict[str, Any]) -> list[str]:
        """The volume ids of ``rootfs`` and the ``mpN`` with a storage volume, as
        PVE::LXC::Config->foreach_volume walks them (bind and device mounts have none)."""
        out = []
        for key in ["rootfs", *sorted(k for k in conf if re.fullmatch(r"mp\d+", k))]:
            value = str(conf.get(key) or "")
            first = value.split(",", 1)[0]
            volume = first.split("=", 1)[1] if first.startswith("volume=") else first
            if volume and ":" in volume and not volume.startswith("/"):
                out.append(volume)
        return out

    def _volume_has_snapshot(self, volid: str, snapname: str | None) -> bool:
        """pve-storage ``volume_has_feature($feature='snapshot')`` of the volume's plugin:
        LvmThinPlugin.pm ``snapshot => { current => 1 }``, ZFSPoolPlugin.pm
        ``{ current => 1, snap => 1 }``, and Plugin.pm's (dir and the others that inherit
        it; LVMPlugin.pm the same) ``{ current => { qcow2 => 1 }, snap => { qcow2 => 1 } }``:
        a container volume is raw or a subvol there, never qcow2."""
        sid, volname = volid.split(":", 1)
        kind = self._storage(sid)["type"]
        key = "snap" if snapname else "current"
        if kind == "lvmthin":
            return key == "current"
        if kind == "zfspool":
            return True
        return volname.endswith(".qcow2")

    def has_snapshot_feature(self, conf: dict[str, Any], snapname: str | None = None) -> bool:
        """pve-container src/PVE/LXC/Config.pm ``has_feature``: every volume's storage can."""
        return all(self._volume_has_snapshot(v, snapname) for v in self._volumes(conf))

    def api_get_nodes_node_lxc_vmid_feature(
        self, ident: Identity, a: dict[str, Any], extra: dict[str, Any]
    ) -> Any:
        # pve-container src/PVE/API2/LXC.pm ``vm_feature``: the config (or the snapshot's),
        # then PVE::LXC::Config->has_feature. Only 'snapshot' is emulated; clone and copy
        # have their own rules (valid_target_formats), not needed here.
        conf = self.load_conf(int(a["vmid"]))
        snapname = a.get("snapname")
        if snapname:
            if snapname not in conf["snapshots"]:
                raise PveError(500, f"snapshot '{snapname}' does not exist")
            conf = conf["snapshots"][snapname]
        if a["feature"] != "snapshot":
            raise PveError(501, f"feature {a['feature']!r} is not emulated")
        return {"hasFeature": int(self.has_snapshot_feature(conf, snapname))}

    def _snapshot(self, conf: dict[str, Any], name: str) -> dict[str, Any]:
        snap = conf["snapshots"].get(name)
        if snap is None:
            raise PveError(500, f"snapshot '{name}' does not exist")
        return dict(snap)

    def api_get_nodes_node_lxc_vmid_snapshot(
        self, ident: Identity, a: dict[str, Any], extra: dict[str, Any]
    ) -> Any:
        vmid = int(a["vmid"])
        conf = self.load_conf(vmid)
        out: list[dict[str, Any]] = []
        for name, snap in conf["snapshots"].items():
            item = {"name": name, "snaptime": int(snap.get("snaptime", 0)),
                    "description": snap.get("description") or ""}  # fmt: skip
            if snap.get("parent"):
                item["parent"] = snap["parent"]
            if snap.get("snapstate"):
                item["snapstate"] = snap["snapstate"]
            out.append(item)
        current: dict[str, Any] = {"name": "current", "digest": conf["digest"],
                                   "running": int(self._is_running(vmid)),
                                   "description": "You are here!"}  # fmt: skip
        if conf.get("parent"):
            current["parent"] = conf["parent"]
        return [*out, current]

    def api_post_nodes_node_lxc_vmid_snapshot(
        self, ident: Identity, a: dict[str, Any], extra: dict[str, Any]
    ) -> Any:
        vmid, name = int(a["vmid"]), str(a["snapname"])
        if name in ("current", "vzdump"):
            raise PveError(500, f"unable to use snapshot name '{name}' (reserved name)")
        self.load_conf(vmid)

        def work(task: Task) -> None:
            # AbstractConfig.pm snapshot_create: __snapshot_prepare (lock 'snapshot', the
            # config copied with snapstate 'prepare'), the volumes' snapshots (a running CT
            # is frozen meanwhile upstream, __snapshot_freeze; the sandbox syncs), then
            # __snapshot_commit (snapstate and lock dropped, parent set); a failure deletes
            # what was made and fails the task.
            with self.lock:
                conf = self.load_conf(vmid)
                self._check_lock(conf)
                if name in conf["snapshots"]:
                    raise TaskAbort(f"snapshot name '{name}' already used")
                snap = {
                    k: v for k, v in conf.items() if k not in ("pending", "snapshots", "digest")
                }
                snap["snapstate"] = "prepare"
                snap["snaptime"] = int(time.time())
                if a.get("description"):
                    snap["description"] = a["description"]
                conf["snapshots"][name] = snap
                conf["lock"] = "snapshot"
                self.write_conf(vmid, conf)
            try:
                for volid in self._volumes(snap):
                    # Plugin.pm volume_snapshot: "can't snapshot this image format"
                    if not self._volume_has_snapshot(volid, None):
                        raise TaskAbort("can't snapshot this image format")
                self.backend.snapshot(vmid, name)
            except Exception as exc:
                task.log("snapshot create failed: starting cleanup")
                with self.lock:
                    conf = self.load_conf(vmid)
                    conf["snapshots"].pop(name, None)
                    conf.pop("lock", None)
                    self.write_conf(vmid, conf)
                self.backend.delete_snapshot(vmid, name)
                raise TaskAbort(str(exc)) from None
            with self.lock:
                conf = self.load_conf(vmid)
                conf["snapshots"][name].pop("snapstate", None)
                conf.pop("lock", None)
                conf["parent"] = name
                self.write_conf(vmid, conf)

        return self.run_task("vzsnapshot", str(vmid), ident, work)

    def api_get_nodes_node_lxc_vmid_snapshot_snapname(
        self, ident: Identity, a: dict[str, Any], extra: dict[str, Any]
    ) -> Any:
        return [{"cmd": "rollback"}, {"cmd": "config"}]

    def _snapshot_task(
        self,
        ident: Identity,
        a: dict[str, Any],
        task_type: str,
        change: Callable[[Task, int, dict[str, Any], dict[str, Any]], None],
    ) -> str:
        """A task on one existing snapshot: ``change(task, vmid, conf, snapshot)``."""
        vmid, name = int(a["vmid"]), str(a["snapname"])
        self.load_conf(vmid)

        def work(task: Task) -> None:
            with self.lock:
                conf = self.load_conf(vmid)
                snap = self._snapshot(conf, name)
            change(task, vmid, conf, snap)

        return self.run_task(task_type, str(vmid), ident, work)

    def api_delete_nodes_node_lxc_vmid_snapshot_snapname(
        self, ident: Identity, a: dict[str, Any], extra: dict[str, Any]
    ) -> Any:
        name = str(a["snapname"])

        def delete(task: Task, vmid: int, conf: dict[str, Any], snap: dict[str, Any]) -> None:
            # AbstractConfig.pm snapshot_delete: the volumes' snapshots go, then the entry
            self.backend.delete_snapshot(vmid, name)
            with self.lock:
                conf = self.load_conf(vmid)
                del conf["snapshots"][name]
                # its children (and the current state) hang from its parent now
                for other in [conf, *conf["snapshots"].values()]:
                    if other.get("parent") == name:
                        if snap.get("parent"):
                            other["parent"] = snap["parent"]
                        else:
                            other.pop("parent", None)
                self.write_conf(vmid, conf)

        return self._snapshot_task(ident, a, "vzdelsnapshot", delete)

    def api_post_nodes_node_lxc_vmid_snapshot_snapname_rollback(
        self, ident: Identity, a: dict[str, Any], extra: dict[str, Any]
    ) -> Any:
        def rollback(task: Task, vmid: int, conf: dict[str, Any], snap: dict[str, Any]) -> None:
            # AbstractConfig.pm snapshot_rollback: check_lock, a running CT is stopped hard
            # (LXC/Config.pm __snapshot_rollback_vm_stop: vm_stop($vmid, 1)), the volumes
            # rolled back (__snapshot_rollback_vol_rollback), then the snapshot's config
            # becomes the current one with parent = the snapshot; Snapshot.pm rollback
            # starts it after when start=1, in a vzstart task of its own (_vm_start).
            self._check_lock(conf)
            if snap.get("snapstate"):
                raise TaskAbort(
                    f"unable to rollback to incomplete snapshot (snapstate = {snap['snapstate']})"
                )
            if self._is_running(vmid):
                self.backend.stop(vmid)
            self.backend.rollback(vmid, str(a["snapname"]))
            with self.lock:
                restored = {k: v for k, v in snap.items() if k not in ("snaptime", "parent")}
                restored.update(snapshots=conf["snapshots"], pending={}, parent=a["snapname"])
                self.write_conf(vmid, restored)
            if a.get("start"):
                # a direct call of the start handler: no VM.PowerMgmt check (§2.19)
                self._vm_start(ident, vmid)

        return self._snapshot_task(ident, a, "vzrollback", rollback)

    def api_get_nodes_node_lxc_vmid_snapshot_snapname_config(
        self, ident: Identity, a: dict[str, Any], extra: dict[str, Any]
    ) -> Any:
        snap = self._snapshot(self.load_conf(int(a["vmid"])), str(a["snapname"]))
        return self._public_conf(snap)  # without the raw lxc keys

    def api_put_nodes_node_lxc_vmid_snapshot_snapname_config(
        self, ident: Identity, a: dict[str, Any], extra: dict[str, Any]
    ) -> Any:
        vmid, name = int(a["vmid"]), str(a["snapname"])
        with self.lock:
            conf = self.load_conf(vmid)
            self._snapshot(conf, name)
            if "description" in a:
                conf["snapshots"][name]["description"] = a["description"]
                self.write_conf(vmid, conf)
        return None
