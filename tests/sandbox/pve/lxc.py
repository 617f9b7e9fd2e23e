"""Containers: list, create, destroy, status and power (pve-container:src/PVE/API2/LXC.pm,
LXC/Status.pm), the container's side of the backends.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any

from . import lxc_permissions as lxcperm
from .auth import Identity
from .errors import PveError, param_error, perm_error
from .schema import print_property_string
from .storage import StorageApi
from .tasks import Task, TaskAbort

# systemd version per template family (for the nesting warning)
_SYSTEMD_BY_OS = {"ubuntu-24.04": 255, "ubuntu-22.04": 249, "debian-12": 252, "debian-13": 257}


_NON_CONF_CREATE = {
    "node", "vmid", "ostemplate", "password", "ssh-public-keys", "start", "storage", "pool",
    "force", "restore", "unique", "ignore-unpack-errors", "bwlimit", "ha-managed",
    "unprivileged",
}  # fmt: skip


class LxcApi(StorageApi):
    """``/nodes/{node}/lxc``: the containers' life cycle, through the backend."""

    race_vmids: set[int]

    def _ct_status(self, vmid: int, conf: dict[str, Any]) -> dict[str, Any]:
        running = self._is_running(vmid)
        memory = int(str(conf.get("memory", 512)))
        swap = int(str(conf.get("swap", 512)))
        maxdisk = 8 * 1024**3
        m = re.search(r"size=(\d+)G", str(conf.get("rootfs", "")))
        if m:
            maxdisk = int(m.group(1)) * 1024**3
        status: dict[str, Any] = {
            "vmid": vmid,
            "status": "running" if running else "stopped",
            "name": conf.get("hostname") or f"CT{vmid}",
            "type": "lxc",
            "cpus": int(str(conf.get("cores", 1))),
            "maxmem": memory * 1024 * 1024,
            "maxswap": swap * 1024 * 1024,
            "maxdisk": maxdisk,
            "mem": 64 * 1024 * 1024 if running else 0,
            "swap": 0,
            "disk": 512 * 1024 * 1024 if running else 0,
            "uptime": 10 if running else 0,
            "cpu": 0,
            "netin": 0,
            "netout": 0,
            "diskread": 0,
            "diskwrite": 0,
        }
        if running:
            status["pid"] = 10000 + vmid
        if conf.get("lock"):
            status["lock"] = conf["lock"]
        if conf.get("tags"):
            status["tags"] = conf["tags"]
        if str(conf.get("template", "0")) == "1":
            status["template"] = 1
        return status

    def _visible(self, ident: Identity, vmid: int) -> bool:
        """Listings show a guest only with VM.Audit on it (pve-container:src/PVE/API2/LXC.pm:
        vmlist, pve-manager:PVE/API2/Cluster.pm:resources)."""
        return self.rpc.check(ident.authuser, f"/vms/{vmid}", ["VM.Audit"], noerr=True)

    def api_get_nodes_node_lxc(
        self, ident: Identity, a: dict[str, Any], extra: dict[str, Any]
    ) -> Any:
        out = []
        for vmid in self.vmids():
            if not self._visible(ident, vmid):
                continue
            try:
                conf = self.load_conf(vmid)
            except PveError:
                continue
            out.append(self._ct_status(vmid, conf))
        return out

    def api_post_nodes_node_lxc(
        self, ident: Identity, a: dict[str, Any], extra: dict[str, Any]
    ) -> Any:
        # the checks in create_vm's order (pve-container:src/PVE/API2/LXC.pm:create_vm, §2.8)
        vmid = int(a["vmid"])
        authid = ident.authuser
        start_after = bool(a.get("start"))
        if a.get("restore"):
            raise PveError(500, "restore is not supported by the emulator")
        unprivileged = a.get("unprivileged")
        if self.major >= 9:
            # 9 (pve-container 6.0.6): unprivileged by default; privileged needs Sys.Modify
            if unprivileged is None:
                unprivileged = 1
            if not unprivileged:
                self.rpc.check(authid, "/", ["Sys.Modify"])
        # 8: unset means privileged, and nothing is checked for it
        unprivileged = 1 if unprivileged else 0
        if a.get("ha-managed"):
            # 9 (pve-container 6.1.3); the parameter does not exist on 8
            self.rpc.check(authid, "/", ["Sys.Console"])
        with self.lock:
            if vmid in self.race_vmids:
                self.race_vmids.discard(vmid)
                if not self.conf_path(vmid).exists():
                    self.write_conf(
                        vmid,
                        {"hostname": f"racer{vmid}", "memory": "512", "lock": "create",
                         "pending": {}, "snapshots": {}},
                    )  # fmt: skip
            # vmid unused comes before any VM privilege check
            if self.conf_path(vmid).exists():
                raise PveError(500, f"CT {vmid} already exists on node '{self.node}'")
            pool = a.get("pool")
            if pool is not None:
                self.rpc.check_pool_exist(pool)
            # the gate: VM.Allocate on /vms/{vmid}, else on the pool; else a bare 403
            if not (
                self.rpc.check(authid, f"/vms/{vmid}", ["VM.Allocate"], noerr=True)
                or (pool and self.rpc.check(authid, f"/pool/{pool}", ["VM.Allocate"], noerr=True))
            ):
                raise perm_error()
            newconf = {k: v for k, v in a.items() if k not in _NON_CONF_CREATE}
            self.check_ct_modify_config_perm(
                ident, vmid, pool, None, newconf, [], bool(unprivileged)
            )
            # read access to the template (pve-storage:src/PVE/Storage.pm:check_volume_access)
            lxcperm.check_volume_access(
                self.rpc, authid, self.storages, vmid, str(a["ostemplate"]), "vztmpl"
            )
            template_path = self._template_path(str(a["ostemplate"]))
            storage = str(a.get("storage") or "local")
            rootfs = newconf.get("rootfs")
            if rootfs is not None and re.fullmatch(r"\d+(\.\d+)?", str(rootfs)):
                newconf["rootfs"] = f"{storage}:{rootfs}"  # a bare size: the default storage
            for key in sorted(k for k in newconf if k == "rootfs" or re.fullmatch(r"mp\d+", k)):
                mptype, mp = self._mp_type(key, str(newconf[key]))
                if mptype != "volume":
                    if not ident.is_root:
                        raise PveError(500, "Only root can pass arbitrary filesystem paths.")
                    continue
                self._check_target_storage(ident, str(mp.get("volume", "")).split(":", 1)[0])
            if rootfs is None:
                # no rootfs: 4 GiB on `storage`, with only its AllocateSpace checked
                self._check_target_storage(ident, storage)
                newconf["rootfs"] = f"{storage}:4"
            # rootfs allocation
            mptype, mp = self._mp_type("rootfs", str(newconf["rootfs"]))
            fmt = self.schema.prop("PUT", "/nodes/{node}/lxc/{vmid}/config", "rootfs")["format"]
            m = lxcperm.NEW_DISK_RE.match(str(mp.get("volume", "")))
            if mptype == "volume" and m:
                vol = self._alloc_volume(m.group(1), vmid, m.group(2), 0)
                volume, _, size = vol.partition(",size=")
                mp["volume"] = volume
                mp["size"] = size
                newconf["rootfs"] = print_property_string(fmt, mp, first=("volume",)).replace(
                    "volume=", "", 1
                )
            conf: dict[str, Any] = {"pending": {}, "snapshots": {}}
            conf["arch"] = newconf.pop("arch", "amd64")
            name = Path(template_path).name
            os_name = "unmanaged"
            for prefix in ("ubuntu", "debian", "alpine", "centos", "fedora", "archlinux"):
                if name.startswith(prefix):
                    os_name = prefix
            conf["ostype"] = newconf.pop("ostype", os_name)
            conf["memory"] = newconf.pop("memory", 512)
            conf["swap"] = newconf.pop("swap", 512)
            for key, value in newconf.items():
                if re.match(r"^net\d+$", key):
                    value = self._normalize_net(str(value))
                elif key == "tags":
                    value = self._normalize_tags(str(value))
                elif re.match(r"^unused\d+$", key):
                    continue
                conf[key] = value
            if unprivileged:
                conf["unprivileged"] = 1
            conf["lock"] = "create"
            self.write_conf(vmid, conf)
        ssh_keys = a.get("ssh-public-keys")
        password = a.get("password")
        feats = self._parse_features(str(conf.get("features", "")) or None)

        def work(task: Task) -> None:
            task.log(f"extracting archive '{template_path}'")
            warnings = self.backend.create(
                vmid,
                self._effective_conf(conf),
                template_path,
                ssh_public_keys=ssh_keys,
                password=password,
            )
            task.log("Total bytes read: 0 (0B, 0B/s)")
            task.log(f"Detected container architecture: {conf['arch']}")
            for w in warnings or []:
                task.warn(w)
            osver = re.match(r"^([a-z]+-\d+(?:\.\d+)?)-", name)
            systemd = _SYSTEMD_BY_OS.get(osver.group(1) if osver else "", 0)
            if systemd > 241 and str(feats.get("nesting", "0")) != "1":
                task.warn(f"Systemd {systemd} detected. You may need to enable nesting.")
            if ssh_keys:
                task.log("Setting up SSH keys")
            task.log("Creating SSH host key 'ssh_host_ed25519_key' - this may take some time ...")
            with self.lock:
                cur = self.load_conf(vmid)
                cur.pop("lock", None)
                self.write_conf(vmid, cur)
            if pool is not None:
                # the end of create_vm's $code: pool roles reach the new CT only from here
                with self.lock:
                    self.user_cfg.add_vm_to_pool(vmid, pool)
            if start_after:
                # after $code, outside lock_config; a direct call of the start handler: no
                # VM.PowerMgmt check (§2.8 step 13)
                self._vm_start(ident, vmid)

        def cleanup(task: Task) -> None:
            with contextlib.suppress(Exception):
                if self._is_running(vmid):
                    self.backend.stop(vmid)
            with contextlib.suppress(Exception):
                self.backend.destroy(vmid)
            with self.lock:
                self.conf_path(vmid).unlink(missing_ok=True)

        def wrapped(task: Task) -> None:
            try:
                work(task)
            except TaskAbort:
                raise
            except PveError as exc:
                raise TaskAbort(f"unable to create CT {vmid} - {exc.message}") from exc
            except Exception as exc:
                raise TaskAbort(f"unable to create CT {vmid} - {exc}") from exc

        return self.run_task("vzcreate", str(vmid), ident, wrapped, on_error=cleanup)

    def api_get_nodes_node_lxc_vmid(
        self, ident: Identity, a: dict[str, Any], extra: dict[str, Any]
    ) -> Any:
        self.load_conf(int(a["vmid"]))
        subdirs = ["config", "pending", "status", "vncproxy", "termproxy", "vncwebsocket",
                   "spiceproxy", "migrate", "clone", "rrd", "rrddata", "firewall", "snapshot",
                   "resize", "interfaces"]  # fmt: skip
        return [{"subdir": s} for s in subdirs]

    def api_delete_nodes_node_lxc_vmid(
        self, ident: Identity, a: dict[str, Any], extra: dict[str, Any]
    ) -> Any:
        vmid = int(a["vmid"])
        conf = self.load_conf(vmid)
        self._check_lock(conf)
        if str(conf.get("protection", "0")) == "1":
            raise PveError(500, f"can't remove CT {vmid} - protection mode enabled")
        force = bool(a.get("force"))
        if self._is_running(vmid) and not force:
            raise PveError(500, f"unable to destroy CT {vmid} - container is running")

        def work(task: Task) -> None:
            if self._is_running(vmid):
                task.log(f"stopping CT {vmid}")
                self.backend.stop(vmid)
            self.backend.destroy(vmid)
            task.log(f'  Logical volume "vm-{vmid}-disk-0" successfully removed.')
            with self.lock:
                self.conf_path(vmid).unlink(missing_ok=True)
                # per-vmid ACLs and the pool membership go with the CT
                # (pve-access-control:src/PVE/AccessControl.pm:remove_vm_access)
                self.user_cfg.remove_vm_access(vmid)

        return self.run_task("vzdestroy", str(vmid), ident, work)

    def api_get_nodes_node_lxc_vmid_status(
        self, ident: Identity, a: dict[str, Any], extra: dict[str, Any]
    ) -> Any:
        self.load_conf(int(a["vmid"]))
        subs = ["current", "start", "stop", "shutdown", "reboot", "suspend", "resume"]
        return [{"subdir": s} for s in subs]

    def api_get_nodes_node_lxc_vmid_status_current(
        self, ident: Identity, a: dict[str, Any], extra: dict[str, Any]
    ) -> Any:
        vmid = int(a["vmid"])
        st = self._ct_status(vmid, self.load_conf(vmid))
        st["ha"] = {"managed": 0}
        return st

    def _vm_start(self, ident: Identity, vmid: int, *, skiplock: bool = False) -> str:
        """``PVE::API2::LXC::Status->vm_start`` (pve-container src/PVE/API2/LXC/Status.pm),
        from the start endpoint and as a direct call from inside another task (create or
        a snapshot rollback with ``start=1``). Before the fork only "already running"; the
        template and lock checks are the vzstart worker's (under lock_config), so they fail
        the task, not the request. pve-common ``src/PVE/RESTEnvironment.pm``
        ``fork_worker`` forks whenever the caller is not the CLI (``$sync`` only for
        ``type eq 'cli'``) and registers the new task (``active_workers``) before it
        returns: a calling task ends while the container starts, and the start's outcome
        is the vzstart task's, not the caller's. lock_config's flock itself is not
        emulated: a worker here does not wait (up to 10 s upstream) for another worker of
        the same CT, such as a running create."""
        if self._is_running(vmid):
            raise PveError(500, f"CT {vmid} already running")

        def work(task: Task) -> None:
            conf = self.load_conf(vmid)
            if str(conf.get("template", "0")) == "1":
                raise TaskAbort("you can't start a CT if it's a template")
            if not skiplock and conf.get("lock") != "mounted":
                self._check_lock(conf)
            self._do_start(vmid, task)

        return self.run_task("vzstart", str(vmid), ident, work)

    def _do_start(self, vmid: int, task: Task) -> None:
        with self.lock:
            conf = self.load_conf(vmid)
            if conf.get("pending"):
                self._apply_pending(conf, task)
                self.write_conf(vmid, conf)
                conf = self.load_conf(vmid)
        self.backend.start(vmid, self._effective_conf(conf))

    def api_post_nodes_node_lxc_vmid_status_start(
        self, ident: Identity, a: dict[str, Any], extra: dict[str, Any]
    ) -> Any:
        vmid = int(a["vmid"])
        if a.get("skiplock") and not ident.is_root:
            raise param_error({"skiplock": "Only root may use this option."})
        self.load_conf(vmid)
        return self._vm_start(ident, vmid, skiplock=bool(a.get("skiplock")))

    def api_post_nodes_node_lxc_vmid_status_stop(
        self, ident: Identity, a: dict[str, Any], extra: dict[str, Any]
    ) -> Any:
        # Status.pm vm_stop: the lock check is the vzstop worker's, as vm_start's
        vmid = int(a["vmid"])
        if a.get("skiplock") and not ident.is_root:
            raise param_error({"skiplock": "Only root may use this option."})
        self.load_conf(vmid)
        if not self._is_running(vmid):
            raise PveError(500, f"CT {vmid} not running")

        def work(task: Task) -> None:
            conf = self.load_conf(vmid)
            if not a.get("skiplock") and conf.get("lock") != "mounted":
                self._check_lock(conf)
            self.backend.stop(vmid)

        return self.run_task("vzstop", str(vmid), ident, work)

    def api_post_nodes_node_lxc_vmid_status_shutdown(
        self, ident: Identity, a: dict[str, Any], extra: dict[str, Any]
    ) -> Any:
        # Status.pm vm_shutdown: the lock check is the vzshutdown worker's
        vmid = int(a["vmid"])
        self.load_conf(vmid)
        if not self._is_running(vmid):
            raise PveError(500, f"CT {vmid} not running")
        timeout = int(a.get("timeout", 60))
        force = bool(a.get("forceStop"))

        def work(task: Task) -> None:
            self._check_lock(self.load_conf(vmid))
            try:
                self.backend.shutdown(vmid, timeout)
            except Exception:
                if not force:
                    raise
                self.backend.stop(vmid)

        return self.run_task("vzshutdown", str(vmid), ident, work)

    def api_post_nodes_node_lxc_vmid_status_reboot(
        self, ident: Identity, a: dict[str, Any], extra: dict[str, Any]
    ) -> Any:
        # Status.pm vm_reboot and src/PVE/LXC.pm vm_reboot: no lock check at all
        vmid = int(a["vmid"])
        self.load_conf(vmid)
        if not self._is_running(vmid):
            raise PveError(500, f"VM {vmid} not running")
        timeout = int(a.get("timeout", 60))

        def work(task: Task) -> None:
            self.backend.shutdown(vmid, timeout)
            self._do_start(vmid, task)

        return self.run_task("vzreboot", str(vmid), ident, work)

    def api_get_nodes_node_lxc_vmid_interfaces(
        self, ident: Identity, a: dict[str, Any], extra: dict[str, Any]
    ) -> Any:
        vmid = int(a["vmid"])
        self.load_conf(vmid)
        if not self._is_running(vmid):
            return None
        return self.backend.interfaces(vmid)
