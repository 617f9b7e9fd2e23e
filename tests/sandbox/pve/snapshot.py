"""Container snapshots: ``/nodes/{node}/lxc/{vmid}/snapshot``."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .auth import Identity
from .errors import PveError
from .lxc import LxcApi
from .tasks import Task, TaskAbort


class SnapshotApi(LxcApi):
    # Config-level snapshots (pve-container:src/PVE/API2/LXC/Snapshot.pm; the bookkeeping of
    # pve-guest-common:src/PVE/AbstractConfig.pm, which checks no privileges itself). The
    # backends keep no filesystem state per snapshot. Privileges: the schema's blocks (§2.19).

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
            with self.lock:
                conf = self.load_conf(vmid)
                self._check_lock(conf)
                if name in conf["snapshots"]:
                    raise TaskAbort(f"snapshot name '{name}' already used")
                snap = {
                    k: v for k, v in conf.items() if k not in ("pending", "snapshots", "digest")
                }
                snap["snaptime"] = int(time.time())
                snap["description"] = a.get("description") or ""
                if not snap["description"]:
                    del snap["description"]
                conf["snapshots"][name] = snap
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
            with self.lock:
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
            self._check_lock(conf)
            if self._is_running(vmid):
                self.backend.stop(vmid)
            with self.lock:
                restored = {k: v for k, v in snap.items() if k not in ("snaptime", "parent")}
                restored.update(snapshots=conf["snapshots"], pending={}, parent=a["snapname"])
                self.write_conf(vmid, restored)
            if a.get("start"):
                # a direct call of the start handler: no VM.PowerMgmt check (§2.19)
                self._do_start(vmid, task)

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
