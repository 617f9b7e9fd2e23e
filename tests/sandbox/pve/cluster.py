"""The node and cluster views: ``/version``, ``/nodes``, ``/cluster/resources``,
``/cluster/nextid``.
"""

from __future__ import annotations

import os
from typing import Any

from .auth import Identity
from .errors import PveError, param_error
from .snapshot import SnapshotApi

VERSIONS = {
    "9": {"version": "9.1.2", "release": "9.1", "repoid": "5a5d1f9c"},
    "8": {"version": "8.4.14", "release": "8.4", "repoid": "b502d23c"},
}


class ClusterApi(SnapshotApi):
    """What the node says of itself and lists of its guests, pools and storages."""

    def api_get_version(self, ident: Identity, a: dict[str, Any], extra: dict[str, Any]) -> Any:
        return dict(VERSIONS[str(self.major)])

    def _node_entry(self, ident: Identity) -> dict[str, Any]:
        """This node as ``/nodes`` and ``/cluster/resources`` list it; without Sys.Audit on
        ``/nodes/{node}`` the stats are left out (pve-manager:PVE/API2Tools.pm:
        extract_node_stats)."""
        entry: dict[str, Any] = {
            "node": self.node, "id": f"node/{self.node}", "type": "node", "status": "online",
            "level": "",
        }  # fmt: skip
        if self.rpc.check(ident.authuser, f"/nodes/{self.node}", ["Sys.Audit"], noerr=True):
            entry.update(
                cpu=0.01, maxcpu=os.cpu_count() or 1, mem=2 * 1024**3, maxmem=16 * 1024**3,
                disk=10 * 1024**3, maxdisk=100 * 1024**3, uptime=123456,
            )  # fmt: skip
        return entry

    def api_get_nodes(self, ident: Identity, a: dict[str, Any], extra: dict[str, Any]) -> Any:
        # every node is listed (pve-manager:PVE/API2/Nodes.pm:index)
        return [{**self._node_entry(ident), "ssl_fingerprint": self.fingerprint}]

    def api_get_cluster_resources(
        self, ident: Identity, a: dict[str, Any], extra: dict[str, Any]
    ) -> Any:
        # every item filtered silently (pve-manager:PVE/API2/Cluster.pm:resources, §2.3)
        kind = a.get("type")
        out: list[dict[str, Any]] = []
        if kind in (None, "vm"):
            for vmid in self.vmids():
                if not self._visible(ident, vmid):
                    continue
                try:
                    conf = self.load_conf(vmid)
                except PveError:
                    continue
                st = self._ct_status(vmid, conf)
                item = {
                    "id": f"lxc/{vmid}",
                    "type": "lxc",
                    "vmid": vmid,
                    "node": self.node,
                    "name": st["name"],
                    "status": st["status"],
                    "maxmem": st["maxmem"],
                    "mem": st["mem"],
                    "maxdisk": st["maxdisk"],
                    "disk": st["disk"],
                    "maxcpu": st["cpus"],
                    "cpu": 0,
                    "uptime": st["uptime"],
                    "template": st.get("template", 0),
                    "netin": 0,
                    "netout": 0,
                    "diskread": 0,
                    "diskwrite": 0,
                }
                for key in ("tags", "lock"):
                    if key in st:
                        item[key] = st[key]
                # the pool field only with Pool.Audit on the pool
                pool = self.user_cfg.pool_of(vmid)
                if pool and self.rpc.check(
                    ident.authuser, f"/pool/{pool}", ["Pool.Audit"], noerr=True
                ):
                    item["pool"] = pool
                out.append(item)
        if kind is None:
            for pool in sorted(self.user_cfg.pools):
                if self.rpc.check(ident.authuser, f"/pool/{pool}", ["Pool.Audit"], noerr=True):
                    out.append({"id": f"/pool/{pool}", "pool": pool, "type": "pool"})
        if kind in (None, "node"):
            out.append(self._node_entry(ident))
        if kind in (None, "storage"):
            for sid, st in self.storages.items():
                if not self.rpc.check(
                    ident.authuser, f"/storage/{sid}", ["Datastore.Audit"], noerr=True
                ):
                    continue
                out.append(
                    {
                        "id": f"storage/{self.node}/{sid}",
                        "type": "storage",
                        "storage": sid,
                        "node": self.node,
                        "status": "available",
                        "content": ",".join(st["content"]),
                        "plugintype": st["type"],
                        "shared": 0,
                        "disk": 10 * 1024**3,
                        "maxdisk": 100 * 1024**3,
                    }
                )
        return out

    def api_get_cluster_nextid(
        self, ident: Identity, a: dict[str, Any], extra: dict[str, Any]
    ) -> Any:
        used = set(self.vmids())
        if a.get("vmid") is not None:
            if a["vmid"] in used:
                raise param_error({"vmid": f"VM {a['vmid']} already exists"})
            return str(a["vmid"])
        vmid = 100
        while vmid in used:
            vmid += 1
        return str(vmid)
